"""CDF and symbol generators shared by the coding tests and benchmarks."""

from __future__ import annotations

import numpy as np


def random_cdfs(
    rng: np.random.Generator, n: int, v: int, precision_bits: int, extreme: bool = False
) -> np.ndarray:
    """uint32 [n, v+1] valid CDFs: random frequencies >= 1 summing to 2^precision_bits.

    extreme=True puts one random symbol at 2^p - (v - 1) and every other at the minimum 1.
    """
    total = 1 << precision_bits
    assert 1 <= v <= total
    if extreme:
        freq = np.ones((n, v), dtype=np.int64)
        freq[np.arange(n), rng.integers(0, v, n)] = total - (v - 1)
    else:
        w = rng.exponential(size=(n, v)) ** rng.uniform(0.5, 4.0)
        w /= w.sum(axis=1, keepdims=True)
        freq = 1 + np.floor(w * (total - v)).astype(np.int64)
        freq[np.arange(n), np.argmax(freq, axis=1)] += total - freq.sum(axis=1)
    cdfs = np.zeros((n, v + 1), dtype=np.uint32)
    cdfs[:, 1:] = np.cumsum(freq, axis=1)
    return cdfs


def sample_symbols(rng: np.random.Generator, cdfs: np.ndarray) -> np.ndarray:
    """int32 [n]: symbol i drawn from the distribution of CDF row i."""
    total = cdfs[:, -1].astype(np.int64)
    t = (rng.random(len(cdfs)) * total).astype(np.int64)
    return (np.sum(cdfs[:, 1:] <= t[:, None], axis=1)).astype(np.int32)


def ideal_bits(symbols: np.ndarray, cdfs: np.ndarray) -> float:
    """-sum(log2 p(symbol)) under the CDFs."""
    idx = np.arange(len(symbols))
    freq = cdfs[idx, symbols + 1].astype(np.float64) - cdfs[idx, symbols]
    return float(-np.sum(np.log2(freq / cdfs[:, -1].astype(np.float64))))
