"""The sending end: codec encoder -> (rate-distortion) token choice -> entropy coder ->
packets, one chunk at a time (stream rules: ``soundspring.transceiver``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..audio import check_pcm
from ..config import BASE_CODEBOOKS, SAMPLE_RATE_HZ, TransceiverConfig
from ..entropy import ChunkCache, CodingModel
from ..models.rd import RateDistortionQuantizer
from ..transport import FecCopy, Packet
from ._endpoint import DEFAULT_HISTORY_CHUNKS, _Endpoint, history_deque


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


class TokenTransmitter(_Endpoint):
    """Entropy coder + packetiser over tokens, one chunk at a time (no codec): what
    ``Transmitter`` runs after its codec, and a source of real packets for tests.

    Args:
        model: the coding model. config: the stream's settings (default
            ``TransceiverConfig()``).
        history_chunks: how many chunks' tokens ``sent_tokens`` keeps (the latest); None
            keeps all (a whole file or evaluation clip).

    Example:
        ttx = TokenTransmitter(model, TransceiverConfig(bitrate_kbps=6))
        packets = ttx.send_tokens(tokens_int64_K_by_C)

    Attributes:
        sent_tokens: int64 [K, C] per chunk sent, oldest first (the latest
            ``history_chunks``), for statistics and tests.
    """

    def __init__(self, model: CodingModel, config: TransceiverConfig | None = None,
                 history_chunks: int | None = DEFAULT_HISTORY_CHUNKS) -> None:
        _Endpoint.__init__(self, model, config)
        self.sent_tokens: deque[np.ndarray] = history_deque(history_chunks)
        self._prev_base: bytes | None = None
        self.chunks_sent = 0

    def send_tokens(self, tokens: np.ndarray,
                    cache: ChunkCache | None = None) -> list[SentPacket]:
        """The packets of the next chunk's tokens int [K, C] (``cache``: the model calls
        made for this chunk against the current memory, e.g. by ``ChunkCoder.rate_bits``
        during the token choice, or None)."""
        cfg = self.config
        cache = ChunkCache() if cache is None else cache
        base = self.coder.encode_base(tokens) if cfg.layered or cfg.fec else b""
        if cfg.layered:
            payloads = [base] + self.coder.encode_fine(self._memory, tokens, cache)
        else:
            payloads = [self.coder.encode_chunk(self._memory, tokens, cache)]
        return self._send_payloads(np.asarray(tokens, dtype=np.int64), base, payloads)

    def _send_payloads(self, tokens: np.ndarray, base: bytes,
                       payloads: list[bytes]) -> list[SentPacket]:
        """The packets of one chunk coded as ``payloads`` (one per packet of the chunk; the
        first carries the FEC copy of the previous chunk's base payload), then the chunk's
        tokens int64 [K, C] committed and ``base`` (its base payload, or b"" without FEC)
        kept for the next chunk's FEC copy."""
        cfg = self.config
        fec = FecCopy(1, self._prev_base) if cfg.fec and self._prev_base else None
        packets = [Packet(0, payloads[0], fec)] + [Packet(i, p) for i, p in
                                                     enumerate(payloads[1:], start=1)]
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

    def __init__(self, codec, model: CodingModel, config: TransceiverConfig | None = None,
                 history_chunks: int | None = DEFAULT_HISTORY_CHUNKS) -> None:
        TokenTransmitter.__init__(self, model, config, history_chunks)
        self.codec = codec
        self._enc_state = codec.init_encoder_state(1)
        self._rd: RateDistortionQuantizer | None = None  # made on the first rd chunk
        self._pending = np.zeros(0, dtype=np.float32)
        # Pack the codebooks for the C++ token search now (60-140 ms once per process),
        # not on the stream's first chunk, where it would be a spike on the audio path.
        warm = getattr(getattr(codec, "quantizer", None), "native_search", None)
        native = warm() if callable(warm) else None
        # The chunk's token choice and payload in one C++ call (``ChunkCoder.rd_encoder``)
        # where that is what the Python path would run: the engine's PMFs, the C++ search,
        # one combined payload.
        self._fused = (self.coder.rd_encoder(codec.quantizer.codebooks.detach().numpy())
                       if native is not None and not self.config.layered else None)

    @property
    def chunk_encoder(self) -> Any:
        """The C++ encoder that chooses and codes each chunk's tokens in one call
        (``_core.lm.ChunkEncoder``: its ``profiling`` switch, ``search_cpu_seconds`` and
        ``chunk_cpu_seconds`` split a profile), or None where the chunk runs through Python."""
        return self._fused

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

    def _rd_tokens(self, z: torch.Tensor, cache: ChunkCache) -> np.ndarray:
        """Rate-distortion quantisation of one chunk's latents z [D, C] -> int64 [K, C]
        (``models.rd``), each layer's bit costs from the coder's PMFs given the levels
        below it (``ChunkCoder.rate_bits``; the model calls land in ``cache``)."""
        if self._rd is None:
            self._rd = RateDistortionQuantizer(self.codec.quantizer, self.config.layout.layers)
        return self._rd.quantize(
            z, lambda layer, tokens: self.coder.rate_bits(self._memory, tokens, layer, cache),
            self.config.rd_lambda)

    def _chunk_tokens(self, pcm: np.ndarray, cache: ChunkCache) -> np.ndarray:
        """int64 [K, C] tokens of one chunk of audio."""
        cfg = self.config
        wav = pcm.reshape(1, 1, -1)  # checked float32; both codecs take numpy audio
        if cfg.rd_lambda == 0.0:
            codes, self._enc_state = self.codec.encode_step(wav, self._enc_state, cfg.bitrate_kbps)
            return codes[0].numpy().astype(np.int64)
        z, self._enc_state = self.codec.encode_latent_step(wav, self._enc_state)
        return self._rd_tokens(z[0], cache)

    def _chunk_latents(self, pcm: np.ndarray) -> np.ndarray:
        """float32 [C, D] latents of one chunk of checked audio, frame-major."""
        step = getattr(self.codec, "encode_latent_frames", None)
        if step is not None:  # the codec engine: no torch
            return step(pcm, self._enc_state)
        z, self._enc_state = self.codec.encode_latent_step(pcm.reshape(1, 1, -1), self._enc_state)
        return np.ascontiguousarray(z[0].detach().t().to(torch.float32).numpy())

    def _send_chunk(self, pcm: np.ndarray) -> list[SentPacket]:
        if self._fused is not None:
            tokens, payload = self._fused.encode_chunk(
                self._memory, self._chunk_latents(pcm), self.config.rd_lambda)
            base = self.coder.encode_base(tokens) if self.config.fec else b""
            return self._send_payloads(tokens, base, [payload])
        cache = ChunkCache()  # model calls made while choosing the tokens, reused to code them
        return self.send_tokens(self._chunk_tokens(pcm, cache), cache)
