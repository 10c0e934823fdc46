"""Codec real-time factor: encode / decode 1 s of 16 kHz audio on one thread.

Run: ``pytest benchmarks/bench_codec.py --benchmark-only`` (smoke: ``--benchmark-disable``).
RTF = mean time / 1 s of audio; the shipped model targets encode + decode <= 0.05.
"""

from __future__ import annotations

import pytest
import torch
from soundspring.config import codec_default
from soundspring.models.codec import Codec
from soundspring.models.weights_io import DEFAULT_CODEC_WEIGHTS, load_codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return (load_codec() if DEFAULT_CODEC_WEIGHTS.exists() else Codec(codec_default())).eval()


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("bitrate", [1.5, 6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_encode_1s(benchmark, codec: Codec, wav: torch.Tensor, bitrate: float) -> None:
    codes = benchmark(codec.encode, wav, bitrate)
    assert codes.shape[-1] == 50


@pytest.mark.parametrize("bitrate", [1.5, 6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_decode_1s(benchmark, codec: Codec, wav: torch.Tensor, bitrate: float) -> None:
    codes = codec.encode(wav, bitrate)
    y = benchmark(codec.decode, codes)
    assert y.shape == (1, 1, 16000)


def test_stream_step_20ms(benchmark, codec: Codec, wav: torch.Tensor) -> None:
    """One 20 ms frame through streaming encode + decode (per-frame cost, RTF x 50)."""
    es, ds = codec.init_encoder_state(1), codec.init_decoder_state(1)
    frame = wav[..., :320]

    def step():
        c, _ = codec.encode_step(frame, es, 6.0)
        return codec.decode_step(c, ds)

    y, _ = benchmark(step)
    assert y.shape == (1, 1, 320)
