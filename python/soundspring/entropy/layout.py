"""Which RVQ levels ride in which packet layer at a bitrate (DESIGN.md sections 2 and 6)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..config import BASE_CODEBOOKS, LAYER_BOUNDS, codebooks_for_bitrate, layers_for_codebooks


@dataclass(frozen=True)
class LayerLayout:
    """Levels per layer for ``n_codebooks`` codebooks: base [0, 3), then the fine groups.

    Example:
        >>> LayerLayout.for_bitrate(6).layers
        ((0, 3), (3, 6), (6, 12))
    """

    n_codebooks: int

    @classmethod
    def for_bitrate(cls, bitrate_kbps: float) -> LayerLayout:
        return _layout_for_codebooks(codebooks_for_bitrate(bitrate_kbps))

    @cached_property
    def n_layers(self) -> int:
        return layers_for_codebooks(self.n_codebooks)

    @cached_property
    def layers(self) -> tuple[tuple[int, int], ...]:
        """(first level, end level) of each layer, clipped to ``n_codebooks``."""
        return tuple(
            (LAYER_BOUNDS[i], min(LAYER_BOUNDS[i + 1], self.n_codebooks))
            for i in range(self.n_layers)
        )

    @property
    def base_levels(self) -> int:
        return min(BASE_CODEBOOKS, self.n_codebooks)


@lru_cache(maxsize=64)
def _layout_for_codebooks(n_codebooks: int) -> LayerLayout:
    """One shared (immutable) layout per codebook count: the per-chunk paths ask often."""
    return LayerLayout(n_codebooks)
