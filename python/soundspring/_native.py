"""The only importer of the compiled extension ``soundspring._core``.

Feature availability is decided here once; other modules import ``core`` from here.
"""

from __future__ import annotations

from .errors import NativeFeatureError

try:
    from . import _core as core
except ImportError as exc:  # pragma: no cover - only without a build
    raise NativeFeatureError(
        "soundspring._core is not built: install the package with "
        "`pip install -e .` (scikit-build-core + pybind11 compile it)"
    ) from exc

__all__ = ["core"]
