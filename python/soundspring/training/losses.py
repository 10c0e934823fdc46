"""Reconstruction losses: multi-scale mel, multi-resolution STFT, waveform L1."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import SAMPLE_RATE_HZ
from ..dsp import mel_filterbank, stft_magnitude


class MultiScaleMelLoss(nn.Module):
    """Mean L1 between log-mel spectrograms over several FFT sizes."""

    def __init__(self, scales: tuple[tuple[int, int], ...] = ((256, 32), (512, 64), (1024, 80),
                                                              (2048, 128)),
                 sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        super().__init__()
        self.scales = scales
        for n_fft, n_mels in scales:
            self.register_buffer(f"fb{n_fft}", torch.from_numpy(
                mel_filterbank(n_fft, n_mels, sample_rate_hz)), persistent=False)
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = y.new_zeros(())
        for n_fft, _ in self.scales:
            fb, win = getattr(self, f"fb{n_fft}"), getattr(self, f"win{n_fft}")
            my = torch.log(fb @ stft_magnitude(y, n_fft, n_fft // 4, win) + 1e-5)
            mx = torch.log(fb @ stft_magnitude(x, n_fft, n_fft // 4, win) + 1e-5)
            total = total + F.l1_loss(my, mx)
        return total / len(self.scales)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over resolutions."""

    def __init__(self, resolutions: tuple[int, ...] = (256, 512, 1024)) -> None:
        super().__init__()
        self.resolutions = resolutions
        for n in resolutions:
            self.register_buffer(f"win{n}", torch.hann_window(n), persistent=False)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = y.new_zeros(())
        for n in self.resolutions:
            win = getattr(self, f"win{n}")
            my, mx = stft_magnitude(y, n, n // 4, win), stft_magnitude(x, n, n // 4, win)
            sc = torch.linalg.norm(my - mx) / (torch.linalg.norm(mx) + 1e-7)
            total = total + sc + F.l1_loss(torch.log(my), torch.log(mx))
        return total / len(self.resolutions)
