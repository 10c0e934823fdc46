"""ctypes binding of a libopus 1.5 shared library loaded by path (never the system libopus).

Only what the Opus baselines need: the float encoder/decoder, their integer CTLs, and the
DRED (Deep REDundancy) decoder API. Prototypes follow the built headers
``<prefix>/include/opus/opus.h`` and ``opus_defines.h`` of opus 1.5.2; the CTL request
numbers below are copied from ``opus_defines.h`` and re-checked against the header that sits
next to the library when it is loaded (:func:`load`), so a different build fails loudly
instead of misbehaving.

The CTL functions are C-variadic: their arguments are passed as explicit ``c_int`` /
``byref(c_int32)`` objects with no ``argtypes`` (the x86-64 and aarch64 ABIs pass such
integer/pointer varargs exactly like fixed ones).
"""

from __future__ import annotations

import ctypes
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from soundspring.errors import NativeFeatureError, SoundspringError

# ---- constants from opus_defines.h (opus 1.5.2) --------------------------------------------
OPUS_OK = 0
OPUS_APPLICATION_VOIP = 2048
OPUS_SIGNAL_VOICE = 3001

CTL_REQUESTS: dict[str, int] = {
    "OPUS_SET_BITRATE_REQUEST": 4002,
    "OPUS_GET_BITRATE_REQUEST": 4003,
    "OPUS_SET_VBR_REQUEST": 4006,
    "OPUS_SET_COMPLEXITY_REQUEST": 4010,
    "OPUS_GET_COMPLEXITY_REQUEST": 4011,
    "OPUS_SET_INBAND_FEC_REQUEST": 4012,
    "OPUS_GET_INBAND_FEC_REQUEST": 4013,
    "OPUS_SET_PACKET_LOSS_PERC_REQUEST": 4014,
    "OPUS_GET_PACKET_LOSS_PERC_REQUEST": 4015,
    "OPUS_SET_VBR_CONSTRAINT_REQUEST": 4020,
    "OPUS_SET_SIGNAL_REQUEST": 4024,
    "OPUS_GET_LOOKAHEAD_REQUEST": 4027,
    "OPUS_GET_LAST_PACKET_DURATION_REQUEST": 4039,
    "OPUS_SET_DRED_DURATION_REQUEST": 4050,
    "OPUS_GET_DRED_DURATION_REQUEST": 4051,
}
_OTHER_DEFINES: dict[str, int] = {
    "OPUS_OK": OPUS_OK,
    "OPUS_APPLICATION_VOIP": OPUS_APPLICATION_VOIP,
    "OPUS_SIGNAL_VOICE": OPUS_SIGNAL_VOICE,
}

SET_BITRATE = CTL_REQUESTS["OPUS_SET_BITRATE_REQUEST"]
SET_VBR = CTL_REQUESTS["OPUS_SET_VBR_REQUEST"]
SET_COMPLEXITY = CTL_REQUESTS["OPUS_SET_COMPLEXITY_REQUEST"]
GET_COMPLEXITY = CTL_REQUESTS["OPUS_GET_COMPLEXITY_REQUEST"]
SET_INBAND_FEC = CTL_REQUESTS["OPUS_SET_INBAND_FEC_REQUEST"]
SET_PACKET_LOSS_PERC = CTL_REQUESTS["OPUS_SET_PACKET_LOSS_PERC_REQUEST"]
SET_VBR_CONSTRAINT = CTL_REQUESTS["OPUS_SET_VBR_CONSTRAINT_REQUEST"]
SET_SIGNAL = CTL_REQUESTS["OPUS_SET_SIGNAL_REQUEST"]
GET_LOOKAHEAD = CTL_REQUESTS["OPUS_GET_LOOKAHEAD_REQUEST"]
SET_DRED_DURATION = CTL_REQUESTS["OPUS_SET_DRED_DURATION_REQUEST"]
GET_DRED_DURATION = CTL_REQUESTS["OPUS_GET_DRED_DURATION_REQUEST"]

MAX_PACKET_BYTES = 1500  # recommended max_data_bytes (opus.h: "4000 is recommended"; 1500 fits MTU)

_c_void_p = ctypes.c_void_p
_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_uchar_p = ctypes.POINTER(ctypes.c_ubyte)


class OpusCallError(SoundspringError):
    """A libopus call returned an error code (message includes opus_strerror)."""


def header_path_for(library_path: Path) -> Path:
    """``<prefix>/include/opus/opus_defines.h`` for a library at ``<prefix>/lib/libopus.so*``."""
    return library_path.resolve().parent.parent / "include" / "opus" / "opus_defines.h"


def check_header_constants(header: Path) -> None:
    """Raise NativeFeatureError unless every constant used here matches ``header``."""
    try:
        text = header.read_text()
    except OSError as exc:
        raise NativeFeatureError(f"cannot read {header} to check the CTL numbers: {exc}") from exc
    defines = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^#define\s+(OPUS_\w+)\s+(-?\d+)", text, re.MULTILINE)
    }
    for name, value in {**CTL_REQUESTS, **_OTHER_DEFINES}.items():
        if defines.get(name) != value:
            raise NativeFeatureError(
                f"{header}: {name} is {defines.get(name)!r}, this binding expects {value}; "
                "rebuild with scripts/build_opus15.sh (opus 1.5.2)"
            )


class Opus15Lib:
    """A libopus >= 1.5 loaded by absolute path, with the prototypes from opus.h."""

    def __init__(self, path: Path) -> None:
        self.path = path
        mode = os.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0)  # never bind to the system libopus
        try:
            self._lib = ctypes.CDLL(str(path), mode=mode)
        except OSError as exc:
            raise NativeFeatureError(f"cannot load libopus 1.5 from {path}: {exc}") from exc
        f = self._fn
        self.get_version_string = f("opus_get_version_string", ctypes.c_char_p, ())
        self.strerror = f("opus_strerror", ctypes.c_char_p, (ctypes.c_int,))
        self.encoder_create = f(
            "opus_encoder_create", _c_void_p, (ctypes.c_int32, ctypes.c_int, ctypes.c_int, _c_int_p)
        )
        self.encoder_destroy = f("opus_encoder_destroy", None, (_c_void_p,))
        self.encode_float = f(
            "opus_encode_float",
            ctypes.c_int32,
            (_c_void_p, _c_float_p, ctypes.c_int, _c_uchar_p, ctypes.c_int32),
        )
        self.encoder_ctl = f("opus_encoder_ctl", ctypes.c_int, None)
        self.decoder_create = f(
            "opus_decoder_create", _c_void_p, (ctypes.c_int32, ctypes.c_int, _c_int_p)
        )
        self.decoder_destroy = f("opus_decoder_destroy", None, (_c_void_p,))
        self.decode_float = f(
            "opus_decode_float",
            ctypes.c_int,
            (_c_void_p, _c_uchar_p, ctypes.c_int32, _c_float_p, ctypes.c_int, ctypes.c_int),
        )
        self.decoder_ctl = f("opus_decoder_ctl", ctypes.c_int, None)
        self.packet_has_lbrr = f("opus_packet_has_lbrr", ctypes.c_int, (_c_uchar_p, ctypes.c_int32))
        self.dred_decoder_create = f("opus_dred_decoder_create", _c_void_p, (_c_int_p,))
        self.dred_decoder_destroy = f("opus_dred_decoder_destroy", None, (_c_void_p,))
        self.dred_alloc = f("opus_dred_alloc", _c_void_p, (_c_int_p,))
        self.dred_free = f("opus_dred_free", None, (_c_void_p,))
        self.dred_parse = f(
            "opus_dred_parse",
            ctypes.c_int,
            (
                _c_void_p,
                _c_void_p,
                _c_uchar_p,
                ctypes.c_int32,
                ctypes.c_int32,
                ctypes.c_int32,
                _c_int_p,
                ctypes.c_int,
            ),
        )
        self.decoder_dred_decode_float = f(
            "opus_decoder_dred_decode_float",
            ctypes.c_int,
            (_c_void_p, _c_void_p, ctypes.c_int32, _c_float_p, ctypes.c_int32),
        )
        self.version = self.get_version_string().decode()
        if not re.match(r"libopus 1\.([5-9]|\d\d)", self.version):
            raise NativeFeatureError(f"{path} is {self.version!r}, not libopus >= 1.5")

    def _fn(self, name: str, restype, argtypes):  # type: ignore[no-untyped-def]
        try:
            fn = self._lib[name]  # __getitem__: a fresh function object, prototypes stay ours
        except AttributeError as exc:
            raise NativeFeatureError(
                f"{self.path} lacks {name}: was it configured with --enable-dred?"
            ) from exc
        fn.restype = restype
        if argtypes is not None:
            fn.argtypes = argtypes
        return fn

    def check(self, ret: int, what: str) -> int:
        if ret < 0:
            raise OpusCallError(f"{what} failed: {self.strerror(ret).decode()} ({ret})")
        return ret


@lru_cache(maxsize=4)
def load(path: Path) -> Opus15Lib:
    """Load (once per path) the library at ``path`` after checking its header constants."""
    check_header_constants(header_path_for(path))
    return Opus15Lib(path)


def _as_uchar(packet: bytes):  # type: ignore[no-untyped-def]
    return ctypes.cast(ctypes.c_char_p(packet), _c_uchar_p)


def _float_ptr(buf: np.ndarray):  # type: ignore[no-untyped-def]
    return buf.ctypes.data_as(_c_float_p)


class Encoder:
    """OpusEncoder (mono, float input)."""

    def __init__(self, lib: Opus15Lib, sample_rate: int, application: int) -> None:
        self._lib = lib
        err = ctypes.c_int(0)
        self._st = lib.encoder_create(sample_rate, 1, application, ctypes.byref(err))
        lib.check(err.value, "opus_encoder_create")
        if not self._st:
            raise OpusCallError("opus_encoder_create returned NULL")
        self._out = (ctypes.c_ubyte * MAX_PACKET_BYTES)()

    def set(self, request: int, value: int) -> None:
        self._lib.check(
            self._lib.encoder_ctl(
                _c_void_p(self._st), ctypes.c_int(request), ctypes.c_int32(value)
            ),
            f"opus_encoder_ctl({request})",
        )

    def get(self, request: int) -> int:
        val = ctypes.c_int32(0)
        self._lib.check(
            self._lib.encoder_ctl(_c_void_p(self._st), ctypes.c_int(request), ctypes.byref(val)),
            f"opus_encoder_ctl({request})",
        )
        return int(val.value)

    def encode(self, frame: np.ndarray) -> bytes:
        """``frame``: C-contiguous float32 [N]; returns one packet."""
        n = self._lib.check(
            self._lib.encode_float(
                self._st, _float_ptr(frame), frame.shape[0], self._out, MAX_PACKET_BYTES
            ),
            "opus_encode_float",
        )
        return bytes(self._out[:n])

    def __del__(self) -> None:
        if getattr(self, "_st", None):
            self._lib.encoder_destroy(self._st)
            self._st = None


class Decoder:
    """OpusDecoder (mono, float output) plus the DRED decoder state it uses."""

    def __init__(self, lib: Opus15Lib, sample_rate: int, with_dred: bool) -> None:
        self._lib = lib
        self.sample_rate = sample_rate
        err = ctypes.c_int(0)
        self._st = lib.decoder_create(sample_rate, 1, ctypes.byref(err))
        lib.check(err.value, "opus_decoder_create")
        self._dred_dec = None
        self._dred = None
        if with_dred:
            self._dred_dec = lib.dred_decoder_create(ctypes.byref(err))
            lib.check(err.value, "opus_dred_decoder_create")
            self._dred = lib.dred_alloc(ctypes.byref(err))
            lib.check(err.value, "opus_dred_alloc")

    def set(self, request: int, value: int) -> None:
        self._lib.check(
            self._lib.decoder_ctl(
                _c_void_p(self._st), ctypes.c_int(request), ctypes.c_int32(value)
            ),
            f"opus_decoder_ctl({request})",
        )

    def get(self, request: int) -> int:
        val = ctypes.c_int32(0)
        self._lib.check(
            self._lib.decoder_ctl(_c_void_p(self._st), ctypes.c_int(request), ctypes.byref(val)),
            f"opus_decoder_ctl({request})",
        )
        return int(val.value)

    def decode(self, packet: bytes | None, out: np.ndarray, fec: bool = False) -> int:
        """Decode into ``out`` (float32 [N], N = samples to produce); None = lost (PLC)."""
        data = _as_uchar(packet) if packet is not None else None
        n = len(packet) if packet is not None else 0
        return self._lib.check(
            self._lib.decode_float(self._st, data, n, _float_ptr(out), out.shape[0], int(fec)),
            "opus_decode_float",
        )

    def has_lbrr(self, packet: bytes) -> bool:
        return (
            self._lib.check(
                self._lib.packet_has_lbrr(_as_uchar(packet), len(packet)), "opus_packet_has_lbrr"
            )
            > 0
        )

    def dred_parse(self, packet: bytes, max_dred_samples: int) -> int:
        """Parse the DRED extension of ``packet``; returns how many samples before the packet
        the redundancy reaches (0 = none)."""
        if self._dred_dec is None:
            raise OpusCallError("decoder was created without DRED")
        dred_end = ctypes.c_int(0)
        return self._lib.check(
            self._lib.dred_parse(
                self._dred_dec,
                self._dred,
                _as_uchar(packet),
                len(packet),
                max_dred_samples,
                self.sample_rate,
                ctypes.byref(dred_end),
                0,
            ),
            "opus_dred_parse",
        )

    def dred_decode(self, dred_offset: int, out: np.ndarray) -> int:
        """Synthesize ``out.shape[0]`` samples starting ``dred_offset`` samples before the
        packet last given to :meth:`dred_parse`."""
        return self._lib.check(
            self._lib.decoder_dred_decode_float(
                self._st, self._dred, dred_offset, _float_ptr(out), out.shape[0]
            ),
            "opus_decoder_dred_decode_float",
        )

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        if getattr(self, "_dred", None):
            lib.dred_free(self._dred)
            self._dred = None
        if getattr(self, "_dred_dec", None):
            lib.dred_decoder_destroy(self._dred_dec)
            self._dred_dec = None
        if getattr(self, "_st", None):
            lib.decoder_destroy(self._st)
            self._st = None
