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


class CropSampler:
    """Random crops [B, 1, T] from preloaded clips (clip chosen proportionally to length).

    Clips shorter than the crop are placed at a random offset in zeros. A random gain in
    ``gain_db_range`` is applied per crop.
    """

    def __init__(self, wavs: list[np.ndarray], crop_samples: int,
                 gain_db_range: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> None:
        if not wavs:
            raise ConfigError("no training clips")
        self.wavs = wavs
        self.crop = crop_samples
        lens = np.array([max(w.size, 1) for w in wavs], dtype=np.float64)
        self.p = lens / lens.sum()
        self.gain = gain_db_range
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> np.ndarray:
        out = np.zeros((batch_size, 1, self.crop), np.float32)
        for b, i in enumerate(self.rng.choice(len(self.wavs), batch_size, p=self.p)):
            w = self.wavs[i]
            if w.size >= self.crop:
                s = int(self.rng.integers(0, w.size - self.crop + 1))
                out[b, 0] = w[s:s + self.crop]
            else:
                s = int(self.rng.integers(0, self.crop - w.size + 1))
                out[b, 0, s:s + w.size] = w
            out[b] *= 10.0 ** (self.rng.uniform(*self.gain) / 20.0)
        return out


def train_sampler(manifest: str | Path | None, crop_s: float, gain_db_range: tuple[float, float],
                  seed: int) -> tuple[CropSampler, float]:
    """Preloads the train split; returns (sampler, minutes of audio)."""
    clips = read_manifest(manifest, split="train")
    wavs = load_clips(clips)
    minutes = sum(w.size for w in wavs) / SAMPLE_RATE_HZ / 60
    return CropSampler(wavs, round(crop_s * SAMPLE_RATE_HZ), gain_db_range, seed), minutes
