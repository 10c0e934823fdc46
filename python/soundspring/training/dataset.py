"""In-RAM training data: the whole train split preloaded, random fixed-length crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import read_wav
from ..config import SAMPLE_RATE_HZ
from ..data.corpus import Clip, read_manifest
from ..errors import ConfigError


def load_clips(clips: list[Clip], progress: bool = True) -> list[np.ndarray]:
    """Reads every clip as float32 [T] at 16 kHz."""
    from tqdm import tqdm

    return [read_wav(c.path) for c in tqdm(clips, desc="load audio", unit="clip",
                                           disable=not progress)]


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

    Clips shorter than the crop are placed at a random offset in zeros. A random gain in
    ``gain_db_range`` is applied per crop. With probability ``perturb_prob`` a crop is
    speed-perturbed: played ``f`` times faster for f in ``speed_range`` (resampled, so
    pitch and formants move together: a cheap stand-in for other speakers' voices).
    """

    def __init__(self, wavs: list[np.ndarray], crop_samples: int,
                 gain_db_range: tuple[float, float] = (0.0, 0.0), seed: int = 0,
                 speed_range: tuple[float, float] = (1.0, 1.0),
                 perturb_prob: float = 0.0) -> None:
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
            out[b] *= 10.0 ** (self.rng.uniform(*self.gain) / 20.0)
        return out


def train_sampler(manifest: str | Path | None, crop_s: float, gain_db_range: tuple[float, float],
                  seed: int, speed_range: tuple[float, float] = (1.0, 1.0),
                  perturb_prob: float = 0.0,
                  extra_manifests: tuple[str | Path, ...] = ()) -> tuple[CropSampler, float]:
    """Preloads the train split of ``manifest`` and of every extra manifest (e.g. the
    ``soundspring data synth --role train`` voices); returns (sampler, minutes of audio)."""
    clips = read_manifest(manifest, split="train")
    for extra in extra_manifests:
        clips += read_manifest(extra, split="train")
    wavs = load_clips(clips)
    minutes = sum(w.size for w in wavs) / SAMPLE_RATE_HZ / 60
    return CropSampler(wavs, round(crop_s * SAMPLE_RATE_HZ), gain_db_range, seed,
                       speed_range, perturb_prob), minutes
