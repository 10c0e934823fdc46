"""Operating points and component configurations: the one source of truth for constants.

Every constant of DESIGN.md section 2 lives here once. Components take a small frozen
dataclass (validated in ``__post_init__``, JSON round-trippable) or plain keyword
arguments; released settings are named preset functions, not files.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from .errors import ConfigError

SAMPLE_RATE_HZ = 16_000
"""Audio sample rate of every model; other rates are resampled at the audio boundary."""

FRAME_SAMPLES = 320
"""Codec hop: 20 ms at 16 kHz, 50 frames per second."""

FRAME_MS = 1000 * FRAME_SAMPLES // SAMPLE_RATE_HZ
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // FRAME_SAMPLES

CODEBOOK_SIZE = 1024
"""Entries per RVQ codebook (V): 10 bits per raw token."""

MAX_CODEBOOKS = 24
"""RVQ depth K of the shipped codec."""

BITS_PER_TOKEN = 10
RAW_BPS_PER_CODEBOOK = BITS_PER_TOKEN * FRAMES_PER_SECOND  # 500 bps

BITRATES_KBPS = (1.5, 3.0, 6.0, 12.0)
"""Operating points (raw token bitrate): 3 / 6 / 12 / 24 codebooks."""

BASE_CODEBOOKS = 3
"""Codebooks 0..2 form the base layer (1.5 kbps raw)."""

LAYER_BOUNDS = (0, 3, 6, 12, 24)
"""Codebook ranges of the layers: base [0, 3), fine groups [3, 6), [6, 12), [12, 24)."""

DEFAULT_CHUNK_FRAMES = 2
"""Packet interval: 40 ms (2 frames) by default; 1-5 frames (20-100 ms) allowed."""

MAX_CHUNK_FRAMES = 5

DEFAULT_CODER_PRECISION_BITS = 16


def codebooks_for_bitrate(bitrate_kbps: float) -> int:
    """Number of RVQ codebooks K used at a raw bitrate.

    Args:
        bitrate_kbps: one of ``BITRATES_KBPS`` (any multiple of 0.5 kbps up to 12 works).

    Returns:
        K such that K * 500 bps == bitrate.

    Raises:
        ConfigError: the bitrate is not a positive multiple of 0.5 kbps up to 12 kbps.

    Example:
        >>> codebooks_for_bitrate(6)
        12
    """
    k = float(bitrate_kbps) * 1000.0 / RAW_BPS_PER_CODEBOOK
    if not (k == int(k) and 1 <= k <= MAX_CODEBOOKS):
        raise ConfigError(
            f"bitrate_kbps must be a multiple of {RAW_BPS_PER_CODEBOOK / 1000} kbps in "
            f"[{RAW_BPS_PER_CODEBOOK / 1000}, {MAX_CODEBOOKS * RAW_BPS_PER_CODEBOOK / 1000}], "
            f"got {bitrate_kbps!r}"
        )
    return int(k)


def layers_for_codebooks(n_codebooks: int) -> int:
    """Number of layers (base + fine groups) that carry ``n_codebooks`` codebooks."""
    for i, hi in enumerate(LAYER_BOUNDS[1:], start=1):
        if n_codebooks <= hi:
            return i
    raise ConfigError(f"n_codebooks must be in [1, {MAX_CODEBOOKS}], got {n_codebooks}")


_C = TypeVar("_C")


def to_json(cfg: Any) -> str:
    """Serialises a config dataclass to a JSON string (sorted keys)."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def from_json(cls: type[_C], text: str | dict) -> _C:
    """Builds config dataclass ``cls`` from JSON text or a dict; unknown keys are refused."""
    data = json.loads(text) if isinstance(text, str) else dict(text)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    return cls(**data)
