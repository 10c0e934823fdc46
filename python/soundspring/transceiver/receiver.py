"""The receiving end: packets -> the C++ jitter buffer -> entropy decoding or concealment
-> codec decoder, one chunk at a time (stream rules: ``soundspring.transceiver``).

The one depacketiser is ``transport.JitterBuffer`` (C++; docs/bitstream.md, "Jitter
buffer"): it holds the packets of the chunks ahead of the playout point (a bounded window),
drops duplicates and late copies, unwraps the 16-bit sequence numbers and 32-bit chunk
indices, keeps each chunk's FEC copy beside its primary base payload and counts damaged
packets per chunk. The receiver decodes what it releases, in chunk order, and conceals the
rest. Two ways to drive it, on one code path:

- unclocked (``playout_delay_ms=None``, files and simulations): ``push`` packets, then
  ``decode_until(chunk)`` / ``pull(n_samples)`` / ``next_chunk_tokens()`` release chunks on
  demand, as fast as the CPU goes;
- clocked (live): chunk ``k`` is due at the jitter buffer's ``deadline(k) = t0 + (k - c0)
  * chunk_ms + playout_delay_ms``, where the first packet pushed (chunk ``c0``, arriving at
  ``t0``) anchors the clock; a packet arriving after its chunk's deadline is late, i.e.
  lost, i.e. concealed. ``play(now_ms)`` decodes every chunk due by ``now_ms``::

    rx = Receiver(codec, model, cfg, playout_delay_ms=60.0)  # cfg: the sender's
    while streaming:
        for payload, seq, chunk in socket.receive_ready():   # as datagrams arrive
            rx.push(payload, seq, chunk, arrival_ms=clock_ms())  # -> PushOutcome
        speaker.write(rx.play(clock_ms()))  # float32 audio of every chunk now due
        wait_until(rx.next_deadline_ms)     # the next chunk's deadline (None before
                                            # the first packet anchors the clock)
    speaker.write(rx.end_of_stream())       # what is still held + the codec's tail
    print(rx.stats.chunks_concealed, rx.history[-1].status)

``snapshot()`` / ``restore(snap)`` save and return to the whole receiving state (jitter
buffer, model memory, concealment history, codec decoder state, counters): speculative
concealment runs from a snapshot and is undone when the real packet turns up.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .._validate import finite_float, int_in
from ..config import BASE_CODEBOOKS, CODEBOOK_SIZE, SAMPLE_RATE_HZ, TransceiverConfig
from ..entropy import CodingModel, FineDecodeResult
from ..errors import BitstreamError, ConfigError
from ..plc import BLEND_REPEAT_WEIGHT, conceal_base, hard_latents, repeat_frame, soft_latents
from ..transport import JitterBuffer, PlayoutChunk, PushOutcome
from ..transport.jitter_buffer import MAX_WINDOW_CHUNKS
from ._endpoint import DEFAULT_HISTORY_CHUNKS, _Endpoint, history_deque


@dataclass
class ReceiverStats:
    """Counters of a receiver (packets and chunks since it was made)."""

    packets_received: int = 0
    packets_late: int = 0
    packets_corrupt: int = 0
    packets_too_early: int = 0  # beyond the receiver's window of future chunks: dropped
    packets_duplicate: int = 0
    chunks_decoded: int = 0
    chunks_concealed: int = 0
    chunks_corrupt: int = 0  # concealed because what arrived failed its checks
    chunks_from_fec: int = 0
    fine_packets_decoded: int = 0
    fine_packets_undecodable: int = 0
    fine_packets_failed_check: int = 0


CHUNK_STATUSES = ("received", "partial", "base_only", "fec", "concealed", "corrupt", "late")


@dataclass
class ChunkOutcome:
    """What the receiver did with one chunk.

    Attributes:
        chunk: chunk index.
        status: "received" (every level of the bitrate), "partial" (the base and some
            fine levels), "base_only" (fine levels lost, undecodable or failed), "fec" (the
            base from an FEC copy), "concealed" (nothing arrived in time), "corrupt" (what
            arrived failed its integrity checks: concealed), "late" (concealed; a packet
            of the chunk came after its deadline, after it was played, or after the
            transport declared it lost).
        base: where the base came from: "received", "fec" or "concealed".
        n_levels: levels decoded from received data (0 when concealed).
        tokens: int64 [levels played, C]: the decoded tokens, or the concealment's.
        late_packets: packets of this chunk that arrived too late to be used.
    """

    chunk: int
    status: str
    base: str
    n_levels: int
    tokens: np.ndarray
    late_packets: int = 0


@dataclass
class DecodedChunk:
    """One chunk as ``TokenReceiver.next_chunk_tokens`` returns it: the tokens to play, the
    sharpened concealment PMFs float32 [3, C, V] when the "lm" mode asks the codec to
    decode their expected latents instead (else None), and the outcome."""

    tokens: np.ndarray
    probs: np.ndarray | None
    outcome: ChunkOutcome
    repeat: np.ndarray | None = None
    """The "blend" mode's other half: the last received frame's tokens int64 [levels, C]
    (every level it carried), whose latent is mixed with the PMFs' (else None)."""


@dataclass(frozen=True)
class ReceiverSnapshot:
    """The whole state of one receiver at ``next_chunk`` (``TokenReceiver.snapshot``):
    opaque; ``restore`` it on the receiver that made it, as often as needed."""

    next_chunk: int
    _owner: object = field(repr=False)
    _parts: dict = field(repr=False)


DEFAULT_WINDOW_CHUNKS = 256  # future chunks a receiver holds packets for (10.24 s at 40 ms)
MAX_PLAYOUT_DELAY_MS = 60000.0  # the jitter buffer's bound


_U32_MAX = (1 << 32) - 1
_MS = "a finite number of milliseconds"  # the expected form of a time argument


def _u32(name: str, value: object) -> int:
    """A transport field (seq, chunk): an int in [0, 2^32)."""
    return int_in(name, value, 0, _U32_MAX, "in [0, 2**32)")


def _copy_memory(memory: Any) -> Any:
    """An independent copy of a model memory (its own ``snapshot()`` when it has one)."""
    snap = getattr(memory, "snapshot", None)
    return snap() if callable(snap) else copy.deepcopy(memory)


@dataclass(frozen=True)
class _HeldChunk:
    """What the jitter buffer holds for one chunk (``TokenReceiver._slots``)."""

    payloads: dict[int, bytes]
    fec_base: bytes | None
    given_up: frozenset[int]  # layers declared lost (mark_lost)
    late: int
    damaged: int


class _HeldChunks(Mapping):
    """Read-only view of the chunks the jitter buffer holds ahead of the playout point,
    by chunk index (for inspection and tests; the buffer itself is in C++)."""

    def __init__(self, jb: JitterBuffer) -> None:
        self._jb = jb

    def __len__(self) -> int:
        return self._jb.held_chunks

    def __getitem__(self, chunk: int) -> _HeldChunk:
        pc = self._jb.peek(chunk)
        if pc is None:
            raise KeyError(chunk)
        got = {layer: p for layer, p in enumerate(pc.payloads) if p is not None}
        if pc.base_from_fec:
            del got[0]
        lost = pc.lost if pc.lost is not None else ()
        return _HeldChunk(got, pc.fec_copy, frozenset(int(i) for i in np.flatnonzero(lost)),
                          pc.late_packets, pc.damaged_packets)

    def __iter__(self) -> Iterator[int]:
        nxt = self._jb.next_chunk
        if nxt is None:
            return iter(())
        held = [c for c in range(nxt, nxt + self._jb.window_chunks)
                if self._jb.peek_version(c) is not None]
        return iter(held)


class TokenReceiver(_Endpoint):
    """Jitter buffer + entropy decoder + concealment over tokens (no codec).

    Packets may arrive in any order, duplicated or damaged, before their chunk is decoded;
    ``next_chunk_tokens`` (unclocked) or ``play`` (clocked) decodes chunks in order,
    concealing any chunk whose base has not arrived by then. Every token it returns is
    either the token that was sent or a concealment: a payload that fails to decode or to
    pass its integrity check is never played (docs/bitstream.md, "Token payloads").

    Args:
        model: the coding model (the transmitter's).
        config: the stream settings (the transmitter's; ``conceal`` is the receiver's).
        vocab: the codec's codebook size (decoded tokens at or above it are corrupt).
        keep_history: keep a ``ChunkOutcome`` per chunk in ``history``.
        history_chunks: how many outcomes ``history`` keeps (the latest); None = all.
        window_chunks: packets for chunks at or beyond ``next_chunk + window_chunks`` are
            dropped and counted (``stats.packets_too_early``): a hostile or broken sender
            cannot grow the receiver's memory. 1..65536.
        playout_delay_ms: None (unclocked: chunks are released on demand), or the clocked
            mode's delay from a chunk's nominal arrival to its deadline, [0, 60000].

    Raises:
        ConfigError: a concealment mode the model cannot run, or bad arguments.
    """

    def __init__(
        self,
        model: CodingModel,
        config: TransceiverConfig | None = None,
        vocab: int = CODEBOOK_SIZE,
        keep_history: bool = True,
        history_chunks: int | None = DEFAULT_HISTORY_CHUNKS,
        window_chunks: int = DEFAULT_WINDOW_CHUNKS,
        playout_delay_ms: float | None = None,
    ) -> None:
        _Endpoint.__init__(self, model, config)
        cfg = self.config
        if cfg.conceal in ("lm", "lm_greedy", "blend") and not (
                getattr(model, "can_conceal", True)
                and callable(getattr(model, "conceal_logits", None))):
            raise ConfigError(
                f"conceal={cfg.conceal!r} needs a model that predicts lost tokens; "
                f"{type(model).__name__} cannot: use conceal='repeat' or 'zero'"
            )
        self._vocab = int_in("vocab", vocab, 1, CODEBOOK_SIZE)
        self.window_chunks = int_in("window_chunks", window_chunks, 1, MAX_WINDOW_CHUNKS)
        history: deque[ChunkOutcome] = history_deque(history_chunks)
        if playout_delay_ms is not None:
            delay = finite_float("playout_delay_ms", playout_delay_ms, _MS)
            if not 0.0 <= delay <= MAX_PLAYOUT_DELAY_MS:
                raise ConfigError(f"playout_delay_ms must be in [0, {MAX_PLAYOUT_DELAY_MS:g}],"
                                  f" got {delay}")
            playout_delay_ms = delay
        self.playout_delay_ms: float | None = playout_delay_ms
        self.chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
        self._jb = JitterBuffer(
            num_layers=cfg.packets_per_chunk, chunk_ms=self.chunk_ms,
            playout_delay_ms=playout_delay_ms or 0.0, window_chunks=self.window_chunks,
            clocked=playout_delay_ms is not None,
        )
        # chunk -> (jitter-buffer version, verified base and source, whole-chunk decode)
        self._peeked: dict[int, tuple[int, tuple[np.ndarray | None, str],
                                      FineDecodeResult | None]] = {}
        self._tainted: deque[bool] = deque(maxlen=cfg.reach_chunks)
        self._past = np.zeros((model.max_codebooks, 0), dtype=np.int64)  # recent base frames
        self._last_frame: np.ndarray | None = None
        self._last_full: np.ndarray | None = None
        self._last_heard: np.ndarray | None = None  # the last chunk decoded from packets
        self._expected = 0  # the chunk the memory continues with (a gap taints the reach)
        self.stats = ReceiverStats()
        self._history: deque[ChunkOutcome] | None = history if keep_history else None
        self._token = object()  # identifies this receiver's snapshots

    # --------------------------------------------------------------------- clock
    @property
    def clocked(self) -> bool:
        """Whether chunks are released on the playout clock (``playout_delay_ms`` given)."""
        return self.playout_delay_ms is not None

    @property
    def next_chunk(self) -> int:
        """The next chunk to decode (in clocked mode, 0 until the first packet sets the
        playout point to its chunk). Setting it skips forward to a later chunk (joining a
        stream midway): what is held before it is discarded, and the model memory counts
        as tainted for the entropy-context reach.

        Raises (setter):
            ConfigError: not an int, or behind the current one.
        """
        nxt = self._jb.next_chunk
        return 0 if nxt is None else nxt

    @next_chunk.setter
    def next_chunk(self, chunk: int) -> None:
        chunk = int_in("next_chunk", chunk, self.next_chunk, 1 << 62,
                       f"at or after the current next_chunk {self.next_chunk}")
        self._jb.skip_to(chunk)
        self._peeked.clear()

    @property
    def next_deadline_ms(self) -> float | None:
        """The deadline of ``next_chunk`` on the arrival clock (ms), or None before the
        first packet anchors the clock (always None when unclocked)."""
        nxt = self._jb.next_chunk
        return None if nxt is None else self._jb.deadline_ms(nxt)

    @property
    def _slots(self) -> Mapping[int, _HeldChunk]:
        """Read-only view of what the jitter buffer holds, by chunk."""
        return _HeldChunks(self._jb)

    # --------------------------------------------------------------------- input
    def push(self, packet: bytes, seq: int, chunk: int,
             arrival_ms: float | None = None) -> PushOutcome:
        """Offers one received packet (transport fields ``seq`` and ``chunk``).

        A malformed packet is counted (``stats.packets_corrupt``) on its chunk and dropped
        (never raises for bad bytes); a packet for a chunk already decoded, after its
        deadline (clocked) or declared lost (``mark_lost``) is counted as late, one beyond
        the window of future chunks as too early, a second copy as a duplicate; all are
        dropped. ``seq`` is taken mod 2^16 (RTP), ``chunk`` is unwrapped around the
        playout point (both may wrap).

        Args:
            packet: the packet bytes.
            seq: the transport sequence number, an int in [0, 2^32).
            chunk: the chunk index (RTP-style timestamp in chunks), an int in [0, 2^32).
            arrival_ms: the arrival time on the playout clock (ms, finite): required in
                clocked mode, ignored in unclocked mode.

        Returns:
            What the jitter buffer did with it (``transport.PushOutcome``; DAMAGED for a
            packet too damaged to parse or naming a layer the stream does not have).

        Raises:
            ConfigError: ``seq`` or ``chunk`` is not an int in [0, 2^32), or (clocked) the
                arrival time is missing or not finite.
            TypeError: ``packet`` is not bytes-like.
        """
        if not (type(seq) is int and 0 <= seq <= _U32_MAX):  # (the fast path: plain ints)
            seq = _u32("seq", seq)
        if not (type(chunk) is int and 0 <= chunk <= _U32_MAX):
            chunk = _u32("chunk", chunk)
        if not isinstance(packet, (bytes, bytearray, memoryview)):
            raise TypeError(f"packet must be bytes, got {type(packet).__name__}")
        if self.playout_delay_ms is None:
            arrival = 0.0
        elif arrival_ms is None:
            raise ConfigError("arrival_ms is required by a clocked receiver "
                              "(playout_delay_ms given)")
        else:
            arrival = finite_float("arrival_ms", arrival_ms, _MS)
        outcome, k = self._jb.offer(seq & 0xFFFF, chunk, arrival, packet)
        stats = self.stats
        if outcome == PushOutcome.ACCEPTED:
            stats.packets_received += 1
        elif outcome == PushOutcome.DUPLICATE:
            stats.packets_duplicate += 1
        elif outcome == PushOutcome.LATE:
            stats.packets_late += 1
            if k < self.next_chunk:
                self._mark_late(k)
        elif outcome == PushOutcome.TOO_EARLY:
            stats.packets_too_early += 1
        else:  # DAMAGED
            stats.packets_corrupt += 1
        return outcome

    @property
    def history(self) -> list[ChunkOutcome] | None:
        """The outcomes of the last ``history_chunks`` chunks played, oldest first (a
        copy), or None when the receiver keeps none."""
        return None if self._history is None else list(self._history)

    def _mark_late(self, chunk: int) -> None:
        """Counts a late packet on the outcome of its (already played) chunk."""
        if not self._history:
            return
        i = chunk - self._history[0].chunk
        if 0 <= i < len(self._history):
            outcome = self._history[i]
            outcome.late_packets += 1
            if outcome.status == "concealed":
                outcome.status = "late"

    def mark_lost(self, seq: int) -> None:
        """Declares the packet with transport sequence number ``seq`` lost (the transport
        gave up on it, e.g. its playout deadline passed).

        Optional: a packet missing when its chunk is decoded is lost anyway. Declaring it
        makes the outcome independent of arrival timing: a copy that still arrives is
        dropped as late, and a payload already held for it is discarded. ``seq`` is
        unwrapped (mod 2^16) to the nearest packet at or after the next chunk to decode
        (packets are numbered ``chunk * packets_per_chunk + layer``); numbers behind it,
        or beyond the window of future chunks, are ignored.

        Raises:
            ConfigError: ``seq`` is not an int in [0, 2^32).
        """
        seq = _u32("seq", seq)
        self._jb.mark_lost(seq & 0xFFFF)

    # --------------------------------------------------------------------- decoding
    def _usable(self, base: np.ndarray) -> bool:
        return base.max(initial=0) < self._vocab

    def _peek_base(self, c: int) -> tuple[np.ndarray | None, str]:
        """The verified base tokens of chunk c (a later chunk, for concealment to
        interpolate from) and where they came from; (None, "concealed") if none.
        Cached per chunk until the jitter buffer's copy of it changes."""
        version = self._jb.peek_version(c)
        if version is None:
            return None, "concealed"
        hit = self._peeked.get(c)
        if hit is not None and hit[0] == version:
            return hit[1]
        pc = self._jb.peek(c)
        base, how, decoded = self._verified_base(pc.primary_base, pc.fec_copy)
        self._peeked[c] = (version, (base, how), decoded)
        return base, how

    def _verified_base(self, primary: bytes | None, fec: bytes | None
                       ) -> tuple[np.ndarray | None, str, FineDecodeResult | None]:
        """(base tokens or None, source, the whole chunk when its one check decoded it)."""
        cfg = self.config
        if primary is not None:
            try:
                decoded = None
                if cfg.layered:
                    base = self.coder.decode_base(primary)
                elif self.coder.combined_base_check:
                    base = self.coder.decode_chunk_base(primary)
                else:  # the one check covers the whole chunk; fine PMFs need no memory
                    res = self.coder.decode_chunk(self._memory, primary)
                    if self._usable(res.tokens):
                        decoded = res  # kept for when the chunk is played
                    base = res.tokens[:BASE_CODEBOOKS]
                if self._usable(base):
                    return base, "received", decoded
            except BitstreamError:
                pass
        base, how = self._fec_base(fec)
        return base, how, None

    def _fec_base(self, fec: bytes | None) -> tuple[np.ndarray | None, str]:
        """The verified base of a chunk's FEC copy, or (None, "concealed")."""
        if fec is not None:
            try:
                base = self.coder.decode_base(fec)
                if self._usable(base):
                    return base, "fec"
            except BitstreamError:
                pass
        return None, "concealed"

    def _decode_received(self, pc: PlayoutChunk, decoded: FineDecodeResult | None
                         ) -> tuple[np.ndarray | None, str]:
        """(tokens int64 [n_levels, C] or None, base source) of the chunk being played,
        counting fine-packet outcomes in ``stats``."""
        cfg = self.config
        stats = self.stats
        tainted = self.model.uses_memory and any(self._tainted)
        primary = pc.primary_base
        if cfg.layered:
            fine = pc.payloads[1:]
            n_fine = sum(p is not None for p in fine)
            base, how, _ = self._verified_base(primary, pc.fec_copy)
            if base is None or tainted:
                stats.fine_packets_undecodable += n_fine
                return base, how
            if not n_fine:
                return base, how
            res = self.coder.decode_fine(self._memory, base, list(fine))
            n_ok = sum(1 for _, hi in cfg.layout.layers[1:] if hi <= res.n_levels)
            tokens = res.tokens if self._usable(res.tokens) else base
            stats.fine_packets_decoded += n_ok
            stats.fine_packets_failed_check += len(res.failed_layers)
            stats.fine_packets_undecodable += n_fine - n_ok - len(res.failed_layers)
            return tokens, how
        # combined: the fine levels ride in the chunk's own packet (never in FEC copies)
        n_fine = int(primary is not None and cfg.layout.n_layers > 1)
        if primary is not None and not tainted:
            try:
                res = decoded or self.coder.decode_chunk(self._memory, primary)
                if self._usable(res.tokens):
                    failed = len(res.failed_layers)
                    stats.fine_packets_failed_check += failed
                    stats.fine_packets_decoded += n_fine - failed
                    return res.tokens, "received"
            except BitstreamError:
                pass
        elif primary is not None:  # tainted memory: only the base can be verified
            try:
                base = self.coder.decode_chunk_base(primary)
                if self._usable(base):
                    stats.fine_packets_undecodable += n_fine
                    return base, "received"
            except BitstreamError:
                pass
        if n_fine:
            stats.fine_packets_failed_check += 1
        return self._fec_base(pc.fec_copy)

    def _conceal(self, c: int) -> tuple[np.ndarray, np.ndarray | None]:
        cfg = self.config
        k_max = self.model.max_codebooks
        cf = cfg.chunk_frames
        future = []
        nc = c + 1
        while len(future) < 4:  # later chunks whose base already arrived: interpolate
            base, _ = self._peek_base(nc)
            if base is None:
                break
            future.append(base)
            nc += 1
        past = (
            self._past[:, -cfg.conceal_context_frames :]
            if cfg.conceal_context_frames
            else self._past[:, :0]
        )
        cols = [past, np.zeros((k_max, cf), dtype=np.int64)]
        cols += [np.pad(b, ((0, k_max - b.shape[0]), (0, 0))) for b in future]
        window = np.concatenate(cols, axis=1)
        lost = np.zeros(window.shape[1], dtype=bool)
        lost[past.shape[1] : past.shape[1] + cf] = True
        return conceal_base(cfg.conceal, window, lost, self._last_frame, self.model, self._vocab,
                            return_probs=True)

    def next_chunk_tokens(self) -> DecodedChunk:
        """Decodes (or conceals) chunk ``next_chunk`` whatever the time, and advances to
        the next one."""
        return self._play(self._jb.release_next())

    def play_tokens(self, now_ms: float) -> list[DecodedChunk]:
        """Decodes (or conceals) every chunk whose deadline is at or before ``now_ms``
        (clocked mode), in order: what did not arrive in time is concealed. Empty before
        the first packet anchors the clock.

        Raises:
            ConfigError: an unclocked receiver, or ``now_ms`` not a finite number.
        """
        now = finite_float("now_ms", now_ms, _MS)
        if self.playout_delay_ms is None:
            raise ConfigError("play needs a clocked receiver (playout_delay_ms); "
                              "use decode_until / next_chunk_tokens")
        out = []
        while True:  # one at a time: the chunks after it stay held for concealment to peek
            due = self._jb.pop(now, 1)
            if not due:
                return out
            out.append(self._play(due[0]))

    def play(self, now_ms: float) -> list[DecodedChunk]:
        """``play_tokens``: the DecodedChunk of every chunk due by ``now_ms``."""
        return self.play_tokens(now_ms)

    def end_of_stream_tokens(self) -> list[DecodedChunk]:
        """Decodes (or conceals) every chunk up to the last one the jitter buffer holds,
        whatever the time (the stream ended: nothing more will arrive)."""
        out = []
        while self._jb.held_chunks:
            out.append(self.next_chunk_tokens())
        return out

    def end_of_stream(self) -> list[DecodedChunk]:
        """``end_of_stream_tokens``."""
        return self.end_of_stream_tokens()

    def _play(self, pc: PlayoutChunk) -> DecodedChunk:
        cfg = self.config
        c = pc.chunk
        if c != self._expected:  # the memory lacks the chunks before c (a late start, a skip)
            self._tainted.extend([True] * self._tainted.maxlen)
        self._expected = c + 1
        hit = self._peeked.pop(c, None)
        decoded = hit[2] if hit is not None and hit[0] == pc.version else None
        tokens, how = self._decode_received(pc, decoded)
        probs = repeat = None
        late = pc.late_packets
        if tokens is None:
            self.stats.chunks_concealed += 1
            # a base candidate (or a packet too damaged to tell its layer) arrived
            arrived = (pc.primary_base is not None or pc.damaged_packets > 0
                       or pc.fec_copy is not None)
            status = "late" if late else ("corrupt" if arrived else "concealed")
            self.stats.chunks_corrupt += status == "corrupt"
            if cfg.conceal == "repeat" and self._last_full is not None:
                tokens = repeat_frame(self._last_full, cfg.chunk_frames)
            else:
                tokens, probs = self._conceal(c)
                if cfg.conceal == "blend" and self._last_heard is not None:
                    repeat = repeat_frame(self._last_heard, cfg.chunk_frames)
            n_levels = 0
        else:
            self.stats.chunks_from_fec += how == "fec"
            n_levels = tokens.shape[0]
            if how == "fec":
                status = "fec"
            elif n_levels == cfg.layout.n_codebooks:
                status = "received"
            elif n_levels == BASE_CODEBOOKS:
                status = "base_only"
            else:
                status = "partial"
        base = tokens[:BASE_CODEBOOKS]
        self._memory = self.model.commit(self._memory, base)
        self._tainted.append(how == "concealed")
        keep = max(cfg.conceal_context_frames, 1)
        past = np.zeros((self.model.max_codebooks, self._past.shape[1] + cfg.chunk_frames),
                        dtype=np.int64)  # the base frames seen last, fine levels zero
        past[:, : self._past.shape[1]] = self._past
        past[: base.shape[0], self._past.shape[1]:] = base
        self._past = past[:, -keep:]
        self._last_frame = base[:, -1].copy()
        self._last_full = tokens.copy()
        if how != "concealed":
            self._last_heard = self._last_full
        outcome = ChunkOutcome(c, status, how, n_levels, tokens, late)
        if self._history is not None:
            self._history.append(outcome)
        self.stats.chunks_decoded += 1
        return DecodedChunk(tokens, probs, outcome, repeat)

    # --------------------------------------------------------------------- snapshots
    def snapshot(self) -> ReceiverSnapshot:
        """The whole receiving state now: the jitter buffer (packets held, clock), the
        model memory, the concealment history, the counters and outcomes (and, on a
        ``Receiver``, the codec decoder state and the audio not yet pulled).

        Costs one copy of each (the history: one small object per outcome kept).
        """
        return ReceiverSnapshot(self.next_chunk, self._token, self._save())

    def restore(self, snap: ReceiverSnapshot) -> None:
        """Returns to the state of ``snap`` (made by this receiver's ``snapshot``); the
        receiver then behaves exactly as if nothing had happened since. ``snap`` stays
        valid (restore it again to retry).

        Raises:
            TypeError: ``snap`` is not a ReceiverSnapshot.
            ConfigError: ``snap`` was made by another receiver.
        """
        if not isinstance(snap, ReceiverSnapshot):
            raise TypeError(f"snap must be a ReceiverSnapshot, got {type(snap).__name__}")
        if snap._owner is not self._token:
            raise ConfigError("this snapshot was made by another receiver")
        self._load(snap._parts)

    def _save(self) -> dict:
        return {
            "jb": self._jb.snapshot(),
            "memory": _copy_memory(self._memory),
            "peeked": dict(self._peeked),
            "tainted": list(self._tainted),
            "past": self._past,  # never written in place (rebuilt per chunk)
            "last_frame": self._last_frame,
            "last_full": self._last_full,
            "last_heard": self._last_heard,
            "expected": self._expected,
            "stats": replace(self.stats),
            "history": None if self._history is None else [replace(o) for o in self._history],
        }

    def _load(self, parts: dict) -> None:
        self._jb.restore(parts["jb"])
        self._memory = _copy_memory(parts["memory"])
        self._peeked = dict(parts["peeked"])
        self._tainted.clear()
        self._tainted.extend(parts["tainted"])
        self._past = parts["past"]
        self._last_frame = parts["last_frame"]
        self._last_full = parts["last_full"]
        self._last_heard = parts["last_heard"]
        self._expected = parts["expected"]
        self.stats = replace(parts["stats"])
        if self._history is not None:
            self._history.clear()
            self._history.extend(replace(o) for o in parts["history"])


class Receiver(TokenReceiver):
    """Jitter buffer + entropy decoder + concealment + codec decoder.

    Packets may arrive in any order before their chunk is decoded; ``pull`` /
    ``decode_until`` (unclocked) or ``play`` (clocked) decode chunks in order, concealing
    any chunk whose base has not arrived by then. Decoding costs the same per chunk however
    long the stream runs; the memory it holds is bounded (the window of future chunks, the
    history of outcomes, the audio not yet pulled).

    Args: as ``TokenReceiver`` (``vocab`` is the codec's), with ``codec`` first.
    """

    def __init__(
        self,
        codec,
        model: CodingModel,
        config: TransceiverConfig | None = None,
        keep_history: bool = True,
        history_chunks: int | None = DEFAULT_HISTORY_CHUNKS,
        window_chunks: int = DEFAULT_WINDOW_CHUNKS,
        playout_delay_ms: float | None = None,
    ) -> None:
        TokenReceiver.__init__(self, model, config, int(codec.cfg.codebook_size),
                               keep_history, history_chunks, window_chunks, playout_delay_ms)
        self.codec = codec
        self._dec_state = codec.init_decoder_state(1)
        self._decode_tokens = getattr(codec, "decode_tokens", None)  # numpy decode_step
        self._codebooks = codec.quantizer.codebooks.detach().to(torch.float32).numpy()
        self._out: deque[np.ndarray] = deque()  # decoded audio not yet pulled, in order
        self._out_len = 0
        self.finished = False  # end_of_stream was called

    # --------------------------------------------------------------------- output
    def pull(self, n_samples: int) -> np.ndarray:
        """Returns the next ``n_samples`` of audio float32, decoding (or concealing)
        chunks as needed, whatever the time.

        The output is the codec's streaming output: delayed by ``codec.lookahead_samples``.
        """
        n_samples = int_in("n_samples", n_samples, 0, 1 << 40)
        while self._out_len < n_samples:
            self._decode_next()
        return self._take(n_samples)

    def play(self, now_ms: float) -> np.ndarray:  # type: ignore[override]
        """Decodes (or conceals) every chunk whose deadline is at or before ``now_ms``
        (clocked mode) and returns all decoded audio not yet handed out, float32 [n] (the
        codec's streaming output; empty before the first packet, and once finished).

        Raises:
            ConfigError: an unclocked receiver, or ``now_ms`` not a finite number.
        """
        if not self.finished:
            for d in self.play_tokens(now_ms):
                self._synthesize(d)
        return self._take(self._out_len)

    def end_of_stream(self) -> np.ndarray:  # type: ignore[override]
        """Decodes (or conceals) every chunk up to the last one held, whatever the time,
        and returns the audio not yet handed out plus the codec's tail (``flush``). The
        receiver is finished: ``play`` returns nothing more."""
        if self.finished:
            return np.zeros(0, dtype=np.float32)
        for d in self.end_of_stream_tokens():
            self._synthesize(d)
        self.finished = True
        return self.flush()

    def _take(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.float32)
        pos = 0
        while pos < n:
            head = self._out[0]
            k = min(n - pos, len(head))
            out[pos:pos + k] = head[:k]
            pos += k
            if k == len(head):
                self._out.popleft()
            else:
                self._out[0] = head[k:]
        self._out_len -= n
        return out

    @property
    def buffered_samples(self) -> int:
        """Decoded samples not yet pulled."""
        return self._out_len

    def flush(self) -> np.ndarray:
        """Everything buffered plus the codec's overlap-add tail."""
        tail = self.codec.decode_flush(self._dec_state)[0, 0].numpy().astype(np.float32)
        out = self._take(self._out_len)
        return np.concatenate([out, tail])

    def decode_until(self, chunk: int) -> None:
        """Decodes (or conceals) every chunk before ``chunk``, whatever the time."""
        chunk = int_in("chunk", chunk, 0, 1 << 40)
        while self.next_chunk < chunk:
            self._decode_next()

    def _decode_next(self) -> None:
        self._synthesize(self.next_chunk_tokens())

    def _synthesize(self, d: DecodedChunk) -> None:
        if d.probs is not None:
            lat = soft_latents(d.probs, self._codebooks)
            if d.repeat is not None:
                b = BLEND_REPEAT_WEIGHT
                lat = (1.0 - b) * lat + b * hard_latents(d.repeat, self._codebooks)
            latents = torch.from_numpy(lat)[None]
            wav, self._dec_state = self.codec.decode_latent_step(latents, self._dec_state)
            pcm = wav[0, 0].numpy()
        elif self._decode_tokens is not None:  # the codec engine: no torch
            pcm = self._decode_tokens(d.tokens, self._dec_state)
        else:
            wav, self._dec_state = self.codec.decode_step(
                torch.from_numpy(d.tokens)[None], self._dec_state
            )
            pcm = wav[0, 0].numpy()
        if len(pcm):
            self._out.append(pcm)
            self._out_len += len(pcm)

    # --------------------------------------------------------------------- snapshots
    def _save(self) -> dict:
        parts = TokenReceiver._save(self)
        parts["decoder"] = self._dec_state.snapshot()
        parts["out"] = list(self._out)  # arrays never written in place
        parts["out_len"] = self._out_len
        parts["finished"] = self.finished
        return parts

    def _load(self, parts: dict) -> None:
        TokenReceiver._load(self, parts)
        self._dec_state = parts["decoder"].snapshot()
        self._out = deque(parts["out"])
        self._out_len = parts["out_len"]
        self.finished = parts["finished"]
