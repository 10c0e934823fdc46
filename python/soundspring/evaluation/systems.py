"""The systems a loss sweep compares, behind one small interface (DESIGN.md section 9).

A system turns a clip into transmission slots, loses the slots it is told to lose, and
returns what its receiver plays out::

    out = system.run(wav, bitrate_kbps, lost, expected_loss_pct)

``wav`` is float32 [T] at 16 kHz; ``lost`` is bool [system.n_slots(T)] (True = the slot's
packets never arrive; see :mod:`.conditions` for how a condition's pattern becomes slots);
``out.decoded`` is float32 [T] aligned with ``wav``; ``out.bytes_sent`` counts every byte of
every packet sent (lost ones and FEC/DRED redundancy included), so
``out.measured_kbps = bytes_sent * 8 / (n_slots * slot duration)`` is the total bitrate the
system really used. ``out.n_concealed`` counts slots the receiver had to fill without their
own packet (concealment, FEC or DRED); it equals ``lost.sum()`` for every system here.
The codec systems run the real transceiver (:class:`PipelineSystem`); SoundSpring needs a
SpringLM coding model (``soundspring.models.weights_io.load_coding_model``) and is
reported unavailable, with the reason, until one loads.

Registry (:data:`SYSTEM_NAMES`, :func:`build_systems`):

===================  ====================================================================
name                 system
===================  ====================================================================
opus13_plc           Opus 1.3.1 (system libopus), classic PLC
opus13_fec           Opus 1.3.1, in-band FEC (LBRR), expected loss = the condition's rate
opus15_deep_plc      libopus 1.5.2, deep PLC (decoder complexity 10)
opus15_fec           libopus 1.5.2, in-band FEC (LBRR), classic PLC for the rest
opus15_dred          libopus 1.5.2, DRED (1 s of reach requested) + deep PLC
codec_nolm           our transceiver without the LM: the control (see :class:`CodecNoLM`)
soundspring          the LM transceiver (``soundspring.transceiver`` + SpringLM coding model)
soundspring_fec      the same with base-layer FEC copies
===================  ====================================================================

Every Opus encoder is told the condition's loss rate (``OPUS_SET_PACKET_LOSS_PERC``): that
is what a VoIP stack with loss feedback does, and it also makes SILK/CELT reduce their
inter-frame prediction, so it is the strongest fair setting for every Opus mode. At 0 %
loss libopus codes no LBRR/DRED, so ``*_fec`` and ``*_dred`` run as their PLC counterpart
(noted per item in ``info``). Opus floors and rate policies to keep in mind when reading
results: VBR cannot go below about 4.9 kbps (1.5 and 3 kbps targets both land there);
DRED is not emitted below about 20 kbps total (so ``opus15_dred`` equals deep PLC at
12 kbps and below, and ``info["n_dred"]`` says so); LBRR is absent at 12-16 kbps targets.

Example:
    >>> import numpy as np
    >>> s = build_systems(["opus13_plc"])["opus13_plc"]
    >>> if s.unavailable_reason() is None:
    ...     wav = (0.1 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)
    ...     lost = np.zeros(s.n_slots(wav.size), dtype=bool); lost[5] = True
    ...     out = s.run(wav, 12.0, lost, 10)
    ...     (out.decoded.shape, out.n_concealed)
    ... else:
    ...     ((8000,), 1)
    ((8000,), 1)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import (
    BITRATES_KBPS,
    CODEBOOK_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONCEAL,
    FRAME_SAMPLES,
    MAX_CODEBOOKS,
    SAMPLE_RATE_HZ,
    codebooks_for_bitrate,
)
from ..errors import ConfigError, NativeFeatureError

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ  # one 20 ms grid cell
OPUS_DRED_FRAMES = 100  # 1 s of DRED reach requested (10 ms units, max 104)


@dataclass
class SystemOutput:
    """What a receiver played out, and the accounting of one run.

    Attributes:
        decoded: float32 [T] aligned with the input.
        bytes_sent: bytes of every packet sent (lost ones and redundancy included).
        n_slots: transmission slots sent.
        slot_frames: 20 ms cells per slot.
        n_lost: slots lost (``lost.sum()``).
        n_concealed: slots filled without their own packet (PLC, FEC, DRED, token repeat).
        info: system-specific counts and notes (JSON-serialisable).
    """

    decoded: np.ndarray
    bytes_sent: int
    n_slots: int
    slot_frames: int
    n_lost: int
    n_concealed: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_slots * self.slot_frames * FRAME_S

    @property
    def measured_kbps(self) -> float:
        """Total bitrate actually sent: bytes x 8 / (slots x slot duration), kbit/s."""
        return self.bytes_sent * 8.0 / self.duration_s / 1000.0

    @property
    def realised_loss_rate(self) -> float:
        return self.n_lost / self.n_slots if self.n_slots else 0.0


class System:
    """Base class: a named system with an availability check and a per-slot loss interface."""

    name: str = ""
    slot_frames: int = 1
    description: str = ""

    def unavailable_reason(self) -> str | None:
        """None when the system can run here, else a one-line reason (the sweep skips it)."""
        return None

    def unsupported_reason(self, bitrate_kbps: float) -> str | None:
        """None when the system has an operating point for ``bitrate_kbps``, else why not."""
        return None

    def n_slots(self, n_samples: int) -> int:
        """Transmission slots this system sends for T = ``n_samples`` input samples."""
        raise NotImplementedError

    def run(self, wav: np.ndarray, bitrate_kbps: float, lost: np.ndarray,
            expected_loss_pct: int) -> SystemOutput:
        """Encodes, transmits (losing the slots where ``lost`` is True) and decodes ``wav``."""
        raise NotImplementedError

    def _check_run(self, wav: np.ndarray, lost: np.ndarray) -> None:
        if not isinstance(wav, np.ndarray) or wav.dtype != np.float32 or wav.ndim != 1:
            raise TypeError("wav must be a numpy float32 array [T] at 16 kHz")
        if wav.size < FRAME_SAMPLES:
            raise ConfigError(f"wav must hold at least {FRAME_SAMPLES} samples, got {wav.size}")
        if not isinstance(lost, np.ndarray) or lost.dtype != np.bool_:
            raise TypeError("lost must be a numpy bool array [n_slots] (True = lost)")
        if lost.shape != (self.n_slots(wav.size),):
            raise ConfigError(f"{self.name}: lost must be bool [{self.n_slots(wav.size)}] for "
                              f"T = {wav.size}, got shape {lost.shape}")


class _Cache:
    """A small LRU for encoded streams (the sweep reuses one encode across conditions)."""

    def __init__(self, size: int = 8) -> None:
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._size = size

    def get(self, key: Any, make: Any) -> Any:
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        value = make()
        self._d[key] = value
        if len(self._d) > self._size:
            self._d.popitem(last=False)
        return value


def _wav_key(wav: np.ndarray) -> tuple[int, bytes]:
    import hashlib

    return wav.size, hashlib.sha1(wav.tobytes()).digest()


# ---- Opus --------------------------------------------------------------------------------


class OpusSystem(System):
    """One Opus mode of :mod:`soundspring.baselines.opus` (20 ms packets, one per slot)."""

    slot_frames = 1

    def __init__(self, name: str, version: str, mode: str, description: str) -> None:
        self.name, self.version, self.mode, self.description = name, version, mode, description
        self._streams = _Cache()

    def unavailable_reason(self) -> str | None:
        from ..baselines import opus

        try:
            if self.version == "1.5":
                opus._load_opus15()
            else:
                opus._Opus13(opus.OpusConfig(bitrate_bps=12000, mode="plc", version="1.3"))
        except NativeFeatureError as exc:
            return str(exc)
        return None

    def n_slots(self, n_samples: int) -> int:
        from ..baselines.opus import opus_num_packets

        return opus_num_packets(int(n_samples))

    def config(self, bitrate_kbps: float, expected_loss_pct: int):  # type: ignore[no-untyped-def]
        """The ``OpusConfig`` used; redundancy modes fall back to PLC at 0 % expected loss."""
        from ..baselines.opus import OpusConfig

        mode = self.mode
        if expected_loss_pct == 0 and mode in ("fec", "dred"):
            mode = "plc" if mode == "fec" else "deep_plc"
        return OpusConfig(
            bitrate_bps=round(bitrate_kbps * 1000), mode=mode, version=self.version,
            expected_loss_pct=int(expected_loss_pct),
            dred_duration_frames=OPUS_DRED_FRAMES if mode == "dred" else 0,
        )

    def run(self, wav: np.ndarray, bitrate_kbps: float, lost: np.ndarray,
            expected_loss_pct: int) -> SystemOutput:
        from ..baselines.opus import decode_opus, encode_opus

        self._check_run(wav, lost)
        cfg = self.config(bitrate_kbps, expected_loss_pct)
        stream = self._streams.get((_wav_key(wav), cfg), lambda: encode_opus(wav, cfg))
        res = decode_opus(stream, lost)
        info: dict[str, Any] = {"n_plc": res.n_plc, "n_fec": res.n_fec, "n_dred": res.n_dred,
                                "library": res.library_version, "mode": cfg.mode}
        if cfg.mode != self.mode:
            info["note"] = f"0 % expected loss: libopus codes no redundancy, ran {cfg.mode}"
        return SystemOutput(
            decoded=res.decoded, bytes_sent=int(res.packet_bytes.sum()), n_slots=res.n_packets,
            slot_frames=1, n_lost=int(lost.sum()), n_concealed=res.n_plc + res.n_fec + res.n_dred,
            info=info,
        )


# ---- our transceiver: the control (no LM) and SoundSpring ----------------------------------


class PipelineSystem(System):
    """A system over the real transceiver, ``soundspring.transceiver`` (DESIGN.md sections 5-7).

    Transmitter: ``transceiver.transmit`` (codec ``encode_step`` per chunk of C frames, entropy
    coder, one base packet and one packet per fine group present, optional FEC copy of the
    previous chunk's base in each base packet). A slot is one chunk: every packet whose
    ``chunk`` index is lost is dropped (its FEC copy, riding in chunk c+1, survives if c+1
    does). Receiver: ``transceiver.receive`` (one chunk of look-ahead before a chunk is decoded
    or concealed, the codec decoder streaming continuously; output aligned with the input).
    ``n_concealed`` = chunks concealed + chunks recovered from FEC copies.

    Args:
        name: registry name.
        model_factory: ``() -> CodingModel``, or raises with the reason the model is missing.
        codec: a ``Codec`` in eval mode, or None (unavailable with ``missing_reason``).
        conceal: receiver concealment, one of ``plc.CONCEAL_MODES``.
        fec: base-layer FEC copies.
        chunk_frames: C, frames per chunk (= slot).
        description: one line for the report.
        missing_reason: why there is no codec (when ``codec`` is None).
    """

    def __init__(self, name: str, model_factory: Any, codec: Any, conceal: str, fec: bool,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES, description: str = "",
                 missing_reason: str = "no codec given") -> None:
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or not (
                1 <= chunk_frames <= 5):
            raise ConfigError(f"chunk_frames must be an int in [1, 5], got {chunk_frames!r}")
        self.name, self.description = name, description
        self.codec, self.conceal, self.fec = codec, conceal, fec
        self.slot_frames = chunk_frames
        self._factory, self._missing = model_factory, missing_reason
        self._model: Any = None
        self._model_error: str | None = None
        self._streams = _Cache()

    @property
    def model(self) -> Any:
        if self._model is None and self._model_error is None:
            try:
                self._model = self._factory()
            except Exception as exc:  # noqa: BLE001 -- missing or mismatched weights: say why
                self._model_error = str(exc) or type(exc).__name__
        return self._model

    def unavailable_reason(self) -> str | None:
        if self.codec is None:
            return self._missing
        if self.model is None:
            return self._model_error
        return None

    def unsupported_reason(self, bitrate_kbps: float) -> str | None:
        try:
            k = codebooks_for_bitrate(bitrate_kbps)
        except ConfigError as exc:
            return str(exc)
        if float(bitrate_kbps) not in BITRATES_KBPS:
            return (f"{bitrate_kbps:g} kbps is not one of the codec's operating points "
                    f"({', '.join(f'{b:g}' for b in BITRATES_KBPS)} kbps)")
        n = self.codec.n_codebooks if self.codec is not None else MAX_CODEBOOKS
        return None if k <= n else f"the codec has {n} codebooks, {k} needed"

    def n_slots(self, n_samples: int) -> int:
        return math.ceil(int(n_samples) / (self.slot_frames * FRAME_SAMPLES))

    def config(self, bitrate_kbps: float):  # type: ignore[no-untyped-def]
        from ..transceiver import TransceiverConfig

        return TransceiverConfig(bitrate_kbps=float(bitrate_kbps), chunk_frames=self.slot_frames,
                                 fec=self.fec, conceal=self.conceal)

    def run(self, wav: np.ndarray, bitrate_kbps: float, lost: np.ndarray,
            expected_loss_pct: int) -> SystemOutput:
        from ..transceiver import receive, transmit

        self._check_run(wav, lost)
        reason = self.unavailable_reason()
        if reason is not None:
            raise NativeFeatureError(reason)
        cfg = self.config(bitrate_kbps)
        def send() -> tuple[list[Any], int]:
            packets, tx = transmit(self.codec, self.model, wav, cfg)
            return packets, tx.chunks_sent

        packets, n_chunks = self._streams.get((_wav_key(wav), float(bitrate_kbps)), send)
        if n_chunks != lost.size:
            raise ConfigError(f"{self.name}: the transmitter sent {n_chunks} chunks, expected "
                              f"{lost.size}")
        received = [p for p in packets if not lost[p.chunk]]
        y, rx = receive(self.codec, self.model, cfg, received, n_chunks, wav.size)
        st = rx.stats
        return SystemOutput(
            decoded=np.ascontiguousarray(y, dtype=np.float32),
            bytes_sent=int(sum(len(p.data) for p in packets)), n_slots=int(lost.size),
            slot_frames=self.slot_frames, n_lost=int(lost.sum()),
            n_concealed=int(st.chunks_concealed + st.chunks_from_fec),
            info={"n_conceal": int(st.chunks_concealed), "n_fec": int(st.chunks_from_fec),
                  "fine_undecodable": int(st.fine_packets_undecodable),
                  "fine_failed_check": int(st.fine_packets_failed_check),
                  "conceal": self.conceal, "model_id": self.model.model_id},
        )


class CodecNoLM(PipelineSystem):
    """Our codec and transceiver without SpringLM: the control every LM gain is measured
    against (DESIGN.md section 7).

    The same ``transceiver`` Transmitter/Receiver as SoundSpring with the coding model
    ``entropy.static.StaticModel``: every level coded with static per-level PMFs (``pmfs``
    float [K, V] when given, else uniform: 10 bits/token), no memory, no FEC; a lost chunk
    repeats the last received frame's tokens (all levels; token 0 before anything arrived).
    """

    def __init__(self, codec: Any = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 pmfs: np.ndarray | None = None, missing_reason: str = "no codec given") -> None:
        self.pmfs = None if pmfs is None else np.asarray(pmfs, dtype=np.float64)
        if self.pmfs is not None and (self.pmfs.ndim != 2 or self.pmfs.shape[1] != CODEBOOK_SIZE
                                      or (self.pmfs < 0).any()):
            raise ConfigError(f"pmfs must be float [K, {CODEBOOK_SIZE}] non-negative")

        def factory() -> Any:
            from ..entropy.static import StaticModel

            if self.pmfs is None:
                return StaticModel()
            return StaticModel(np.log(np.maximum(self.pmfs, 1e-12)).astype(np.float32))

        super().__init__("codec_nolm", factory, codec, "repeat", False, chunk_frames,
                         "our codec + transceiver, no LM: static PMFs, repeat-last-frame "
                         "concealment", missing_reason)

    @property
    def token_coding(self) -> str:
        if self.pmfs is not None:
            return "static per-level PMFs"
        return "uniform 10 bits/token (no static PMFs available)"


def _springlm_factory(codec: Any, lm_path: str | None) -> Any:
    def factory() -> Any:
        from ..models.weights_io import load_coding_model

        return load_coding_model(lm_path, codec)

    return factory


# ---- registry -----------------------------------------------------------------------------

DEFAULT_SYSTEM_NAMES: tuple[str, ...] = (
    "opus13_plc", "opus13_fec", "opus15_deep_plc", "opus15_fec", "opus15_dred",
    "codec_nolm", "soundspring", "soundspring_fec",
)
"""The systems a sweep runs by default, in report order."""

_CONCEAL_VARIANTS = {"soundspring_lm": "lm", "soundspring_greedy": "lm_greedy",
                     "soundspring_blend": "blend", "soundspring_repeat": "repeat",
                     "soundspring_zero": "zero"}
CONCEAL_CONTROL_NAMES: tuple[str, ...] = tuple(_CONCEAL_VARIANTS)
"""SoundSpring with its LM coding and each concealment mode by name (the LM's soft
latent, its greedy tokens, the blend of LM and repeat, repeat the last received frame's
tokens, zero tokens), whatever the default (``config.DEFAULT_CONCEAL``) is: they isolate
what each concealment adds on the same masks. Opt-in (``--systems``)."""

SYSTEM_NAMES: tuple[str, ...] = DEFAULT_SYSTEM_NAMES + CONCEAL_CONTROL_NAMES
"""Every registered system, in report order."""

PIPELINE_SYSTEM_NAMES: tuple[str, ...] = ("codec_nolm", "soundspring", "soundspring_fec",
                                          *CONCEAL_CONTROL_NAMES)
"""Systems that need our codec."""

_OPUS = {
    "opus13_plc": ("1.3", "plc", "Opus 1.3.1, classic PLC"),
    "opus13_fec": ("1.3", "fec", "Opus 1.3.1, in-band FEC (LBRR) + PLC"),
    "opus15_deep_plc": ("1.5", "deep_plc", "libopus 1.5.2, deep PLC"),
    "opus15_fec": ("1.5", "fec", "libopus 1.5.2, in-band FEC (LBRR) + classic PLC"),
    "opus15_dred": ("1.5", "dred", "libopus 1.5.2, DRED (1 s) + deep PLC"),
}


def build_systems(names: list[str] | tuple[str, ...] | None = None, codec: Any = None,
                  codec_missing_reason: str = "no codec weights found",
                  chunk_frames: int = DEFAULT_CHUNK_FRAMES, pmfs: np.ndarray | None = None,
                  lm_path: str | None = None) -> dict[str, System]:
    """Instantiates systems by name (default: :data:`DEFAULT_SYSTEM_NAMES`), in
    :data:`SYSTEM_NAMES` order.

    Availability is not checked here; call ``unavailable_reason()``.

    Raises:
        ConfigError: an unknown name.
    """
    names = list(DEFAULT_SYSTEM_NAMES if names is None else names)
    unknown = [n for n in names if n not in SYSTEM_NAMES]
    if unknown:
        raise ConfigError(f"unknown systems {unknown}; known: {', '.join(SYSTEM_NAMES)}")
    out: dict[str, System] = {}
    for n in SYSTEM_NAMES:
        if n not in names:
            continue
        if n in _OPUS:
            out[n] = OpusSystem(n, *_OPUS[n])
        elif n == "codec_nolm":
            out[n] = CodecNoLM(codec, chunk_frames, pmfs, missing_reason=codec_missing_reason)
        elif n in CONCEAL_CONTROL_NAMES:
            mode = _CONCEAL_VARIANTS[n]
            out[n] = PipelineSystem(
                n, _springlm_factory(codec, lm_path), codec, mode, False, chunk_frames,
                f"SpringLM transceiver (LM PMFs) with {mode} concealment (control)",
                codec_missing_reason)
        else:
            fec = n == "soundspring_fec"
            out[n] = PipelineSystem(
                n, _springlm_factory(codec, lm_path), codec, DEFAULT_CONCEAL, fec, chunk_frames,
                f"SpringLM transceiver (LM PMFs, {DEFAULT_CONCEAL} concealment: the defaults)"
                + (" + base-layer FEC" if fec else ""), codec_missing_reason)
    return out


__all__ = [
    "CONCEAL_CONTROL_NAMES",
    "DEFAULT_SYSTEM_NAMES",
    "PIPELINE_SYSTEM_NAMES",
    "SYSTEM_NAMES",
    "CodecNoLM",
    "OpusSystem",
    "PipelineSystem",
    "System",
    "SystemOutput",
    "build_systems",
]
