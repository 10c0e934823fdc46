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

Registry (:data:`SYSTEM_NAMES`, :func:`build_systems`):

===================  ====================================================================
name                 system
===================  ====================================================================
opus13_plc           Opus 1.3.1 (system libopus), classic PLC
opus13_fec           Opus 1.3.1, in-band FEC (LBRR), expected loss = the condition's rate
opus15_deep_plc      libopus 1.5.2, deep PLC (decoder complexity 10)
opus15_fec           libopus 1.5.2, in-band FEC (LBRR), classic PLC for the rest
opus15_dred          libopus 1.5.2, DRED (1 s of reach requested) + deep PLC
codec_nolm           our codec without the LM: the control (see :class:`CodecNoLM`)
soundspring          the LM transceiver (``soundspring.Transmitter``/``Receiver``)
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
    CODEBOOK_SIZE,
    DEFAULT_CHUNK_FRAMES,
    FRAME_SAMPLES,
    LAYER_BOUNDS,
    MAX_CODEBOOKS,
    SAMPLE_RATE_HZ,
    codebooks_for_bitrate,
    layers_for_codebooks,
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


# ---- our codec without the LM (the control) ----------------------------------------------


class CodecNoLM(System):
    """Our codec without SpringLM: the control every LM gain is measured against.

    Transmitter: ``codec.encode`` at the bitrate (K = bitrate / 0.5 kbps codebooks), chunks
    of C frames (C x 20 ms, ``chunk_frames``), one packet per layer present
    (``LAYER_BOUNDS``: base 0-2, fine 3-5, 6-11, 12-23), each a real
    ``transport.Packet`` (one TOC byte) whose payload is the layer's tokens range-coded
    frame-major by ``soundspring.coding``: with static per-level PMFs when ``pmfs`` is
    given, else uniform (log2 V = 10 bits/token, plus the coder's termination). No FEC.

    Receiver: a received chunk's tokens are decoded exactly (the coding is lossless); every
    frame of a lost chunk repeats the last received frame's tokens (all levels); lost
    chunks before the first received one play silence. The codec decodes the whole token
    sequence (its decoder is causal, so this equals streaming decode).

    Args:
        codec: a ``soundspring.models.codec.Codec`` (eval mode), or None (then the system
            is unavailable with ``missing_reason``).
        chunk_frames: C, frames per chunk/slot.
        pmfs: optional float [K_max, V] static per-level PMFs (rows sum to 1).
        missing_reason: why there is no codec (shown when ``codec`` is None).
    """

    name = "codec_nolm"
    description = "our codec, no LM: uniform/static token coding, repeat-last-frame concealment"

    def __init__(self, codec: Any = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 pmfs: np.ndarray | None = None, missing_reason: str = "no codec given") -> None:
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or not (
                1 <= chunk_frames <= 5):
            raise ConfigError(f"chunk_frames must be an int in [1, 5], got {chunk_frames!r}")
        self.codec = codec
        self.slot_frames = chunk_frames
        self._missing = missing_reason
        self._cdfs: np.ndarray | None = None
        if pmfs is not None:
            from .. import coding

            p = np.asarray(pmfs, dtype=np.float64)
            if p.ndim != 2 or p.shape[1] != CODEBOOK_SIZE or p.shape[0] < 1 or (p < 0).any():
                raise ConfigError(f"pmfs must be float [K, {CODEBOOK_SIZE}] non-negative")
            logits = np.log(np.maximum(p, 1e-12)).astype(np.float32)
            self._cdfs = coding.cdf_from_logits(np.ascontiguousarray(logits), 16)  # [K, V+1]
        self._streams = _Cache()

    @property
    def _bits(self) -> int:
        v = int(self.codec.cfg.codebook_size) if self.codec is not None else CODEBOOK_SIZE
        if v & (v - 1):
            raise ConfigError(f"uniform token coding needs a power-of-two codebook, got {v}")
        return v.bit_length() - 1

    @property
    def token_coding(self) -> str:
        if self._cdfs is not None:
            return "static per-level PMFs"
        return f"uniform {self._bits} bits/token (no static PMFs available)"

    def unavailable_reason(self) -> str | None:
        return None if self.codec is not None else self._missing

    def unsupported_reason(self, bitrate_kbps: float) -> str | None:
        try:
            k = codebooks_for_bitrate(bitrate_kbps)
        except ConfigError as exc:
            return str(exc)
        n = self.codec.n_codebooks if self.codec is not None else MAX_CODEBOOKS
        if self._cdfs is not None and k > self._cdfs.shape[0]:
            return f"static PMFs cover {self._cdfs.shape[0]} levels, {k} needed"
        return None if k <= n else f"the codec has {n} codebooks, {k} needed"

    def n_slots(self, n_samples: int) -> int:
        return math.ceil(math.ceil(int(n_samples) / FRAME_SAMPLES) / self.slot_frames)

    def _encode(self, wav: np.ndarray, bitrate_kbps: float) -> tuple[np.ndarray, np.ndarray]:
        """codes int64 [K, F] and packet bytes per slot int64 [n_slots]."""
        import torch

        from .. import coding
        from ..transport.packet import Packet

        x = torch.from_numpy(np.ascontiguousarray(wav))[None, None]
        codes = self.codec.encode(x, bitrate_kbps)[0].numpy()  # [K, F]
        k, f = codes.shape
        c = self.slot_frames
        bits = self._bits
        uniform = np.arange((1 << bits) + 1, dtype=np.uint32)[None, :]
        slot_bytes = np.zeros(self.n_slots(wav.size), dtype=np.int64)
        for s in range(slot_bytes.size):
            chunk = codes[:, s * c: (s + 1) * c]  # [K, <=C]
            for layer in range(layers_for_codebooks(k)):
                lo, hi = LAYER_BOUNDS[layer], min(LAYER_BOUNDS[layer + 1], k)
                sym = np.ascontiguousarray(chunk[lo:hi].T.reshape(-1), dtype=np.int32)
                if self._cdfs is None:
                    payload = coding.encode(sym, np.repeat(uniform, sym.size, axis=0), bits)
                else:
                    rows = np.tile(np.arange(lo, hi), chunk.shape[1])
                    payload = coding.encode(sym, np.ascontiguousarray(self._cdfs[rows]), 16)
                slot_bytes[s] += len(Packet(layer=layer, payload=payload).to_bytes())
        del f
        return codes, slot_bytes

    def run(self, wav: np.ndarray, bitrate_kbps: float, lost: np.ndarray,
            expected_loss_pct: int) -> SystemOutput:
        import torch

        self._check_run(wav, lost)
        if self.codec is None:
            raise NativeFeatureError(self._missing)
        codes, slot_bytes = self._streams.get(
            (_wav_key(wav), float(bitrate_kbps)), lambda: self._encode(wav, bitrate_kbps))
        c = self.slot_frames
        recv = codes.copy()
        mute = np.zeros(codes.shape[1], dtype=bool)  # frames before the first received chunk
        last: np.ndarray | None = None
        n_concealed = 0
        for s in range(lost.size):
            sl = slice(s * c, min((s + 1) * c, codes.shape[1]))
            if not lost[s]:
                last = codes[:, sl.stop - 1]
                continue
            n_concealed += 1
            if last is None:
                mute[sl] = True
                recv[:, sl] = 0
            else:
                recv[:, sl] = last[:, None]
        y = self.codec.decode(torch.from_numpy(recv)[None])[0, 0].numpy()
        y = np.ascontiguousarray(y[: wav.size], dtype=np.float32)
        if mute.any():
            y[np.repeat(mute, FRAME_SAMPLES)[: wav.size]] = 0.0
        return SystemOutput(
            decoded=y, bytes_sent=int(slot_bytes.sum()), n_slots=int(lost.size), slot_frames=c,
            n_lost=int(lost.sum()), n_concealed=n_concealed,
            info={"token_coding": self.token_coding, "n_muted_frames": int(mute.sum())},
        )


# ---- the LM transceiver ------------------------------------------------------------------


class SoundSpringSystem(System):
    """Adapter for the LM transceiver, written against its announced API.

    ``soundspring.Transmitter(codec, lm, bitrate_kbps=..., chunk_frames=C, fec=...)`` with
    ``push(pcm float32 [n]) -> list of packets`` and ``flush() -> list of packets``;
    ``soundspring.Receiver(codec, lm, bitrate_kbps=..., chunk_frames=C)`` with
    ``push(packet)``, ``mark_lost(seq)`` and ``pull(n) -> float32 [n]``. A packet is bytes or
    an object with ``to_bytes()``; its sequence number is its ``seq`` attribute if it has
    one, else its position in the stream. The LM comes from ``soundspring.load_lm(path)``.

    Transmission: the clip is pushed one chunk (C x 320 samples) at a time; the packets a
    ``push`` returns are sent in that push's slot (all share its fate), ``flush`` packets in
    one last slot. The receiver gets each slot's packets (or ``mark_lost`` for each), then is
    asked for C x 320 samples; output is aligned by dropping the receiver's
    ``delay_samples`` (0 if it has no such attribute). Concealed slots are read from the
    receiver's ``n_concealed`` when it has one, else taken as the lost slots.

    Until ``soundspring.Transmitter``/``Receiver``/``load_lm`` exist the system reports
    itself unavailable and the sweep skips it.
    """

    def __init__(self, name: str, fec: bool, codec: Any = None, lm_path: str | None = None,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        self.name, self.fec = name, fec
        self.codec, self.lm_path = codec, lm_path
        self.slot_frames = chunk_frames
        self.description = "SpringLM transceiver" + (" + base-layer FEC" if fec else "")
        self._lm: Any = None

    def _api(self) -> tuple[Any, Any, Any]:
        import soundspring

        tx = getattr(soundspring, "Transmitter", None)
        rx = getattr(soundspring, "Receiver", None)
        load_lm = getattr(soundspring, "load_lm", None)
        return tx, rx, load_lm

    def unavailable_reason(self) -> str | None:
        try:
            tx, rx, load_lm = self._api()
        except Exception as exc:  # noqa: BLE001 -- any import failure is a reason to skip
            return f"soundspring not importable: {exc}"
        if tx is None:
            return "soundspring.Transmitter not available"
        if rx is None:
            return "soundspring.Receiver not available"
        if load_lm is None:
            return "soundspring.load_lm not available (no SpringLM to load)"
        if self.codec is None:
            return "no codec weights"
        if self._lm is None:
            try:
                self._lm = load_lm(self.lm_path)
            except Exception as exc:  # noqa: BLE001 -- missing weights etc.: skip, say why
                return f"SpringLM weights not loadable: {exc}"
        return None

    def unsupported_reason(self, bitrate_kbps: float) -> str | None:
        try:
            codebooks_for_bitrate(bitrate_kbps)
        except ConfigError as exc:
            return str(exc)
        return None

    def n_slots(self, n_samples: int) -> int:
        # one slot per pushed chunk, plus one for what flush() sends
        return math.ceil(math.ceil(int(n_samples) / FRAME_SAMPLES) / self.slot_frames) + 1

    def run(self, wav: np.ndarray, bitrate_kbps: float, lost: np.ndarray,
            expected_loss_pct: int) -> SystemOutput:
        self._check_run(wav, lost)
        reason = self.unavailable_reason()
        if reason is not None:
            raise NativeFeatureError(reason)
        tx_cls, rx_cls, _ = self._api()
        c = self.slot_frames
        n = c * FRAME_SAMPLES
        tx = tx_cls(self.codec, self._lm, bitrate_kbps=bitrate_kbps, chunk_frames=c, fec=self.fec)
        rx = rx_cls(self.codec, self._lm, bitrate_kbps=bitrate_kbps, chunk_frames=c)
        padded = np.zeros((lost.size - 1) * n, dtype=np.float32)
        padded[: wav.size] = wav
        slots = [list(tx.push(padded[i * n: (i + 1) * n])) for i in range(lost.size - 1)]
        slots.append(list(tx.flush()))
        out: list[np.ndarray] = []
        bytes_sent, seq = 0, 0
        for i, packets in enumerate(slots):
            for p in packets:
                data = p if isinstance(p, (bytes, bytearray)) else p.to_bytes()
                bytes_sent += len(data)
                s = getattr(p, "seq", seq)
                seq += 1
                if lost[i]:
                    rx.mark_lost(s)
                else:
                    rx.push(p)
            out.append(np.asarray(rx.pull(n), dtype=np.float32).reshape(-1))
        delay = int(getattr(rx, "delay_samples", 0))
        y = np.concatenate(out)
        if y.size < delay + wav.size:
            y = np.concatenate([y, np.asarray(rx.pull(delay + wav.size - y.size),
                                              dtype=np.float32).reshape(-1)])
        y = np.ascontiguousarray(y[delay: delay + wav.size], dtype=np.float32)
        n_conc = int(getattr(rx, "n_concealed", int(lost.sum())))
        return SystemOutput(decoded=y, bytes_sent=bytes_sent, n_slots=int(lost.size),
                            slot_frames=c, n_lost=int(lost.sum()), n_concealed=n_conc,
                            info={"fec": self.fec})


# ---- registry -----------------------------------------------------------------------------

SYSTEM_NAMES: tuple[str, ...] = (
    "opus13_plc", "opus13_fec", "opus15_deep_plc", "opus15_fec", "opus15_dred",
    "codec_nolm", "soundspring", "soundspring_fec",
)
"""Every registered system, in report order."""

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
    """Instantiates systems by name (default: all of :data:`SYSTEM_NAMES`), in that order.

    Availability is not checked here; call ``unavailable_reason()``.

    Raises:
        ConfigError: an unknown name.
    """
    names = list(SYSTEM_NAMES if names is None else names)
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
        else:
            out[n] = SoundSpringSystem(n, n == "soundspring_fec", codec, lm_path, chunk_frames)
    return out


__all__ = [
    "SYSTEM_NAMES",
    "CodecNoLM",
    "OpusSystem",
    "SoundSpringSystem",
    "System",
    "SystemOutput",
    "build_systems",
]
