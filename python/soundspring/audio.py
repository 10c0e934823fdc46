"""Audio boundary: the only module that reads or writes audio files or resamples.

Everything inside SoundSpring is float32 mono at ``SAMPLE_RATE_HZ`` (16 kHz). Files and
arrays at other rates are resampled here (polyphase, ``scipy.signal.resample_poly``);
multi-channel audio is averaged to mono. Files must declare 1 kHz..384 kHz and at most
4 hours; both are checked from the header before any allocation.
"""

from __future__ import annotations

import io
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .config import SAMPLE_RATE_HZ
from .errors import ConfigError


def check_pcm(pcm: Any, name: str = "pcm", batched: bool = False,
              allow_empty: bool = False, tensors: bool = False) -> Any:
    """The one PCM check at every boundary that takes audio samples.

    Args:
        pcm: a numpy array (or, with ``tensors``, a torch tensor) of float32 samples in
            [-1, 1] at 16 kHz. Unbatched (default): one signal [T], or [1, 1, T] as ``Codec.decode`` returns
            it (flattened to [T]). ``batched``: [B, 1, T] with B >= 1.
        name: how messages name the argument.
        batched: expect [B, 1, T] instead of [T].
        allow_empty: accept T = 0 (a streaming push of no samples); otherwise at least one
            sample is needed.
        tensors: also accept a torch tensor (the codec's own input); numpy only otherwise.

    Returns:
        The samples as C-contiguous float32: a numpy array [T] (or [B, 1, T]) for numpy
        input; for a tensor, the same tensor (its device and autograd untouched), reshaped
        to [T] when unbatched.

    Raises:
        TypeError: not a numpy array (or tensor), or a dtype other than float32.
        ConfigError: the wrong shape, no samples, or NaN/inf samples.
    """
    form = "[B, 1, T]" if batched else "[T] (or [1, 1, T])"
    is_tensor = tensors and type(pcm).__module__.startswith("torch") and hasattr(pcm, "detach")
    if not (is_tensor or isinstance(pcm, np.ndarray)):
        kind = "a float32 numpy array or torch tensor" if tensors else "a numpy float32 array"
        raise TypeError(f"{name} must be {kind} {form} at {SAMPLE_RATE_HZ} Hz, "
                        f"got {type(pcm).__name__}")
    dtype = str(pcm.dtype).removeprefix("torch.")
    if dtype != "float32":
        raise TypeError(f"{name} must be float32 {form} in [-1, 1], got dtype {dtype}")
    shape = tuple(pcm.shape)
    ok = (len(shape) == 3 and shape[1] == 1 and shape[0] >= 1) if batched else (
        len(shape) == 1 or (len(shape) == 3 and shape[:2] == (1, 1)))
    if not ok:
        raise ConfigError(f"{name} must be float32 {form} mono at {SAMPLE_RATE_HZ} Hz, "
                          f"got shape {shape}")
    if not batched:
        pcm = pcm.reshape(-1)
    if shape[-1] == 0 and not allow_empty:
        raise ConfigError(f"{name} is empty (shape {shape}); need at least one sample")
    if is_tensor:
        import torch

        if not bool(torch.isfinite(pcm).all()):
            raise ConfigError(f"{name} contains NaN or inf samples")
        return pcm.contiguous()
    if not np.isfinite(pcm).all():
        raise ConfigError(f"{name} contains NaN or inf samples")
    return np.ascontiguousarray(pcm)


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


MIN_FILE_RATE_HZ = 1_000
"""Lowest sample rate an audio file may declare (below it the header is taken as corrupt)."""

MAX_FILE_RATE_HZ = 384_000
"""Highest sample rate an audio file may declare (the fastest common converters)."""

MAX_AUDIO_SECONDS = 4 * 3600
"""Longest audio ``read_wav`` accepts (4 hours), checked from the header before reading."""


def _source(path: str | Path | bytes | BinaryIO, name: str | None) -> tuple[Any, str]:
    """(what soundfile should open, a name for messages); missing files named plainly."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(path)), name or "<bytes>"
    if hasattr(path, "read"):
        return path, name or str(getattr(path, "name", "<stream>"))
    label = name or str(path)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"cannot read {label}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"cannot read {label}: it is a folder, not an audio file")
    try:
        return open(p, "rb"), label
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror or exc}") from None


def read_wav(path: str | Path | bytes | BinaryIO, sample_rate_hz: int = SAMPLE_RATE_HZ,
             name: str | None = None) -> np.ndarray:
    """Reads an audio file as float32 mono [T] at ``sample_rate_hz``.

    Args:
        path: a file path, the file's bytes, or a readable binary file object (e.g. a
            ``BytesIO`` of stdin); any format libsndfile reads (WAV, FLAC, OGG, ...).
        sample_rate_hz: the rate to resample to (default 16 kHz).
        name: how messages name the source (default: the path).

    The header is checked before any sample is read or resampled: the declared rate must
    lie in [``MIN_FILE_RATE_HZ``, ``MAX_FILE_RATE_HZ``] (1 kHz..384 kHz) and the length
    be at most ``MAX_AUDIO_SECONDS`` (4 h).

    Raises:
        ConfigError: the file is missing, a folder, unreadable or not audio; its rate or
            length is out of range; it is empty or holds non-finite samples.
    """
    import soundfile as sf

    src, label = _source(path, name)
    owned = src is not path
    try:
        try:
            f = sf.SoundFile(src)
        except (RuntimeError, OSError, TypeError) as exc:  # LibsndfileError is a RuntimeError
            detail = getattr(exc, "error_string", None) or str(exc)
            raise ConfigError(f"cannot read audio from {label}: not an audio file libsndfile "
                              f"reads (WAV, FLAC, OGG, ...): {detail}") from None
        with f:
            sr, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
            if not MIN_FILE_RATE_HZ <= sr <= MAX_FILE_RATE_HZ:
                raise ConfigError(
                    f"audio in {label} declares a sample rate of {sr} Hz; expected "
                    f"{MIN_FILE_RATE_HZ}..{MAX_FILE_RATE_HZ} Hz (corrupt header?)")
            if channels < 1:
                raise ConfigError(f"audio in {label} declares {channels} channels")
            if frames > MAX_AUDIO_SECONDS * sr:
                raise ConfigError(
                    f"audio in {label} is {frames / sr / 3600:.1f} h long; at most "
                    f"{MAX_AUDIO_SECONDS // 3600} h is accepted (split it)")
            if frames == 0:
                raise ConfigError(f"audio in {label} is empty (0 samples)")
            try:
                data = f.read(dtype="float32", always_2d=True)
            except (RuntimeError, OSError) as exc:
                detail = getattr(exc, "error_string", None) or str(exc)
                raise ConfigError(f"cannot read audio from {label}: {detail}") from None
    finally:
        if owned and hasattr(src, "close"):
            src.close()
    if data.shape[0] == 0:
        raise ConfigError(f"audio in {label} is empty (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    mono = check_pcm(np.ascontiguousarray(mono), f"audio in {label}")
    return resample(mono, sr, sample_rate_hz)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> Path:
    """Writes float32 mono [T] (or [1, 1, T]) as 16-bit PCM WAV; returns the path.

    Missing parent folders are created (library use; the ``soundspring`` commands refuse
    a missing output folder before they get here). The file is written to ``NAME.part``
    and renamed, so readers never see half a file; on any error the ``.part`` is removed.
    """
    import soundfile as sf

    arr = check_pcm(wav, "wav")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        sf.write(str(tmp), np.clip(arr, -1.0, 1.0), int(sample_rate_hz), subtype="PCM_16",
                 format="WAV")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = [
    "MAX_AUDIO_SECONDS",
    "MAX_FILE_RATE_HZ",
    "MIN_FILE_RATE_HZ",
    "check_pcm",
    "read_wav",
    "resample",
    "write_wav",
]
