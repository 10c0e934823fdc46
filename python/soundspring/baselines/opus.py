"""Opus baselines (DESIGN.md section 9): Opus 1.3 PLC / in-band FEC and libopus 1.5 deep PLC / DRED.

One interface over two libraries:

* ``version="1.3"``: the system libopus (Debian bookworm ``libopus0`` 1.3.1) through PyPI
  ``opuslib-next`` (module ``opuslib_next``). Modes ``"plc"`` and ``"fec"``.
* ``version="1.5"``: libopus 1.5.2 built from Debian's source package with
  ``--enable-dred --enable-deep-plc --enable-osce`` by ``scripts/build_opus15.sh`` and loaded
  by path with ctypes (:mod:`._opus15_ctypes`), never the system libopus. Modes ``"plc"``,
  ``"fec"``, ``"deep_plc"`` and ``"dred"``.

Packets and losses
------------------
16 kHz mono float input is cut into 20 ms frames (320 samples); each frame is one Opus packet
(one frame per packet, application VOIP, encoder complexity 10 by default). ``loss_mask[n]``
(True = lost) removes packet ``n``; nothing else is ever lost or reordered. The receiver is an
ideal jitter buffer with one packet of look-ahead: when packet ``n`` arrives after a run of
``k`` lost packets ``n-k .. n-1``, the gap is filled first, then ``n`` is decoded. Each lost
packet produces exactly 20 ms of output, by exactly one of:

===========  ==========================================================================
mode         what fills lost packet ``m`` (redundancy carried and what it costs)
===========  ==========================================================================
plc          ``opus_decode(NULL)``: the decoder's packet-loss concealment. Classic PLC on
             1.3 and on 1.5 with decoder complexity < 5. No redundancy.
fec          in-band FEC (SILK LBRR): the encoder runs with ``OPUS_SET_INBAND_FEC(1)`` and
             ``OPUS_SET_PACKET_LOSS_PERC(expected_loss_pct)`` and puts a low-bitrate copy of
             frame ``m`` into packet ``m+1``. If ``m+1`` arrived and carries LBRR, ``m`` is
             decoded from it (``decode_fec=1``); otherwise PLC. Only the LAST packet of a
             burst can be recovered this way. LBRR is a SILK feature: CELT-only packets
             (high bitrates) carry none, and the encoder decides per packet (``decide_fec``)
             whether the rate affords it.
deep_plc     1.5 only: PLC with decoder complexity >= 5, i.e. the neural PLC (LPCNet
             features + FARGAN). No redundancy.
dred         1.5 only: Deep REDundancy. The encoder runs with
             ``OPUS_SET_DRED_DURATION(dred_duration_frames)`` (10 ms units, <= 104) and
             ``OPUS_SET_PACKET_LOSS_PERC(expected_loss_pct)``; every packet then carries a
             neural description of up to ``dred_duration_frames*10`` ms of PAST audio. On
             packet arrival after a gap, ``opus_dred_parse`` extracts it and each lost packet
             is synthesized with ``opus_decoder_dred_decode_float`` at its offset before the
             arrived packet; parts of the gap out of DRED's reach are filled by deep PLC.
             In-band FEC is off in this mode.
===========  ==========================================================================

Lost packets at the very end of the signal (no later packet) are always concealed by PLC
(deep PLC when the decoder complexity is >= 5).

Bitrate: the encoder is VBR (unconstrained, the Opus default and what VoIP stacks use;
``OpusConfig.vbr=False`` gives CBR), so the bytes per packet follow the content;
``OpusResult.packet_bytes`` is the size of every packet SENT (lost ones included), and
``OpusResult.bitrate_bps`` is the real average rate, redundancy included: always compare
measured bitrates. libopus takes the LBRR/DRED budget out of ``bitrate_bps`` in its rate
control, yet VBR packets still grow with the redundancy. Measured on espeak-ng speech, VBR,
no loss (kbps): target 24 -> plain 20.0, FEC at 10 % 21.5 (1.3: 22.1), DRED 10 %/1 s 25.0;
target 12 -> 11.0 for every mode. DRED policy of libopus 1.5 (``compute_dred_bitrate`` in
``src/opus_encoder.c``): no DRED at ``expected_loss_pct == 0``, and none below roughly
20 kbps (DRED gets ``frac * (bitrate - 12000)`` and is dropped when that affords fewer than two
chunks: nothing at 16 kbps; 55..175 ms of reach at 24 kbps for 10..30 % loss). LBRR (both versions,
espeak speech) is absent at 12..16 kbps, present in 84 % of packets at 20 kbps for 20 % loss
and at 24 kbps for 5 % loss (unvoiced/silent frames carry none). Opus has a floor: VBR targets of 1.5 and 3 kbps come out at
about 4.9 kbps, and CBR below about 6 kbps emits near-empty "PLC frames" (PESQ-WB about 1.05).

Alignment: the encoder's look-ahead (``OPUS_GET_LOOKAHEAD``: 2.5 ms + 4 ms delay
compensation = 104 samples at 16 kHz for VOIP) is the whole codec delay on top of framing.
The input is zero-padded at the end so that ``n_packets = ceil((T + 104) / 320)`` packets
cover it, and the first 104 decoded samples are dropped: output sample ``i`` corresponds to
input sample ``i`` (measured by cross-correlation in ``tests/test_opus_baseline.py``).
"""

from __future__ import annotations

import ctypes
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from soundspring.audio import check_pcm
from soundspring.config import FRAME_SAMPLES, SAMPLE_RATE_HZ
from soundspring.errors import ConfigError, NativeFeatureError

# One Opus frame = one packet = one codec frame (config.FRAME_SAMPLES, 20 ms at 16 kHz), so
# Opus and SoundSpring share the 20 ms loss grid of the sweep.
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE_HZ
LOOKAHEAD_SAMPLES = 104  # OPUS_GET_LOOKAHEAD at 16 kHz, VOIP (checked against both libraries)
MAX_DRED_FRAMES = 104  # DRED_MAX_FRAMES in opus 1.5 dnn/dred_config.h (10 ms units)
DEEP_PLC_MIN_COMPLEXITY = 5  # opus 1.5 src/opus_decoder.c: enable_deep_plc = complexity >= 5

Mode = Literal["plc", "fec", "deep_plc", "dred"]
Version = Literal["1.3", "1.5"]
_MODES_BY_VERSION: dict[str, tuple[str, ...]] = {
    "1.3": ("plc", "fec"),
    "1.5": ("plc", "fec", "deep_plc", "dred"),
}
_REPO_ROOT = Path(__file__).resolve().parents[3]
_BUILD_SCRIPT = _REPO_ROOT / "scripts" / "build_opus15.sh"


def opus15_build_command() -> str:
    """The shell command that builds libopus 1.5 into the cache."""
    if _BUILD_SCRIPT.is_file():
        return f"bash {_BUILD_SCRIPT}"
    return "bash scripts/build_opus15.sh  (from a SoundSpring checkout)"


@dataclass(frozen=True)
class OpusConfig:
    """One Opus baseline condition.

    Attributes:
        bitrate_bps: total target bitrate (redundancy included), 500..512000 bits/s.
        mode: loss handling, see the module docstring: ``plc``, ``fec``, ``deep_plc``, ``dred``.
        version: ``"1.3"`` (system libopus via opuslib-next) or ``"1.5"`` (built library).
        expected_loss_pct: ``OPUS_SET_PACKET_LOSS_PERC`` for the encoder, 0..100; must be > 0
            for ``fec`` and ``dred`` (libopus codes no redundancy at 0).
        dred_duration_frames: ``OPUS_SET_DRED_DURATION`` in 10 ms units, 1..104 for ``dred``,
            0 otherwise.
        complexity: encoder complexity 0..10.
        decoder_complexity: 1.5 only, 0..10. None = 0 for ``plc``/``fec`` (classic
            concealment, like 1.3) and 10 for ``deep_plc``/``dred`` (deep PLC from 5,
            OSCE LACE from 6, NoLACE from 7). ``deep_plc``/``dred`` need >= 5.
        vbr: variable bitrate (default, unconstrained); False = CBR.
    """

    bitrate_bps: int
    mode: Mode
    version: Version
    expected_loss_pct: int = 0
    dred_duration_frames: int = 0
    complexity: int = 10
    decoder_complexity: int | None = None
    vbr: bool = True

    def __post_init__(self) -> None:
        def _int(name: str, lo: int, hi: int) -> int:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ConfigError(f"OpusConfig.{name} must be an int in [{lo}, {hi}], got {v!r}")
            return int(v)

        if self.version not in _MODES_BY_VERSION:
            raise ConfigError(f"OpusConfig.version must be '1.3' or '1.5', got {self.version!r}")
        if self.mode not in _MODES_BY_VERSION[self.version]:
            raise ConfigError(
                f"OpusConfig.mode must be one of {_MODES_BY_VERSION[self.version]} for version "
                f"{self.version!r}, got {self.mode!r}"
            )
        _int("bitrate_bps", 500, 512000)
        loss = _int("expected_loss_pct", 0, 100)
        dred = _int("dred_duration_frames", 0, MAX_DRED_FRAMES)
        _int("complexity", 0, 10)
        if not isinstance(self.vbr, bool):
            raise ConfigError(f"OpusConfig.vbr must be a bool, got {self.vbr!r}")
        if self.mode in ("fec", "dred") and loss == 0:
            raise ConfigError(
                f"OpusConfig.expected_loss_pct must be > 0 for mode {self.mode!r} "
                "(libopus adds no redundancy at 0% expected loss)"
            )
        if self.mode == "dred" and dred == 0:
            raise ConfigError("OpusConfig.dred_duration_frames must be in [1, 104] for mode 'dred'")
        if self.mode != "dred" and dred != 0:
            raise ConfigError(f"OpusConfig.dred_duration_frames must be 0 for mode {self.mode!r}")
        if self.decoder_complexity is not None:
            if self.version == "1.3":
                raise ConfigError("OpusConfig.decoder_complexity must be None for version '1.3'")
            dc = _int("decoder_complexity", 0, 10)
            if self.mode in ("deep_plc", "dred") and dc < DEEP_PLC_MIN_COMPLEXITY:
                raise ConfigError(
                    f"OpusConfig.decoder_complexity must be >= "
                    f"{DEEP_PLC_MIN_COMPLEXITY} for mode {self.mode!r}, got {dc}"
                )

    @property
    def effective_decoder_complexity(self) -> int:
        if self.decoder_complexity is not None:
            return int(self.decoder_complexity)
        return 10 if self.mode in ("deep_plc", "dred") else 0


@dataclass(frozen=True)
class OpusStream:
    """Encoded packets of one signal (encode once, decode under many loss masks)."""

    config: OpusConfig
    packets: tuple[bytes, ...]  # [n_packets], 20 ms each
    n_samples: int  # T of the input
    library_version: str  # e.g. "libopus 1.3.1"

    @property
    def n_packets(self) -> int:
        return len(self.packets)

    @property
    def packet_bytes(self) -> np.ndarray:
        """int64 [n_packets]: bytes of every packet sent."""
        return np.fromiter((len(p) for p in self.packets), dtype=np.int64, count=len(self.packets))


@dataclass(frozen=True)
class OpusResult:
    """Decoded signal and accounting of one run.

    ``decoded`` float32 [T] aligned with the input; ``packet_bytes`` int64 [n_packets] (sent,
    lost ones included); ``n_plc + n_fec + n_dred == loss_mask.sum()``: how each lost packet
    was filled (``n_plc`` includes deep PLC; ``n_dred`` counts lost packets lying wholly within
    the reach reported by ``opus_dred_parse``; DRED-mode packets outside it are deep PLC and
    counted in ``n_plc``).
    """

    decoded: np.ndarray
    packet_bytes: np.ndarray
    n_packets: int
    loss_mask: np.ndarray
    n_plc: int
    n_fec: int
    n_dred: int
    library_version: str
    config: OpusConfig = field(repr=False)

    @property
    def bitrate_bps(self) -> float:
        """Measured average bitrate of the packets sent (redundancy included)."""
        return float(self.packet_bytes.sum()) * 8.0 / (self.n_packets * FRAME_SECONDS)


# ---- library discovery ----------------------------------------------------------------------


def _cache_root() -> Path:
    env = os.environ.get("SOUNDSPRING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "soundspring"


def opus15_library_path() -> Path | None:
    """Path of the built libopus 1.5 shared library, or None if it is not built.

    ``$SOUNDSPRING_OPUS15_LIB`` (a file) wins; otherwise the build script's location
    ``${SOUNDSPRING_CACHE:-~/.cache/soundspring}/opus15/install/lib/libopus.so.0``.
    """
    env = os.environ.get("SOUNDSPRING_OPUS15_LIB")
    if env:
        p = Path(env)
        return p if p.is_file() else None
    p = _cache_root() / "opus15" / "install" / "lib" / "libopus.so.0"
    return p if p.is_file() else None


def _load_opus15():  # type: ignore[no-untyped-def]
    from soundspring.baselines import _opus15_ctypes

    # Both libraries have the SONAME libopus.so.0. opuslib-next dlopen()s the bare soname, and
    # glibc answers a soname request with any loaded object of that soname: loading 1.5 first
    # would make "Opus 1.3" silently run 1.5. So bind the system libopus to the soname first;
    # our by-path dlopen of 1.5 is then a separate object (RTLD_LOCAL | RTLD_DEEPBIND).
    try:
        _opuslib()
    except NativeFeatureError:
        pass
    path = opus15_library_path()
    if path is None:
        raise NativeFeatureError(
            "libopus 1.5 (DRED, deep PLC) is not built; build it with: " + opus15_build_command()
        )
    return _opus15_ctypes.load(path.resolve())


def opus15_available() -> bool:
    """True if the libopus 1.5 library is built and loads with the expected API."""
    try:
        _load_opus15()
    except NativeFeatureError:
        return False
    return True


def _opuslib():  # type: ignore[no-untyped-def]
    try:
        import opuslib_next  # type: ignore[import-untyped]
        import opuslib_next.api.decoder  # type: ignore[import-untyped]
    except Exception as exc:  # opuslib_next raises a bare Exception when libopus is missing
        raise NativeFeatureError(
            "Opus 1.3 baseline needs `pip install opuslib-next` and `apt-get install libopus0`: "
            f"{exc}"
        ) from exc
    return opuslib_next


# ---- backends ------------------------------------------------------------------------------


class _Backend:
    """Encoder + decoder of one library, one signal."""

    version: str

    def encode(self, frame: np.ndarray) -> bytes:
        raise NotImplementedError

    def decode(self, packet: bytes, out: np.ndarray) -> None:
        raise NotImplementedError

    def plc(self, out: np.ndarray) -> None:
        raise NotImplementedError

    def fec(self, next_packet: bytes, out: np.ndarray) -> bool:
        """Fill ``out`` from the LBRR of ``next_packet``; False (and PLC) if it has none."""
        raise NotImplementedError

    def dred_parse(self, packet: bytes, max_samples: int) -> int:
        raise NotImplementedError

    def dred_decode(self, offset: int, out: np.ndarray) -> None:
        raise NotImplementedError


def _first_frame_byte(packet: bytes) -> int | None:
    """First byte of the first Opus frame of ``packet`` (RFC 6716 section 3.2), None if empty."""
    n = len(packet)
    if n < 2:
        return None
    code = packet[0] & 0x3
    pos = 1
    if code == 2:  # two frames, first length coded in 1 or 2 bytes
        pos += 1 if packet[1] < 252 else 2
    elif code == 3:
        if n < 3:
            return None
        flags = packet[1]
        count = flags & 0x3F
        pos = 2
        if flags & 0x40:  # padding length bytes
            while pos < n and packet[pos] == 255:
                pos += 1
            pos += 1
        if flags & 0x80:  # VBR: count-1 frame lengths
            for _ in range(max(count - 1, 0)):
                if pos >= n:
                    return None
                pos += 1 if packet[pos] < 252 else 2
    return packet[pos] if pos < n else None


def packet_has_lbrr(packet: bytes) -> bool:
    """Whether a 20 ms mono Opus packet carries SILK LBRR (in-band FEC) data.

    Mirrors ``opus_packet_has_lbrr`` of libopus 1.5 (not in 1.3): CELT-only packets (TOC
    config >= 16) have none; otherwise the LBRR flag is bit 6 of the first frame's first byte
    (bit 7 is the VAD flag; both are range-coded with probability 1/2).
    """
    if not packet or (packet[0] >> 3) >= 16:
        return False
    b = _first_frame_byte(packet)
    return b is not None and bool((b >> 6) & 1)


class _Opus13(_Backend):
    def __init__(self, config: OpusConfig) -> None:
        ol = _opuslib()
        self._api_dec = ol.api.decoder
        vfn = ol.api.libopus["opus_get_version_string"]
        vfn.restype = ctypes.c_char_p
        self.version = vfn().decode()
        if not self.version.startswith("libopus 1.3"):
            raise NativeFeatureError(
                f"Opus 1.3 baseline: opuslib-next loaded {self.version!r}, expected libopus 1.3.x "
                "(Debian bookworm libopus0)"
            )
        enc = ol.Encoder(SAMPLE_RATE_HZ, 1, "voip")
        enc.bitrate = config.bitrate_bps
        enc.vbr = int(config.vbr)
        enc.complexity = config.complexity
        enc.inband_fec = int(config.mode == "fec")
        enc.packet_loss_perc = config.expected_loss_pct
        if enc.lookahead != LOOKAHEAD_SAMPLES:
            raise NativeFeatureError(
                f"{self.version}: lookahead {enc.lookahead} != {LOOKAHEAD_SAMPLES}"
            )
        self._enc = enc
        self._dec = ol.Decoder(SAMPLE_RATE_HZ, 1)

    def encode(self, frame: np.ndarray) -> bytes:
        return bytes(self._enc.encode_float(frame.tobytes(), frame.shape[0]))

    def _put(self, pcm: bytes, out: np.ndarray) -> None:
        y = np.frombuffer(pcm, dtype=np.float32)
        if y.shape[0] != out.shape[0]:
            raise NativeFeatureError(
                f"libopus 1.3 decoded {y.shape[0]} samples, expected {out.shape[0]}"
            )
        out[:] = y

    def decode(self, packet: bytes, out: np.ndarray) -> None:
        self._put(self._dec.decode_float(packet, out.shape[0], False), out)

    def plc(self, out: np.ndarray) -> None:
        self._put(
            self._api_dec.decode_float(
                self._dec.decoder_state, None, 0, out.shape[0], False, channels=1
            ),
            out,
        )

    def fec(self, next_packet: bytes, out: np.ndarray) -> bool:
        self._put(self._dec.decode_float(next_packet, out.shape[0], True), out)
        return packet_has_lbrr(next_packet)


class _Opus15(_Backend):
    def __init__(self, config: OpusConfig) -> None:
        from soundspring.baselines import _opus15_ctypes as oc

        lib = _load_opus15()
        self.version = lib.version
        enc = oc.Encoder(lib, SAMPLE_RATE_HZ, oc.OPUS_APPLICATION_VOIP)
        enc.set(oc.SET_BITRATE, config.bitrate_bps)
        enc.set(oc.SET_VBR, int(config.vbr))
        enc.set(oc.SET_VBR_CONSTRAINT, 0)
        enc.set(oc.SET_COMPLEXITY, config.complexity)
        enc.set(oc.SET_INBAND_FEC, int(config.mode == "fec"))
        enc.set(oc.SET_PACKET_LOSS_PERC, config.expected_loss_pct)
        enc.set(oc.SET_DRED_DURATION, config.dred_duration_frames)
        if enc.get(oc.GET_LOOKAHEAD) != LOOKAHEAD_SAMPLES:
            raise NativeFeatureError(
                f"{lib.version}: lookahead {enc.get(oc.GET_LOOKAHEAD)} != {LOOKAHEAD_SAMPLES}"
            )
        dec = oc.Decoder(lib, SAMPLE_RATE_HZ, with_dred=config.mode == "dred")
        dec.set(oc.SET_COMPLEXITY, config.effective_decoder_complexity)
        if dec.get(oc.GET_COMPLEXITY) != config.effective_decoder_complexity:
            raise NativeFeatureError("libopus 1.5 decoder refused OPUS_SET_COMPLEXITY")
        self._enc, self._dec = enc, dec

    def encode(self, frame: np.ndarray) -> bytes:
        return self._enc.encode(frame)

    def _check(self, n: int, out: np.ndarray) -> None:
        if n != out.shape[0]:
            raise NativeFeatureError(f"libopus 1.5 decoded {n} samples, expected {out.shape[0]}")

    def decode(self, packet: bytes, out: np.ndarray) -> None:
        self._check(self._dec.decode(packet, out), out)

    def plc(self, out: np.ndarray) -> None:
        self._check(self._dec.decode(None, out), out)

    def fec(self, next_packet: bytes, out: np.ndarray) -> bool:
        self._check(self._dec.decode(next_packet, out, fec=True), out)
        return self._dec.has_lbrr(next_packet)

    def dred_parse(self, packet: bytes, max_samples: int) -> int:
        return self._dec.dred_parse(packet, max_samples)

    def dred_decode(self, offset: int, out: np.ndarray) -> None:
        self._check(self._dec.dred_decode(offset, out), out)


def _backend(config: OpusConfig) -> _Backend:
    return _Opus13(config) if config.version == "1.3" else _Opus15(config)


# ---- public API -------------------------------------------------------------------------------


def opus_num_packets(n_samples: int) -> int:
    """Number of 20 ms packets that carry ``n_samples`` input samples (look-ahead included)."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ConfigError(f"n_samples must be a positive int, got {n_samples!r}")
    return math.ceil((int(n_samples) + LOOKAHEAD_SAMPLES) / FRAME_SAMPLES)


def _check_wav(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    wav = check_pcm(wav, "wav")
    if sample_rate != SAMPLE_RATE_HZ:
        raise ConfigError(
            f"sample_rate must be {SAMPLE_RATE_HZ} Hz (resample first), got {sample_rate!r}"
        )
    return wav


def _check_config(config: OpusConfig) -> None:
    if not isinstance(config, OpusConfig):
        raise TypeError(f"config must be an OpusConfig, got {type(config).__name__}")


def encode_opus(wav: np.ndarray, config: OpusConfig, sample_rate: int = SAMPLE_RATE_HZ) -> OpusStream:
    """Encode ``wav`` (float32 [T], 16 kHz mono, nominally in [-1, 1]) into 20 ms packets."""
    _check_config(config)
    wav = _check_wav(wav, sample_rate)
    backend = _backend(config)
    return _encode(backend, wav, config)


def _encode(backend: _Backend, wav: np.ndarray, config: OpusConfig) -> OpusStream:
    t = wav.shape[0]
    n = opus_num_packets(t)
    x = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    x[:t] = wav
    packets = tuple(
        backend.encode(np.ascontiguousarray(x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]))
        for i in range(n)
    )
    return OpusStream(config=config, packets=packets, n_samples=t, library_version=backend.version)


def _check_mask(loss_mask: np.ndarray | None, n_packets: int) -> np.ndarray:
    if loss_mask is None:
        return np.zeros(n_packets, dtype=bool)
    if not isinstance(loss_mask, np.ndarray) or loss_mask.dtype != np.bool_:
        got = loss_mask.dtype if isinstance(loss_mask, np.ndarray) else type(loss_mask).__name__
        raise TypeError(
            f"loss_mask must be a numpy bool array [n_packets] (True = lost), got {got}"
        )
    if loss_mask.shape != (n_packets,):
        raise ConfigError(
            f"loss_mask must be bool [n_packets] with n_packets = {n_packets} "
            f"(= opus_num_packets(T)), got shape {loss_mask.shape}"
        )
    return loss_mask.copy()


def decode_opus(stream: OpusStream, loss_mask: np.ndarray | None) -> OpusResult:
    """Decode ``stream`` with packets removed where ``loss_mask`` (bool [n_packets]) is True."""
    if not isinstance(stream, OpusStream):
        raise TypeError(
            f"stream must be an OpusStream from encode_opus, got {type(stream).__name__}"
        )
    return _decode(_backend(stream.config), stream, _check_mask(loss_mask, stream.n_packets))


def _decode(backend: _Backend, stream: OpusStream, mask: np.ndarray) -> OpusResult:
    config, packets, n = stream.config, stream.packets, stream.n_packets
    frame = FRAME_SAMPLES
    y = np.zeros(n * frame, dtype=np.float32)
    counts = {"plc": 0, "fec": 0, "dred": 0}

    def conceal(gap: list[int], nxt: bytes | None) -> None:
        k = len(gap)
        reach = 0
        if config.mode == "dred" and nxt is not None:
            # Ask for all the redundancy the encoder was told to send (not just k frames):
            # DRED comes in 40 ms latents shifted by the encoder's feature delay, so asking
            # for exactly k*20 ms leaves the start of the oldest lost frame uncovered.
            reach = backend.dred_parse(nxt, config.dred_duration_frames * SAMPLE_RATE_HZ // 100)
        for j, m in enumerate(gap):
            out = y[m * frame : (m + 1) * frame]
            offset = (k - j) * frame  # samples from the start of lost packet m to packet nxt
            if config.mode == "fec" and nxt is not None and j == k - 1:
                counts["fec" if backend.fec(nxt, out) else "plc"] += 1
            elif reach > 0:
                backend.dred_decode(offset, out)
                counts["dred" if offset <= reach else "plc"] += 1
            else:
                backend.plc(out)
                counts["plc"] += 1

    gap: list[int] = []
    for i in range(n):
        if mask[i]:
            gap.append(i)
            continue
        if gap:
            conceal(gap, packets[i])
            gap = []
        backend.decode(packets[i], y[i * frame : (i + 1) * frame])
    if gap:
        conceal(gap, None)

    t = stream.n_samples
    decoded = np.ascontiguousarray(y[LOOKAHEAD_SAMPLES : LOOKAHEAD_SAMPLES + t])
    return OpusResult(
        decoded=decoded,
        packet_bytes=stream.packet_bytes,
        n_packets=n,
        loss_mask=mask,
        n_plc=counts["plc"],
        n_fec=counts["fec"],
        n_dred=counts["dred"],
        library_version=stream.library_version,
        config=config,
    )


def run_opus(
    wav: np.ndarray,
    config: OpusConfig,
    loss_mask: np.ndarray | None,
    sample_rate: int = SAMPLE_RATE_HZ,
) -> OpusResult:
    """Encode ``wav`` (float32 [T], 16 kHz mono) with ``config`` and decode it losing the
    packets where ``loss_mask`` (bool [opus_num_packets(T)], True = lost; None = no loss) is
    True. Returns the decoded float32 [T] aligned with ``wav`` and the bytes of every packet.

    Raises:
        TypeError: ``wav`` not a float32 ndarray, ``loss_mask`` not a bool ndarray.
        ConfigError: bad shape, NaN/Inf, sample rate other than 16000, bad ``config``.
        NativeFeatureError: the library is missing (libopus0/opuslib-next for 1.3; the
            built libopus 1.5, with the command that builds it, for 1.5).
    """
    _check_config(config)
    wav = _check_wav(wav, sample_rate)
    mask = _check_mask(loss_mask, opus_num_packets(wav.shape[0]))
    backend = _backend(config)
    stream = _encode(backend, wav, config)
    return _decode(backend, stream, mask)


__all__ = [
    "LOOKAHEAD_SAMPLES",
    "OpusConfig",
    "OpusResult",
    "OpusStream",
    "decode_opus",
    "encode_opus",
    "opus15_available",
    "opus15_build_command",
    "opus15_library_path",
    "opus_num_packets",
    "packet_has_lbrr",
    "run_opus",
]
