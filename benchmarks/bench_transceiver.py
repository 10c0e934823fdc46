"""Transmitter + receiver real-time factor at 6 kbps on one CPU thread, with the codec.

Models are the shipped-size codec and SpringLM (random weights: timing does not depend
on training), at the default transceiver settings; SpringLM on the C++ engine (the
transceiver's default, ``springlm``) and on the PyTorch reference (``springlm-torch``). One round = 2 s of audio through ``transmit`` and ``receive`` without loss;
``extra_info['rtf']`` is seconds of compute per second of audio. The no-LM control
(static PMFs) runs beside it so the LM's share is visible as a ratio, and the
rate-distortion token choice (``rd``: ``TransceiverConfig.rd_lambda``) beside the nearest
codewords (``nearest``) so its transmitter cost is too.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from soundspring.entropy.static import StaticModel
from soundspring.models.codec import Codec
from soundspring.models.lm_adapter import SpringLMCodingModel
from soundspring.models.lm_engine import SpringLMEngine
from soundspring.models.masked_lm import SpringLM, springlm_default
from soundspring.transceiver import TransceiverConfig, receive, transmit

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
