"""Speech quality metrics on numpy float32 audio at 16 kHz.

Every function takes ``ref`` and ``deg`` as 1-D float arrays at the same rate (16 kHz by
default), trims both to the shorter length, and returns a Python float. They are
stateless and reused by the codec evaluation and the loss-sweep harness.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    >>> round(si_sdr(x, x), 1) > 100
    True
"""

from __future__ import annotations

import numpy as np

from ..config import SAMPLE_RATE_HZ
from ..dsp import log_mel
from ..errors import ConfigError


def _pair(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    d = np.asarray(deg, dtype=np.float64).reshape(-1)
    n = min(r.size, d.size)
    if n == 0:
        raise ConfigError("ref and deg must be non-empty 1-D audio arrays")
    r, d = r[:n], d[:n]
    if not (np.isfinite(r).all() and np.isfinite(d).all()):
        raise ConfigError("ref and deg must be finite (no NaN/inf)")
    return r, d


PESQ_MIN_SECONDS = 0.25
"""PESQ (the ``pesq`` package) refuses signals shorter than a quarter of a second."""


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.04..4.64) via the ``pesq`` package.

    Returns NaN when PESQ finds no utterance (silence); needs at least 0.25 s.

    Raises:
        ConfigError: not 16 kHz, empty/non-finite audio, or shorter than 0.25 s
            (``PESQ_MIN_SECONDS``) after trimming to the shorter signal.
    """
    from pesq import NoUtterancesError, pesq

    if sample_rate_hz != 16000:
        raise ConfigError(f"pesq_wb needs 16 kHz audio, got {sample_rate_hz}")
    r, d = _pair(ref, deg)
    if r.size < PESQ_MIN_SECONDS * 16000:
        raise ConfigError(f"pesq_wb needs at least {PESQ_MIN_SECONDS} s of audio "
                          f"({int(PESQ_MIN_SECONDS * 16000)} samples), got {r.size} samples")
    try:
        return float(pesq(16000, r.astype(np.float32), d.astype(np.float32), "wb"))
    except NoUtterancesError:
        return float("nan")


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ,
         extended: bool = False) -> float:
    """Short-time objective intelligibility (0..1; ``extended`` for ESTOI) via ``pystoi``."""
    from pystoi import stoi as _stoi

    r, d = _pair(ref, deg)
    return float(_stoi(r, d, sample_rate_hz, extended=extended))


def _stoi_or_reason(ref: np.ndarray, deg: np.ndarray,
                    sample_rate_hz: int) -> tuple[float | None, str | None]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = stoi(ref, deg, sample_rate_hz)
        except (ValueError, IndexError):  # pystoi on a few samples: numpy AxisError
            value = None
    # pystoi warns and returns 1e-5 when too few non-silent frames remain
    if value is None or any("Not enough STFT frames" in str(w.message) for w in caught):
        return None, "audio too short for STOI (needs about 0.4 s of speech)"
    if not np.isfinite(value):
        return None, "STOI is undefined for this signal"
    return value, None


def quality_report(ref: np.ndarray, deg: np.ndarray,
                   sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, float | str | None]:
    """PESQ-WB and STOI for a report that must be strict JSON: a metric that cannot be
    computed is ``None`` with a ``<name>_null_reason`` string beside it.

    Returns:
        {"pesq_wb": float | None, "stoi": float | None} plus "pesq_wb_null_reason" /
        "stoi_null_reason" for each metric that is None (audio shorter than 0.25 s,
        no utterance found, too few frames for STOI). Values are never NaN or inf.

    Raises:
        ConfigError: empty or non-finite audio.
    """
    r, d = _pair(ref, deg)
    out: dict[str, float | str | None] = {}
    if r.size < PESQ_MIN_SECONDS * sample_rate_hz:
        pesq_value, pesq_reason = None, f"audio shorter than {PESQ_MIN_SECONDS} s"
    elif sample_rate_hz != 16000:
        pesq_value, pesq_reason = None, f"PESQ-WB needs 16 kHz audio, got {sample_rate_hz} Hz"
    elif not (np.abs(r).max() > 0 or np.abs(d).max() > 0):  # pesq would divide by zero
        pesq_value, pesq_reason = None, "PESQ found no utterance (silence)"
    else:
        pesq_value = pesq_wb(r, d, sample_rate_hz)
        pesq_reason = None
        if not np.isfinite(pesq_value):
            pesq_value, pesq_reason = None, "PESQ found no utterance (silence)"
    out["pesq_wb"] = pesq_value
    if pesq_reason:
        out["pesq_wb_null_reason"] = pesq_reason
    stoi_value, stoi_reason = _stoi_or_reason(r, d, sample_rate_hz)
    out["stoi"] = stoi_value
    if stoi_reason:
        out["stoi_null_reason"] = stoi_reason
    return out


def si_sdr(ref: np.ndarray, deg: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better)."""
    r, d = _pair(ref, deg)
    r = r - r.mean()
    d = d - d.mean()
    alpha = np.dot(d, r) / (np.dot(r, r) + eps)
    target = alpha * r
    noise = d - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def log_mel_distance(ref: np.ndarray, deg: np.ndarray,
                     sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """Mean absolute difference of natural-log mel spectrograms (lower is better)."""
    r, d = _pair(ref, deg)
    return float(np.mean(np.abs(log_mel(r, sample_rate_hz=sample_rate_hz)
                                - log_mel(d, sample_rate_hz=sample_rate_hz))))


def all_metrics(ref: np.ndarray, deg: np.ndarray,
                sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, float]:
    """PESQ-WB, STOI, SI-SDR and log-mel distance as a dict."""
    return {
        "pesq_wb": pesq_wb(ref, deg, sample_rate_hz),
        "stoi": stoi(ref, deg, sample_rate_hz),
        "si_sdr_db": si_sdr(ref, deg),
        "log_mel_dist": log_mel_distance(ref, deg, sample_rate_hz),
    }


__all__ = [
    "PESQ_MIN_SECONDS",
    "all_metrics",
    "log_mel_distance",
    "pesq_wb",
    "quality_report",
    "si_sdr",
    "stoi",
]
