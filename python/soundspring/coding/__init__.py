"""Range coding with integer CDFs: the bit-exact heart of SoundSpring.

A thin facade over the C++ core (``csrc/core/range_coder.h``, ``csrc/core/cdf.h``). Every
array argument must be a C-contiguous numpy array of the exact dtype stated; nothing is
converted silently (wrong dtype or layout: TypeError; wrong shape: ValueError). The GIL is
released while coding. ``soundspring.coding.reference`` is the pure-Python mirror.

Glossary: N symbols, V alphabet size, p = precision_bits (1..16), CDF rows of V+1 uint32
entries from 0 to 2^p.

Example:
    >>> import numpy as np
    >>> from soundspring import coding
    >>> logits = np.zeros((3, 4), dtype=np.float32)          # [N, V]
    >>> cdfs = coding.cdf_from_logits(logits, precision_bits=8)
    >>> cdfs[0].tolist()
    [0, 64, 128, 192, 256]
    >>> data = coding.encode(np.array([0, 3, 1], dtype=np.int32), cdfs, precision_bits=8)
    >>> coding.decode(data, cdfs, precision_bits=8).tolist()
    [0, 3, 1]
"""

from __future__ import annotations

import numpy as np

from .._native import core

_c = core.coding

MIN_PRECISION_BITS: int = _c.MIN_PRECISION_BITS
MAX_PRECISION_BITS: int = _c.MAX_PRECISION_BITS


def encode(symbols: np.ndarray, cdfs: np.ndarray, precision_bits: int = 16) -> bytes:
    """Range-codes ``symbols`` with one CDF row per symbol.

    Args:
        symbols: int32 [N], symbol i in [0, V).
        cdfs: uint32 [N, V+1], row i non-decreasing from 0 to 2^precision_bits, with a
            non-zero frequency for symbol i.
        precision_bits: CDF precision p in [1, 16].

    Returns:
        The coded stream (minimal termination: at most about one byte of overhead; N = 0
        gives b"").

    Raises:
        TypeError: wrong dtype or non-contiguous array.
        ValueError: wrong shapes.
        ConfigError: out-of-range symbol, bad CDF row or precision.
    """
    return _c.encode(symbols, cdfs, precision_bits)


def decode(data: bytes, cdfs: np.ndarray, precision_bits: int = 16) -> np.ndarray:
    """Decodes ``len(cdfs)`` symbols from ``data``; the inverse of :func:`encode`.

    Args:
        data: bytes-like stream from :func:`encode`.
        cdfs: uint32 [N, V+1], the same rows the encoder used.
        precision_bits: the encoder's precision.

    Returns:
        int32 [N] symbols.

    Raises:
        BitstreamError: ``data`` cannot come from an encoder using these CDFs.
        ConfigError: bad CDF row or precision. TypeError/ValueError: bad arrays.
    """
    return _c.decode(data, cdfs, precision_bits)


def cdf_from_logits(logits: np.ndarray, precision_bits: int = 16) -> np.ndarray:
    """Quantises logits into integer CDFs: deterministic, every frequency >= 1.

    The order of operations is normative (``csrc/core/cdf.h``) so that transmitter and
    receiver get identical bits on any machine, thread count and batch split.

    Args:
        logits: float32 [N, V], finite or -inf (at least one finite value per row).
        precision_bits: p in [1, 16], with V <= 2^p.

    Returns:
        uint32 [N, V+1] CDFs with total 2^p.

    Raises:
        ConfigError: NaN/+inf logits, an all -inf row, or V > 2^p.
    """
    return _c.cdf_from_logits(logits, precision_bits)


def encode_logits(symbols: np.ndarray, logits: np.ndarray, precision_bits: int = 16) -> bytes:
    """:func:`encode` with CDFs computed from logits [N, V] inside C++ (never materialised)."""
    return _c.encode_logits(symbols, logits, precision_bits)


def decode_logits(data: bytes, logits: np.ndarray, precision_bits: int = 16) -> np.ndarray:
    """:func:`decode` with CDFs computed from logits [N, V] inside C++."""
    return _c.decode_logits(data, logits, precision_bits)


def validate_cdfs(cdfs: np.ndarray, precision_bits: int = 16) -> None:
    """Checks every row of uint32 [N, V+1] CDFs; raises ConfigError naming the first bad row.

    The coder itself checks only what it needs per symbol (O(1)); call this once on CDFs
    from an untrusted source.
    """
    _c.validate_cdfs(cdfs, precision_bits)


class Encoder:
    """Incremental encoder of one packet: code in several steps, then :meth:`finish`.

    The masked LM gives the CDFs of step s+1 only after step s is known at the receiver,
    so a packet is coded group by group into one range-coder stream.

    Example:
        >>> enc = Encoder(precision_bits=8)
        >>> cdfs = cdf_from_logits(np.zeros((2, 4), dtype=np.float32), 8)
        >>> enc.encode(np.array([1, 2], dtype=np.int32), cdfs)
        >>> enc.encode_logits(np.array([3], dtype=np.int32), np.zeros((1, 4), np.float32))
        >>> data = enc.finish()
    """

    def __init__(self, precision_bits: int = 16) -> None:
        self._enc = _c.Encoder(precision_bits)

    @property
    def precision_bits(self) -> int:
        return self._enc.precision_bits

    @property
    def bytes_written(self) -> int:
        """Bytes produced so far (the final length after :meth:`finish`)."""
        return self._enc.bytes_written

    def encode(self, symbols: np.ndarray, cdfs: np.ndarray) -> None:
        """Codes int32 [N] symbols with uint32 [N, V+1] CDF rows."""
        self._enc.encode(symbols, cdfs)

    def encode_logits(self, symbols: np.ndarray, logits: np.ndarray) -> None:
        """Codes int32 [N] symbols with CDFs quantised from float32 [N, V] logits."""
        self._enc.encode_logits(symbols, logits)

    def finish(self) -> bytes:
        """Terminates the stream and returns it; idempotent."""
        return self._enc.finish()


class Decoder:
    """Incremental decoder of one packet, the mirror of :class:`Encoder`.

    Errors are sticky: after a BitstreamError every later call raises too.
    """

    def __init__(self, data: bytes, precision_bits: int = 16) -> None:
        self._dec = _c.Decoder(data, precision_bits)

    @property
    def precision_bits(self) -> int:
        return self._dec.precision_bits

    @property
    def bytes_read(self) -> int:
        """Input bytes consumed, counting the zero padding read past the end."""
        return self._dec.bytes_read

    def decode(self, cdfs: np.ndarray) -> np.ndarray:
        """Decodes len(cdfs) symbols with uint32 [N, V+1] CDF rows -> int32 [N]."""
        return self._dec.decode(cdfs)

    def decode_logits(self, logits: np.ndarray) -> np.ndarray:
        """Decodes N symbols with CDFs quantised from float32 [N, V] logits -> int32 [N]."""
        return self._dec.decode_logits(logits)


__all__ = [
    "MAX_PRECISION_BITS",
    "MIN_PRECISION_BITS",
    "Decoder",
    "Encoder",
    "cdf_from_logits",
    "decode",
    "decode_logits",
    "encode",
    "encode_logits",
    "validate_cdfs",
]
