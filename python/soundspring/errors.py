"""Typed exceptions of SoundSpring.

Every error that bad input can cause is one of these (or a plain TypeError for a wrong
Python/numpy type). The C++ core's StatusCode maps one-to-one onto them:

    kInvalidArgument    -> ConfigError        (also a ValueError)
    kCorrupt            -> BitstreamError     (also a ValueError)
    kTruncated          -> TruncatedError     (a BitstreamError)
    kBufferTooSmall     -> SoundspringError   (an internal sizing bug, never user input)
    kUnsupportedVersion -> UnsupportedVersionError (a BitstreamError)
    kIntegrity          -> IntegrityError     (a BitstreamError)
"""

from __future__ import annotations


class SoundspringError(Exception):
    """Base class of every SoundSpring error."""


class ConfigError(SoundspringError, ValueError):
    """An argument or configuration value is out of its documented range."""


class BitstreamError(SoundspringError, ValueError):
    """Bytes that do not form a valid packet, container or coded payload."""


class TruncatedError(BitstreamError):
    """Bytes end before the structure they announce is complete."""


class UnsupportedVersionError(BitstreamError):
    """A format version this build of SoundSpring cannot read."""


class IntegrityError(BitstreamError):
    """An integrity check (CRC) over decoded content failed."""


class DeviceError(SoundspringError, RuntimeError):
    """An accelerator call failed at run time (a CUDA runtime error, no usable device)."""


class ModelMismatchError(SoundspringError):
    """A stream or checkpoint was produced by a different model than the one loaded."""


class NativeFeatureError(SoundspringError, RuntimeError):
    """A compiled feature (extension module, CUDA kernels) is not available in this build."""


__all__ = [
    "BitstreamError",
    "ConfigError",
    "DeviceError",
    "IntegrityError",
    "ModelMismatchError",
    "NativeFeatureError",
    "SoundspringError",
    "TruncatedError",
    "UnsupportedVersionError",
]
