"""Audio boundary: the only module that reads or writes audio files or resamples.

Everything inside SoundSpring is float32 mono at ``SAMPLE_RATE_HZ`` (16 kHz). Files and
arrays at other rates are resampled here (polyphase, ``scipy.signal.resample_poly``);
multi-channel audio is averaged to mono.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from .config import SAMPLE_RATE_HZ
from .errors import ConfigError


def check_finite(wav: np.ndarray, name: str = "wav") -> np.ndarray:
    """Returns ``wav`` as float32 after checking it is non-empty and finite.

    Raises:
        ConfigError: the array is empty or holds NaN/inf.
    """
    arr = np.asarray(wav)
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.size == 0 or arr.shape[-1] == 0:
        raise ConfigError(f"{name} is empty (shape {tuple(arr.shape)}); need at least one sample")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} contains NaN or inf samples")
    return arr


def resample(wav: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Resamples along the last axis with a polyphase filter.

    Args:
        wav: float array [..., T].
        from_hz: its sample rate (positive integer).
        to_hz: target sample rate (default 16 kHz).

    Returns:
        float32 array [..., T * to_hz / from_hz] (rounded up).

    Raises:
        ConfigError: a rate is not a positive integer.

    Example:
        >>> resample(np.zeros(48000, np.float32), 48000).shape
        (16000,)
    """
    if int(from_hz) != from_hz or from_hz <= 0 or int(to_hz) != to_hz or to_hz <= 0:
        raise ConfigError(f"sample rates must be positive integers, got {from_hz} -> {to_hz}")
    arr = np.asarray(wav, dtype=np.float32)
    if from_hz == to_hz:
        return arr
    from scipy.signal import resample_poly

    ratio = Fraction(int(to_hz), int(from_hz))
    out = resample_poly(arr, ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32, copy=False)


def read_wav(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Reads an audio file as float32 mono [T] at ``sample_rate_hz``.

    Raises:
        ConfigError: the file cannot be read, is empty, or holds non-finite samples.
    """
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError(RuntimeError)
        raise ConfigError(f"cannot read audio file {str(path)!r}: {exc}") from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    mono = check_finite(mono, f"audio in {path}")
    return resample(mono, sr, sample_rate_hz)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> Path:
    """Writes float mono [T] (or [1, T] / [1, 1, T]) as 16-bit PCM WAV; returns the path.

    The file is written to a temporary name and renamed, so readers never see half a file.
    """
    import soundfile as sf

    arr = check_finite(np.asarray(wav).reshape(-1), "wav")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(arr, -1.0, 1.0), int(sample_rate_hz), subtype="PCM_16", format="WAV")
    tmp.replace(path)
    return path


__all__ = ["check_finite", "read_wav", "resample", "write_wav"]
