"""The codec's inference fast path (autograd off) against its reference path (autograd on).

The streaming steps pick their kernels from the autograd mode: with autograd off
(``torch.inference_mode`` / ``no_grad``) the channels-last ``step_cl`` kernels, with it on
the ``nn.Conv1d`` reference. Inside ``inference_mode``, ``torch.enable_grad()`` selects the
reference without recording a graph, so both paths see the same inputs here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch
from soundspring.config import codec_tiny
from soundspring.models import conv as conv_mod
from soundspring.models.codec import Codec
from soundspring.models.conv import CausalConv1d, CausalOverlapAdd
from soundspring.models.weights_io import DEFAULT_CODEC_WEIGHTS, load_codec
from test_codec import HOP, _speechlike


@contextlib.contextmanager
def reference() -> Iterator[None]:
    """The reference kernels (autograd on) without recording a graph."""
    with torch.inference_mode(), torch.enable_grad():
        yield


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    c = Codec(codec_tiny())
    c.train()
    with torch.no_grad():  # one training forward initialises the codebooks from data
        c(0.1 * torch.randn(2, 1, 8 * HOP))
    return c.eval()


def _stream(codec: Codec, x: torch.Tensor, chunks: list[int], n_q: int,
            ref: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Encoder and decoder steps over ``chunks`` (frames each) on the path asked for:
    (latents [B, D, F], codes [B, n_q, F], audio [B, 1, F * hop], decoder state)."""
    b = x.shape[0]
    est, dst = codec.init_encoder_state(b).convs, codec.init_decoder_state(b).convs
    zs, cs, ys, pos = [], [], [], 0
    ctx = reference() if ref else torch.inference_mode()
    with ctx:
        for i, n in enumerate(chunks):
            z, est = codec.encoder.step(x[..., pos * HOP:(pos + n) * HOP], est)
            c = codec.quantizer.encode(z, n_q)
            y, dst = codec.decoder.step(codec.quantizer.decode(c), dst, at_start=i == 0)
            zs.append(z)
            cs.append(c)
            ys.append(y)
            pos += n
    return torch.cat(zs, -1), torch.cat(cs, -1), torch.cat(ys, -1), dst


@pytest.mark.parametrize("chunks", [[1] * 10, [2, 3, 1, 4], [10]])
def test_fast_steps_match_reference_tiny(codec: Codec, chunks: list[int]) -> None:
    x = _speechlike(10 * HOP, seed=1, batch=2)
    z_ref, c_ref, y_ref, s_ref = _stream(codec, x, chunks, 24, ref=True)
    z, c, y, s = _stream(codec, x, chunks, 24, ref=False)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(c, c_ref)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(s, s_ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fast_path_is_selected_by_the_autograd_mode(codec: Codec,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = CausalConv1d.step_cl

    def counting(self, x, state):
        calls["n"] += 1
        return real(self, x, state)

    monkeypatch.setattr(CausalConv1d, "step_cl", counting)
    x = _speechlike(2 * HOP, seed=2)
    with reference():
        codec.encoder.step(x, codec.init_encoder_state(1).convs)
    assert calls["n"] == 0
    codec.encode_step(x, codec.init_encoder_state(1), 6.0)  # inference_mode inside
    assert calls["n"] == len([m for m in codec.encoder.modules() if isinstance(m, CausalConv1d)])
    with torch.no_grad():
        codec.decoder.step(torch.zeros(1, codec.cfg.latent_dim, 2),
                           codec.init_decoder_state(1).convs, at_start=True)
    assert calls["n"] > len([m for m in codec.encoder.modules() if isinstance(m, CausalConv1d)])


def test_training_keeps_the_reference_path_and_gradients(codec: Codec) -> None:
    x = _speechlike(2 * HOP, seed=3)
    st = codec.init_encoder_state(1).convs
    z, _ = codec.encoder.step(x, st)  # autograd on: nn.Conv1d, differentiable
    z.square().sum().backward()
    w = codec.encoder.inp.conv.weight
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    codec.zero_grad(set_to_none=True)


def test_cached_weights_follow_in_place_changes() -> None:
    torch.manual_seed(4)
    m = CausalConv1d(6, 5, 4, stride=2).eval()
    x, st = torch.randn(2, 6, 8), torch.randn(2, 6, m.pad)
    with torch.inference_mode():
        first = m.step(x, st)[0]
    with torch.no_grad():
        m.conv.weight.mul_(-2.0)  # an optimiser step / load_state_dict writes in place
    with torch.inference_mode():
        fast = m.step(x, st)[0]
    with reference():
        ref = m.step(x, st)[0]
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fast, first)
    m.load_state_dict({k: torch.randn_like(v) for k, v in m.state_dict().items()})
    with torch.inference_mode():
        fast = m.step(x, st)[0]
    with reference():
        ref = m.step(x, st)[0]
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "stride", "dilation", "groups"), [
    (3, 7, 3, 1, 1, 1), (4, 6, 3, 1, 3, 1), (5, 8, 10, 5, 1, 1), (6, 6, 1, 1, 1, 1),
    (8, 8, 7, 1, 1, 8), (8, 8, 4, 2, 2, 8), (8, 4, 3, 1, 1, 2),
])
def test_conv_step_cl_matches_conv1d(c_in: int, c_out: int, kernel: int, stride: int,
                                     dilation: int, groups: int) -> None:
    torch.manual_seed(5)
    m = CausalConv1d(c_in, c_out, kernel, stride=stride, dilation=dilation,
                     groups=groups).eval()
    x = torch.randn(3, c_in, 6 * stride)
    st = torch.randn(3, c_in, m.pad)
    with reference():
        y_ref, s_ref = m.step(x, st)
    with torch.inference_mode():
        y, s = m.step(x, st)
    assert y.shape == y_ref.shape == (3, c_out, 6) and s.shape == s_ref.shape
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(s, s_ref)  # the state is the input history itself, not computed
    assert m.fast_supported == (groups in (1, c_in))
    with torch.inference_mode():  # channels-last entry point, any group count
        y_cl, s_cl = m.step_cl(x.transpose(1, 2), st)
    torch.testing.assert_close(y_cl.transpose(1, 2), y_ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(s_cl, s_ref)


@pytest.mark.parametrize("at_start", [True, False])
def test_overlap_add_fast_step_matches_reference(at_start: bool) -> None:
    ola = CausalOverlapAdd(320, 80)
    g = torch.Generator().manual_seed(6)
    spec = torch.polar(torch.rand(2, 8, 161, generator=g), torch.randn(2, 8, 161, generator=g))
    tail = torch.randn(2, ola.lookahead, generator=g)
    with reference():
        y_ref, t_ref = ola.step(spec, tail, at_start)
    with torch.inference_mode():
        y, t = ola.step(spec, tail, at_start)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(t, t_ref, atol=1e-6, rtol=1e-6)
    if at_start:
        assert torch.equal(y[:, : ola.lookahead], torch.zeros(2, ola.lookahead))


def test_derived_tensor_recomputed_under_export(monkeypatch: pytest.MonkeyPatch) -> None:
    m = CausalConv1d(2, 3, 3).eval()
    made = {"n": 0}

    def make() -> torch.Tensor:
        made["n"] += 1
        return m.conv.weight.sum()

    conv_mod.derived_tensor(m, "_probe", (m.conv.weight,), make)
    conv_mod.derived_tensor(m, "_probe", (m.conv.weight,), make)
    assert made["n"] == 1  # cached while the weight is unchanged
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    conv_mod.derived_tensor(m, "_probe", (m.conv.weight,), make)
    assert made["n"] == 2  # fake tensors under export: recomputed in the graph


@pytest.mark.skipif(not DEFAULT_CODEC_WEIGHTS.exists(), reason="shipped codec weights absent")
def test_shipped_codec_fast_steps_match_reference() -> None:
    """Bounded (1.6 s of audio in 40 ms chunks): tokens at 12 kbps equal, audio within 1e-4."""
    codec = load_codec()
    x = _speechlike(80 * HOP, seed=7)
    z_ref, c_ref, y_ref, _ = _stream(codec, x, [2] * 40, 24, ref=True)
    z, c, y, _ = _stream(codec, x, [2] * 40, 24, ref=False)
    scale = z_ref.abs().max().item()
    assert (z - z_ref).abs().max().item() <= 1e-5 * max(scale, 1.0)
    assert torch.equal(c, c_ref)
    assert (y - y_ref).abs().max().item() <= 1e-4


def test_fast_steps_trace_after_eager_use(codec: Codec) -> None:
    """The cached operands (some are views of parameters) become trace constants."""

    class DecoderStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = codec.decoder

        def forward(self, z: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
            return self.decoder.step(z, list(states), at_start=False)[0]

    z = torch.randn(1, codec.cfg.latent_dim, 2, generator=torch.Generator().manual_seed(8))
    states = codec.init_decoder_state(1).convs
    with torch.inference_mode():
        eager = DecoderStep()(z, *states)  # fills the operand caches
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated but is what models.export writes for libtorch
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(DecoderStep(), (z, *states), check_trace=False)
        torch.testing.assert_close(traced(z, *states), eager, atol=1e-6, rtol=1e-6)
