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
        audio.check_pcm(np.zeros(0, np.float32))
    with pytest.raises(ConfigError, match="NaN"):
        audio.check_pcm(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ConfigError, match="NaN or inf"):
        audio.write_wav(tmp_path / "x.wav", np.array([np.inf], np.float32))
    with pytest.raises(ConfigError, match="positive"):
        audio.resample(np.zeros(10, np.float32), 0)
    with pytest.raises(ConfigError, match="cannot read"):
        audio.read_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(ConfigError, match="cannot read"):
        audio.read_wav(tmp_path / "junk.wav")


def _wav_declaring(rate: int, n: int = 160) -> bytes:
    import struct

    data = np.zeros(n, "<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + fmt + b"data"
            + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("rate", [2**31 - 1, 400_000, 999, 1])
def test_absurd_header_rates_are_refused_before_reading(tmp_path, rate) -> None:
    p = tmp_path / "x.wav"
    p.write_bytes(_wav_declaring(rate))
    with pytest.raises(ConfigError, match=f"{rate} Hz; expected 1000..384000 Hz"):
        audio.read_wav(p)


def test_rate_limits_are_inclusive(tmp_path) -> None:
    for rate in (audio.MIN_FILE_RATE_HZ, audio.MAX_FILE_RATE_HZ):
        (tmp_path / "x.wav").write_bytes(_wav_declaring(rate, n=rate // 10))
        assert audio.read_wav(tmp_path / "x.wav").shape == (1600,)


def test_read_messages(tmp_path) -> None:
    with pytest.raises(ConfigError, match="missing.wav: no such file"):
        audio.read_wav(tmp_path / "missing.wav")
    with pytest.raises(ConfigError, match="is a folder"):
        audio.read_wav(tmp_path)
    (tmp_path / "e.wav").write_bytes(_wav_declaring(16000, n=0))
    with pytest.raises(ConfigError, match=r"is empty \(0 samples\)"):
        audio.read_wav(tmp_path / "e.wav")
    with pytest.raises(ConfigError, match="stdin: not an audio file"):
        audio.read_wav(b"junk" * 20, name="stdin")


def test_length_cap(tmp_path, monkeypatch) -> None:
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32), 16000)
    monkeypatch.setattr(audio, "MAX_AUDIO_SECONDS", 0.05)
    with pytest.raises(ConfigError, match="h long; at most"):
        audio.read_wav(tmp_path / "x.wav")


def test_read_from_bytes_and_file_objects(tmp_path) -> None:
    import io

    x = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="FLAC")
    a = audio.read_wav(buf.getvalue())
    b = audio.read_wav(io.BytesIO(buf.getvalue()))
    assert a.shape == b.shape == (8000,) and np.array_equal(a, b)


def test_write_wav_removes_part_on_error(tmp_path, monkeypatch) -> None:
    def fail(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"RIFF")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", fail)
    with pytest.raises(OSError):
        audio.write_wav(tmp_path / "x.wav", np.zeros(10, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_check_pcm_is_the_one_rule() -> None:
    """float32 only, [T] (or [1, 1, T]) or batched [B, 1, T], finite, non-empty unless
    allowed; tensors only where asked for."""
    import torch

    x = np.zeros(5, np.float32)
    assert audio.check_pcm(x).shape == (5,)
    assert audio.check_pcm(x.reshape(1, 1, 5)).shape == (5,)
    assert audio.check_pcm(np.zeros((2, 1, 5), np.float32), batched=True).shape == (2, 1, 5)
    assert audio.check_pcm(np.zeros(0, np.float32), allow_empty=True).shape == (0,)
    assert audio.check_pcm(np.zeros(10, np.float32)[::2]).flags.c_contiguous
    t = torch.zeros(1, 1, 4)
    assert audio.check_pcm(t, batched=True, tensors=True) is t
    with pytest.raises(TypeError, match="pcm must be float32"):
        audio.check_pcm(x.astype(np.float64))
    with pytest.raises(TypeError, match="pcm must be float32"):
        audio.check_pcm(np.zeros(5, np.int16))
    with pytest.raises(TypeError, match="numpy float32 array"):
        audio.check_pcm(t)
    with pytest.raises(TypeError, match="numpy float32 array"):
        audio.check_pcm([0.0, 0.1])
    with pytest.raises(ConfigError, match=r"must be float32 \[T\]"):
        audio.check_pcm(np.zeros((1, 5), np.float32))
    with pytest.raises(ConfigError, match=r"\[B, 1, T\]"):
        audio.check_pcm(x, batched=True)
    with pytest.raises(ConfigError, match="empty"):
        audio.check_pcm(np.zeros((1, 1, 0), np.float32))
    with pytest.raises(ConfigError, match="NaN or inf"):
        audio.check_pcm(torch.tensor([[[float("inf")]]]), batched=True, tensors=True)
