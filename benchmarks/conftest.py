"""Benchmark configuration: one torch thread, fixed seeds, synthetic inputs.

Run: ``pytest benchmarks`` (timings), ``pytest benchmarks --benchmark-disable`` (smoke, CI).
Compare runs on the same machine kind: ``--benchmark-autosave`` then ``--benchmark-compare``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
