"""Filling lost base tokens: masked-LM infilling, or the repeat / zero controls.

Concealment works on tokens only: it knows nothing about packets and never touches the
range coder or the model's coding memory (the receiver commits concealed tokens to the
memory itself and marks them, see ``soundspring.pipeline.Receiver``).
"""

from __future__ import annotations

import numpy as np

from ..entropy.model import MASK, MASK_UPPER, CodingModel
from ..errors import ConfigError

CONCEAL_MODES = ("lm", "repeat", "zero")


def conceal_base(
    mode: str,
    window: np.ndarray,
    lost: np.ndarray,
    last_frame: np.ndarray | None,
    model: CodingModel | None = None,
    vocab: int | None = None,
) -> np.ndarray:
    """Base tokens for the lost frames of ``window``.

    Args:
        mode: "lm" (greedy masked-LM infilling from the visible frames around the gap),
            "repeat" (the last received frame's tokens), "zero" (token 0).
        window: int64 [K_max, W]: base levels of known frames (received, or concealed
            earlier), anything at the lost frames; fine levels are ignored.
        lost: bool [W], True at the frames to fill.
        last_frame: int64 [3] base tokens of the last decoded frame before the gap (None at
            stream start: zeros are used).
        model: the coding model, required for "lm".
        vocab: the codec's codebook size when smaller than the model's (tokens >= vocab
            are never predicted).

    Returns:
        int64 [3, n_lost] base tokens of the lost frames, in window order.
    """
    if mode not in CONCEAL_MODES:
        raise ConfigError(f"conceal mode must be one of {CONCEAL_MODES}, got {mode!r}")
    n_lost = int(lost.sum())
    base_levels = 3
    if mode == "zero" or (mode == "repeat" and last_frame is None):
        return np.zeros((base_levels, n_lost), dtype=np.int64)
    if mode == "repeat":
        return np.repeat(np.asarray(last_frame, dtype=np.int64)[:, None], n_lost, axis=1)
    if model is None:
        raise ConfigError("conceal mode 'lm' needs a model")
    view = np.full_like(window, MASK_UPPER)
    view[:base_levels] = window[:base_levels]
    view[:base_levels, lost] = MASK
    logits = model.conceal_logits(view)  # [3, W, V]
    return np.argmax(logits[:, lost, :vocab], axis=-1).astype(np.int64)
