"""Small deterministic numpy ``CodingModel``s for transceiver tests (no torch, exact).

Fine logits peak at a token derived from the memory (base tokens of the chunks within the
reach) and from the visible tokens of the current chunk, so a memory mismatch between the
two ends really changes the PMFs. ``SyntheticLM`` also conceals; ``FastLM`` is vectorised
(for tests that code 10^4 chunks); ``FormulaLM`` computes its logits from integers alone
(for golden vectors).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from soundspring.entropy import MASK, MASK_UPPER

V = 1024


class SyntheticLM:
    model_id = "synthetic-lm-v1"
    max_codebooks = 24
    max_context_frames = 50
    uses_memory = True

    def __init__(self, seed: int = 0, perturb: float = 0.0) -> None:
        rng = np.random.default_rng(seed)
        self._base = (rng.normal(size=(24, V)) * 2).astype(np.float32)
        self._profile = (rng.normal(size=(24, V)) * 1.0).astype(np.float32)
        self._perturb = perturb

    def base_logits(self) -> np.ndarray:
        return self._base

    def new_state(self, context_frames: int, chunk_frames: int):
        return deque(maxlen=context_frames // chunk_frames)

    def commit(self, state, base):
        new = deque(state, maxlen=state.maxlen)
        new.append(np.asarray(base, dtype=np.int64).copy())
        return new

    def fine_logits(self, state, view, levels):
        lo, hi = levels
        c = view.shape[1]
        mem = int(sum(int(b.sum()) for b in state)) if state else 0
        visible = np.where(view < MASK, view, 0)
        out = np.empty((hi - lo, c, V), dtype=np.float32)
        grid = np.arange(V)
        for i, level in enumerate(range(lo, hi)):
            for f in range(c):
                centre = (mem * 7 + int(visible[:, f].sum()) * 13 + level * 101 + f * 17) % V
                d = np.minimum(np.abs(grid - centre), V - np.abs(grid - centre))
                out[i, f] = self._profile[level] - d / 8.0 + self._perturb * np.sin(grid + level)
        return out

    def conceal_logits(self, window):
        w = window.shape[1]
        out = np.zeros((3, w, V), dtype=np.float32)
        known = np.flatnonzero(window[0] < MASK)
        for f in range(w):
            if known.size:
                src = known[np.argmin(np.abs(known - f))]
                for level in range(3):
                    out[level, f, window[level, src]] = 10.0
        assert not (window[3:] < MASK_UPPER).any(), "concealment view shows fine levels"
        return out


class _SumMemory:
    """A memory of the last R // C chunks, each remembered by the sum of its base tokens."""

    max_codebooks = 24
    max_context_frames = 50
    uses_memory = True

    def new_state(self, context_frames: int, chunk_frames: int):
        return deque(maxlen=context_frames // chunk_frames)

    def commit(self, state, base):
        new = deque(state, maxlen=state.maxlen)
        new.append(int(np.asarray(base).sum()))
        return new

    @staticmethod
    def _centres(state, view, lo: int, hi: int) -> np.ndarray:
        """int [L, C]: where each fine token's PMF peaks."""
        visible = np.where(view < MASK, view, 0).sum(axis=0)  # [C]
        return (sum(state) * 7 + visible[None, :] * 13 + np.arange(lo, hi)[:, None] * 101) % V


class FastLM(_SumMemory):
    """Vectorised: random per-level profiles plus a peak at the centre token."""

    model_id = "fast-synthetic-lm"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._base = (rng.normal(size=(24, V)) * 2).astype(np.float32)
        self._profile = rng.normal(size=(24, V)).astype(np.float32)

    def base_logits(self) -> np.ndarray:
        return self._base

    def fine_logits(self, state, view, levels):
        lo, hi = levels
        out = np.repeat(self._profile[lo:hi, None, :], view.shape[1], axis=1)
        np.put_along_axis(out, self._centres(state, view, lo, hi)[..., None], 8.0, axis=-1)
        return out


class FormulaLM(_SumMemory):
    """Logits that are exact functions of integers (no RNG, no transcendental functions)."""

    model_id = "formula-lm"
    can_conceal = False

    def base_logits(self) -> np.ndarray:
        k = np.arange(24)[:, None]
        v = np.arange(V)[None, :]
        return (-((v * 37 + k * 11) % 97) / 16.0).astype(np.float32)

    def fine_logits(self, state, view, levels):
        lo, hi = levels
        centre = self._centres(state, view, lo, hi)[..., None]
        return (-np.abs(np.arange(V)[None, None, :] - centre) / 8.0).astype(np.float32)
