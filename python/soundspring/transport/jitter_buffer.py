"""Receiver jitter buffer / depacketiser (docs/bitstream.md, "Jitter buffer").

Packets arrive as ``(seq, chunk, arrival_ms, packet)``: ``seq`` a 16-bit transport sequence
number, ``chunk`` a 32-bit chunk index (the RTP-style timestamp, in chunks); both may
wrap. Chunk ``k`` is due at ``deadline(k) = anchor_time_ms + (k - anchor_chunk) * chunk_ms
+ playout_delay_ms``; the anchor is given or taken from the first packet. A packet that
arrives after its chunk's deadline is late (lost). ``pop(now_ms)`` releases every due chunk
in order, lost ones included; ``flush()`` releases all buffered chunks at end of stream.

With ``clocked=False`` there are no deadlines (files and simulations, decoded as fast as
the CPU goes): arrival times are ignored, ``release_next()`` releases the next chunk on
demand, and a packet is late only once its chunk was released. For the transceiver's
receiver (its one depacketiser): ``offer`` (bytes never raise: damaged packets are counted
on their chunk), ``mark_lost`` (a declared loss), ``peek`` (a held chunk's payloads without
releasing it), ``skip_to``, ``snapshot``/``restore``; every chunk carries the FEC copy of
its base beside the primary payload (``fec_copy``).

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
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._native import core
from .._validate import finite_float, int_in
from ..errors import ConfigError

_t = core.transport

MAX_POP_CHUNKS = 65536  # chunks one pop() may release (about 44 min at 40 ms)
MAX_WINDOW_CHUNKS = 65536  # chunks a buffer may hold beyond the playout point


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
    """Layer >= num_layers; dropped (``push`` only)."""
    DAMAGED = 5
    """``offer`` only: the bytes do not parse, or name a layer >= num_layers; counted on
    the chunk (``PlayoutChunk.damaged_packets``) and dropped."""


_OUTCOMES = tuple(PushOutcome)  # by value


class PlayoutChunk(NamedTuple):
    """One chunk released for decoding (an immutable record: one is made per chunk, so
    it is a NamedTuple, cheaper to build than a frozen dataclass).

    Attributes:
        chunk: unwrapped chunk index (int, may exceed 2**32 after wraps).
        received: ``bool [num_layers]``, True where the layer's payload arrived in time
            (read-only: the arrays are shared between chunks).
        payloads: per layer, the primary payload bytes or None (layer 0: the FEC copy
            when ``base_from_fec``).
        base_from_fec: the base payload came from an FEC copy in a later packet (its
            primary did not arrive).
        fec_copy: the first FEC copy of this chunk's base that arrived in time, or None
            (also when the primary arrived: a decoder falls back to it when the primary
            fails its integrity check).
        lost: ``bool [num_layers]``, True where the layer was declared lost (``mark_lost``).
        late_packets: packets of this chunk dropped as late while it was held (after its
            deadline, or declared lost), plus payloads ``mark_lost`` discarded.
        damaged_packets: packets of this chunk ``offer`` found damaged.
        version: changes whenever the held chunk changes (``peek`` results may be cached
            by it; ``restore`` returns the counter to the snapshot's).
    """

    chunk: int
    received: npt.NDArray[np.bool_]
    payloads: tuple[bytes | None, ...]
    base_from_fec: bool
    fec_copy: bytes | None = None
    lost: npt.NDArray[np.bool_] | None = None
    late_packets: int = 0
    damaged_packets: int = 0
    version: int = 0

    @property
    def primary_base(self) -> bytes | None:
        """The base payload as its own packet carried it (None if it did not arrive)."""
        return None if self.base_from_fec else self.payloads[0]


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
    damaged: int
    marked_lost: int


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
        clocked: False: no deadlines; chunks are released on demand (``release_next``,
            ``flush``), from ``anchor_chunk`` (0 unless given) on, and ``pop`` is refused.

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
        clocked: bool = True,
    ) -> None:
        self.num_layers = _int_in("num_layers", num_layers, 1, 4)
        self.chunk_ms = _finite("chunk_ms", chunk_ms)
        self.playout_delay_ms = _finite("playout_delay_ms", playout_delay_ms)
        if window_chunks is None:
            ratio = self.playout_delay_ms / self.chunk_ms if self.chunk_ms > 0 else 0.0
            window_chunks = min(65536, math.ceil(min(max(ratio, 0.0), 65536.0)) + 16)
        self.window_chunks = _int_in("window_chunks", window_chunks, 1, MAX_WINDOW_CHUNKS)
        if (anchor_chunk is None) != (anchor_time_ms is None):
            raise ConfigError("anchor_chunk and anchor_time_ms must be given together")
        a_chunk = (
            None if anchor_chunk is None else _int_in("anchor_chunk", anchor_chunk, 0, 2**32 - 1)
        )
        a_time = None if anchor_time_ms is None else _finite("anchor_time_ms", anchor_time_ms)
        if not isinstance(clocked, (bool, np.bool_)):
            raise ConfigError(f"clocked must be a bool, got {clocked!r}")
        self.clocked = bool(clocked)
        self._impl = _t.JitterBuffer(
            self.num_layers,
            self.chunk_ms,
            self.playout_delay_ms,
            self.window_chunks,
            a_chunk,
            a_time,
            self.clocked,
        )
        bits = np.arange(self.num_layers)
        self._masks = tuple(((m >> bits) & 1).astype(bool) for m in range(1 << self.num_layers))
        for m in self._masks:  # shared by every released chunk: read-only
            m.flags.writeable = False

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

    def offer(self, seq: int, chunk: int, arrival_ms: float, packet: bytes
              ) -> tuple[PushOutcome, int]:
        """``push`` for a receiver: bytes never raise. A packet that does not parse, or
        names a layer >= num_layers, is DAMAGED and counted on its chunk when that chunk
        could still take a packet (else LATE / TOO_EARLY, as any packet).

        Args: as ``push`` (``arrival_ms`` is ignored when unclocked, but must be finite).

        Returns:
            (the PushOutcome, the packet's unwrapped chunk index).

        Raises:
            ConfigError: seq/chunk out of range or a non-finite arrival time.
            TypeError: packet is not bytes-like.
        """
        if not (type(seq) is int and 0 <= seq <= 0xFFFF):  # (the fast path: plain ints)
            seq = _int_in("seq", seq, 0, 0xFFFF)
        if not (type(chunk) is int and 0 <= chunk <= 0xFFFFFFFF):
            chunk = _int_in("chunk", chunk, 0, 0xFFFFFFFF)
        if not (type(arrival_ms) is float and math.isfinite(arrival_ms)):
            arrival_ms = _finite("arrival_ms", arrival_ms)
        outcome, k = self._impl.offer(seq, chunk, arrival_ms, packet)
        return _OUTCOMES[outcome], k

    def mark_lost(self, seq: int) -> bool:
        """Declares the packet with sequence number ``seq`` (0..65535) lost, numbering
        packets ``seq = (chunk * num_layers + layer) mod 2**16`` (the transceiver's rule).

        ``seq`` is unwrapped to the nearest packet at or after the playout point. A
        payload held for it is discarded (counted in ``late_packets``) and a copy that
        still arrives is LATE. Returns False (nothing changed) for a packet behind the
        playout point, beyond the window, or before the playout point is set.

        Raises:
            ConfigError: seq out of range.
        """
        return bool(self._impl.mark_lost(_int_in("seq", seq, 0, 0xFFFF)))

    def release_next(self) -> PlayoutChunk:
        """Releases the next chunk whatever the time (lost: an all-False mask) and
        advances the playout point. Before the playout point is set (clocked, no packet
        yet) it starts at ``anchor_chunk`` (0 unless given); the first packet then
        anchors only the clock."""
        return self._chunk(self._impl.release_next())

    def peek(self, chunk: int) -> PlayoutChunk | None:
        """Held chunk ``chunk`` (unwrapped index) as it would be released now, without
        releasing it; None if nothing is held for it."""
        raw = self._impl.peek(int(chunk))
        return None if raw is None else self._chunk(raw)

    def peek_version(self, chunk: int) -> int | None:
        """``peek(chunk).version`` (None if nothing is held for it)."""
        v = self._impl.peek_version(int(chunk))
        return None if v is None else int(v)

    def skip_to(self, chunk: int) -> None:
        """Moves the playout point forward to ``chunk`` (unwrapped index), discarding what
        is held before it (a receiver joining a stream midway).

        Raises:
            ConfigError: ``chunk`` is not an int, or is behind the playout point.
        """
        self._impl.skip_to(_int_in("chunk", chunk, -(1 << 62), 1 << 62))

    def unwrap_chunk(self, chunk: int) -> int:
        """The chunk index nearest the playout point congruent to ``chunk`` (u32) mod 2**32."""
        return int(self._impl.unwrap_chunk(_int_in("chunk", chunk, 0, 0xFFFFFFFF)))

    def snapshot(self) -> JitterBuffer:
        """An independent copy of the whole state (packets, clock, statistics)."""
        snap = object.__new__(JitterBuffer)
        snap.__dict__.update(self.__dict__)
        snap._impl = self._impl.clone()
        return snap

    def restore(self, snap: JitterBuffer) -> None:
        """Returns to the state of ``snap`` (a ``snapshot()``; it stays usable).

        Raises:
            TypeError: ``snap`` is not a JitterBuffer.
            ConfigError: ``snap`` has another configuration.
        """
        if not isinstance(snap, JitterBuffer):
            raise TypeError(f"snap must be a JitterBuffer, got {type(snap).__name__}")
        self._impl.restore(snap._impl)

    @property
    def held_chunks(self) -> int:
        """Chunks held from the playout point on (anything arrived or was declared)."""
        return int(self._impl.held_chunks)

    @property
    def clock_anchored(self) -> bool:
        """Deadlines are defined (clocked, and the clock is anchored)."""
        return bool(self._impl.clock_anchored)

    def pop(self, now_ms: float, max_chunks: int = 65536) -> list[PlayoutChunk]:
        """Releases, in order, every chunk whose deadline is <= now_ms (at most
        ``max_chunks``, 0..MAX_POP_CHUNKS, per call: a clock jump never makes one call
        release an unbounded run of lost chunks; call again for the rest).

        Raises:
            ConfigError: now_ms is not a finite number, max_chunks is outside
                [0, MAX_POP_CHUNKS], or the buffer is unclocked.
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
        """Deadline of an unwrapped chunk index, or None before the clock is anchored
        (always None when unclocked)."""
        return float(self._impl.deadline_ms(int(chunk))) if self._impl.clock_anchored else None

    @property
    def next_chunk(self) -> int | None:
        """The next chunk to release (unwrapped), or None before the clock is anchored."""
        return int(self._impl.next_chunk) if self._impl.anchored else None

    @property
    def stats(self) -> JitterStats:
        return JitterStats(**self._impl.stats())

    def _chunk(self, raw: tuple) -> PlayoutChunk:
        k, mask, from_fec, payloads, fec_copy, lost, late, damaged, version = raw
        masks = self._masks
        return PlayoutChunk(k, masks[mask], payloads, from_fec, fec_copy, masks[lost], late,
                            damaged, version)

    def _wrap(self, raw: list[tuple]) -> list[PlayoutChunk]:
        return [self._chunk(r) for r in raw]


__all__ = ["MAX_WINDOW_CHUNKS", "JitterBuffer", "JitterStats", "PlayoutChunk", "PushOutcome"]
