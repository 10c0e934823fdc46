"""SpringLM as a ``soundspring.entropy.CodingModel``: numpy in and out, batch 1, no grad.

Both ends run every stream at batch size 1 through this adapter, so the logits are the
same bits on the same build and thread count (SpringLM's measured invariance: bit-identical
across 1 and 2 threads at B = 1); the entropy coder rounds them to a coarse grid and the
integrity check catches the rare value that lands on a rounding boundary elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .masked_lm import SpringLM, SpringLMState

DEFAULT_LM_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "springlm_default.pt"


class SpringLMCodingModel:
    """Adapts a ``SpringLM`` to the ``CodingModel`` protocol of the entropy coder."""

    uses_memory = True

    def __init__(self, lm: SpringLM) -> None:
        self.lm = lm.eval()
        self._base = np.ascontiguousarray(
            lm.unigram_logprobs.detach().to(torch.float32).numpy()
        )  # [24, V]
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
        return self.lm.forward_conceal(x, levels=(0, 3))[0].numpy()


def load_coding_model(path: str | Path | None, codec) -> SpringLMCodingModel:
    """Loads SpringLM weights (None = the shipped default) checked against ``codec``.

    Raises:
        ConfigError: no weights at ``path`` (or none shipped yet).
        ModelMismatchError: the LM was trained on the tokens of another codec.
    """
    from .codec import codec_tokenizer_hash
    from .lm_weights import load_lm

    p = Path(path) if path is not None else DEFAULT_LM_WEIGHTS
    if not p.exists():
        raise ConfigError(
            f"SpringLM weights {str(p)!r} not found"
            + (
                "; no default LM is shipped yet: pass --lm PATH or --lm none"
                if path is None
                else ""
            )
        )
    return SpringLMCodingModel(load_lm(p, tokenizer_sha256=codec_tokenizer_hash(codec)))
