"""Speech metrics on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
from soundspring import dsp
from soundspring.errors import ConfigError
from soundspring.evaluation import metrics


def _voice(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Harmonic 'vowels' with syllable-rate envelope and pauses: PESQ detects utterances."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    return (0.2 * x * env + 1e-3 * rng.standard_normal(t.size)).astype(np.float32)


def test_identity_scores() -> None:
    x = _voice()
    assert metrics.pesq_wb(x, x) > 4.4
    assert metrics.stoi(x, x) > 0.99
    assert metrics.si_sdr(x, x) > 80
    assert metrics.log_mel_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_degradation_lowers_scores() -> None:
    x = _voice()
    noisy = x + 0.05 * np.random.default_rng(1).standard_normal(x.size).astype(np.float32)
    assert metrics.pesq_wb(x, noisy) < metrics.pesq_wb(x, x) - 1
    assert metrics.stoi(x, noisy) < 0.99
    assert 0 < metrics.si_sdr(x, noisy) < 30
    assert metrics.log_mel_distance(x, noisy) > 0.05


def test_si_sdr_scale_invariant_and_length_trim() -> None:
    x = _voice(1.0)
    y = x + 0.01 * np.random.default_rng(2).standard_normal(x.size).astype(np.float32)
    assert metrics.si_sdr(x, 3 * y) == pytest.approx(metrics.si_sdr(x, y), abs=1e-6)
    assert metrics.si_sdr(x, np.concatenate([y, np.ones(100, np.float32)])) == pytest.approx(
        metrics.si_sdr(x, y), abs=1e-6)


def test_all_metrics_keys() -> None:
    x = _voice(2.0)
    assert set(metrics.all_metrics(x, x)) == {"pesq_wb", "stoi", "si_sdr_db", "log_mel_dist"}


def test_mel_filterbank() -> None:
    fb = dsp.mel_filterbank(512, 64)
    assert fb.shape == (64, 257) and (fb >= 0).all() and (fb.sum(1) > 0).all()
    with pytest.raises(ConfigError):
        dsp.mel_filterbank(512, 0)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        metrics.si_sdr(np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError, match="finite"):
        metrics.log_mel_distance(np.array([np.nan] * 2000), np.zeros(2000))
    with pytest.raises(ConfigError, match="16 kHz"):
        metrics.pesq_wb(np.zeros(8000), np.zeros(8000), sample_rate_hz=8000)


def test_pesq_needs_a_quarter_second() -> None:
    x = _voice(0.2)
    with pytest.raises(ConfigError, match="at least 0.25 s"):
        metrics.pesq_wb(x, x)


def test_quality_report_valid_input_matches_the_metrics() -> None:
    x = _voice(2.0)
    y = x + 0.01 * np.random.default_rng(3).standard_normal(x.size).astype(np.float32)
    rep = metrics.quality_report(x, y)
    assert rep == {"pesq_wb": metrics.pesq_wb(x, y), "stoi": metrics.stoi(x, y)}


def test_quality_report_short_and_silent_audio_is_null_with_reasons() -> None:
    import json

    x = _voice(0.1)
    rep = metrics.quality_report(x, x)
    assert rep["pesq_wb"] is None and rep["pesq_wb_null_reason"] == "audio shorter than 0.25 s"
    assert rep["stoi"] is None and "too short" in rep["stoi_null_reason"]
    json.dumps(rep, allow_nan=False)
    tiny = metrics.quality_report(x[:10], x[:10])  # pystoi fails outright on a few samples
    assert tiny["stoi"] is None
    silence = metrics.quality_report(np.zeros(16000), np.zeros(16000))
    assert silence["pesq_wb"] is None and "no utterance" in silence["pesq_wb_null_reason"]
    json.dumps(silence, allow_nan=False)
