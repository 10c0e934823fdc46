"""What the entropy coder needs from a token model (SpringLM, or a synthetic test model).

The coder never touches torch: a ``CodingModel`` returns float32 numpy logits and keeps an
opaque per-stream state. The contract that makes both ends agree bit for bit:

- ``base_logits`` are static (one row per level), so base packets never depend on other
  packets.
- ``fine_logits(state, view)`` is a pure function of the committed memory in ``state``
  (the base tokens of the chunks within the context reach) and of ``view``, the current
  chunk's tokens with ``MASK`` where a level is to be coded and ``MASK_UPPER`` above the
  bitrate. It must not change ``state``.
- ``commit(state, base)`` appends one chunk's base tokens to the memory (a fixed-capacity
  ring: chunks beyond the reach drop out) and returns the new state.
- ``conceal_logits(window)`` predicts base tokens of frames whose base is ``MASK`` from
  the visible frames around them (bidirectional, uncached); only used on losses. A model
  that cannot (the static no-LM control) sets ``can_conceal = False`` (default True), so
  a receiver asked for LM concealment refuses it when it is made, not at the first loss.

A model may also offer ``fine_cdfs`` (``FusedCdfModel``: the C++ engine does): integer CDFs
straight from the model, equal bit for bit to ``coding.cdf_from_logits`` of its own
``fine_logits``. ``ChunkCoder`` then codes with those CDFs and does not round the logits
first (that rounding only absorbs float differences between two PyTorch builds; the
engine's logits are the same bits on every machine), so a stream coded this way differs
from one coded through the model's logits: such a model reports its own ``model_id``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..config import MASK, MASK_UPPER

__all__ = ["MASK", "MASK_UPPER", "CodingModel", "FusedCdfModel"]


@runtime_checkable
class CodingModel(Protocol):
    """The interface ``ChunkCoder`` and the transceiver use."""

    @property
    def model_id(self) -> str:
        """Identifies the weights (content hash); recorded in stream headers."""

    @property
    def max_codebooks(self) -> int:
        """Levels the model knows (K_max)."""

    @property
    def max_context_frames(self) -> int:
        """Largest entropy-context reach R (frames) the model supports."""

    @property
    def uses_memory(self) -> bool:
        """Whether fine PMFs depend on the memory (False: no packet depends on another)."""

    def base_logits(self) -> np.ndarray:
        """float32 [K_max, V]: static per-level logits (unigram PMFs)."""

    def new_state(self, context_frames: int, chunk_frames: int) -> Any:
        """An empty memory for a stream with reach ``context_frames`` and chunks of C frames."""

    def fine_logits(self, state: Any, view: np.ndarray, levels: tuple[int, int]) -> np.ndarray:
        """float32 [hi - lo, C, V] logits of levels [lo, hi) for the chunk ``view`` int64 [K, C]."""

    def commit(self, state: Any, base: np.ndarray) -> Any:
        """Appends a chunk's base tokens int64 [3, C] to the memory; returns the new state."""

    def conceal_logits(self, window: np.ndarray) -> np.ndarray:
        """float32 [3, W, V] base-level logits for ``window`` int64 [K, W] (MASK = lost)."""


@runtime_checkable
class FusedCdfModel(Protocol):
    """A ``CodingModel`` that also gives the fine CDFs themselves (``ChunkCoder`` uses them)."""

    def fine_cdfs(self, state: Any, view: np.ndarray, levels: tuple[int, int],
                  precision_bits: int) -> np.ndarray:
        """uint32 [hi - lo, C, V + 1]: ``coding.cdf_from_logits(fine_logits(state, view,
        levels), precision_bits)`` row by row, bit for bit."""
