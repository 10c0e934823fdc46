"""SoundSpring: a loss-resilient neural speech transceiver.

The public API is re-exported here; importing the package has no side effects and loads
neither torch nor the compiled core until a submodule that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "coding": "soundspring.coding",
    "transport": "soundspring.transport",
    "errors": "soundspring.errors",
    "config": "soundspring.config",
    "load_codec": "soundspring.models.weights_io:load_codec",
    "load_models": "soundspring.models.weights_io:load_models",
    "Transmitter": "soundspring.transceiver:Transmitter",
    "Receiver": "soundspring.transceiver:Receiver",
    "TransceiverConfig": "soundspring.transceiver:TransceiverConfig",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'soundspring' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = import_module(module_name)
    return getattr(module, attr) if attr else module


__all__ = [
    "Receiver",
    "TransceiverConfig",
    "Transmitter",
    "__version__",
    "coding",
    "config",
    "errors",
    "load_codec",
    "load_models",
    "transport",
]
