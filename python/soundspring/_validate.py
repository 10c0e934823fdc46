"""Boundary checks of scalar arguments, shared by the facades: typed errors naming the
argument and the expected form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError


def int_in(name: str, value: Any, lo: int, hi: int, form: str | None = None) -> int:
    """Returns ``value`` as an int if it is an integer (not a bool) in [lo, hi].

    Raises:
        ConfigError: "<name> must be an int in [lo, hi], got ..." (or ``form`` instead of
            the range when given, e.g. "in [0, 2**64)").
    """
    expected = form or f"in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int {expected}, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ConfigError(f"{name} must be an int {expected}, got {value}")
    return int(value)


def finite_float(name: str, value: Any, what: str = "a finite number") -> float:
    """Returns ``value`` as a float if it is a finite real number (not a bool).

    Raises:
        ConfigError: "<name> must be <what>, got ...".
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be {what}, got {v}")
    return v
