"""The synthetic link behind ``soundspring linktest``: synthetic tokens through the coder,
packets, a lossy channel, the jitter buffer and the container, and back (no models).

It tests the transport stack apart from the neural models: per level k a Markov chain over V = 1024 tokens whose conditional logits both ends can compute
(``SyntheticTokenModel``). The first frame of every chunk is coded with the level's
marginal, later frames with the chain conditioned on the previous frame of the same chunk,
so no packet's PMFs depend on another packet. Layers follow the operating point
(``config.LAYER_BOUNDS``): one base packet and one packet per fine group per chunk.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from . import coding
from .config import (
    CODEBOOK_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CODER_PRECISION_BITS,
    FRAME_MS,
    LAYER_BOUNDS,
    codebooks_for_bitrate,
    layers_for_codebooks,
)
from .errors import ConfigError
from .transport import (
    JitterBuffer,
    LossSpec,
    Packet,
    make_loss_model,
    parse_packet,
    read_container,
    write_container,
)


class SyntheticTokenModel:
    """A shared, deterministic token model: logits [K, V] of a frame given the previous one.

    Level k's marginal logits are a fixed random profile; its conditional logits add a
    peak around the previous token whose width grows with k (higher levels are less
    predictable, as in a real RVQ).
    """

    def __init__(self, n_codebooks: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.k = n_codebooks
        self.marginal = (rng.normal(size=(n_codebooks, CODEBOOK_SIZE)) * 1.5).astype(np.float32)
        self.width = np.geomspace(3.0, 200.0, n_codebooks).astype(np.float32)
        self._v = np.arange(CODEBOOK_SIZE, dtype=np.float32)

    def logits(self, levels: slice, prev: np.ndarray | None) -> np.ndarray:
        """float32 [len(levels), V] logits of one frame's tokens at ``levels``."""
        m = self.marginal[levels]
        if prev is None:
            return np.ascontiguousarray(m)
        d = np.abs(self._v[None, :] - prev[:, None].astype(np.float32))
        d = np.minimum(d, CODEBOOK_SIZE - d)
        return np.ascontiguousarray(0.3 * m - d / self.width[levels, None], dtype=np.float32)

    def sample(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """int32 [K, F] tokens drawn from the model (frame 0 of each pair from the marginal)."""
        tokens = np.zeros((self.k, n_frames), dtype=np.int32)
        for f in range(n_frames):
            prev = tokens[:, f - 1] if f % DEFAULT_CHUNK_FRAMES else None
            cdfs = coding.cdf_from_logits(self.logits(slice(0, self.k), prev), 16)
            u = rng.integers(0, 1 << 16, self.k)
            tokens[:, f] = [np.searchsorted(c, x, side="right") - 1 for c, x in zip(cdfs, u)]
        return tokens


def encode_layer(
    model: SyntheticTokenModel, tokens: np.ndarray, levels: slice, precision_bits: int
) -> bytes:
    """Range-codes tokens [K, C] of one chunk at ``levels`` into one payload."""
    enc = coding.Encoder(precision_bits)
    prev = None
    for f in range(tokens.shape[1]):
        cur = np.ascontiguousarray(tokens[levels, f])
        enc.encode_logits(cur, model.logits(levels, prev))
        prev = cur
    return enc.finish()


def decode_layer(
    model: SyntheticTokenModel, payload: bytes, levels: slice, n_frames: int, precision_bits: int
) -> np.ndarray:
    """Inverse of :func:`encode_layer`: int32 [len(levels), n_frames]."""
    dec = coding.Decoder(payload, precision_bits)
    out = []
    prev = None
    for _ in range(n_frames):
        prev = dec.decode_logits(model.logits(levels, prev))
        out.append(prev)
    return np.stack(out, axis=1)


@dataclass(frozen=True)
class LinktestConfig:
    """The synthetic link's settings (``soundspring linktest``'s options)."""

    bitrate_kbps: float = 6.0
    seconds: float = 10.0
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    channel: str = "gilbert"
    loss: float = 0.1
    burst: float = 2.0
    jitter_ms: float = 10.0
    playout_delay_ms: float = 60.0
    precision_bits: int = DEFAULT_CODER_PRECISION_BITS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.chunk_frames != DEFAULT_CHUNK_FRAMES:
            raise ConfigError(f"the synthetic model codes chunks of {DEFAULT_CHUNK_FRAMES} frames")
        if not 0 < self.seconds <= 3600:
            raise ConfigError(f"seconds must be in (0, 3600], got {self.seconds}")
        if self.channel not in ("bernoulli", "gilbert", "wlan", "none"):
            raise ConfigError(f"channel must be bernoulli|gilbert|wlan|none, got {self.channel!r}")
        if self.jitter_ms < 0 or self.playout_delay_ms < 0:
            raise ConfigError("jitter_ms and playout_delay_ms must be >= 0")


def run_linktest(cfg: LinktestConfig, progress: bool = False) -> dict:
    """Runs the synthetic link end to end and returns the report as a dict."""
    rng = np.random.default_rng(cfg.seed)
    k = codebooks_for_bitrate(cfg.bitrate_kbps)
    n_layers = layers_for_codebooks(k)
    layer_slices = [slice(LAYER_BOUNDS[i], min(LAYER_BOUNDS[i + 1], k)) for i in range(n_layers)]
    model = SyntheticTokenModel(k, seed=cfg.seed)
    n_chunks = max(1, round(cfg.seconds * 1000 / FRAME_MS / cfg.chunk_frames))
    tokens = model.sample(n_chunks * cfg.chunk_frames, rng)
    chunk_ms = cfg.chunk_frames * FRAME_MS

    # Transmitter: one packet per layer per chunk.
    sent = []  # (seq, chunk, send_ms, bytes)
    for c in tqdm(range(n_chunks), desc="encode", disable=not progress, unit="chunk"):
        block = tokens[:, c * cfg.chunk_frames : (c + 1) * cfg.chunk_frames]
        for layer, levels in enumerate(layer_slices):
            payload = encode_layer(model, block, levels, cfg.precision_bits)
            sent.append((len(sent) & 0xFFFF, c, c * chunk_ms, Packet(layer, payload).to_bytes()))

    # Channel: losses per packet in send order, random network delay for the rest.
    if cfg.channel == "none":
        lost = np.zeros(len(sent), dtype=bool)
    else:
        channel = make_loss_model(LossSpec(cfg.channel, cfg.loss, cfg.burst), cfg.seed)
        lost = channel.losses(len(sent))
    arrival = (
        np.array([t for _, _, t, _ in sent])
        + 5.0
        + rng.exponential(cfg.jitter_ms + 1e-9, len(sent))
    )
    order = np.argsort(arrival, kind="stable")

    # Receiver: jitter buffer, then range decoding of every layer that arrived in time.
    jb = JitterBuffer(
        num_layers=n_layers,
        chunk_ms=chunk_ms,
        playout_delay_ms=cfg.playout_delay_ms,
        anchor_chunk=0,
        anchor_time_ms=0.0,
    )
    played = []
    for i in order:
        if lost[i]:
            continue
        played += jb.pop(float(arrival[i]))
        seq, chunk, _, pkt = sent[i]
        jb.push(seq, chunk, float(arrival[i]), pkt)
    played += jb.flush()
    exact = True
    layers_ok = 0
    for pc in tqdm(played, desc="decode", disable=not progress, unit="chunk"):
        block = tokens[:, pc.chunk * cfg.chunk_frames : (pc.chunk + 1) * cfg.chunk_frames]
        for layer, levels in enumerate(layer_slices):
            if pc.received[layer]:
                payload = parse_packet(Packet(layer, pc.payloads[layer]).to_bytes()).payload
                got = decode_layer(model, payload, levels, cfg.chunk_frames, cfg.precision_bits)
                exact &= bool(np.array_equal(got, block[levels]))
                layers_ok += 1

    # The same packets through a .spring container and back.
    buf = io.BytesIO()
    write_container(
        buf,
        {"model_id": "synthetic-demo", "bitrate_kbps": cfg.bitrate_kbps},
        [(s, c, p) for s, c, _, p in sent],
    )
    contents = read_container(buf.getvalue())
    container_ok = [r.packet for r in contents.records] == [p for *_, p in sent]

    duration_s = n_chunks * chunk_ms / 1000
    packet_bytes = sum(len(p) for *_, p in sent)
    raw_bps = k * 10 * 1000 / FRAME_MS
    return {
        "config": asdict(cfg),
        "codebooks": k,
        "layers": n_layers,
        "chunks": n_chunks,
        "raw_bitrate_bps": raw_bps,
        "bitrate_bps": packet_bytes * 8 / duration_s,
        "saving_vs_raw": 1 - packet_bytes * 8 / duration_s / raw_bps,
        "packets_sent": len(sent),
        "packets_lost": int(lost.sum()),
        "packets_late_or_dropped": int(len(sent) - lost.sum() - layers_ok),
        "layers_decoded": layers_ok,
        "chunks_played": len(played),
        "decoded_tokens_exact": exact,
        "container_round_trip_ok": container_ok,
        "container_bytes": len(buf.getvalue()),
    }


__all__ = ["LinktestConfig", "SyntheticTokenModel", "decode_layer", "encode_layer", "run_linktest"]
