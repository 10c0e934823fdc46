"""Signal-processing helpers shared by the metrics and the training losses: the mel
filterbank, a numpy log-mel spectrogram and a torch STFT magnitude.

Numpy at import; torch is imported by :func:`stft_magnitude` only.

Example:
    >>> mel_filterbank(512, 64).shape
    (64, 257)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .config import SAMPLE_RATE_HZ
from .errors import ConfigError

if TYPE_CHECKING:
    import torch


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate_hz: int = SAMPLE_RATE_HZ,
                   fmin_hz: float = 0.0, fmax_hz: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filterbank, float32 [n_mels, n_fft // 2 + 1], area-normalised.

    Raises:
        ConfigError: n_mels < 1 or fmax above Nyquist.
    """
    fmax_hz = sample_rate_hz / 2 if fmax_hz is None else fmax_hz
    if n_mels < 1 or not 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2:
        raise ConfigError(f"bad mel filterbank: n_mels={n_mels}, {fmin_hz}..{fmax_hz} Hz")
    freqs = np.linspace(0, sample_rate_hz / 2, n_fft // 2 + 1)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(fmin_hz), _hz_to_mel(fmax_hz), n_mels + 2))
    lo, mid, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / np.maximum(hi - lo, 1e-9))  # slaney-style area normalisation
    return fb.astype(np.float32)


def log_mel(x: np.ndarray, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
            sample_rate_hz: int = SAMPLE_RATE_HZ, eps: float = 1e-5) -> np.ndarray:
    """Natural-log mel magnitude spectrogram [n_mels, frames] of audio [T] (Hann window,
    no centering; shorter than ``n_fft`` is zero-padded to one frame)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(n_fft + 1)[:-1]
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # [bins, frames]
    return np.log(mel_filterbank(n_fft, n_mels, sample_rate_hz) @ mag + eps)


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """x [B, T] -> STFT magnitude [B, n_fft // 2 + 1, frames] (centred, reflect-padded,
    floored at 1e-9 under the square root so its log and gradient stay finite)."""
    import torch

    spec = torch.stft(x, n_fft, hop, n_fft, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    return torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)


__all__ = ["log_mel", "mel_filterbank", "stft_magnitude"]
