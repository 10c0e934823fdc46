"""Vocos-style causal decoder: ConvNeXt blocks at the frame rate + an iSTFT head.

Per latent frame the head predicts ``hop / istft_hop`` short-time spectra (log-magnitude
and phase), turned into audio by ``CausalOverlapAdd``. DESIGN.md section 3 measured this
decoder learning about 3x faster per CPU minute than a transposed-conv mirror.

Streaming ``step`` with autograd off runs the trunk channels-last ([B, F, D]: no transposes
around the LayerNorms and MLPs), the depthwise convs as a broadcast multiply-sum over a
strided window view (``CausalConv1d.step_cl``) and the overlap-add without ``fold``
(``CausalOverlapAdd``); with autograd on it is the reference path.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import CodecConfig
from .conv import (
    CausalConv1d,
    CausalOverlapAdd,
    derived_tensor,
    gemm_operand,
    inference_fast_path,
)


def linear_weight_t(lin: nn.Linear) -> torch.Tensor:
    """``lin.weight`` [out, in] as the [in, out] right operand of the fast path's
    ``addmm(bias, x, W^T)`` in ``gemm_operand``'s memory order (cached on ``lin``)."""
    w = lin.weight
    return derived_tensor(lin, "_w_t", (w,), lambda: gemm_operand(w))


class ConvNeXtBlock(nn.Module):
    """Causal depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.dw = CausalConv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h.transpose(1, 2))  # [B, F, D]
        h = self.pw2(F.gelu(self.pw1(h))) * self.gamma
        return h.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._mlp(self.dw(x))

    def step(self, x: torch.Tensor, st: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Streams x [B, D, n] -> ([B, D, n], new state); autograd off: ``step_cl``."""
        if inference_fast_path():
            y, st = self.step_cl(x.transpose(1, 2), st)
            return y.transpose(1, 2), st
        h, st = self.dw.step(x, st)
        return x + self._mlp(h), st

    def step_cl(self, x: torch.Tensor, st: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference step channels-last: x [B, n, D] -> ([B, n, D], new state [B, D, pad])."""
        h, st = self.dw.step_cl(x, st)
        b, n, d = h.shape
        h = F.layer_norm(h, self.norm.normalized_shape, self.norm.weight, self.norm.bias,
                         self.norm.eps).view(b * n, d)
        h = F.gelu(torch.addmm(self.pw1.bias, h, linear_weight_t(self.pw1)))
        h = torch.addmm(self.pw2.bias, h, linear_weight_t(self.pw2)).view(b, n, d)
        return torch.addcmul(x, h, self.gamma), st


class VocosDecoder(nn.Module):
    """latents [B, D, F] -> wav [B, 1, F * hop] (causal; lookahead = istft overlap)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.sub = cfg.hop_samples // cfg.istft_hop_samples
        self.n_bins = cfg.istft_n_fft // 2 + 1
        self.inp = CausalConv1d(cfg.latent_dim, cfg.dec_dim, 3)
        self.norm_in = nn.LayerNorm(cfg.dec_dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dec_dim, cfg.dec_intermediate, cfg.dec_kernel, 1.0 / cfg.dec_layers)
            for _ in range(cfg.dec_layers)
        )
        self.norm_out = nn.LayerNorm(cfg.dec_dim, eps=1e-6)
        self.head = nn.Linear(cfg.dec_dim, self.sub * 2 * self.n_bins)
        self.ola = CausalOverlapAdd(cfg.istft_n_fft, cfg.istft_hop_samples)

    def _spec(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, D, F] -> complex spectra [B, F * sub, n_bins]."""
        b, _, f = h.shape
        out = self.head(self.norm_out(h.transpose(1, 2)))  # [B, F, sub * 2 * n_bins]
        out = out.reshape(b, f * self.sub, 2, self.n_bins)
        mag = torch.exp(out[:, :, 0].clamp(max=6.0))
        phase = out[:, :, 1]
        return torch.polar(mag, phase)

    def _spec_cl(self, h: torch.Tensor) -> torch.Tensor:
        """``_spec`` of channels-last h [B, F, D]."""
        b, f, d = h.shape
        h = F.layer_norm(h, self.norm_out.normalized_shape, self.norm_out.weight,
                         self.norm_out.bias, self.norm_out.eps).view(b * f, d)
        out = torch.addmm(self.head.bias, h, linear_weight_t(self.head))
        out = out.view(b, f * self.sub, 2, self.n_bins)
        return torch.polar(torch.exp(out[:, :, 0].clamp(max=6.0)), out[:, :, 1])

    def _trunk(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm_in(z.transpose(1, 2)).transpose(1, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self._trunk(self.inp(z))
        for blk in self.blocks:
            h = blk(h)
        return self.ola(self._spec(h)).unsqueeze(1)

    def init_state(self, batch: int) -> list[torch.Tensor]:
        dev = self.head.weight.device
        return [self.inp.init_state(batch)] + [b.dw.init_state(batch) for b in self.blocks] + [
            self.ola.init_state(batch, dev)
        ]

    def step(self, z: torch.Tensor, st: list[torch.Tensor],
             at_start: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Streams latents z [B, D, n] -> (wav [B, 1, n * hop], new states); autograd off:
        the channels-last fast path."""
        if inference_fast_path():
            return self._step_fast(z, st, at_start)
        h, s_in = self.inp.step(z, st[0])
        h = self._trunk(h)
        new = [s_in]
        for blk, s in zip(self.blocks, st[1:-1]):
            h, s = blk.step(h, s)
            new.append(s)
        y, tail = self.ola.step(self._spec(h), st[-1], at_start)
        return y.unsqueeze(1), [*new, tail]

    def _step_fast(self, z: torch.Tensor, st: list[torch.Tensor],
                   at_start: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, s_in = self.inp.step_cl(z.transpose(1, 2), st[0])  # [B, n, D]
        h = self.norm_in(h)
        new = [s_in]
        for blk, s in zip(self.blocks, st[1:-1]):
            h, s = blk.step_cl(h, s)
            new.append(s)
        y, tail = self.ola.step(self._spec_cl(h), st[-1], at_start)
        return y.unsqueeze(1), [*new, tail]
