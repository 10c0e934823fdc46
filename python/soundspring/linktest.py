"""The synthetic link behind ``soundspring linktest``: tokens through the real transceiver
(``TokenTransmitter`` -> packets -> a lossy, jittery channel -> the clocked
``TokenReceiver`` on the C++ jitter buffer) and through a ``.spring`` container, with no
neural model.

What it measures is what users run, minus the codec and the LM: the chunk coder (layered
packets, one base packet and one per fine group, integrity checks), the jitter buffer
(reordering, late = lost, the playout deadline), the decodability rule (a fine packet needs
every base in its entropy-context reach) and concealment (``repeat``). The coding model is
``SyntheticCodingModel``: static PMFs for the base levels, fine PMFs peaked around a token
derived from the chunk's base and the memory (so a lost base really makes the next fine
packets undecodable). Tokens are drawn from that model's own PMFs, so the bitrate is what a
model that predicts its tokens well would spend.
"""

from __future__ import annotations

import io
from collections import Counter, deque
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from . import coding
from .config import (
    BASE_CODEBOOKS,
    CODEBOOK_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CODER_PRECISION_BITS,
    FRAME_MS,
    MAX_CODEBOOKS,
    MAX_CONTEXT_FRAMES,
    TransceiverConfig,
    codebooks_for_bitrate,
)
from .errors import ConfigError
from .transceiver import TokenReceiver, TokenTransmitter
from .transport import LossSpec, make_loss_model, read_container, write_container

_UNIFORM_BITS = 16  # resolution of the uniform draws that pick each token


class SyntheticCodingModel:
    """A deterministic ``entropy.CodingModel`` with no weights (numpy only).

    Base levels: fixed random unigram logits per level. Fine level l of frame f: the
    level's unigram logits (scaled by 0.3) minus the circular distance from a centre token,
    divided by a width that grows with the level (higher levels are less predictable, as in
    a real RVQ). The centre is the frame's level-0 token plus the last level-0 token of each
    chunk in the memory (mod V), so fine PMFs depend on the base and on the memory. It
    cannot conceal (``can_conceal`` False: use ``repeat`` or ``zero``).

    Args:
        seed: the unigram profiles' seed.
    """

    model_id = "linktest-synthetic-v1"
    max_codebooks = MAX_CODEBOOKS
    max_context_frames = MAX_CONTEXT_FRAMES
    uses_memory = True
    can_conceal = False

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._unigram = (rng.normal(size=(MAX_CODEBOOKS, CODEBOOK_SIZE)) * 1.5).astype(np.float32)
        self._width = np.geomspace(3.0, 200.0, MAX_CODEBOOKS).astype(np.float32)
        self._v = np.arange(CODEBOOK_SIZE, dtype=np.int64)

    def base_logits(self) -> np.ndarray:
        """float32 [K_max, V]: the unigram logits."""
        return self._unigram

    def new_state(self, context_frames: int, chunk_frames: int) -> deque:
        """The memory: the base tokens int64 [3, C] of the chunks within the reach."""
        return deque(maxlen=context_frames // chunk_frames)

    def commit(self, state: deque, base: np.ndarray) -> deque:
        """A new memory with ``base`` int [3, C] appended (the old one is unchanged)."""
        new = deque(state, maxlen=state.maxlen)
        new.append(np.array(base[:BASE_CODEBOOKS], dtype=np.int64))
        return new

    def fine_logits(self, state: deque, view: np.ndarray, levels: tuple[int, int]) -> np.ndarray:
        """float32 [hi - lo, C, V] logits of levels [lo, hi) for ``view`` int [K, C]."""
        lo, hi = levels
        memory = sum(int(b[0, -1]) for b in state)
        centre = (np.asarray(view[0], dtype=np.int64) + memory) % CODEBOOK_SIZE  # [C]
        d = np.abs(self._v[None, :] - centre[:, None])  # [C, V]
        d = np.minimum(d, CODEBOOK_SIZE - d).astype(np.float32)
        out = 0.3 * self._unigram[lo:hi, None, :] - d[None] / self._width[lo:hi, None, None]
        return np.ascontiguousarray(out, dtype=np.float32)

    def conceal_logits(self, window: np.ndarray) -> np.ndarray:
        raise ConfigError("the synthetic link model cannot conceal: use conceal='repeat'")


def _draw(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Tokens int64 [N] with CDF(token) <= u < CDF(token + 1) under each row of logits
    float32 [N, V] (u: int [N] uniform in [0, 2^16))."""
    cdfs = coding.cdf_from_logits(np.ascontiguousarray(logits, dtype=np.float32), _UNIFORM_BITS)
    return np.array([np.searchsorted(c, x, side="right") - 1 for c, x in zip(cdfs, u)],
                    dtype=np.int64)


def sample_tokens(model: SyntheticCodingModel, cfg: TransceiverConfig, n_chunks: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Chunks of tokens int64 [K, C] drawn from ``model``'s own PMFs, chunk by chunk (the
    fine levels given the chunk's base and the memory of the chunks before): one
    ``rng.integers`` call of K draws per frame."""
    k, c = cfg.layout.n_codebooks, cfg.chunk_frames
    memory = model.new_state(cfg.context_frames, c)
    base_logits = model.base_logits()[:BASE_CODEBOOKS]
    out = []
    for _ in range(n_chunks):
        u = np.stack([rng.integers(0, 1 << _UNIFORM_BITS, k) for _ in range(c)], axis=1)  # [K, C]
        tokens = np.zeros((k, c), dtype=np.int64)
        for f in range(c):
            tokens[:BASE_CODEBOOKS, f] = _draw(base_logits, u[:BASE_CODEBOOKS, f])
        if k > BASE_CODEBOOKS:
            logits = model.fine_logits(memory, tokens, (BASE_CODEBOOKS, k))  # [K - 3, C, V]
            for f in range(c):
                tokens[BASE_CODEBOOKS:, f] = _draw(logits[:, f], u[BASE_CODEBOOKS:, f])
        memory = model.commit(memory, tokens[:BASE_CODEBOOKS])
        out.append(tokens)
    return out


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
            raise ConfigError(f"the synthetic link codes chunks of {DEFAULT_CHUNK_FRAMES} frames")
        if not 0 < self.seconds <= 3600:
            raise ConfigError(f"seconds must be in (0, 3600], got {self.seconds}")
        if self.channel not in ("bernoulli", "gilbert", "wlan", "none"):
            raise ConfigError(f"channel must be bernoulli|gilbert|wlan|none, got {self.channel!r}")
        if self.jitter_ms < 0 or self.playout_delay_ms < 0:
            raise ConfigError("jitter_ms and playout_delay_ms must be >= 0")

    def transceiver(self) -> TransceiverConfig:
        """The transceiver settings of the link: layered packets (one per layer), repeat
        concealment, the operating point's bitrate."""
        return TransceiverConfig(bitrate_kbps=self.bitrate_kbps, chunk_frames=self.chunk_frames,
                                 precision_bits=self.precision_bits, layered=True,
                                 conceal="repeat")


def run_linktest(cfg: LinktestConfig, progress: bool = False) -> dict:
    """Runs the synthetic link end to end and returns the report as a dict.

    Report: the bitrate of the packets against the raw tokens; packets sent, lost by the
    channel, decoded (``layers_decoded``: packets whose layer was decoded and verified)
    and the rest (``packets_late_or_dropped``: late at the jitter buffer, or undecodable
    because their base or entropy context was lost); chunk outcomes by status; whether
    every token decoded from received data equals the sent one
    (``decoded_tokens_exact``) and whether the container gave every packet back.
    """
    rng = np.random.default_rng(cfg.seed)
    tcfg = cfg.transceiver()
    k = codebooks_for_bitrate(cfg.bitrate_kbps)
    n_layers = tcfg.layout.n_layers
    model = SyntheticCodingModel(seed=cfg.seed)
    n_chunks = max(1, round(cfg.seconds * 1000 / FRAME_MS / cfg.chunk_frames))
    chunk_ms = cfg.chunk_frames * FRAME_MS
    tokens = sample_tokens(model, tcfg, n_chunks, rng)

    tx = TokenTransmitter(model, tcfg)  # one packet per layer per chunk
    sent = []  # SentPacket, send time = chunk * chunk_ms
    for block in tqdm(tokens, desc="encode", disable=not progress, unit="chunk"):
        sent += tx.send_tokens(block)

    # Channel: losses per packet in send order, random network delay for the rest.
    if cfg.channel == "none":
        lost = np.zeros(len(sent), dtype=bool)
    else:
        channel = make_loss_model(LossSpec(cfg.channel, cfg.loss, cfg.burst), cfg.seed)
        lost = channel.losses(len(sent))
    arrival = (
        np.array([p.chunk * chunk_ms for p in sent], dtype=np.float64)
        + 5.0
        + rng.exponential(cfg.jitter_ms + 1e-9, len(sent))
    )
    order = np.argsort(arrival, kind="stable")

    # Receiver: the clocked TokenReceiver; due chunks are played before each arrival.
    rx = TokenReceiver(model, tcfg, keep_history=True, history_chunks=None,
                       playout_delay_ms=cfg.playout_delay_ms)
    played = []
    for i in tqdm(order, desc="receive", disable=not progress, unit="packet"):
        if lost[i]:
            continue
        played += rx.play_tokens(float(arrival[i]))
        p = sent[i]
        rx.push(p.data, p.seq, p.chunk, arrival_ms=float(arrival[i]))
    played += rx.end_of_stream_tokens()

    exact = True
    layers_ok = 0
    bounds = [hi for _, hi in tcfg.layout.layers]
    for d in played:
        o = d.outcome
        if o.n_levels:  # decoded from packets: a prefix of what was sent, exactly
            exact &= bool(np.array_equal(o.tokens[: o.n_levels], tokens[o.chunk][: o.n_levels]))
            layers_ok += sum(hi <= o.n_levels for hi in bounds)

    # The same packets through a .spring container and back.
    buf = io.BytesIO()
    write_container(
        buf,
        {"model_id": model.model_id, "bitrate_kbps": cfg.bitrate_kbps},
        [(p.seq, p.chunk, p.data) for p in sent],
    )
    contents = read_container(buf.getvalue())
    container_ok = [r.packet for r in contents.records] == [p.data for p in sent]

    duration_s = n_chunks * chunk_ms / 1000
    packet_bytes = sum(len(p.data) for p in sent)
    raw_bps = k * 10 * 1000 / FRAME_MS
    stats = rx.stats
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
        "packets_late": stats.packets_late,
        "packets_late_or_dropped": int(len(sent) - lost.sum() - layers_ok),
        "fine_packets_undecodable": stats.fine_packets_undecodable,
        "layers_decoded": layers_ok,
        "chunks_played": len(played),
        "chunks_concealed": stats.chunks_concealed,
        "chunk_status": dict(Counter(d.outcome.status for d in played)),
        "decoded_tokens_exact": exact,
        "container_round_trip_ok": container_ok,
        "container_bytes": len(buf.getvalue()),
    }


__all__ = ["LinktestConfig", "SyntheticCodingModel", "run_linktest", "sample_tokens"]
