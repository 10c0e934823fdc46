"""In-RAM training data: the whole train split preloaded, random fixed-length crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ, Augmentation
from ..data.corpus import load_clips, read_manifest
from ..errors import ConfigError

NO_AUGMENTATION = Augmentation()
"""Crops as recorded (apart from ``gain_db_range``)."""

# Speed perturbation factors are PERTURB_DENOM' / PERTURB_DENOM for integer numerators:
# a polyphase resampler with small integers (0.80, 0.85, ..., 1.25 for the range 0.8-1.25).
PERTURB_DENOM = 20


def perturb_factors(speed_range: tuple[float, float]) -> list[int]:
    """Numerators n (factor n / PERTURB_DENOM, n != PERTURB_DENOM) inside ``speed_range``."""
    lo, hi = speed_range
    if not 0.5 <= lo <= hi <= 2.0:
        raise ConfigError(f"speed perturbation range must lie in [0.5, 2], got {speed_range}")
    return [n for n in range(int(np.ceil(lo * PERTURB_DENOM - 1e-9)),
                             int(np.floor(hi * PERTURB_DENOM + 1e-9)) + 1)
            if n != PERTURB_DENOM]


class CropSampler:
    """Random crops [B, 1, T] from preloaded clips (clip chosen proportionally to length).

    Clips shorter than the crop are placed at a random offset in zeros. With probability
    ``perturb_prob`` a crop is speed-perturbed: played ``f`` times faster for f in
    ``speed_range`` (resampled, so pitch and formants move together: a cheap stand-in for
    other speakers' voices). Then ``augment`` (config.Augmentation) band-limits, adds
    noise and sets the level; without a level range a random gain in ``gain_db_range`` is
    applied per crop.
    """

    def __init__(self, wavs: list[np.ndarray], crop_samples: int,
                 gain_db_range: tuple[float, float] = (0.0, 0.0), seed: int = 0,
                 speed_range: tuple[float, float] = (1.0, 1.0),
                 perturb_prob: float = 0.0, augment: Augmentation = NO_AUGMENTATION) -> None:
        if not wavs:
            raise ConfigError("no training clips")
        if not 0.0 <= perturb_prob <= 1.0:
            raise ConfigError(f"perturb_prob must be in [0, 1], got {perturb_prob}")
        self.wavs = wavs
        self.crop = crop_samples
        lens = np.array([max(w.size, 1) for w in wavs], dtype=np.float64)
        self.p = lens / lens.sum()
        self.gain = gain_db_range
        self.factors = perturb_factors(speed_range)
        self.perturb_prob = perturb_prob if self.factors else 0.0
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def _crop(self, w: np.ndarray, n: int) -> np.ndarray:
        """A random window of n samples of w (zero-padded at a random offset if short)."""
        out = np.zeros(n, np.float32)
        if w.size >= n:
            s = int(self.rng.integers(0, w.size - n + 1))
            out[:] = w[s:s + n]
        else:
            s = int(self.rng.integers(0, n - w.size + 1))
            out[s:s + w.size] = w
        return out

    def batch(self, batch_size: int) -> np.ndarray:
        from scipy.signal import resample_poly

        out = np.zeros((batch_size, 1, self.crop), np.float32)
        for b, i in enumerate(self.rng.choice(len(self.wavs), batch_size, p=self.p)):
            w = self.wavs[i]
            if self.perturb_prob and self.rng.random() < self.perturb_prob:
                num = int(self.rng.choice(self.factors))
                margin = 64  # filter transients at both ends, cut away after resampling
                src = self._crop(w, -(-self.crop * num // PERTURB_DENOM) + 2 * margin)
                y = resample_poly(src, PERTURB_DENOM, num).astype(np.float32)
                start = margin * PERTURB_DENOM // num
                out[b, 0] = y[start:start + self.crop]
            else:
                out[b, 0] = self._crop(w, self.crop)
            out[b, 0] = self._augment(out[b, 0])
        return out

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Band, noise and level changes of one crop [T] (float32 in, float32 out)."""
        from scipy.signal import butter, sosfilt

        a, rng = self.augment, self.rng
        x = x.astype(np.float64)
        if a.bandlimit_prob and rng.random() < a.bandlimit_prob:
            lo = rng.uniform(*a.highpass_hz_range)
            hi = rng.uniform(*a.lowpass_hz_range)
            x = sosfilt(butter(2, lo, "highpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
            x = sosfilt(butter(8, hi, "lowpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
        rms = float(np.sqrt(np.mean(x * x)))
        if a.noise_prob and rms > 0 and rng.random() < a.noise_prob:
            x = x + self._noise(x.size) * rms * 10.0 ** (-rng.uniform(*a.noise_snr_db_range) / 20)
            rms = float(np.sqrt(np.mean(x * x)))
        if a.level_dbfs_range is None:
            x = x * 10.0 ** (rng.uniform(*self.gain) / 20.0)
        elif rms > 0:
            x = x * (10.0 ** (rng.uniform(*a.level_dbfs_range) / 20.0) / rms)
            peak = float(np.abs(x).max())
            if peak > a.max_peak:
                x = x * (a.max_peak / peak)
        return x.astype(np.float32)

    def _noise(self, n: int) -> np.ndarray:
        """Unit-RMS white, pink (1/f) or brown (1/f^2) noise of n samples."""
        colour = int(self.rng.integers(0, 3))
        spec = np.fft.rfft(self.rng.standard_normal(n))
        f = np.maximum(np.arange(spec.size), 1.0)
        spec = spec / f ** (colour / 2.0)
        spec[0] = 0.0
        y = np.fft.irfft(spec, n)
        return y / max(float(np.sqrt(np.mean(y * y))), 1e-12)


def train_sampler(manifest: str | Path | None, crop_s: float, gain_db_range: tuple[float, float],
                  seed: int, speed_range: tuple[float, float] = (1.0, 1.0),
                  perturb_prob: float = 0.0,
                  extra_manifests: tuple[str | Path, ...] = (),
                  augment: Augmentation = NO_AUGMENTATION) -> tuple[CropSampler, float]:
    """Preloads the train split of ``manifest`` and of every extra manifest (e.g. the
    ``soundspring data synth --role train`` voices); returns (sampler, minutes of audio)."""
    clips = read_manifest(manifest, split="train")
    for extra in extra_manifests:
        clips += read_manifest(extra, split="train")
    wavs = load_clips(clips)
    minutes = sum(w.size for w in wavs) / SAMPLE_RATE_HZ / 60
    return CropSampler(wavs, round(crop_s * SAMPLE_RATE_HZ), gain_db_range, seed,
                       speed_range, perturb_prob, augment), minutes
