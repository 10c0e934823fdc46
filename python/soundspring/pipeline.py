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
- A lost base is concealed (``lm``: masked-LM infilling from the frames around the gap,
  using later base packets already received, decoded from the expected latent under the
  LM's PMFs; ``lm_greedy``: its most likely tokens; ``repeat``; ``zero``); its fine levels
  are dropped (the codec decodes that chunk at the base bitrate).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONTEXT_FRAMES,
    DEFAULT_RD_LAMBDA,
    FRAME_SAMPLES,
    MAX_CHUNK_FRAMES,
    RAW_BPS_PER_CODEBOOK,
    SAMPLE_RATE_HZ,
)
from .entropy import ChunkCoder, CodingModel, LayerLayout
from .errors import BitstreamError, ConfigError
from .plc import CONCEAL_MODES, conceal_base, soft_latents
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
        check_bits: integrity-check bits per fine packet (combined: per chunk), 0..16.
        precision_bits: range-coder CDF precision (10..16).
        layered: one packet per layer instead of one packet per chunk. Costs a TOC byte
            and a check per extra packet; only worth it where the network treats the
            base packet better than the fine ones.
        fec: carry a copy of the previous chunk's base payload in each base packet.
        conceal: receiver concealment: "lm", "lm_greedy", "repeat" or "zero" (receiver
            only; see ``soundspring.plc``).
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
    conceal: str = "lm"
    conceal_context_frames: int = 15
    rd_lambda: float = DEFAULT_RD_LAMBDA

    def __post_init__(self) -> None:
        LayerLayout.for_bitrate(self.bitrate_kbps)  # validates the bitrate
        if not 1 <= self.chunk_frames <= MAX_CHUNK_FRAMES:
            raise ConfigError(
                f"chunk_frames must be in [1, {MAX_CHUNK_FRAMES}], got {self.chunk_frames}"
            )
        if not 0 <= self.context_frames <= 50:
            raise ConfigError(f"context_frames must be in [0, 50], got {self.context_frames}")
        if self.conceal not in CONCEAL_MODES:
            raise ConfigError(f"conceal must be one of {CONCEAL_MODES}, got {self.conceal!r}")
        if not 0 <= self.conceal_context_frames <= 50:
            raise ConfigError("conceal_context_frames must be in [0, 50]")
        if not (np.isfinite(self.rd_lambda) and self.rd_lambda >= 0):
            raise ConfigError(f"rd_lambda must be finite and >= 0, got {self.rd_lambda}")

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


def _check_pcm(pcm: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(pcm, torch.Tensor):
        pcm = pcm.detach().cpu().numpy()
    if not isinstance(pcm, np.ndarray):
        raise TypeError(
            f"pcm must be a numpy float32 array [T] at {SAMPLE_RATE_HZ} Hz, got {type(pcm).__name__}"
        )
    if pcm.ndim != 1 and not (pcm.ndim == 3 and pcm.shape[:2] == (1, 1)):
        raise ConfigError(f"pcm must be float32 [T] or [1, 1, T], got shape {pcm.shape}")
    if pcm.dtype.kind != "f":
        raise TypeError(f"pcm must be float32 in [-1, 1], got dtype {pcm.dtype}")
    pcm = pcm.reshape(-1).astype(np.float32)
    if not np.isfinite(pcm).all():
        raise ConfigError("pcm contains NaN or inf")
    return pcm


class _Endpoint:
    """What both ends hold: the shared settings, the chunk coder and the model memory."""

    def __init__(self, codec, model: CodingModel, config: TransceiverConfig | None) -> None:
        self.config = cfg = config or TransceiverConfig()
        self.codec = codec
        self.model = model
        self.coder = ChunkCoder(
            model, cfg.layout, cfg.chunk_frames, cfg.precision_bits, cfg.check_bits, cfg.progressive
        )
        self._memory = model.new_state(cfg.context_frames, cfg.chunk_frames)


class Transmitter(_Endpoint):
    """Codec encoder + entropy coder + packetiser, one chunk at a time.

    Example:
        tx = Transmitter(codec, model, TransceiverConfig(bitrate_kbps=6))
        packets = tx.push(pcm_float32_16k) + tx.flush()
    """

    def __init__(self, codec, model: CodingModel, config: TransceiverConfig | None = None) -> None:
        _Endpoint.__init__(self, codec, model, config)
        self._enc_state = codec.init_encoder_state(1)
        self._pending = np.zeros(0, dtype=np.float32)
        self._prev_base: bytes | None = None
        self.chunks_sent = 0
        self.sent_tokens: list[np.ndarray] = []  # int64 [K, C] per chunk, for tests and stats

    def push(self, pcm: np.ndarray) -> list[SentPacket]:
        """Adds audio float32 [T] at 16 kHz; returns the packets of every completed chunk."""
        self._pending = np.concatenate([self._pending, _check_pcm(pcm)])
        out: list[SentPacket] = []
        n = self.config.chunk_samples
        while len(self._pending) >= n:
            out += self._send_chunk(self._pending[:n])
            self._pending = self._pending[n:]
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
        cfg = self.config
        cache: dict = {}  # model calls made while choosing the tokens, reused to code them
        tokens = self._chunk_tokens(pcm, cache)  # [K, C]
        fec = FecCopy(1, self._prev_base) if cfg.fec and self._prev_base else None
        base = self.coder.encode_base(tokens) if cfg.layered or cfg.fec else b""
        if cfg.layered:
            fine = self.coder.encode_fine(self._memory, tokens, cache)
            packets = [Packet(0, base, fec)] + [Packet(i + 1, p) for i, p in enumerate(fine)]
        else:
            packets = [Packet(0, self.coder.encode_chunk(self._memory, tokens, cache), fec)]
        self._memory = self.model.commit(self._memory, tokens[:3])
        c = self.chunks_sent
        self._prev_base = base if base else None
        self.chunks_sent += 1
        self.sent_tokens.append(tokens)
        n = cfg.packets_per_chunk
        return [
            SentPacket((c * n + layer) & 0xFFFF, c, layer, pkt.to_bytes())
            for layer, pkt in enumerate(packets)
        ]


@dataclass
class ReceiverStats:
    packets_received: int = 0
    packets_late: int = 0
    packets_corrupt: int = 0
    chunks_decoded: int = 0
    chunks_concealed: int = 0
    chunks_from_fec: int = 0
    fine_packets_decoded: int = 0
    fine_packets_undecodable: int = 0
    fine_packets_failed_check: int = 0


@dataclass
class ChunkOutcome:
    """What the receiver did with one chunk."""

    chunk: int
    base: str  # "received" | "fec" | "concealed"
    n_levels: int
    tokens: np.ndarray  # int64 [n_levels, C]


@dataclass
class _Slot:
    payloads: dict[int, bytes] = field(default_factory=dict)
    fec_base: bytes | None = None
    given_up: set[int] = field(default_factory=set)  # layers declared lost (mark_lost)


class Receiver(_Endpoint):
    """Depacketiser + entropy decoder + concealment + codec decoder.

    Packets may arrive in any order before their chunk is decoded; ``pull`` decodes chunks
    in order, concealing any chunk whose base has not arrived by then (the caller's
    playout deadline, e.g. a ``transport.JitterBuffer`` in front).
    """

    def __init__(
        self,
        codec,
        model: CodingModel,
        config: TransceiverConfig | None = None,
        keep_history: bool = True,
    ) -> None:
        _Endpoint.__init__(self, codec, model, config)
        cfg = self.config
        self._dec_state = codec.init_decoder_state(1)
        self._vocab = int(codec.cfg.codebook_size)
        self._codebooks = codec.quantizer.codebooks.detach().to(torch.float32).numpy()
        self._slots: dict[int, _Slot] = {}
        self._tainted: deque[bool] = deque(maxlen=cfg.reach_chunks)
        self._past = np.zeros((model.max_codebooks, 0), dtype=np.int64)  # recent base frames
        self._last_frame: np.ndarray | None = None
        self._last_full: np.ndarray | None = None
        self._out = np.zeros(0, dtype=np.float32)
        self.next_chunk = 0
        self.stats = ReceiverStats()
        self.history: list[ChunkOutcome] | None = [] if keep_history else None

    # --------------------------------------------------------------------- input
    def push(self, packet: bytes, seq: int, chunk: int) -> None:
        """Offers one received packet (transport fields ``seq`` and ``chunk``).

        A malformed packet is counted and dropped (never raises for bad bytes); a packet
        for a chunk already decoded is counted as late and dropped.
        """
        del seq  # the chunk index identifies the packet; seq matters to the jitter buffer
        if chunk < self.next_chunk:
            self.stats.packets_late += 1
            return
        try:
            pkt = parse_packet(packet)
        except BitstreamError:
            self.stats.packets_corrupt += 1
            return
        if pkt.layer >= self.config.packets_per_chunk:
            self.stats.packets_corrupt += 1
            return
        slot = self._slots.setdefault(chunk, _Slot())
        if pkt.layer in slot.given_up:  # declared lost by the transport: it is late
            self.stats.packets_late += 1
        else:
            self.stats.packets_received += 1
            slot.payloads.setdefault(pkt.layer, pkt.payload)
        if pkt.fec is not None and pkt.layer == 0:
            target = chunk - pkt.fec.offset
            if target >= self.next_chunk:
                self._slots.setdefault(target, _Slot()).fec_base = pkt.fec.payload

    def mark_lost(self, seq: int) -> None:
        """Declares the packet with transport sequence number ``seq`` lost (the transport
        gave up on it, e.g. its playout deadline passed).

        Optional: a packet missing when its chunk is decoded is lost anyway. Declaring it
        makes the outcome independent of arrival timing: a copy that still arrives is
        dropped as late, and a payload already held for it is discarded. ``seq`` is
        unwrapped (mod 2^16) to the nearest packet at or after the next chunk to decode;
        numbers behind it are ignored.
        """
        if isinstance(seq, bool) or not isinstance(seq, (int, np.integer)) or seq < 0:
            raise ConfigError(f"seq must be a non-negative int, got {seq!r}")
        ppc = self.config.packets_per_chunk
        first = self.next_chunk * ppc
        delta = (int(seq) - first) % 0x10000
        if delta >= 0x8000:  # behind the decoding point: already decided
            return
        chunk, layer = divmod(first + delta, ppc)
        slot = self._slots.setdefault(chunk, _Slot())
        slot.given_up.add(layer)
        slot.payloads.pop(layer, None)

    # --------------------------------------------------------------------- output
    def pull(self, n_samples: int) -> np.ndarray:
        """Returns the next ``n_samples`` of audio, decoding (or concealing) chunks as needed.

        The output is the codec's streaming output: delayed by ``codec.lookahead_samples``.
        """
        if n_samples < 0:
            raise ConfigError(f"n_samples must be >= 0, got {n_samples}")
        while len(self._out) < n_samples:
            self._decode_next()
        out, self._out = self._out[:n_samples], self._out[n_samples:]
        return out

    def flush(self) -> np.ndarray:
        """Everything buffered plus the codec's overlap-add tail."""
        tail = self.codec.decode_flush(self._dec_state)[0, 0].numpy()
        out = np.concatenate([self._out, tail]).astype(np.float32)
        self._out = np.zeros(0, dtype=np.float32)
        return out

    def decode_until(self, chunk: int) -> None:
        """Decodes (or conceals) every chunk before ``chunk``."""
        while self.next_chunk < chunk:
            self._decode_next()

    # --------------------------------------------------------------------- internals
    def _try_base(self, c: int) -> tuple[np.ndarray | None, str]:
        slot = self._slots.get(c)
        if slot is None:
            return None, "concealed"
        for payload, how in ((slot.payloads.get(0), "received"), (slot.fec_base, "fec")):
            if payload is not None:
                try:
                    base = self.coder.decode_base(payload)
                except BitstreamError:
                    base = None
                if base is not None and base.max(initial=0) < self._vocab:
                    return base, how
                self.stats.packets_corrupt += 1
        return None, "concealed"

    def _conceal(self, c: int) -> tuple[np.ndarray, np.ndarray | None]:
        cfg = self.config
        k_max = self.model.max_codebooks
        cf = cfg.chunk_frames
        future = []
        nc = c + 1
        while True:  # later chunks whose base already arrived: interpolate, don't extrapolate
            base, _ = self._try_base(nc)
            if base is None or len(future) >= 4:
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

    def _decode_next(self) -> None:
        cfg = self.config
        c = self.next_chunk
        base, how = self._try_base(c)
        slot = self._slots.pop(c, _Slot())
        if cfg.layered:
            n_fine_arrived = sum(1 for layer in slot.payloads if layer > 0)
        else:  # the fine part rides in the chunk's own packet (not in FEC copies)
            n_fine_arrived = int(how == "received" and cfg.layout.n_layers > 1)
        latents = None  # soft concealment: decode expected latents instead of tokens
        if base is None:
            self.stats.chunks_concealed += 1
            if cfg.conceal == "repeat" and self._last_full is not None:
                tokens = np.repeat(self._last_full[:, -1:], cfg.chunk_frames, axis=1)
            else:
                tokens, probs = self._conceal(c)
                if probs is not None:
                    latents = torch.from_numpy(soft_latents(probs, self._codebooks))[None]
            base = tokens[:3]
            self.stats.fine_packets_undecodable += n_fine_arrived
        else:
            self.stats.chunks_from_fec += how == "fec"
            tokens = base
            if n_fine_arrived:
                if self.model.uses_memory and any(self._tainted):
                    self.stats.fine_packets_undecodable += n_fine_arrived
                else:
                    if cfg.layered:
                        payloads = [slot.payloads.get(layer)
                                    for layer in range(1, cfg.layout.n_layers)]
                        res = self.coder.decode_fine(self._memory, base, payloads)
                        n_ok = sum(1 for _, hi in cfg.layout.layers[1:] if hi <= res.n_levels)
                    else:
                        res = self.coder.decode_chunk_fine(self._memory, base, slot.payloads[0])
                        n_ok = int(res.n_levels > base.shape[0])
                    tokens = res.tokens
                    n_failed = len(res.failed_layers)
                    self.stats.fine_packets_decoded += n_ok
                    self.stats.fine_packets_failed_check += n_failed
                    self.stats.fine_packets_undecodable += n_fine_arrived - n_ok - n_failed
        concealed = how == "concealed"
        self._memory = self.model.commit(self._memory, base)
        self._tainted.append(concealed)
        k_max = self.model.max_codebooks
        padded = np.pad(base, ((0, k_max - base.shape[0]), (0, 0)))
        keep = max(cfg.conceal_context_frames, 1)
        self._past = np.concatenate([self._past, padded], axis=1)[:, -keep:]
        self._last_frame = base[:, -1].copy()
        self._last_full = tokens.copy()
        if latents is not None:
            wav, self._dec_state = self.codec.decode_latent_step(latents, self._dec_state)
        else:
            wav, self._dec_state = self.codec.decode_step(
                torch.from_numpy(tokens)[None], self._dec_state
            )
        self._out = np.concatenate([self._out, wav[0, 0].numpy()])
        self.stats.chunks_decoded += 1
        if self.history is not None:
            self.history.append(ChunkOutcome(c, how, tokens.shape[0], tokens))
        self.next_chunk += 1


# ------------------------------------------------------------------------- whole signals


def load_models(codec_path: str | None = None, lm: str | None = "default"):
    """Loads (codec, coding model) offline.

    Args:
        codec_path: codec weights, a training checkpoint or run dir; None = shipped default.
        lm: "none" for the static-PMF control (uniform PMFs), "default" for the shipped
            SpringLM, or a path to SpringLM weights.

    Raises:
        ConfigError: missing weights. ModelMismatchError: an LM trained on another codec.
    """
    from .entropy.static import StaticModel
    from .models.codec import load_codec

    codec = load_codec(codec_path)
    if lm in (None, "none"):
        return codec, StaticModel()
    from .models.lm_adapter import load_coding_model

    return codec, load_coding_model(None if lm == "default" else lm, codec)


def codec_id(codec) -> str:
    """The codec's content hash (sha256 of its fp16 inference weights and config), the
    value its shipped weights file records; stream headers and LM checks use it."""
    from .models.codec import codec_content_hash

    return codec_content_hash(codec)


def stream_header(codec, model: CodingModel, cfg: TransceiverConfig, n_samples: int) -> dict:
    """The .spring JSON header: everything a decoder needs to reproduce the PMFs."""
    return {
        "format": "soundspring",
        "codec_id": codec_id(codec),
        "model_id": model.model_id,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "n_samples": int(n_samples),
        "bitrate_kbps": cfg.bitrate_kbps,
        "chunk_frames": cfg.chunk_frames,
        "context_frames": cfg.context_frames,
        "progressive": cfg.progressive,
        "check_bits": cfg.check_bits,
        "precision_bits": cfg.precision_bits,
        "fec": cfg.fec,
        "layered": cfg.layered,
    }


def config_from_header(header: dict, conceal: str = "lm") -> TransceiverConfig:
    """The TransceiverConfig recorded in a .spring header (concealment is the reader's choice)."""
    try:
        return TransceiverConfig(
            bitrate_kbps=float(header["bitrate_kbps"]),
            chunk_frames=int(header["chunk_frames"]),
            context_frames=int(header["context_frames"]),
            progressive=bool(header["progressive"]),
            check_bits=int(header["check_bits"]),
            precision_bits=int(header["precision_bits"]),
            fec=bool(header["fec"]),
            layered=bool(header.get("layered", True)),  # streams before the flag were layered
            conceal=conceal,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BitstreamError(
            f"the .spring header lacks a valid transceiver setting: {exc}"
        ) from exc


def transmit(
    codec, model: CodingModel, pcm: np.ndarray, cfg: TransceiverConfig, progress: bool = False
) -> tuple[list[SentPacket], Transmitter]:
    """Encodes a whole signal float32 [T] into packets (chunk by chunk, as a stream)."""
    from tqdm import tqdm

    pcm = _check_pcm(pcm)
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


def receive(
    codec,
    model: CodingModel,
    cfg: TransceiverConfig,
    packets,
    n_chunks: int,
    n_samples: int,
    progress: bool = False,
) -> tuple[np.ndarray, Receiver]:
    """Decodes received packets (an iterable of SentPacket-like objects with seq, chunk and
    data) into float32 [n_samples] audio aligned with the transmitter's input.

    Chunks whose base never arrived are concealed. The codec's lookahead delay is removed.
    """
    from tqdm import tqdm

    rx = Receiver(codec, model, cfg, keep_history=False)
    by_chunk: dict[int, list] = {}
    for p in packets:
        by_chunk.setdefault(p.chunk, []).append(p)
    for c in tqdm(range(n_chunks), desc="receive", unit="chunk", disable=not progress):
        # Deliver chunk c and the next one before decoding c: concealment may then
        # interpolate from the following chunk's base (a 1-chunk jitter buffer).
        for cc in (c, c + 1) if c == 0 else (c + 1,):
            for p in by_chunk.pop(cc, []):
                rx.push(p.data, p.seq, p.chunk)
        rx.decode_until(c + 1)
    out = np.concatenate([rx.pull(n_chunks * cfg.chunk_samples), rx.flush()])
    lookahead = codec.lookahead_samples
    out = out[lookahead : lookahead + n_samples]
    return np.pad(out, (0, n_samples - len(out))).astype(np.float32), rx
