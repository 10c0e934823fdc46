"""The transceiver: ``Transmitter`` (codec -> entropy coder -> packets) and ``Receiver``
(packets -> decoding / concealment -> codec decoder). The only module wiring every stage.

Stream rules (DESIGN.md sections 5-7):

- Chunks of C frames (default 2 = 40 ms). By default one packet per chunk (layer 0)
  whose single range-coder stream holds the base levels 0-2 (static PMFs: a prefix that
  decodes on its own), then every fine level, then one integrity check. With
  ``layered=True``: one base packet and one packet per fine group present at the
  bitrate (each its own stream and check), for networks that prioritise the base.
  Sequence numbers are ``(chunk * packets_per_chunk + layer) mod 2^16``; the chunk index
  is the RTP-style timestamp. Both travel outside the packet (transport / container).
- Fine PMFs come from the model's memory: the base tokens of the chunks within the
  entropy-context reach ``context_frames``. A fine packet is decodable only when every
  chunk in that reach had its base received (or recovered by FEC); a concealed base
  "taints" the memory for the following ``context_frames // C`` chunks.
- Optional FEC: the base packet of chunk c also carries a copy of chunk c-1's base
  (its base-only payload, as a layered base packet would carry it).
- Rate-distortion token choice (transmitter only; ``rd_lambda``): the transmitter may
  pick, per token, a codeword a little farther from the residual than the nearest when
  the coder's PMF makes it much cheaper (the RDO quantisation of video encoders). The
  bitstream is unchanged: a receiver decodes whatever tokens were sent.
- A lost chunk is concealed (``config.DEFAULT_CONCEAL``, ``repeat``: the last decoded
  frame's tokens at every level it carried; ``lm``: masked-LM infilling of the base from
  the frames around the gap, using later base packets already received, decoded from the
  expected latent under the LM's PMFs, its fine levels dropped; ``lm_greedy``: the LM's
  most likely base tokens; ``blend``: ``lm``'s latent mixed with the repeated frame's;
  ``zero``). See ``soundspring.plc`` for why the default is ``repeat``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validate import finite_float, int_in
from .audio import check_pcm
from .config import (
    BASE_CODEBOOKS,
    CHECK_BITS_RANGE,
    CODEBOOK_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONCEAL,
    DEFAULT_CONTEXT_FRAMES,
    DEFAULT_RD_LAMBDA,
    FRAME_SAMPLES,
    MAX_CHUNK_FRAMES,
    MAX_CONTEXT_FRAMES,
    PRECISION_BITS_RANGE,
    RAW_BPS_PER_CODEBOOK,
    SAMPLE_RATE_HZ,
)
from .entropy import ChunkCoder, CodingModel, FineDecodeResult, LayerLayout
from .errors import BitstreamError, ConfigError
from .plc import BLEND_REPEAT_WEIGHT, CONCEAL_MODES, conceal_base, hard_latents, soft_latents
from .transport import FecCopy, Packet, parse_packet


@dataclass(frozen=True)
class TransceiverConfig:
    """Settings both ends must share (recorded in the .spring header).

    Attributes:
        bitrate_kbps: raw token bitrate: 1.5 / 3 / 6 / 12.
        chunk_frames: C, frames per packet interval (1..5; 20..100 ms).
        context_frames: entropy-context reach R in frames (0..model max; below C: fine
            PMFs depend on the chunk's own base only, so a lost packet taints nothing).
        progressive: fine group g coded given the lower fine groups of its chunk.
        check_bits: bits of each integrity check, 0..16 (combined: one check per chunk,
            plus one after the base when ``context_frames >= chunk_frames`` or at the
            base-only bitrate; layered: one per packet). A corrupted payload passes with
            probability about 2^-check_bits; 0 disables integrity (corruption may play).
        precision_bits: range-coder CDF precision (10..16).
        layered: one packet per layer instead of one packet per chunk. Costs a TOC byte
            and a check per extra packet; only worth it where the network treats the
            base packet better than the fine ones.
        fec: carry a copy of the previous chunk's base payload in each base packet.
        conceal: receiver concealment, one of ``plc.CONCEAL_MODES`` (receiver only;
            default ``config.DEFAULT_CONCEAL``; see ``soundspring.plc``).
        conceal_context_frames: past frames the concealment window shows the model.
        rd_lambda: transmitter only (no header field: receivers need not know it):
            rate-distortion quantisation. Each token is the codeword minimising the
            latent squared error plus ``rd_lambda`` times the bits it would cost under
            the PMF the coder will use (static for the base, the LM's for fine levels,
            given the levels already chosen); 0 = the nearest codeword, as
            ``codec.encode`` picks it. Units: latent squared error per bit; the default
            (``config.DEFAULT_RD_LAMBDA``) saves 16.6 % at 12 kbps for -0.006 PESQ-WB.
    """

    bitrate_kbps: float = 6.0
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    progressive: bool = False
    check_bits: int = 8
    precision_bits: int = 16
    fec: bool = False
    layered: bool = False
    conceal: str = DEFAULT_CONCEAL
    conceal_context_frames: int = 15
    rd_lambda: float = DEFAULT_RD_LAMBDA

    def __post_init__(self) -> None:
        finite_float("bitrate_kbps", self.bitrate_kbps, "a number")
        LayerLayout.for_bitrate(self.bitrate_kbps)  # validates the bitrate
        int_in("chunk_frames", self.chunk_frames, 1, MAX_CHUNK_FRAMES)
        int_in("context_frames", self.context_frames, 0, MAX_CONTEXT_FRAMES)
        int_in("check_bits", self.check_bits, *CHECK_BITS_RANGE)
        int_in("precision_bits", self.precision_bits, *PRECISION_BITS_RANGE)
        int_in("conceal_context_frames", self.conceal_context_frames, 0, MAX_CONTEXT_FRAMES)
        for name in ("progressive", "fec", "layered"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.conceal not in CONCEAL_MODES:
            raise ConfigError(f"conceal must be one of {CONCEAL_MODES}, got {self.conceal!r}")
        if finite_float("rd_lambda", self.rd_lambda, "finite and >= 0") < 0:
            raise ConfigError(f"rd_lambda must be finite and >= 0, got {self.rd_lambda!r}")

    @property
    def layout(self) -> LayerLayout:
        return LayerLayout.for_bitrate(self.bitrate_kbps)

    @property
    def raw_bitrate_bps(self) -> float:
        """Bitrate of the raw tokens (10 bits each) at this operating point."""
        return float(self.layout.n_codebooks * RAW_BPS_PER_CODEBOOK)

    @property
    def packets_per_chunk(self) -> int:
        return self.layout.n_layers if self.layered else 1

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * FRAME_SAMPLES

    @property
    def reach_chunks(self) -> int:
        """Whole past chunks in the model memory: the chunks a fine packet depends on
        besides its own (the memory holds the last R // C chunks, at most R frames)."""
        return self.context_frames // self.chunk_frames

    @property
    def combined_base_check(self) -> bool:
        """Whether a combined payload carries a check after its base prefix: when the
        entropy context reaches past chunks, a receiver whose memory is tainted must
        still be able to verify the base alone (docs/bitstream.md, "Token payloads")."""
        return self.reach_chunks > 0


def algorithmic_latency_ms(codec, cfg: TransceiverConfig) -> float:
    """Input-to-output algorithmic latency of the transceiver, in ms (no network, no jitter
    buffer, no compute): the transmitter waits for a whole chunk (C frames) before it
    codes it, and the codec decoder's overlap-add lookahead delays the output; the entropy
    coder adds none. 55 ms at the defaults (C = 2: 40 ms, plus the codec's 15 ms). A
    receiver's jitter buffer comes on top: ``receive`` holds one chunk (C frames) so that
    concealment can interpolate from the next chunk's base, 95 ms in all by default."""
    chunk_ms = 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ
    return chunk_ms + 1000.0 * codec.lookahead_samples / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class SentPacket:
    """A packet with its transport fields (seq and chunk travel outside the packet)."""

    seq: int
    chunk: int
    layer: int
    data: bytes


class _Endpoint:
    """What both ends hold: the shared settings, the chunk coder and the model memory."""

    def __init__(self, model: CodingModel, config: TransceiverConfig | None) -> None:
        if config is not None and not isinstance(config, TransceiverConfig):
            raise TypeError(f"config must be a TransceiverConfig, got {type(config).__name__}")
        self.config = cfg = config or TransceiverConfig()
        self.model = model
        self.coder = ChunkCoder(
            model, cfg.layout, cfg.chunk_frames, cfg.precision_bits, cfg.check_bits,
            cfg.progressive, combined_base_check=cfg.combined_base_check,
        )
        self._memory = model.new_state(cfg.context_frames, cfg.chunk_frames)


class TokenTransmitter(_Endpoint):
    """Entropy coder + packetiser over tokens, one chunk at a time (no codec): what
    ``Transmitter`` runs after its codec, and a source of real packets for tests.

    Example:
        ttx = TokenTransmitter(model, TransceiverConfig(bitrate_kbps=6))
        packets = ttx.send_tokens(tokens_int64_K_by_C)
    """

    def __init__(self, model: CodingModel, config: TransceiverConfig | None = None) -> None:
        _Endpoint.__init__(self, model, config)
        self._prev_base: bytes | None = None
        self.chunks_sent = 0
        self.sent_tokens: list[np.ndarray] = []  # int64 [K, C] per chunk, for tests and stats

    def send_tokens(self, tokens: np.ndarray, cache: dict | None = None) -> list[SentPacket]:
        """The packets of the next chunk's tokens int [K, C] (``cache``: model calls made
        on the same tokens and memory, e.g. by ``ChunkCoder.rate_bits``)."""
        cfg = self.config
        cache = {} if cache is None else cache
        fec = FecCopy(1, self._prev_base) if cfg.fec and self._prev_base else None
        base = self.coder.encode_base(tokens) if cfg.layered or cfg.fec else b""
        if cfg.layered:
            fine = self.coder.encode_fine(self._memory, tokens, cache)
            packets = [Packet(0, base, fec)] + [Packet(i + 1, p) for i, p in enumerate(fine)]
        else:
            packets = [Packet(0, self.coder.encode_chunk(self._memory, tokens, cache), fec)]
        tokens = np.asarray(tokens, dtype=np.int64)
        self._memory = self.model.commit(self._memory, tokens[:BASE_CODEBOOKS])
        c = self.chunks_sent
        self._prev_base = base if base else None
        self.chunks_sent += 1
        self.sent_tokens.append(tokens)
        n = cfg.packets_per_chunk
        return [
            SentPacket((c * n + layer) & 0xFFFF, c, layer, pkt.to_bytes())
            for layer, pkt in enumerate(packets)
        ]


class Transmitter(TokenTransmitter):
    """Codec encoder + entropy coder + packetiser, one chunk at a time.

    Example:
        tx = Transmitter(codec, model, TransceiverConfig(bitrate_kbps=6))
        packets = tx.push(pcm_float32_16k) + tx.flush()
    """

    def __init__(self, codec, model: CodingModel, config: TransceiverConfig | None = None) -> None:
        TokenTransmitter.__init__(self, model, config)
        self.codec = codec
        self._enc_state = codec.init_encoder_state(1)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, pcm: np.ndarray) -> list[SentPacket]:
        """Adds audio float32 [T] at 16 kHz; returns the packets of every completed chunk."""
        pcm = check_pcm(pcm, "pcm", allow_empty=True)
        n = self.config.chunk_samples
        out: list[SentPacket] = []
        if len(self._pending):  # complete the pending chunk first
            take = min(n - len(self._pending), len(pcm))
            self._pending = np.concatenate([self._pending, pcm[:take]])
            pcm = pcm[take:]
            if len(self._pending) < n:
                return out
            out += self._send_chunk(self._pending)
            self._pending = np.zeros(0, dtype=np.float32)
        whole = len(pcm) - len(pcm) % n
        for start in range(0, whole, n):
            out += self._send_chunk(pcm[start:start + n])
        self._pending = pcm[whole:].copy()
        return out

    def flush(self) -> list[SentPacket]:
        """Zero-pads the remaining audio to a whole chunk and sends it."""
        if len(self._pending) == 0:
            return []
        pad = np.zeros(self.config.chunk_samples - len(self._pending), dtype=np.float32)
        chunk = np.concatenate([self._pending, pad])
        self._pending = np.zeros(0, dtype=np.float32)
        return self._send_chunk(chunk)

    def _rd_tokens(self, z: torch.Tensor, cache: dict) -> np.ndarray:
        """Rate-distortion quantisation of one chunk's latents z [D, C] -> int64 [K, C]:
        layer by layer (the PMFs of a layer depend on the levels below it), level by level
        on the residual, each code minimising squared error + rd_lambda * bits."""
        quantizer = self.codec.quantizer
        layout = self.config.layout
        tokens = np.zeros((layout.n_codebooks, self.config.chunk_frames), dtype=np.int64)
        r = z.t().to(quantizer.codebooks.dtype)  # [C, D]
        v = quantizer.codebook_size  # the coder's alphabet may be larger (never smaller)
        for layer, (lo, hi) in enumerate(layout.layers):
            bits = self.coder.rate_bits(self._memory, tokens, layer, cache)[..., :v]
            bits = torch.from_numpy(np.ascontiguousarray(bits))
            for k in range(lo, hi):
                idx = quantizer.nearest_rd(r, k, bits[:, k - lo], self.config.rd_lambda)
                r = r - quantizer.codebooks[k][idx]
                tokens[k] = idx.numpy()
        return tokens

    def _chunk_tokens(self, pcm: np.ndarray, cache: dict) -> np.ndarray:
        """int64 [K, C] tokens of one chunk of audio."""
        cfg = self.config
        wav = torch.from_numpy(pcm.copy()).view(1, 1, -1)
        if cfg.rd_lambda == 0.0:
            codes, self._enc_state = self.codec.encode_step(wav, self._enc_state, cfg.bitrate_kbps)
            return codes[0].numpy().astype(np.int64)
        z, self._enc_state = self.codec.encode_latent_step(wav, self._enc_state)
        with torch.inference_mode():
            return self._rd_tokens(z[0], cache)

    def _send_chunk(self, pcm: np.ndarray) -> list[SentPacket]:
        cache: dict = {}  # model calls made while choosing the tokens, reused to code them
        return self.send_tokens(self._chunk_tokens(pcm, cache), cache)


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


# ------------------------------------------------------------------------- whole signals


def transmit(
    codec, model: CodingModel, pcm: np.ndarray, cfg: TransceiverConfig, progress: bool = False
) -> tuple[list[SentPacket], Transmitter]:
    """Encodes a whole signal float32 [T] into packets (chunk by chunk, as a stream)."""
    from tqdm import tqdm

    pcm = check_pcm(pcm, "pcm")
    tx = Transmitter(codec, model, cfg)
    step = cfg.chunk_samples * 25
    packets: list[SentPacket] = []
    for start in tqdm(
        range(0, len(pcm), step),
        desc="transmit",
        unit="s",
        disable=not progress,
        unit_scale=step / SAMPLE_RATE_HZ,
    ):
        packets += tx.push(pcm[start : start + step])
    packets += tx.flush()
    return packets, tx


def receive_blocks(
    codec,
    model: CodingModel,
    cfg: TransceiverConfig,
    packets,
    n_chunks: int,
    n_samples: int,
    progress: bool = False,
    keep_history: bool = False,
) -> tuple[Receiver, Iterator[np.ndarray]]:
    """Decodes received packets as a stream: (the receiver, an iterator of float32 audio
    blocks that add up to exactly ``n_samples``, aligned with the transmitter's input).

    The same decoding as ``receive``, one chunk at a time, so a caller can write the audio
    as it comes (``soundspring decode`` does): the memory held is the packets plus one
    chunk of audio, however long the stream. ``packets``: SentPacket-like objects with
    seq, chunk and data. Chunks whose base never arrived are concealed; the codec's
    lookahead delay is removed. The receiver's stats and history are final once the
    iterator is exhausted.
    """
    n_chunks = int_in("n_chunks", n_chunks, 0, 1 << 40)
    n_samples = int_in("n_samples", n_samples, 0, 1 << 40)
    rx = Receiver(codec, model, cfg, keep_history=keep_history,
                  history_chunks=None if keep_history else DEFAULT_HISTORY_CHUNKS)
    by_chunk: dict[int, list] = {}
    for p in packets:
        by_chunk.setdefault(p.chunk, []).append(p)

    def blocks() -> Iterator[np.ndarray]:
        from tqdm import tqdm

        skip = codec.lookahead_samples  # the codec's delay: its first samples precede the input
        left = n_samples

        def trim(pcm: np.ndarray) -> np.ndarray:
            nonlocal skip, left
            cut = min(skip, len(pcm))
            pcm, skip = pcm[cut:], skip - cut
            pcm = pcm[:left]
            left -= len(pcm)
            return pcm

        for c in tqdm(range(n_chunks), desc="receive", unit="chunk", disable=not progress):
            # Deliver chunk c and the next one before decoding c: concealment may then
            # interpolate from the following chunk's base (a 1-chunk jitter buffer).
            for cc in (c, c + 1) if c == 0 else (c + 1,):
                for p in by_chunk.pop(cc, []):
                    rx.push(p.data, p.seq, p.chunk)
            rx.decode_until(c + 1)
            pcm = trim(rx.pull(rx.buffered_samples))
            if len(pcm):
                yield pcm
        pcm = trim(rx.flush())
        if len(pcm):
            yield pcm
        if left:  # the stream ended before n_samples: silence, as a decoder of nothing
            yield np.zeros(left, dtype=np.float32)

    return rx, blocks()


def receive(
    codec,
    model: CodingModel,
    cfg: TransceiverConfig,
    packets,
    n_chunks: int,
    n_samples: int,
    progress: bool = False,
    keep_history: bool = False,
) -> tuple[np.ndarray, Receiver]:
    """Decodes received packets (an iterable of SentPacket-like objects with seq, chunk and
    data) into float32 [n_samples] audio aligned with the transmitter's input.

    Chunks whose base never arrived are concealed. The codec's lookahead delay is removed.
    Linear in ``n_chunks``: the audio is written into one preallocated array as it is
    decoded (``receive_blocks`` streams it instead). ``keep_history``: the receiver keeps
    every chunk's outcome (``rx.history``).
    """
    rx, blocks = receive_blocks(codec, model, cfg, packets, n_chunks, n_samples, progress,
                                keep_history)
    out = np.empty(n_samples, dtype=np.float32)
    pos = 0
    for block in blocks:
        out[pos:pos + len(block)] = block
        pos += len(block)
    return out, rx
