"""The receiving end: packets -> entropy decoding or concealment -> codec decoder, one
chunk at a time (stream rules: ``soundspring.transceiver``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validate import int_in
from ..config import BASE_CODEBOOKS, CODEBOOK_SIZE, TransceiverConfig
from ..entropy import CodingModel, FineDecodeResult
from ..errors import BitstreamError, ConfigError
from ..plc import BLEND_REPEAT_WEIGHT, conceal_base, hard_latents, soft_latents
from ..transport import parse_packet
from ._endpoint import _Endpoint


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
            of the chunk came after it was played).
        base: where the base came from: "received", "fec" or "concealed".
        n_levels: levels decoded from received data (0 when concealed).
        tokens: int64 [levels played, C]: the decoded tokens, or the concealment's.
        late_packets: packets of this chunk that arrived after it was played.
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


@dataclass
class _Slot:
    payloads: dict[int, bytes] = field(default_factory=dict)
    fec_base: bytes | None = None
    given_up: set[int] = field(default_factory=set)  # layers declared lost (mark_lost)
    late: int = 0  # copies of given-up layers that still arrived
    damaged: bool = False  # a packet arrived too damaged to tell its layer, or a wrong one
    peeked: tuple[np.ndarray | None, str] | None = None  # cached _peek_base result
    decoded: FineDecodeResult | None = None  # the whole chunk, when _peek_base decoded it

    def changed(self) -> None:
        """A packet arrived or was withdrawn: what was decoded from the slot is stale."""
        self.peeked = self.decoded = None


DEFAULT_WINDOW_CHUNKS = 256  # future chunks a receiver holds packets for (10.24 s at 40 ms)
DEFAULT_HISTORY_CHUNKS = 1500  # outcomes a Receiver keeps (60 s at 40 ms); None = all


def _u32(name: str, value: object) -> int:
    """A transport field (seq, chunk): an int in [0, 2^32)."""
    return int_in(name, value, 0, (1 << 32) - 1, "in [0, 2**32)")


class TokenReceiver(_Endpoint):
    """Depacketiser + entropy decoder + concealment over tokens (no codec).

    Packets may arrive in any order before their chunk is decoded; ``next_chunk_tokens``
    decodes chunks in order, concealing any chunk whose base has not arrived by then (the caller's
    playout deadline, e.g. a ``transport.JitterBuffer`` in front). Every token it returns
    is either the token that was sent or a concealment: a payload that fails to decode
    or to pass its integrity check is never played (docs/bitstream.md, "Token payloads").

    Args:
        model: the coding model (the transmitter's).
        config: the stream settings (the transmitter's; ``conceal`` is the receiver's).
        vocab: the codec's codebook size (decoded tokens at or above it are corrupt).
        keep_history: keep a ``ChunkOutcome`` per chunk in ``history``.
        history_chunks: how many outcomes ``history`` keeps (the latest); None = all.
        window_chunks: packets for chunks at or beyond ``next_chunk + window_chunks`` are
            dropped and counted (``stats.packets_too_early``): a hostile or broken sender
            cannot grow the receiver's memory.

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
        self.window_chunks = int_in("window_chunks", window_chunks, 1, 1 << 20)
        if history_chunks is not None:
            int_in("history_chunks", history_chunks, 1, 1 << 30)
        self._slots: dict[int, _Slot] = {}
        self._tainted: deque[bool] = deque(maxlen=cfg.reach_chunks)
        self._past = np.zeros((model.max_codebooks, 0), dtype=np.int64)  # recent base frames
        self._last_frame: np.ndarray | None = None
        self._last_full: np.ndarray | None = None
        self._last_heard: np.ndarray | None = None  # the last chunk decoded from packets
        self.next_chunk = 0
        self.stats = ReceiverStats()
        self._history: deque[ChunkOutcome] | None = (
            deque(maxlen=history_chunks) if keep_history else None
        )

    # --------------------------------------------------------------------- input
    def push(self, packet: bytes, seq: int, chunk: int) -> None:
        """Offers one received packet (transport fields ``seq`` and ``chunk``).

        A malformed packet is counted and dropped (never raises for bad bytes); a packet
        for a chunk already decoded is counted as late, one beyond the window of future
        chunks as too early, and both are dropped.

        Raises:
            ConfigError: ``seq`` or ``chunk`` is not an int in [0, 2^32).
            TypeError: ``packet`` is not bytes-like.
        """
        _u32("seq", seq)
        chunk = _u32("chunk", chunk)
        if not isinstance(packet, (bytes, bytearray, memoryview)):
            raise TypeError(f"packet must be bytes, got {type(packet).__name__}")
        if chunk < self.next_chunk:
            self.stats.packets_late += 1
            self._mark_late(chunk)
            return
        if chunk >= self.next_chunk + self.window_chunks:
            self.stats.packets_too_early += 1
            return
        try:
            pkt = parse_packet(bytes(packet))
        except BitstreamError:
            pkt = None
        if pkt is None or pkt.layer >= self.config.packets_per_chunk:
            self.stats.packets_corrupt += 1
            self._slots.setdefault(chunk, _Slot()).damaged = True
            return
        slot = self._slots.setdefault(chunk, _Slot())
        if pkt.layer in slot.given_up:  # declared lost by the transport: it is late
            self.stats.packets_late += 1
            slot.late += 1
        elif pkt.layer in slot.payloads:
            self.stats.packets_duplicate += 1
        else:
            self.stats.packets_received += 1
            slot.payloads[pkt.layer] = pkt.payload
            slot.changed()
        if pkt.fec is not None and pkt.layer == 0:
            target = chunk - pkt.fec.offset
            if self.next_chunk <= target:  # (target <= chunk: inside the window)
                tslot = self._slots.setdefault(target, _Slot())
                if tslot.fec_base is None:
                    tslot.fec_base = pkt.fec.payload
                    tslot.changed()

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
        unwrapped (mod 2^16) to the nearest packet at or after the next chunk to decode;
        numbers behind it, or beyond the window of future chunks, are ignored.
        """
        seq = _u32("seq", seq)
        ppc = self.config.packets_per_chunk
        first = self.next_chunk * ppc
        delta = (seq - first) % 0x10000
        if delta >= 0x8000:  # behind the decoding point: already decided
            return
        chunk, layer = divmod(first + delta, ppc)
        if chunk >= self.next_chunk + self.window_chunks:
            return
        slot = self._slots.setdefault(chunk, _Slot())
        slot.given_up.add(layer)
        if slot.payloads.pop(layer, None) is not None:
            slot.late += 1
        slot.changed()

    # --------------------------------------------------------------------- decoding
    def _usable(self, base: np.ndarray) -> bool:
        return base.max(initial=0) < self._vocab

    def _peek_base(self, c: int) -> tuple[np.ndarray | None, str]:
        """The verified base tokens of chunk c (a later chunk, for concealment to
        interpolate from) and where they came from; (None, "concealed") if none.
        Cached per slot until a packet for it arrives."""
        slot = self._slots.get(c)
        if slot is None:
            return None, "concealed"
        if slot.peeked is None:
            slot.peeked = self._verified_base(slot)
        return slot.peeked

    def _verified_base(self, slot: _Slot) -> tuple[np.ndarray | None, str]:
        cfg = self.config
        primary = slot.payloads.get(0)
        if primary is not None:
            try:
                if cfg.layered:
                    base = self.coder.decode_base(primary)
                elif self.coder.combined_base_check:
                    base = self.coder.decode_chunk_base(primary)
                else:  # the one check covers the whole chunk; fine PMFs need no memory
                    res = self.coder.decode_chunk(self._memory, primary)
                    if self._usable(res.tokens):
                        slot.decoded = res  # kept for when the chunk is played
                    base = res.tokens[:BASE_CODEBOOKS]
                if self._usable(base):
                    return base, "received"
            except BitstreamError:
                pass
        return self._fec_base(slot)

    def _fec_base(self, slot: _Slot) -> tuple[np.ndarray | None, str]:
        """The verified base of the slot's FEC copy, or (None, "concealed")."""
        if slot.fec_base is not None:
            try:
                base = self.coder.decode_base(slot.fec_base)
                if self._usable(base):
                    return base, "fec"
            except BitstreamError:
                pass
        return None, "concealed"

    def _decode_received(self, slot: _Slot) -> tuple[np.ndarray | None, str]:
        """(tokens int64 [n_levels, C] or None, base source) of the chunk being played,
        counting fine-packet outcomes in ``stats``."""
        cfg = self.config
        stats = self.stats
        tainted = self.model.uses_memory and any(self._tainted)
        primary = slot.payloads.get(0)
        if cfg.layered:
            n_fine = sum(1 for layer in slot.payloads if layer > 0)
            base, how = self._verified_base(slot)
            if base is None or tainted:
                stats.fine_packets_undecodable += n_fine
                return base, how
            if not n_fine:
                return base, how
            payloads = [slot.payloads.get(layer) for layer in range(1, cfg.layout.n_layers)]
            res = self.coder.decode_fine(self._memory, base, payloads)
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
                res = slot.decoded or self.coder.decode_chunk(self._memory, primary)
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
        return self._fec_base(slot)

    def _conceal(self) -> tuple[np.ndarray, np.ndarray | None]:
        cfg = self.config
        k_max = self.model.max_codebooks
        cf = cfg.chunk_frames
        future = []
        nc = self.next_chunk + 1
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
        """Decodes (or conceals) chunk ``next_chunk`` and advances to the next one."""
        cfg = self.config
        c = self.next_chunk
        slot = self._slots.pop(c, _Slot())
        tokens, how = self._decode_received(slot)
        probs = repeat = None
        if tokens is None:
            self.stats.chunks_concealed += 1
            # a base candidate (or a packet too damaged to tell its layer) arrived
            arrived = 0 in slot.payloads or slot.damaged or slot.fec_base is not None
            status = "late" if slot.late else ("corrupt" if arrived else "concealed")
            self.stats.chunks_corrupt += status == "corrupt"
            if cfg.conceal == "repeat" and self._last_full is not None:
                tokens = np.repeat(self._last_full[:, -1:], cfg.chunk_frames, axis=1)
            else:
                tokens, probs = self._conceal()
                if cfg.conceal == "blend" and self._last_heard is not None:
                    repeat = np.repeat(self._last_heard[:, -1:], cfg.chunk_frames, axis=1)
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
        outcome = ChunkOutcome(c, status, how, n_levels, tokens, slot.late)
        if self._history is not None:
            self._history.append(outcome)
        self.stats.chunks_decoded += 1
        self.next_chunk += 1
        return DecodedChunk(tokens, probs, outcome, repeat)


class Receiver(TokenReceiver):
    """Depacketiser + entropy decoder + concealment + codec decoder.

    Packets may arrive in any order before their chunk is decoded; ``pull`` decodes chunks
    in order, concealing any chunk whose base has not arrived by then (the caller's
    playout deadline, e.g. a ``transport.JitterBuffer`` in front). Decoding costs the
    same per chunk however long the stream runs; the memory it holds is bounded (the
    window of future chunks, the history of outcomes, the audio not yet pulled).

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
    ) -> None:
        TokenReceiver.__init__(self, model, config, int(codec.cfg.codebook_size),
                               keep_history, history_chunks, window_chunks)
        self.codec = codec
        self._dec_state = codec.init_decoder_state(1)
        self._codebooks = codec.quantizer.codebooks.detach().to(torch.float32).numpy()
        self._out: deque[np.ndarray] = deque()  # decoded audio not yet pulled, in order
        self._out_len = 0

    # --------------------------------------------------------------------- output
    def pull(self, n_samples: int) -> np.ndarray:
        """Returns the next ``n_samples`` of audio float32, decoding (or concealing)
        chunks as needed.

        The output is the codec's streaming output: delayed by ``codec.lookahead_samples``.
        """
        n_samples = int_in("n_samples", n_samples, 0, 1 << 40)
        while self._out_len < n_samples:
            self._decode_next()
        return self._take(n_samples)

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
        """Decodes (or conceals) every chunk before ``chunk``."""
        chunk = int_in("chunk", chunk, 0, 1 << 40)
        while self.next_chunk < chunk:
            self._decode_next()

    def _decode_next(self) -> None:
        d = self.next_chunk_tokens()
        if d.probs is not None:
            lat = soft_latents(d.probs, self._codebooks)
            if d.repeat is not None:
                b = BLEND_REPEAT_WEIGHT
                lat = (1.0 - b) * lat + b * hard_latents(d.repeat, self._codebooks)
            latents = torch.from_numpy(lat)[None]
            wav, self._dec_state = self.codec.decode_latent_step(latents, self._dec_state)
        else:
            wav, self._dec_state = self.codec.decode_step(
                torch.from_numpy(d.tokens)[None], self._dec_state
            )
        pcm = wav[0, 0].numpy()
        if len(pcm):
            self._out.append(pcm)
            self._out_len += len(pcm)
