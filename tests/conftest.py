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


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A numpy Generator seeded from the test's name (printed on failure)."""
    seed = sum(map(ord, request.node.name)) % (2**31)
    print(f"seed={seed}")
    return np.random.default_rng(seed)
