"""The content hash shared by every shipped weights file (codec and SpringLM)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from ..errors import ConfigError, ModelMismatchError


def content_hash(config_json: str, state: dict[str, torch.Tensor]) -> str:
    """sha256 over the config JSON and every tensor (name, shape, dtype, bytes), sorted by name.

    Weights files record it; loaders recompute it to refuse corrupt files, and streams and
    LMs record a codec's tokenizer hash to refuse a mismatched codec.
    """
    h = hashlib.sha256(config_json.encode())
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_weights_file(path: str | Path, fmt: str, version: int, config_json: str,
                       state: dict[str, torch.Tensor], **fields: str) -> Path:
    """Writes a versioned weights file atomically: a plain dict of str / int / tensors
    (format, version, config JSON, state dict, sha256, plus ``fields``), loadable with
    ``torch.load(..., weights_only=True)`` (no pickled classes)."""
    blob = {"format": fmt, "version": version, "config": config_json, "state_dict": state,
            "sha256": content_hash(config_json, state), **fields}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(blob, buf)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path


def read_weights_file(path: str | Path, fmt: str, version: int, what: str) -> dict:
    """Reads and verifies a weights file written by :func:`write_weights_file`.

    Returns:
        The dict, with its content hash checked.

    Raises:
        ConfigError: missing or unreadable file, wrong format or version.
        ModelMismatchError: the content hash does not match (a corrupt file).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} weights {str(path)!r} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign bytes
        raise ConfigError(f"{path} is not a readable {fmt} weights file: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise ConfigError(f"{path} is not a {fmt} weights file")
    if blob.get("version") != version:
        raise ConfigError(f"{path}: weights version {blob.get('version')} unsupported "
                          f"(this build reads {version})")
    state = blob.get("state_dict")
    if not isinstance(state, dict) or content_hash(blob.get("config", ""), state) != blob.get("sha256"):
        raise ModelMismatchError(f"{path}: sha256 content hash mismatch (corrupt file?)")
    return blob
