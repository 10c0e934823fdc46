"""Codec streaming steps per 40 ms chunk: the inference fast path against the reference, same run.

Run: ``pytest benchmarks/bench_codec_step.py --benchmark-only`` (smoke: ``--benchmark-disable``).
Shipped codec (random weights where the file is absent: latency does not depend on their
values), batch 1, chunks of C = 2 frames (640 samples), one thread (benchmarks/conftest.py).
``fast`` is the path the codec takes with autograd off (``Codec.encode_step`` /
``decode_step`` run under ``torch.inference_mode``: channels-last ``step_cl`` kernels);
``reference`` is the ``nn.Conv1d`` path, selected inside ``inference_mode`` by
``torch.enable_grad()`` (no graph is recorded), the path the steps took before the fast one.

Cases:
    encoder:       ``SEANetEncoder.step``, audio -> latents (no quantiser)
    decoder:       ``VocosDecoder.step``, latents -> audio (no codebook look-up)
    encode_step:   ``Codec.encode_step`` at 6 / 12 kbps (input checks + encoder + RVQ search)
    decode_step:   ``Codec.decode_step`` at 6 / 12 kbps (code checks + RVQ decode + decoder)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from soundspring.config import codebooks_for_bitrate, codec_default
from soundspring.models.codec import Codec
from soundspring.models.weights_io import DEFAULT_CODEC_WEIGHTS, load_codec

CHUNK_SAMPLES = 640
PATHS = ["fast", "reference"]


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    return (load_codec() if DEFAULT_CODEC_WEIGHTS.exists() else Codec(codec_default())).eval()


@pytest.fixture(scope="module")
def chunk() -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, CHUNK_SAMPLES, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def _mode(path: str) -> Iterator[None]:
    """``fast``: inference mode; ``reference``: inference mode with autograd on."""
    with torch.inference_mode(), (torch.enable_grad() if path == "reference"
                                  else contextlib.nullcontext()):
        yield


def _warm_encoder_state(codec: Codec, chunk: torch.Tensor) -> list[list[torch.Tensor]]:
    with torch.inference_mode():
        _, st = codec.encoder.step(chunk, codec.init_encoder_state(1).convs)
    return st


@pytest.mark.parametrize("path", PATHS)
def test_encoder_step(benchmark, codec: Codec, chunk: torch.Tensor, path: str) -> None:
    st = _warm_encoder_state(codec, chunk)

    def step():
        with _mode(path):
            return codec.encoder.step(chunk, st)

    z, _ = benchmark(step)
    assert z.shape == (1, codec.cfg.latent_dim, 2)


@pytest.mark.parametrize("path", PATHS)
def test_decoder_step(benchmark, codec: Codec, chunk: torch.Tensor, path: str) -> None:
    with torch.inference_mode():
        z, _ = codec.encoder.step(chunk, codec.init_encoder_state(1).convs)
        _, st = codec.decoder.step(z, codec.init_decoder_state(1).convs, at_start=True)

    def step():
        with _mode(path):
            return codec.decoder.step(z, st, at_start=False)

    y, _ = benchmark(step)
    assert y.shape == (1, 1, CHUNK_SAMPLES)


@pytest.mark.parametrize("bitrate", [6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_encode_step(benchmark, codec: Codec, chunk: torch.Tensor, bitrate: float) -> None:
    st = codec.init_encoder_state(1)
    _, st = codec.encode_step(chunk, st, bitrate)
    codes, _ = benchmark(codec.encode_step, chunk, st, bitrate)
    assert codes.shape == (1, codebooks_for_bitrate(bitrate), 2)


@pytest.mark.parametrize("bitrate", [6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_decode_step(benchmark, codec: Codec, chunk: torch.Tensor, bitrate: float) -> None:
    codes, _ = codec.encode_step(chunk, codec.init_encoder_state(1), bitrate)
    _, st = codec.decode_step(codes, codec.init_decoder_state(1))
    y, _ = benchmark(codec.decode_step, codes, st)
    assert y.shape == (1, 1, CHUNK_SAMPLES)
