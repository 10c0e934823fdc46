"""Pure-Python mirror of the C++ range coder and CDF quantiser: the readable spec.

This module is the test oracle of ``csrc/core/range_coder.cc`` and ``csrc/core/cdf.cc``:
for the same inputs it produces the same bytes, symbols and CDF bits. It is slow (a
Python loop per symbol) and never used on a hot path. The normative description of both
algorithms is in the header comments of ``csrc/core/range_coder.h`` and ``csrc/core/cdf.h``.
"""

from __future__ import annotations

import numpy as np

from ..errors import BitstreamError, ConfigError

_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF


def _check_precision(precision_bits: int) -> None:
    if not (1 <= int(precision_bits) <= 16):
        raise ConfigError(f"precision_bits must be an int in [1, 16], got {precision_bits!r}")


class ReferenceEncoder:
    """Range encoder, byte-exact with ``soundspring.coding.Encoder``."""

    def __init__(self, precision_bits: int = 16) -> None:
        _check_precision(precision_bits)
        self.precision_bits = int(precision_bits)
        self._out = bytearray()
        self._low = 0
        self._range = _MASK32
        self._cache = 0
        self._has_cache = False
        self._pending_ff = 0
        self._finished: bytes | None = None

    def _shift_low(self) -> None:
        if self._low < 0xFF000000 or self._low >= 1 << 32:
            carry = self._low >> 32
            if self._has_cache:
                self._out.append((self._cache + carry) & 0xFF)
            self._out.extend(bytes([(0xFF + carry) & 0xFF]) * self._pending_ff)
            self._pending_ff = 0
            self._cache = (self._low >> 24) & 0xFF
            self._has_cache = True
        else:
            self._pending_ff += 1
        self._low = (self._low << 8) & _MASK32

    def encode_symbol(self, symbol: int, cdf: np.ndarray) -> None:
        """Codes one symbol with one CDF row (uint32 [V+1], total 2^precision_bits)."""
        if self._finished is not None:
            raise ConfigError("encode_symbol() called after finish()")
        p = self.precision_bits
        v = len(cdf) - 1
        if not 0 <= symbol < v:
            raise ConfigError(f"symbol {symbol} is outside [0, {v})")
        start, end = int(cdf[symbol]), int(cdf[symbol + 1])
        if int(cdf[v]) != 1 << p or end <= start or end > 1 << p:
            raise ConfigError(f"cdf row of symbol {symbol} is invalid")
        r = self._range >> p
        self._low += r * start
        self._range = r * (end - start)
        while self._range < _TOP:
            self._range = (self._range << 8) & _MASK32
            self._shift_low()

    def encode(self, symbols: np.ndarray, cdfs: np.ndarray) -> None:
        """Codes symbols [N] with CDF rows [N, V+1]."""
        for s, row in zip(np.asarray(symbols).tolist(), cdfs):
            self.encode_symbol(int(s), row)

    def finish(self) -> bytes:
        """Minimal termination; returns the whole stream without trailing zero bytes."""
        if self._finished is not None:
            return self._finished
        hi = self._low + self._range
        nb = 0
        while nb < 4:
            step = 1 << (32 - 8 * nb)
            v = (self._low + step - 1) & ~(step - 1)
            if v < hi:
                self._low = v
                break
            nb += 1
        for _ in range(nb):
            self._shift_low()
        carry = self._low >> 32
        if self._has_cache:
            self._out.append((self._cache + carry) & 0xFF)
        self._out.extend(bytes([(0xFF + carry) & 0xFF]) * self._pending_ff)
        self._pending_ff = 0
        self._finished = bytes(self._out).rstrip(b"\x00")
        return self._finished


class ReferenceDecoder:
    """Range decoder, symbol-exact with ``soundspring.coding.Decoder``."""

    def __init__(self, data: bytes, precision_bits: int = 16) -> None:
        _check_precision(precision_bits)
        self.precision_bits = int(precision_bits)
        self._data = bytes(data)
        self._pos = 0
        self._range = _MASK32
        self._code = 0
        for _ in range(4):
            self._code = (self._code << 8) | self._next_byte()

    def _next_byte(self) -> int:
        b = self._data[self._pos] if self._pos < len(self._data) else 0
        self._pos += 1
        return b

    def decode_symbol(self, cdf: np.ndarray) -> int:
        p = self.precision_bits
        v = len(cdf) - 1
        total = 1 << p
        if int(cdf[v]) != total:
            raise ConfigError(f"cdf rows must end at 2^precision_bits = {total}")
        r = self._range >> p
        value = self._code // r
        if value >= total:
            raise BitstreamError("range-coded data is corrupt: decoded value outside the CDF")
        lo, hi = 0, v
        while hi - lo > 1:
            mid = lo + (hi - lo) // 2
            if int(cdf[mid]) <= value:
                lo = mid
            else:
                hi = mid
        start, end = int(cdf[lo]), int(cdf[lo + 1])
        if not start <= value < end:
            raise ConfigError("cdf row must be non-decreasing from cdf[0] <= value")
        self._code = (self._code - r * start) & _MASK32
        self._range = r * (end - start)
        while self._range < _TOP:
            self._code = ((self._code << 8) | self._next_byte()) & _MASK32
            self._range = (self._range << 8) & _MASK32
        return lo

    def decode(self, cdfs: np.ndarray) -> np.ndarray:
        return np.array([self.decode_symbol(row) for row in cdfs], dtype=np.int32)


def encode(symbols: np.ndarray, cdfs: np.ndarray, precision_bits: int = 16) -> bytes:
    enc = ReferenceEncoder(precision_bits)
    enc.encode(symbols, cdfs)
    return enc.finish()


def decode(data: bytes, cdfs: np.ndarray, precision_bits: int = 16) -> np.ndarray:
    return ReferenceDecoder(data, precision_bits).decode(cdfs)


# ------------------------------------------------------------------ CDF quantiser mirror

_INV_LN2 = 1.44269504088896338700e00
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_CUTOFF = -700.0
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2^52
_INV_FACT = [1.0 / float(np.prod(np.arange(1, n + 1, dtype=np.float64))) for n in range(12, -1, -1)]


def det_exp(x: np.ndarray) -> np.ndarray:
    """Deterministic exp of float64 x <= 0, bit-identical to the C++ det_exp."""
    x = np.asarray(x, dtype=np.float64)
    safe = np.where(x < _EXP_CUTOFF, 0.0, x)
    k = (safe * _INV_LN2 + _ROUND_MAGIC) - _ROUND_MAGIC  # rint, as the C++ does
    r = (safe - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _INV_FACT[0])
    for c in _INV_FACT[1:]:
        p = p * r + c
    out = np.ldexp(p, k.astype(np.int64))
    return np.where(x < _EXP_CUTOFF, 0.0, out)


def cdf_from_logits(logits: np.ndarray, precision_bits: int = 16) -> np.ndarray:
    """float32 logits [N, V] -> uint32 CDFs [N, V+1], bit-identical to the C++ quantiser."""
    _check_precision(precision_bits)
    logits = np.asarray(logits, dtype=np.float32)
    n, v = logits.shape
    total = 1 << precision_bits
    if not 1 <= v <= total:
        raise ConfigError(f"the alphabet size V = {v} must be in [1, 2^precision_bits = {total}]")
    out = np.zeros((n, v + 1), dtype=np.uint32)
    for row in range(n):
        lg = logits[row]
        if np.isnan(lg).any() or np.isposinf(lg).any():
            raise ConfigError(f"row {row}: logits must be finite or -inf")
        arg = int(np.argmax(lg))
        m = lg[arg]
        if np.isneginf(m):
            raise ConfigError(f"row {row}: every logit of a row is -inf")
        e = det_exp(lg.astype(np.float64) - np.float64(m))
        lanes = np.zeros(4)
        for j in range(4):  # lane j: e_i with i % 4 == j, summed left to right
            lanes[j] = np.cumsum(e[j::4])[-1] if len(e[j::4]) else 0.0
        s = float((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        scale = float(total) / s
        f = np.maximum(1, np.floor(e * scale + 0.5).astype(np.int64))
        residual = total - int(f.sum())
        if residual >= 0 or int(f[arg]) + residual >= 1:
            f[arg] += residual
        else:
            for i in range(v):
                if residual >= 0:
                    break
                if f[i] > 1:
                    take = min(int(f[i]) - 1, -residual)
                    f[i] -= take
                    residual += take
        out[row, 1:] = np.cumsum(f)
    return out
