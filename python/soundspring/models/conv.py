"""Every padding and alignment rule of the codec lives here.

Two streamable primitives:

* ``CausalConv1d``: a Conv1d whose output frame ``t`` depends only on inputs up to the end
  of its own stride block, ``(t + 1) * stride - 1``. Offline it pads ``k_eff - stride``
  zeros on the left (``k_eff = (kernel - 1) * dilation + 1``); streaming it keeps the last
  ``k_eff - stride`` input samples as state. Inputs must be a whole number of strides long
  (the codec pads at its boundary), so offline == streaming exactly.
* ``CausalOverlapAdd``: inverse real FFT of short-time spectra, a periodic Hann window and
  overlap-add with hop ``H`` and size ``N``. The window of sub-frame ``j`` covers samples
  ``[(j + 1) * H - N, (j + 1) * H)``, so the last ``N - H`` samples of a block are still
  missing later windows: that overlap is the decoder's lookahead. Offline, the partial tail
  is returned as is; streaming, each step emits only finished samples (delayed by
  ``N - H``) and keeps the partial tail as state.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def causal_left_padding(kernel: int, stride: int = 1, dilation: int = 1) -> int:
    """Zeros padded on the left so that output frame t ends at input (t + 1) * stride - 1."""
    k_eff = (kernel - 1) * dilation + 1
    if k_eff < stride:
        raise ValueError(f"effective kernel {k_eff} shorter than stride {stride}")
    return k_eff - stride


class CausalConv1d(nn.Module):
    """Causal, streamable Conv1d (see module docstring for the padding rule)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, dilation=dilation,
                              groups=groups)
        self.stride = stride
        self.pad = causal_left_padding(kernel, stride, dilation)
        self.c_in = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T] (T a multiple of stride) -> [B, C_out, T / stride]."""
        return self.conv(F.pad(x, (self.pad, 0)))

    def init_state(self, batch: int, like: torch.Tensor | None = None) -> torch.Tensor:
        """Zero history [B, C_in, pad] (the offline left padding)."""
        dtype = like.dtype if like is not None else self.conv.weight.dtype
        return torch.zeros(batch, self.c_in, self.pad, dtype=dtype, device=self.conv.weight.device)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Streams a chunk x [B, C_in, n * stride]; returns ([B, C_out, n], new state)."""
        xx = torch.cat([state, x], dim=-1)
        y = self.conv(xx)
        return y, xx[..., xx.shape[-1] - self.pad:]


class CausalOverlapAdd(nn.Module):
    """Short-time spectra -> audio by irfft, Hann window and causal overlap-add."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.lookahead = n_fft - hop
        win = torch.hann_window(n_fft, periodic=True)
        # Dividing by the (constant) window sum keeps the output scale independent of N/H.
        self.register_buffer("window", win / (win.sum() / hop), persistent=False)

    def _frames(self, spec: torch.Tensor) -> torch.Tensor:
        """spec complex [B, J, N/2+1] -> windowed frames [B, N, J]."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.window  # [B, J, N]
        return frames.transpose(1, 2)

    def _ola(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, N, J] -> overlap-added signal [B, (J - 1) * H + N]."""
        j = frames.shape[-1]
        total = (j - 1) * self.hop + self.n_fft
        return F.fold(frames, output_size=(1, total), kernel_size=(1, self.n_fft),
                      stride=(1, self.hop)).reshape(frames.shape[0], total)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec complex [B, J, N/2+1] -> audio [B, J * H], aligned with the encoder input.

        Samples before 0 (the first windows' heads) are dropped; the last N - H samples lack
        the contributions of future windows.
        """
        y = self._ola(self._frames(spec))
        return y[:, self.lookahead:]

    def init_state(self, batch: int, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Partial-sum tail [B, N - H]. Before the first step it stands for samples
        ``[-(N - H), 0)``, whose output is zeros (the stream starts ``N - H`` late)."""
        return torch.zeros(batch, self.lookahead, device=device, dtype=dtype)

    def step(self, spec: torch.Tensor, tail: torch.Tensor,
             at_start: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Streams J sub-frames; returns (J * H finished samples, new tail).

        The samples returned are the offline output delayed by ``lookahead``. At the start
        of a stream the first ``N - H`` samples belong to negative time: they are emitted
        as zeros, as the offline output drops them.
        """
        y = self._ola(self._frames(spec))  # covers [start - (N - H), start + J * H)
        head = torch.zeros_like(tail) if at_start else y[:, : self.lookahead] + tail
        y = torch.cat([head, y[:, self.lookahead:]], dim=-1)
        n_out = spec.shape[1] * self.hop
        return y[:, :n_out], y[:, n_out:]
