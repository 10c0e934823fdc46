"""SEANet-style causal encoder: strided causal convolutions, hop 320 -> 50 Hz latents.

Streaming ``step`` with autograd off runs the whole encoder channels-last ([B, T, C]) on
``CausalConv1d.step_cl`` (one matrix product per conv over a strided view; see
``models.conv``); with autograd on it is the ``nn.Conv1d`` reference.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import CodecConfig
from .conv import CausalConv1d, inference_fast_path

States = list[torch.Tensor]


class ResUnit(nn.Module):
    """ELU -> causal conv k3 (dilated) -> ELU -> conv k1, plus the skip connection."""

    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.c1 = CausalConv1d(ch, ch // 2, 3, dilation=dilation)
        self.c2 = CausalConv1d(ch // 2, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.elu(self.c1(F.elu(x))))

    def init_state(self, batch: int) -> States:
        return [self.c1.init_state(batch), self.c2.init_state(batch)]

    def step(self, x: torch.Tensor, st: States) -> tuple[torch.Tensor, States]:
        h, s1 = self.c1.step(F.elu(x), st[0])
        h, s2 = self.c2.step(F.elu(h), st[1])
        return x + h, [s1, s2]

    def step_cl(self, x: torch.Tensor, st: States) -> tuple[torch.Tensor, States]:
        """``step`` channels-last: x [B, T, C] -> ([B, T, C], new states)."""
        h, s1 = self.c1.step_cl(F.elu(x), st[0])
        h, s2 = self.c2.step_cl(F.elu(h), st[1])
        return x + h, [s1, s2]


class DownBlock(nn.Module):
    """Residual units then ELU -> strided causal conv (kernel 2 * stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResUnit(c_in, d) for d in dilations)
        self.down = CausalConv1d(c_in, c_out, 2 * stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.res:
            x = r(x)
        return self.down(F.elu(x))

    def init_state(self, batch: int) -> States:
        return [s for r in self.res for s in r.init_state(batch)] + [self.down.init_state(batch)]

    def step(self, x: torch.Tensor, st: States) -> tuple[torch.Tensor, States]:
        out: States = []
        for i, r in enumerate(self.res):
            x, s = r.step(x, st[2 * i: 2 * i + 2])
            out += s
        y, s = self.down.step(F.elu(x), st[-1])
        return y, out + [s]

    def step_cl(self, x: torch.Tensor, st: States) -> tuple[torch.Tensor, States]:
        """``step`` channels-last: x [B, T, C_in] -> ([B, T / stride, C_out], new states)."""
        out: States = []
        for i, r in enumerate(self.res):
            x, s = r.step_cl(x, st[2 * i: 2 * i + 2])
            out += s
        y, s = self.down.step_cl(F.elu(x), st[-1])
        return y, out + [s]


class SEANetEncoder(nn.Module):
    """wav [B, 1, T] (T a multiple of the hop) -> latents [B, D, T / hop]."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ch = cfg.enc_channels
        self.inp = CausalConv1d(1, ch, 7)
        blocks = []
        for s in cfg.enc_strides:
            c_out = min(2 * ch, cfg.enc_max_channels)
            blocks.append(DownBlock(ch, c_out, s, cfg.enc_res_dilations))
            ch = c_out
        self.blocks = nn.ModuleList(blocks)
        self.out = CausalConv1d(ch, cfg.latent_dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.out(F.elu(h))

    def init_state(self, batch: int) -> list[States]:
        return [[self.inp.init_state(batch)], *[b.init_state(batch) for b in self.blocks],
                [self.out.init_state(batch)]]

    def step(self, x: torch.Tensor, st: list[States]) -> tuple[torch.Tensor, list[States]]:
        """Streams x [B, 1, n * hop] -> (latents [B, D, n], new states); autograd off: the
        channels-last fast path (``step_cl``)."""
        if inference_fast_path():
            z, new = self.step_cl(x.transpose(1, 2), st)
            return z.transpose(1, 2).contiguous(), new
        h, s0 = self.inp.step(x, st[0][0])
        new = [[s0]]
        for b, s in zip(self.blocks, st[1:-1]):
            h, s = b.step(h, s)
            new.append(s)
        z, s_out = self.out.step(F.elu(h), st[-1][0])
        return z, [*new, [s_out]]

    def step_cl(self, x: torch.Tensor, st: list[States]) -> tuple[torch.Tensor, list[States]]:
        """Inference step channels-last: x [B, n * hop, 1] -> (latents [B, n, D], states)."""
        h, s0 = self.inp.step_cl(x, st[0][0])
        new = [[s0]]
        for b, s in zip(self.blocks, st[1:-1]):
            h, s = b.step_cl(h, s)
            new.append(s)
        z, s_out = self.out.step_cl(F.elu(h), st[-1][0])
        return z, [*new, [s_out]]
