"""The codec's streaming steps on the C++ engine (models/codec_engine.py, csrc/core/
codec_engine.h) against the PyTorch streaming path of the shipped codec: latents and audio
within float rounding, tokens equal but for near-ties, the same bits on every kernel level
and however the stream is cut into steps, snapshots, and typed refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from soundspring import TransceiverConfig, load_models
from soundspring._native import core
from soundspring.config import codec_tiny
from soundspring.errors import ConfigError, ModelMismatchError
from soundspring.models.codec import Codec
from soundspring.models.codec_engine import CodecEngine
from soundspring.models.lm_engine import supported_isas
from soundspring.models.weights_io import load_codec
from soundspring.transceiver import Receiver, Transmitter

HOP = 320


@pytest.fixture(scope="module")
def codec():
    return load_codec()


@pytest.fixture(scope="module")
def engine(codec):
    return CodecEngine(codec)


def voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced, formant-shaped signal with level changes and pauses (speech-like)."""
    from soundspring.bench import speechlike

    rng = np.random.default_rng(seed)
    x = speechlike(seconds)
    return (x * rng.uniform(0.3, 1.5)).astype(np.float32)


def stream_latents(c, wav: np.ndarray, frames: int) -> torch.Tensor:
    st = c.init_encoder_state()
    out = []
    with torch.inference_mode():
        for i in range(0, len(wav), frames * HOP):
            z, st = c.encode_latent_step(torch.from_numpy(wav[i:i + frames * HOP]).view(1, 1, -1), st)
            out.append(z)
    return torch.cat(out, -1)


def stream_audio(c, latents: torch.Tensor, frames: int) -> torch.Tensor:
    st = c.init_decoder_state()
    out = []
    with torch.inference_mode():
        for i in range(0, latents.shape[-1], frames):
            y, st = c.decode_latent_step(latents[..., i:i + frames], st)
            out.append(y)
        out.append(c.decode_flush(st))
    return torch.cat(out, -1)


def test_engine_matches_the_pytorch_streaming_path(codec, engine):
    wav = voice(3.0)
    z_ref = stream_latents(codec, wav, 2)
    z_eng = stream_latents(engine, wav, 2)
    assert z_eng.shape == z_ref.shape == (1, 128, 150)
    scale = float(z_ref.abs().max())
    assert float((z_eng - z_ref).abs().max()) <= 2e-6 * scale
    y_ref = stream_audio(codec, z_ref, 2)
    y_eng = stream_audio(engine, z_ref, 2)
    assert y_eng.shape == y_ref.shape == (1, 1, 150 * HOP + codec.lookahead_samples)
    assert float((y_eng - y_ref).abs().max()) <= 1e-5 * max(float(y_ref.abs().max()), 1e-3)
    # Tokens: equal except where a level's nearest codewords are a near-tie.
    with torch.inference_mode():
        t_ref = codec.quantizer.encode(z_ref, 12)
        t_eng = codec.quantizer.encode(z_eng, 12)
    assert float((t_ref == t_eng).float().mean()) >= 0.995


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_streaming_in_any_steps_equals_one_step_bit_for_bit(engine, frames):
    wav = voice(1.2, seed=frames)[: 60 * HOP]
    whole_z = stream_latents(engine, wav, 60)
    z = stream_latents(engine, wav, frames)
    assert torch.equal(z, whole_z)
    assert torch.equal(stream_audio(engine, whole_z, frames), stream_audio(engine, whole_z, 60))


def test_every_kernel_level_gives_the_same_bits(codec):
    wav = voice(0.8, seed=3)[: 40 * HOP]
    isas = [i for i in supported_isas() if i != "auto"]
    assert "generic" in isas and len(isas) >= 2
    results = []
    for isa in isas:
        e = CodecEngine(codec, isa=isa)
        z = stream_latents(e, wav, 2)
        results.append((isa, z, stream_audio(e, z, 2)))
    for isa, z, y in results[1:]:
        assert torch.equal(z, results[0][1]), isa
        assert torch.equal(y, results[0][2]), isa


def test_decode_step_equals_the_quantizers_latents_bitwise(codec, engine):
    codes = torch.randint(0, 1024, (1, 12, 6), generator=torch.Generator().manual_seed(1))
    a, _ = engine.decode_step(codes, engine.init_decoder_state())
    with torch.inference_mode():
        lat = codec.quantizer.decode(codes)
    b, _ = engine.decode_latent_step(lat, engine.init_decoder_state())
    assert torch.equal(a, b)
    with torch.inference_mode():
        c, _ = engine.encode_step(torch.from_numpy(voice(0.2)[:640]).view(1, 1, -1),
                                  engine.init_encoder_state(), 6.0)
    assert c.shape == (1, 12, 2) and c.dtype == torch.int64


def test_snapshots_continue_identically(engine):
    wav = voice(0.5, seed=4)[: 20 * HOP]
    st = engine.init_encoder_state()
    _, st = engine.encode_latent_step(torch.from_numpy(wav[:640]).view(1, 1, -1), st)
    snap = st.snapshot()
    z1, st = engine.encode_latent_step(torch.from_numpy(wav[640:1280]).view(1, 1, -1), st)
    z2, snap = engine.encode_latent_step(torch.from_numpy(wav[640:1280]).view(1, 1, -1), snap)
    assert torch.equal(z1, z2) and st.frames == snap.frames == 4
    ds = engine.init_decoder_state()
    y0, ds = engine.decode_latent_step(z1, ds)
    assert torch.count_nonzero(y0[..., : engine.lookahead_samples]) == 0  # stream start
    dsnap = ds.snapshot()
    a, ds = engine.decode_latent_step(z1, ds)
    b, dsnap = engine.decode_latent_step(z1, dsnap)
    assert torch.equal(a, b)
    assert torch.equal(engine.decode_flush(ds), engine.decode_flush(dsnap))


def test_bad_input_is_refused_with_typed_errors(codec, engine):
    st = engine.init_encoder_state()
    for bad in (torch.zeros(1, 1, 100), torch.zeros(1, 1, 0), torch.zeros(2, 1, 640),
                np.zeros(640, dtype=np.float64), torch.zeros(1, 1, 640, dtype=torch.int16)):
        with pytest.raises((ConfigError, TypeError)):
            engine.encode_latent_step(bad, st)
    nan = torch.zeros(1, 1, 640)
    nan[0, 0, 7] = float("nan")
    with pytest.raises(ConfigError, match="NaN or inf"):  # check_pcm, as for the reference
        engine.encode_latent_step(nan, st)
    assert st.frames == 0  # untouched by every refusal
    with pytest.raises(TypeError):
        engine.encode_latent_step([0.0] * 640, st)
    ds = engine.init_decoder_state()
    for bad in (torch.zeros(1, 64, 2), torch.zeros(2, 128, 2), torch.zeros(128, 2)):
        with pytest.raises(ConfigError):
            engine.decode_latent_step(bad, ds)
    inf = torch.zeros(1, 128, 2)
    inf[0, 3, 1] = float("inf")
    with pytest.raises(ConfigError, match="non-finite"):
        engine.decode_latent_step(inf, ds)
    with pytest.raises(ConfigError):
        engine.decode_step(torch.full((1, 12, 2), 1024), ds)
    with pytest.raises(ConfigError, match="state"):
        engine.decode_latent_step(torch.zeros(1, 128, 2), codec.init_decoder_state())
    with pytest.raises(ConfigError, match="state"):
        engine.encode_latent_step(torch.zeros(1, 1, 640), codec.init_encoder_state())
    with pytest.raises(ConfigError, match="batch"):
        engine.init_encoder_state(2)
    with pytest.raises(ConfigError, match="isa"):
        CodecEngine(codec, isa="neon")
    assert ds.frames == 0


def test_weights_that_do_not_fit_are_a_model_mismatch(codec):
    wrong = Codec(codec_tiny())
    wrong.cfg = codec.cfg  # claims the shipped shape, holds the tiny tensors
    with pytest.raises(ModelMismatchError, match="codec weights"):
        CodecEngine(wrong)
    with pytest.raises(ConfigError, match="missing"):
        core.codec.Decoder({"latent_dim": 128}, {}, "auto")


def test_load_models_gives_the_engine_codec_and_the_transceiver_runs_on_it():
    codec, model = load_models()
    assert isinstance(codec, CodecEngine) and codec.half_weights
    ref, _ = load_models(backend="torch")
    assert isinstance(ref, Codec)
    assert codec.cfg == ref.cfg and codec.lookahead_samples == ref.lookahead_samples
    cfg = TransceiverConfig(bitrate_kbps=6)
    pcm = voice(1.0, seed=5)
    tx = Transmitter(codec, model, cfg)
    packets = tx.push(pcm) + tx.flush()
    rx = Receiver(codec, model, cfg)
    rx_ref = Receiver(ref, model, cfg)
    for p in packets:
        rx.push(p.data, p.seq, p.chunk)
        rx_ref.push(p.data, p.seq, p.chunk)
    out, out_ref = rx.end_of_stream(), rx_ref.end_of_stream()
    assert rx.stats.chunks_concealed == 0 and out.shape == out_ref.shape
    assert np.abs(out - out_ref).max() <= 1e-5 * max(np.abs(out_ref).max(), 1e-3)
