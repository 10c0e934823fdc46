"""SpringLM as a ``soundspring.entropy.CodingModel``: numpy in and out, batch 1, no grad
(``models.weights_io.load_coding_model`` loads one).

Both ends run every stream at batch size 1 through this adapter, so the logits are the
same bits on the same build and thread count (SpringLM's measured invariance: bit-identical
across 1 and 2 threads at B = 1); the entropy coder rounds them to a coarse grid and the
integrity check catches the rare value that lands on a rounding boundary elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..config import BASE_CODEBOOKS
from .masked_lm import SpringLM, SpringLMState


class SpringLMCodingModel:
    """Adapts a ``SpringLM`` to the ``CodingModel`` protocol of the entropy coder."""

    uses_memory = True

    def __init__(self, lm: SpringLM) -> None:
        self.lm = lm.eval()
        self._base = np.ascontiguousarray(
            lm.unigram_logprobs.detach().to(torch.float32).numpy()
        )  # [K_max, V]
        self._id = str(getattr(lm, "model_id", "")) or "springlm-unsaved"

    @property
    def model_id(self) -> str:
        return self._id

    @property
    def max_codebooks(self) -> int:
        return int(self.lm.cfg.n_codebooks)

    @property
    def max_context_frames(self) -> int:
        return int(self.lm.cfg.max_context_frames)

    def base_logits(self) -> np.ndarray:
        return self._base

    def new_state(self, context_frames: int, chunk_frames: int) -> SpringLMState:
        return self.lm.init_state(1, context_frames, chunk_frames)

    @torch.inference_mode()
    def fine_logits(self, state: Any, view: np.ndarray, levels: tuple[int, int]) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(view, dtype=np.int64))[None]
        logits, _ = self.lm.step(x, state, commit=False, levels=levels)
        return logits[0].numpy()

    @torch.inference_mode()
    def commit(self, state: Any, base: np.ndarray) -> SpringLMState:
        x = torch.from_numpy(np.ascontiguousarray(base, dtype=np.int64))[None]
        return self.lm.commit(x, state)

    @torch.inference_mode()
    def conceal_logits(self, window: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.int64))[None]
        return self.lm.forward_conceal(x, levels=(0, BASE_CODEBOOKS))[0].numpy()


__all__ = ["SpringLMCodingModel"]
