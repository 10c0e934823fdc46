"""SpringLM per-chunk latency on one thread: cached ``step`` vs uncached window recompute.

Run: ``pytest benchmarks/bench_lm.py --benchmark-only`` (smoke: ``--benchmark-disable``).
Shipped size (``springlm_default``), random weights (latency does not depend on them),
R = 15 frames of context, chunks of C = 2 frames (40 ms). The real-time budget is one
chunk interval, 40 ms, for everything; the LM targets well under 10 ms per chunk.

Cases:
    step_commit:  one coding forward (fine levels of the bitrate) + pass 1 into the memory
    step_peek:    one coding forward only (an extra progressive group)
    commit_only:  pass 1 of a chunk whose fine packets are not decoded
    uncached:     re-running ``forward_coding`` over the R + C frame window every chunk
                  (what caching saves)
"""

from __future__ import annotations

import pytest
import torch
from soundspring.models.masked_lm import MASK, SpringLM, springlm_default

R, C = 15, 2
LEVELS = {"3kbps": 6, "6kbps": 12, "12kbps": 24}


@pytest.fixture(scope="module")
def lm() -> SpringLM:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return SpringLM(springlm_default()).eval()


def _chunk(n_levels: int, frames: int = C) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 1024, (1, n_levels, frames), generator=g)
    x[:, 3:] = MASK
    return x


def _warm_state(lm: SpringLM, n_levels: int):
    state = lm.init_state(1, R, C)
    for _ in range(R // C + 2):  # a full ring
        _, state = lm.step(_chunk(n_levels), state)
    return state


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_step_commit(benchmark, lm: SpringLM, bitrate: str) -> None:
    k = LEVELS[bitrate]
    state, x = _warm_state(lm, k), _chunk(k)
    logits, _ = benchmark(lm.step, x, state, True, (3, k))
    assert logits.shape == (1, k - 3, C, 1024)


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_step_peek(benchmark, lm: SpringLM, bitrate: str) -> None:
    k = LEVELS[bitrate]
    state, x = _warm_state(lm, k), _chunk(k)
    logits, _ = benchmark(lm.step, x, state, False, (3, k))
    assert logits.shape == (1, k - 3, C, 1024)


def test_commit_only(benchmark, lm: SpringLM) -> None:
    state, x = _warm_state(lm, 3), _chunk(3)
    benchmark(lm.commit, x, state)


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_uncached_window(benchmark, lm: SpringLM, bitrate: str) -> None:
    k = LEVELS[bitrate]
    frames = (R // C + 1) * C
    x = _chunk(k, frames)

    @torch.no_grad()
    def run() -> torch.Tensor:
        return lm.forward_coding(x, R, C, levels=(3, k))[:, :, -C:]

    assert benchmark(run).shape == (1, k - 3, C, 1024)
