"""Shared test configuration: hypothesis profiles, seeds.

Profiles: ``ci`` (default; bounded examples, no deadline) and ``dev`` (more examples):
select with ``HYPOTHESIS_PROFILE=dev``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run torch on one thread: the streaming path's real-time setting, and no
    spin-waiting against other processes on a 2-core machine."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A numpy Generator seeded from the test's name (printed on failure)."""
    seed = sum(map(ord, request.node.name)) % (2**31)
    print(f"seed={seed}")
    return np.random.default_rng(seed)
