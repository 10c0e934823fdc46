"""The decoding end on the playout clock: the transceiver's clocked
``Receiver(..., playout_delay_ms=D)`` (``push(..., arrival_ms)``, ``play(now_ms)``,
``end_of_stream()``; its jitter buffer decides what is on time: late = lost), with what the
network end adds around it: a lossy or late start, decoding complete chunks ahead of their
deadlines, and the rows of what was played.

The first accepted packet (chunk ``c0``, arrival ``t0``) anchors the clock, and chunk ``k``
is due at ``t0 + (k - c0) * chunk_ms + playout_delay_ms``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..config import SAMPLE_RATE_HZ, TransceiverConfig
from ..errors import BitstreamError
from ..transceiver import Receiver
from ..transport import PushOutcome, parse_packet


def _is_packet(data: bytes, n_layers: int) -> bool:
    """Whether ``data`` parses as a packet of a layer below ``n_layers``."""
    try:
        return parse_packet(bytes(data)).layer < n_layers
    except BitstreamError:
        return False


@dataclass
class PlayedChunk:
    """One chunk as it was played: index, due time, base-packet arrival (None: not in
    time), and the receiver clock when its audio was handed out (all ms)."""

    chunk: int
    deadline_ms: float
    arrival_ms: float | None
    played_ms: float
    received_layers: int


class Playout:
    """Receiver + jitter buffer on one clock (ms, any origin, monotonic).

    A chunk whose packets have all arrived is decoded at once (``decode_until``) and its
    audio held until its deadline: decoding then overlaps the jitter-buffer wait instead
    of adding to the latency. A chunk still incomplete is decoded (or concealed) at its
    deadline, with whatever arrived by then; the output is the same either way (decoding
    is in chunk order and a complete chunk has nothing left to wait for).

    Args:
        codec, model: the decoding models (the sender's).
        cfg: the stream's TransceiverConfig.
        playout_delay_ms: delay from a chunk's nominal arrival to its deadline, [0, 60000].
        window_chunks: future chunks held; packets beyond are dropped (TOO_EARLY).
        history_chunks: chunk outcomes kept (``rx.history``); None keeps none.
    """

    def __init__(self, codec, model, cfg: TransceiverConfig, playout_delay_ms: float,
                 window_chunks: int = 64, history_chunks: int | None = None) -> None:
        self.config = cfg
        self.chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
        self.playout_delay_ms = float(playout_delay_ms)
        keep = history_chunks is not None
        hist = history_chunks if keep else 1
        self.rx = Receiver(codec, model, cfg, keep_history=keep, history_chunks=hist,
                           window_chunks=window_chunks, playout_delay_ms=self.playout_delay_ms)
        self.window_chunks = window_chunks
        self._anchor: tuple[int, float] | None = None
        self._arrival: dict[int, float] = {}  # chunk -> base packet arrival, within the window
        self._layers: dict[int, int] = {}  # chunk -> layers accepted
        self.finished = False
        # decoded audio not yet handed out: (first chunk after it, release time ms, pcm)
        self._ready: deque[tuple[int, float, np.ndarray]] = deque()
        self._handed = 0  # the first chunk whose audio has not been handed out

    # ------------------------------------------------------------------ clock
    def deadline_ms(self, chunk: int) -> float | None:
        if self._anchor is None:
            return None
        c0, t0 = self._anchor
        return t0 + (chunk - c0) * self.chunk_ms + self.playout_delay_ms

    @property
    def anchor_chunk(self) -> int | None:
        """The chunk of the first accepted packet (None before it)."""
        return None if self._anchor is None else self._anchor[0]

    @property
    def next_chunk(self) -> int:
        """The first chunk not yet handed out."""
        return self._handed

    @property
    def next_deadline_ms(self) -> float | None:
        """When the next chunk is due (None before the first packet)."""
        return self.deadline_ms(self._handed)

    def start_at(self, chunk: int) -> None:
        """Starts playout at ``chunk`` instead of 0 (a receiver joining a running stream;
        only before the first packet)."""
        if self._anchor is None and self._handed == 0:
            self.rx.next_chunk = int(chunk)
            self._handed = int(chunk)

    # ------------------------------------------------------------------ input
    def push(self, packet: bytes, seq: int, chunk: int, arrival_ms: float) -> str:
        """Offers one packet (transport seq, chunk index u32); returns what became of it:
        "accepted", "duplicate", "late", "too_early", "unused_layer" or "damaged"."""
        if self.finished:
            return "late"
        rx_next = int(self.rx.next_chunk)
        if self._handed <= chunk < rx_next:  # decoded ahead of its deadline: it was complete
            return "duplicate"
        if self._anchor is None and 0 < chunk - rx_next < self.window_chunks:
            # A lossy start: the first packet is of a later chunk. The chunks before it are
            # lost; play them (concealed) with the next play, so that the output stays
            # aligned with the sender's input whichever packets of the start arrived.
            if not _is_packet(packet, self.config.packets_per_chunk):
                return "damaged"
            self.rx.decode_until(chunk)
            self._ready.append((chunk, -math.inf, self.rx.pull(self.rx.buffered_samples)))
        name = PushOutcome(self.rx.push(packet, seq, chunk, arrival_ms=arrival_ms)).name.lower()
        if name == "accepted":
            if self._anchor is None:
                self._anchor = (chunk, float(arrival_ms))
            self._layers[chunk] = self._layers.get(chunk, 0) + 1
            if packet[:1] and (packet[0] >> 4) & 3 == 0:  # the base layer's TOC
                self._arrival.setdefault(chunk, float(arrival_ms))
            self._decode_complete()
        return name

    def _decode_complete(self) -> None:
        """Decodes, ahead of their deadlines, the complete chunks at the decoding point."""
        ppc = self.config.packets_per_chunk
        for _ in range(self.window_chunks):  # bounded
            k = int(self.rx.next_chunk)
            if self._layers.get(k, 0) < ppc:
                break
            self.rx.decode_until(k + 1)
            self._ready.append((k + 1, self.deadline_ms(k), self.rx.pull(self.rx.buffered_samples)))

    # ------------------------------------------------------------------ output
    def play(self, now_ms: float, clock=None) -> tuple[np.ndarray, list[PlayedChunk]]:
        """Audio float32 of every chunk due at ``now_ms`` (the codec's streaming output),
        and what was played. ``clock``: a zero-argument ms clock read after decoding
        (the play time; default ``now_ms``)."""
        if self._anchor is None or self.finished:
            return np.zeros(0, np.float32), []
        out = []
        end = self._handed
        while self._ready and self._ready[0][1] <= now_ms:
            end, _, pcm = self._ready.popleft()
            out.append(pcm)
        if not self._ready:  # nothing decoded ahead is pending: release what is due now
            out.append(self.rx.play(now_ms))
            end = max(end, int(self.rx.next_chunk))
        pcm = np.concatenate(out) if out else np.zeros(0, np.float32)
        return pcm, self._played(end, clock() if clock else now_ms)

    def finish(self, n_chunks: int | None, clock=None) -> tuple[np.ndarray, list[PlayedChunk]]:
        """End of stream: plays every chunk before ``n_chunks`` (None: up to the last one
        held), concealing those that never came, then the codec's tail."""
        if self.finished:
            return np.zeros(0, np.float32), []
        self.finished = True
        if self._anchor is None:  # nothing ever arrived: nothing to play
            return np.zeros(0, np.float32), []
        out = [pcm for _, _, pcm in self._ready]
        self._ready.clear()
        first = int(self.rx.next_chunk)
        held = max(self._layers, default=first - 1) + 1
        end = max(held, first) if n_chunks is None else max(int(n_chunks), first)
        self.rx.decode_until(end)
        out.append(self.rx.end_of_stream())
        played = self._played(end, clock() if clock else self.deadline_ms(end))
        return np.concatenate(out), played

    def _played(self, end: int, played_ms: float) -> list[PlayedChunk]:
        """Rows of the chunks handed out, from ``_handed`` up to ``end``."""
        out = []
        for k in range(self._handed, end):
            out.append(PlayedChunk(k, self.deadline_ms(k), self._arrival.pop(k, None),
                                   played_ms, self._layers.pop(k, 0)))
        self._handed = max(self._handed, end)
        if len(self._arrival) > 4 * self.window_chunks:  # bounded: stale entries
            low = self._handed
            self._arrival = {k: v for k, v in self._arrival.items() if k >= low}
            self._layers = {k: v for k, v in self._layers.items() if k >= low}
        return out
