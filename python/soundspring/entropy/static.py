"""The no-LM control: static per-level PMFs for every level, no memory, no LM concealment."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..config import CODEBOOK_SIZE, MAX_CODEBOOKS
from ..errors import ConfigError


class StaticModel:
    """A ``CodingModel`` whose fine PMFs are the same static per-level PMFs as the base.

    Args:
        log_probs: float32 [K, V] per-level logits (e.g. SpringLM's unigram buffer);
            None = uniform (exactly 10 bits per token).
    """

    max_context_frames = 50
    uses_memory = False
    can_conceal = False  # no LM: receivers must use conceal="repeat" or "zero"

    def __init__(self, log_probs: np.ndarray | None = None) -> None:
        if log_probs is None:
            log_probs = np.zeros((MAX_CODEBOOKS, CODEBOOK_SIZE), dtype=np.float32)
        lp = np.ascontiguousarray(log_probs, dtype=np.float32)
        if lp.ndim != 2 or lp.shape[1] != CODEBOOK_SIZE:
            raise ConfigError(f"log_probs must be float32 [K, {CODEBOOK_SIZE}], got {lp.shape}")
        self._lp = lp
        self._id = "static-" + hashlib.sha256(lp.tobytes()).hexdigest()[:16]

    @property
    def model_id(self) -> str:
        return self._id

    @property
    def max_codebooks(self) -> int:
        return self._lp.shape[0]

    def base_logits(self) -> np.ndarray:
        return self._lp

    def new_state(self, context_frames: int, chunk_frames: int) -> Any:
        return None

    def fine_logits(self, state: Any, view: np.ndarray, levels: tuple[int, int]) -> np.ndarray:
        lo, hi = levels
        return np.repeat(self._lp[lo:hi, None, :], view.shape[1], axis=1)

    def commit(self, state: Any, base: np.ndarray) -> Any:
        return None

    def conceal_logits(self, window: np.ndarray) -> np.ndarray:
        raise ConfigError("the static (no-LM) model cannot conceal: use conceal='repeat' or 'zero'")
