"""Receiver jitter buffer / depacketiser (docs/bitstream.md, "Jitter buffer").

Packets arrive as ``(seq, chunk, arrival_ms, packet)``: ``seq`` a 16-bit transport sequence
number, ``chunk`` a 32-bit chunk index (the RTP-style timestamp, in chunks); both may
wrap. Chunk ``k`` is due at ``deadline(k) = anchor_time_ms + (k - anchor_chunk) * chunk_ms
+ playout_delay_ms``; the anchor is given or taken from the first packet. A packet that
arrives after its chunk's deadline is late (lost). ``pop(now_ms)`` releases every due chunk
in order, lost ones included; ``flush()`` releases all buffered chunks at end of stream.

Typical loop (a simulator delivering packets in arrival order):

    >>> from soundspring.transport import JitterBuffer, Packet
    >>> jb = JitterBuffer(num_layers=2, chunk_ms=40, playout_delay_ms=60)
    >>> out = []
    >>> for seq, (chunk, layer, t) in enumerate([(0, 0, 0.0), (0, 1, 5.0), (1, 1, 41.0)]):
    ...     out += jb.pop(t)                       # release what is due before t
    ...     _ = jb.push(seq, chunk, t, Packet(layer, b"x").to_bytes())
    >>> out += jb.flush()
    >>> [(c.chunk, c.received.tolist()) for c in out]
    [(0, [True, True]), (1, [False, True])]
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .._native import core
from .._validate import finite_float, int_in
from ..errors import ConfigError

_t = core.transport

MAX_POP_CHUNKS = 65536  # chunks one pop() may release (about 44 min at 40 ms)


class PushOutcome(enum.IntEnum):
    """What ``JitterBuffer.push`` did with a packet."""

    ACCEPTED = 0
    """Stored (or an original base packet replaced its FEC copy)."""
    DUPLICATE = 1
    """Its (chunk, layer) is already held; dropped."""
    LATE = 2
    """Arrived after its chunk's deadline, or its chunk was already released; dropped."""
    TOO_EARLY = 3
    """Its chunk lies window_chunks or more beyond the playout point; dropped."""
    UNUSED_LAYER = 4
    """Layer >= num_layers; dropped."""


@dataclasses.dataclass(frozen=True)
class PlayoutChunk:
    """One chunk released for decoding.

    Attributes:
        chunk: unwrapped chunk index (int, may exceed 2**32 after wraps).
        received: ``bool [num_layers]``, True where the layer's payload arrived in time.
        payloads: per layer, the primary payload bytes or None.
        base_from_fec: the base payload came from an FEC copy in a later packet.
    """

    chunk: int
    received: npt.NDArray[np.bool_]
    payloads: tuple[bytes | None, ...]
    base_from_fec: bool


@dataclasses.dataclass(frozen=True)
class JitterStats:
    """Counters since construction or ``reset()``."""

    pushed: int
    accepted: int
    duplicates: int
    late: int
    too_early: int
    unused_layer: int
    reordered: int
    fec_applied: int
    released: int


_int_in = int_in


def _finite(name: str, value: Any) -> float:
    return finite_float(name, value, what="a finite number of milliseconds")


class JitterBuffer:
    """Reorders, de-duplicates and times out layered packets; releases chunks in order.

    Args:
        num_layers: layers per chunk at the bitrate, 1..4 (base + fine groups).
        chunk_ms: chunk duration in ms, (0, 1000].
        playout_delay_ms: delay between a chunk's nominal time and its deadline, [0, 60000].
        window_chunks: chunks held beyond the playout point, 1..65536; packets further
            ahead are dropped (TOO_EARLY). Default: ceil(playout_delay_ms / chunk_ms) + 16.
        anchor_chunk: first chunk to play (u32); with ``anchor_time_ms``, fixes the clock
            instead of taking it from the first packet.
        anchor_time_ms: arrival-clock time of ``anchor_chunk``.

    Raises:
        ConfigError: any argument out of range, or only one of the two anchor arguments.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        chunk_ms: float,
        playout_delay_ms: float,
        window_chunks: int | None = None,
        anchor_chunk: int | None = None,
        anchor_time_ms: float | None = None,
    ) -> None:
        self.num_layers = _int_in("num_layers", num_layers, 1, 4)
        self.chunk_ms = _finite("chunk_ms", chunk_ms)
        self.playout_delay_ms = _finite("playout_delay_ms", playout_delay_ms)
        if window_chunks is None:
            ratio = self.playout_delay_ms / self.chunk_ms if self.chunk_ms > 0 else 0.0
            window_chunks = min(65536, math.ceil(min(max(ratio, 0.0), 65536.0)) + 16)
        self.window_chunks = _int_in("window_chunks", window_chunks, 1, 65536)
        if (anchor_chunk is None) != (anchor_time_ms is None):
            raise ConfigError("anchor_chunk and anchor_time_ms must be given together")
        a_chunk = (
            None if anchor_chunk is None else _int_in("anchor_chunk", anchor_chunk, 0, 2**32 - 1)
        )
        a_time = None if anchor_time_ms is None else _finite("anchor_time_ms", anchor_time_ms)
        self._impl = _t.JitterBuffer(
            self.num_layers,
            self.chunk_ms,
            self.playout_delay_ms,
            self.window_chunks,
            a_chunk,
            a_time,
        )

    def push(self, seq: int, chunk: int, arrival_ms: float, packet: bytes) -> PushOutcome:
        """Offers one received packet.

        Args:
            seq: 16-bit sequence number, 0..65535 (wraps).
            chunk: 32-bit chunk index, 0..2**32-1 (wraps).
            arrival_ms: arrival time on the receiver clock (finite).
            packet: the packet bytes.

        Returns:
            The PushOutcome.

        Raises:
            ConfigError: seq/chunk out of range or a non-finite arrival time.
            BitstreamError (TruncatedError, UnsupportedVersionError): a malformed packet;
                the buffer is left unchanged, so a receiver may catch it and drop the packet.
            TypeError: packet is not bytes-like.
        """
        s = _int_in("seq", seq, 0, 0xFFFF)
        c = _int_in("chunk", chunk, 0, 0xFFFFFFFF)
        t = _finite("arrival_ms", arrival_ms)
        return PushOutcome(self._impl.push(s, c, t, packet))

    def pop(self, now_ms: float, max_chunks: int = 65536) -> list[PlayoutChunk]:
        """Releases, in order, every chunk whose deadline is <= now_ms (at most
        ``max_chunks``, 0..MAX_POP_CHUNKS, per call: a clock jump never makes one call
        release an unbounded run of lost chunks; call again for the rest).

        Raises:
            ConfigError: now_ms is not a finite number, or max_chunks is outside
                [0, MAX_POP_CHUNKS].
        """
        if (
            isinstance(now_ms, bool)
            or not isinstance(now_ms, (int, float, np.integer, np.floating))
            or not math.isfinite(now_ms)
        ):
            raise ConfigError(f"now_ms must be a finite number of milliseconds, got {now_ms!r}")
        n = _int_in("max_chunks", max_chunks, 0, MAX_POP_CHUNKS)
        return self._wrap(self._impl.pop(float(now_ms), n))

    def flush(self) -> list[PlayoutChunk]:
        """Releases every buffered chunk up to the highest one seen (end of stream)."""
        return self._wrap(self._impl.flush())

    def reset(self) -> None:
        """Forgets every packet, statistic and (unless configured) the clock anchor."""
        self._impl.reset()

    def deadline_ms(self, chunk: int) -> float | None:
        """Deadline of an unwrapped chunk index, or None before the clock is anchored."""
        return float(self._impl.deadline_ms(int(chunk))) if self._impl.anchored else None

    @property
    def next_chunk(self) -> int | None:
        """The next chunk to release (unwrapped), or None before the clock is anchored."""
        return int(self._impl.next_chunk) if self._impl.anchored else None

    @property
    def stats(self) -> JitterStats:
        return JitterStats(**self._impl.stats())

    def _wrap(
        self, raw: list[tuple[int, int, bool, tuple[bytes | None, ...]]]
    ) -> list[PlayoutChunk]:
        bits = np.arange(self.num_layers)
        return [
            PlayoutChunk(int(k), ((mask >> bits) & 1).astype(bool), payloads, bool(fec))
            for k, mask, fec, payloads in raw
        ]


__all__ = ["JitterBuffer", "JitterStats", "PlayoutChunk", "PushOutcome"]
