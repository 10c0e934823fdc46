"""Codec streaming steps per 40 ms chunk: the C++ engine, the PyTorch inference fast path and
the reference, same run.

Run: ``pytest benchmarks/bench_codec_step.py --benchmark-only`` (smoke: ``--benchmark-disable``).
Shipped codec (random weights where the file is absent: latency does not depend on their
values), batch 1, chunks of C = 2 frames (640 samples), one thread (benchmarks/conftest.py).
``fast`` is the path the codec takes with autograd off (``Codec.encode_step`` /
``decode_step`` run under ``torch.inference_mode``: channels-last ``step_cl`` kernels);
``reference`` is the ``nn.Conv1d`` path, selected inside ``inference_mode`` by
``torch.enable_grad()`` (no graph is recorded), the path the steps took before the fast one.
``engine-<isa>`` is ``models.codec_engine.CodecEngine`` (csrc/core/codec_engine.h) at every
kernel level this CPU has (the transceiver's default codec path: ``load_models()``), called
through its Python API as the transceiver calls it.

Cases:
    encoder:       ``SEANetEncoder.step``, audio -> latents (no quantiser)
    decoder:       ``VocosDecoder.step``, latents -> audio (no codebook look-up)
    encode_step:   ``encode_step`` at 6 / 12 kbps (input checks + encoder + RVQ search), engine / torch
    decode_step:   ``decode_step`` at 6 / 12 kbps (code checks + RVQ decode + decoder), engine / torch
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from soundspring.config import codebooks_for_bitrate, codec_default
from soundspring.models.codec import Codec
from soundspring.models.codec_engine import CodecEngine
from soundspring.models.lm_engine import supported_isas
from soundspring.models.weights_io import DEFAULT_CODEC_WEIGHTS, load_codec

CHUNK_SAMPLES = 640
ENGINES = [f"engine-{isa}" for isa in supported_isas() if isa not in ("auto", "generic")]
PATHS = [*ENGINES, "fast", "reference"]


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    return (load_codec() if DEFAULT_CODEC_WEIGHTS.exists() else Codec(codec_default())).eval()


@pytest.fixture(scope="module")
def chunk() -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, CHUNK_SAMPLES, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def engines(codec: Codec) -> dict[str, CodecEngine]:
    return {e: CodecEngine(codec, isa=e.removeprefix("engine-")) for e in ENGINES}


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
def test_encoder_step(benchmark, codec: Codec, engines, chunk: torch.Tensor, path: str) -> None:
    if path in engines:
        eng = engines[path]
        est = eng.init_encoder_state()
        z, _ = benchmark(eng.encode_latent_step, chunk, est)
        assert z.shape == (1, codec.cfg.latent_dim, 2)
        return
    st = _warm_encoder_state(codec, chunk)

    def step():
        with _mode(path):
            return codec.encoder.step(chunk, st)

    z, _ = benchmark(step)
    assert z.shape == (1, codec.cfg.latent_dim, 2)


@pytest.mark.parametrize("path", PATHS)
def test_decoder_step(benchmark, codec: Codec, engines, chunk: torch.Tensor, path: str) -> None:
    with torch.inference_mode():
        z, _ = codec.encoder.step(chunk, codec.init_encoder_state(1).convs)
    if path in engines:
        eng = engines[path]
        dst = eng.init_decoder_state()
        eng.decode_latent_step(z, dst)
        y, _ = benchmark(eng.decode_latent_step, z, dst)
        assert y.shape == (1, 1, CHUNK_SAMPLES)
        return
    with torch.inference_mode():
        _, st = codec.decoder.step(z, codec.init_decoder_state(1).convs, at_start=True)

    def step():
        with _mode(path):
            return codec.decoder.step(z, st, at_start=False)

    y, _ = benchmark(step)
    assert y.shape == (1, 1, CHUNK_SAMPLES)


@pytest.mark.parametrize("impl", ["engine", "torch"])
@pytest.mark.parametrize("bitrate", [6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_encode_step(benchmark, codec: Codec, chunk: torch.Tensor, bitrate: float,
                     impl: str) -> None:
    c = CodecEngine(codec) if impl == "engine" else codec
    st = c.init_encoder_state(1)
    _, st = c.encode_step(chunk, st, bitrate)
    codes, _ = benchmark(c.encode_step, chunk, st, bitrate)
    assert codes.shape == (1, codebooks_for_bitrate(bitrate), 2)


@pytest.mark.parametrize("impl", ["engine", "torch"])
@pytest.mark.parametrize("bitrate", [6.0, 12.0], ids=lambda b: f"{b:g}kbps")
def test_decode_step(benchmark, codec: Codec, chunk: torch.Tensor, bitrate: float,
                     impl: str) -> None:
    c = CodecEngine(codec) if impl == "engine" else codec
    codes, _ = codec.encode_step(chunk, codec.init_encoder_state(1), bitrate)
    _, st = c.decode_step(codes, c.init_decoder_state(1))
    y, _ = benchmark(c.decode_step, codes, st)
    assert y.shape == (1, 1, CHUNK_SAMPLES)
