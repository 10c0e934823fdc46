"""Transmitter + receiver real-time factor at 6 kbps on one CPU thread, with the codec.

Models are the shipped-size codec and SpringLM (random weights: timing does not depend
on training), at the default transceiver settings; SpringLM on the C++ engine (the
transceiver's default, ``springlm``) and on the PyTorch reference (``springlm-torch``). One round = 2 s of audio through ``transmit`` and ``receive`` without loss;
``extra_info['rtf']`` is seconds of compute per second of audio. The no-LM control
(static PMFs) runs beside it so the LM's share is visible as a ratio, and the
rate-distortion token choice (``rd``: ``TransceiverConfig.rd_lambda``) beside the nearest
codewords (``nearest``) so its transmitter cost is too.

``test_live_rtf_shipped`` times the live path on the shipped models (``load_models()``: the
C++ codec and SpringLM engines, the default ``TransceiverConfig`` at 6 and 12 kbps): 10 s
of speech-like audio pushed one 40 ms chunk at a time through the public
``Transmitter.push``, each packet into ``Receiver.push``, the chunk decoded
(``decode_until``) and its audio pulled; ``extra_info['rtf']`` is the median over rounds.
Run it alone with ``python benchmarks/bench_transceiver.py [rounds]``, which prints the
real-time factor per bitrate (median and best of the rounds).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import torch
from soundspring.entropy.static import StaticModel
from soundspring.errors import ConfigError
from soundspring.models.codec import Codec
from soundspring.models.lm_adapter import SpringLMCodingModel
from soundspring.models.lm_engine import SpringLMEngine
from soundspring.models.masked_lm import SpringLM, springlm_default
from soundspring.models.weights_io import load_models
from soundspring.transceiver import (
    Receiver,
    TransceiverConfig,
    Transmitter,
    receive,
    settle_heap,
    transmit,
)

SECONDS = 2.0
RD_LAMBDA = 0.5  # any positive weight costs the same search


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    lm = SpringLM(springlm_default()).eval()
    return Codec().eval(), {"springlm": SpringLMEngine.from_model(lm),
                            "springlm-torch": SpringLMCodingModel(lm), "static": StaticModel()}


@pytest.mark.parametrize("lm", ["springlm", "springlm-torch", "static"])
@pytest.mark.parametrize("progressive", [False, True], ids=["oneshot", "progressive"])
@pytest.mark.parametrize("rd_lambda", [0.0, RD_LAMBDA], ids=["nearest", "rd"])
def test_transceiver_rtf_6kbps(benchmark, models, lm, progressive, rd_lambda):
    torch.set_num_threads(1)
    codec, coding_models = models
    model = coding_models[lm]
    cfg = TransceiverConfig(bitrate_kbps=6, progressive=progressive, rd_lambda=rd_lambda,
                            conceal="repeat" if lm == "static" else "lm")
    pcm = (np.random.default_rng(0).normal(size=int(SECONDS * 16000)) * 0.1).astype(np.float32)

    def round_trip():
        t0 = time.perf_counter()
        packets, tx = transmit(codec, model, pcm, cfg)
        receive(codec, model, cfg, packets, tx.chunks_sent, len(pcm))
        return time.perf_counter() - t0

    elapsed = benchmark.pedantic(round_trip, rounds=2, iterations=1)
    benchmark.extra_info["rtf"] = (elapsed or 0.0) / SECONDS


LIVE_SECONDS = 10.0
LIVE_BITRATES = (6, 12)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """float32 audio at 16 kHz with a voice's shape: a harmonic tone whose pitch glides
    around 100-220 Hz, syllable-rate amplitude modulation, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * x * env + 0.005 * rng.normal(size=t.shape)).astype(np.float32)


def live_round_trip(codec, model, bitrate_kbps: float, pcm: np.ndarray) -> float:
    """Seconds of compute per second of audio of the public live path, chunk by chunk."""
    cfg = TransceiverConfig(bitrate_kbps=bitrate_kbps)
    tx, rx = Transmitter(codec, model, cfg), Receiver(codec, model, cfg)
    n = cfg.chunk_samples
    t0 = time.perf_counter()
    for start in range(0, len(pcm) - n + 1, n):
        for p in tx.push(pcm[start:start + n]):
            rx.push(p.data, p.seq, p.chunk)
            rx.decode_until(p.chunk + 1)
        rx.pull(rx.buffered_samples)
    return (time.perf_counter() - t0) / (len(pcm) / 16000)


@pytest.fixture(scope="module")
def shipped():
    try:
        return load_models()
    except ConfigError as exc:  # an install without the shipped weights
        pytest.skip(str(exc))


@pytest.mark.parametrize("bitrate_kbps", LIVE_BITRATES)
def test_live_rtf_shipped(benchmark, shipped, bitrate_kbps):
    torch.set_num_threads(1)
    codec, model = shipped
    pcm = speechlike(LIVE_SECONDS)
    live_round_trip(codec, model, bitrate_kbps, pcm[:16000])  # warm caches and allocations
    rtfs = []

    def once():
        rtfs.append(live_round_trip(codec, model, bitrate_kbps, pcm))

    benchmark.pedantic(once, rounds=3, iterations=1)
    benchmark.extra_info["rtf"] = float(np.median(rtfs))


def main(argv: list[str]) -> int:
    """Prints the shipped models' live real-time factor per bitrate (``rounds`` each,
    alternating bitrates so that background load hits both alike)."""
    rounds = int(argv[0]) if argv else 5
    torch.set_num_threads(1)
    codec, model = load_models()
    settle_heap()
    pcm = speechlike(LIVE_SECONDS)
    live_round_trip(codec, model, LIVE_BITRATES[0], pcm[:16000])
    rtfs: dict[float, list[float]] = {b: [] for b in LIVE_BITRATES}
    for _ in range(rounds):
        for b in LIVE_BITRATES:
            rtfs[b].append(live_round_trip(codec, model, b, pcm))
    for b, got in rtfs.items():
        print(f"{b:g} kbps: rtf median {np.median(got):.4f} best {min(got):.4f} "
              f"({rounds} rounds of {LIVE_SECONDS:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
