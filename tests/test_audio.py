"""The audio boundary: read/write, resampling, mono conversion, validation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from soundspring import audio
from soundspring.errors import ConfigError


def test_write_read_round_trip(tmp_path) -> None:
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    p = audio.write_wav(tmp_path / "a" / "x.wav", x)
    y = audio.read_wav(p)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() < 1e-4


def test_read_resamples_and_downmixes(tmp_path) -> None:
    t = np.arange(48000) / 48000
    st = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.25
    sf.write(tmp_path / "s.wav", st, 48000)
    y = audio.read_wav(tmp_path / "s.wav")
    assert y.shape == (16000,)
    ref = 0.25 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 1e-2


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resample_lengths(rate: int) -> None:
    assert audio.resample(np.zeros(rate, np.float32), rate).shape == (16000,)


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        audio.check_finite(np.zeros(0, np.float32))
    with pytest.raises(ConfigError, match="NaN"):
        audio.check_finite(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ConfigError, match="NaN or inf"):
        audio.write_wav(tmp_path / "x.wav", np.array([np.inf], np.float32))
    with pytest.raises(ConfigError, match="positive"):
        audio.resample(np.zeros(10, np.float32), 0)
    with pytest.raises(ConfigError, match="cannot read"):
        audio.read_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(ConfigError, match="cannot read"):
        audio.read_wav(tmp_path / "junk.wav")
