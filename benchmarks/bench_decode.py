"""Decoding cost per second of audio from 10 s to 1 h: it must stay flat (linear time).

The path is ``soundspring decode``'s: a ``.spring`` container read back, then
``receive_blocks`` (depacketising, range decoding, concealment of the missing records, the
codec decoder), its audio blocks consumed as they come (decode writes them to the WAV).
The tiny codec and the static-PMF model keep the per-chunk model cost small, so any
per-chunk cost that grows with the stream's length (an output buffer rebuilt per chunk,
a history scanned per packet) would dominate; 2 % of the records are missing so that
concealment runs too. ``extra_info['us_per_audio_s']`` is the number to compare across
durations; ``peak_rss_mib`` is the process's peak resident memory after the run (the
container and its packets are held whole; the audio is not).

    python -m pytest benchmarks/bench_decode.py --benchmark-only          # 10 s, 60 s
    python -m pytest benchmarks/bench_decode.py --benchmark-only -m slow  # 10 min, 1 h
"""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
import torch
from soundspring.config import SAMPLE_RATE_HZ, codec_tiny
from soundspring.entropy.static import StaticModel
from soundspring.models.codec import Codec
from soundspring.transceiver import SentPacket, TokenTransmitter, TransceiverConfig, receive_blocks
from soundspring.transport import read_container, write_container

CFG = TransceiverConfig(bitrate_kbps=6, conceal="repeat")
LOSS = 0.02


def _container(seconds: float) -> tuple[bytes, int, int]:
    """A .spring file of ``seconds`` of random tokens, 2 % of its records left out."""
    rng = np.random.default_rng(0)
    n_chunks = int(seconds * SAMPLE_RATE_HZ) // CFG.chunk_samples
    tx = TokenTransmitter(StaticModel(), CFG)
    k, c = CFG.layout.n_codebooks, CFG.chunk_frames
    keep = rng.random(n_chunks) >= LOSS
    records = []
    for i in range(n_chunks):
        for p in tx.send_tokens(rng.integers(0, 1024, size=(k, c))):
            if keep[i]:
                records.append((p.seq, p.chunk, p.data))
    buf = io.BytesIO()
    write_container(buf, {"format": "soundspring"}, records)
    return buf.getvalue(), n_chunks, n_chunks * CFG.chunk_samples


@pytest.mark.parametrize(
    "seconds",
    [10, 60, pytest.param(600, marks=pytest.mark.slow), pytest.param(3600, marks=pytest.mark.slow)],
    ids=lambda s: f"{s}s",
)
def test_decode_time_per_audio_second(benchmark, seconds):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    codec = Codec(codec_tiny()).eval()
    data, n_chunks, n_samples = _container(seconds)

    def decode() -> float:
        t0 = time.perf_counter()
        contents = read_container(data)
        packets = [SentPacket(r.seq, r.chunk, -1, r.packet) for r in contents.records]
        rx, blocks = receive_blocks(codec, StaticModel(), CFG, packets, n_chunks, n_samples)
        assert sum(len(b) for b in blocks) == n_samples and rx.stats.chunks_concealed > 0
        return time.perf_counter() - t0

    elapsed = benchmark.pedantic(decode, rounds=1, iterations=1) or 0.0
    benchmark.extra_info["audio_s"] = seconds
    benchmark.extra_info["us_per_audio_s"] = 1e6 * elapsed / seconds
    benchmark.extra_info["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
