"""Full training state in the run directory (``checkpoint.pt``), written atomically.

The checkpoint is a plain dict (configs as JSON strings, tensors, numbers, RNG states)
loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ..config import CodecConfig, from_json
from ..errors import ConfigError


def atomic_save(obj: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {str(path)!r} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "codec_config" not in ckpt:
        raise ConfigError(f"{path} is not a soundspring codec training checkpoint")
    return ckpt


def load_checkpoint_codec(path: str | Path):
    """A float32 ``Codec`` from a training checkpoint (all buffers, EMA included)."""
    from ..models.codec import Codec

    ckpt = load_checkpoint(path)
    codec = Codec(from_json(CodecConfig, ckpt["codec_config"]))
    codec.load_state_dict(ckpt["model"])
    codec.meta = {"step": ckpt.get("step"), "train_seconds": ckpt.get("train_seconds")}  # type: ignore[attr-defined]
    return codec
