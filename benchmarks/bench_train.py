"""Codec training step: float32 against bfloat16 autocast, side by side in one run.

Run: ``pytest benchmarks/bench_train.py --benchmark-only --benchmark-group-by=param:phase``
(smoke: ``--benchmark-disable``). One optimisation step of the shipped codec on a batch of
8 x 1 s crops (the ``cpu_long`` preset), the whole codec (``full``) or its decoder alone
(``decoder``, as ``--freeze-tokenizer`` trains it), with the decoder's forward under
``torch.autocast("cpu", torch.bfloat16)`` or not. The losses run in float32 either way.
Steps per second = 1 / mean; the ratio of the two precisions is the claim (the machines
are noisy). On this project's 2-core machine (torch 2.13 CPU build; /proc/cpuinfo lists
AVX2, FMA and F16C but no AVX-512 and no AVX512-BF16, so bf16 matmuls and convolutions
are emulated), one thread, one run: decoder step 1.01 s float32 vs 2.41 s bf16, full
step 1.71 s vs 3.11 s, so training stays float32.
"""

from __future__ import annotations

import math

import pytest
import torch
from soundspring.config import TrainConfig, codec_default
from soundspring.models.codec import Codec
from soundspring.models.weights_io import DEFAULT_CODEC_WEIGHTS, codec_from_weights
from soundspring.training.trainer import CodecLoss

BATCH, CROP = 8, 16000


def _setup(phase: str):
    torch.manual_seed(0)
    codec = codec_from_weights(DEFAULT_CODEC_WEIGHTS) if DEFAULT_CODEC_WEIGHTS.exists() else Codec(
        codec_default())
    codec.train()
    cfg = TrainConfig(freeze_tokenizer=phase == "decoder")
    if cfg.freeze_tokenizer:
        for mod in (codec.encoder, codec.quantizer):
            mod.requires_grad_(False)
    loss = CodecLoss(codec, cfg)
    opt = torch.optim.AdamW([p for p in codec.parameters() if p.requires_grad], lr=1e-6)
    x = 0.1 * torch.randn(BATCH, 1, CROP, generator=torch.Generator().manual_seed(0))
    return codec, loss, opt, x


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("phase", ["decoder", "full"])
def test_train_step(benchmark, phase: str, precision: str) -> None:
    codec, loss_fn, opt, x = _setup(phase)
    decode = codec.decoder.forward

    def bf16_decoder(q):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return decode(q).float()

    if precision == "bfloat16":
        codec.decoder.forward = bf16_decoder  # the decoder is most of the step's compute

    def step() -> float:
        loss, _ = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    value = benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    assert math.isfinite(value) and value > 0
