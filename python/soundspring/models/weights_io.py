"""The content hash shared by every shipped weights file (codec and SpringLM)."""

from __future__ import annotations

import hashlib

import torch


def content_hash(config_json: str, state: dict[str, torch.Tensor]) -> str:
    """sha256 over the config JSON and every tensor (name, shape, dtype, bytes), sorted by name.

    Weights files record it; loaders recompute it to refuse corrupt files, and streams and
    LMs record a codec's hash to refuse a mismatched codec.
    """
    h = hashlib.sha256(config_json.encode())
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
