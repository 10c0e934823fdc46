"""Seeded, reproducible packet-loss models (DESIGN section 6; docs/bitstream.md,
"Channel models").

Every model draws from xoshiro256** seeded through SplitMix64 in the C++ core, so a
(model, parameters, seed) triple gives the same mask on every platform. ``losses(n)``
returns the next ``n`` flags as ``bool [n]`` (True = lost); successive calls continue one
stream and ``reset()`` restarts it.

Example:
    >>> from soundspring.transport import GilbertElliott
    >>> ch = GilbertElliott(loss_rate=0.1, mean_burst=2.0, seed=7)
    >>> mask = ch.losses(1000)
    >>> mask.dtype, mask.shape
    (dtype('bool'), (1000,))
    >>> ch.reset(); bool((ch.losses(1000) == mask).all())
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .._native import core
from .._validate import finite_float, int_in
from ..errors import ConfigError

_t = core.transport

_MAX_SEED = 2**64 - 1


def _check_seed(seed: Any) -> int:
    return int_in("seed", seed, 0, _MAX_SEED, form="in [0, 2**64)")


def _check_rate(name: str, value: Any) -> float:
    return finite_float(name, value, what="a finite float")


def _check_n(n: Any) -> int:
    return int_in("n", n, 0, 2**62, form=">= 0")


class LossModel(Protocol):
    """What every loss model offers."""

    def losses(self, n: int) -> npt.NDArray[np.bool_]: ...

    def losses_into(self, out: npt.NDArray[np.bool_]) -> None: ...

    def reset(self) -> None: ...


class _Model:
    _impl: Any

    def losses(self, n: int) -> npt.NDArray[np.bool_]:
        """Draws the next ``n`` loss flags.

        Args:
            n: number of packets, >= 0.

        Returns:
            ``bool [n]``, True = lost.

        Raises:
            ConfigError: n is not a non-negative int.
        """
        return self._impl.losses(_check_n(n))  # type: ignore[no-any-return]

    def losses_into(self, out: npt.NDArray[np.bool_]) -> None:
        """Fills ``out`` (C-contiguous ``bool [N]``) with the next N flags, no allocation.

        Raises:
            TypeError: out is not a C-contiguous bool numpy array.
            ValueError: out is not 1-D or not writeable.
        """
        self._impl.losses_into(out)

    def reset(self) -> None:
        """Restarts the stream: the next draws repeat those after construction."""
        self._impl.reset()


class Bernoulli(_Model):
    """Independent losses: each packet is lost with probability ``loss_rate``.

    Args:
        loss_rate: in [0, 1].
        seed: int in [0, 2**64).

    Raises:
        ConfigError: loss_rate outside [0, 1] or a bad seed.
    """

    def __init__(self, loss_rate: float, seed: int) -> None:
        self.loss_rate = _check_rate("loss_rate", loss_rate)
        self.seed = _check_seed(seed)
        self._impl = _t.BernoulliLoss(self.loss_rate, self.seed)

    def __repr__(self) -> str:
        return f"Bernoulli(loss_rate={self.loss_rate}, seed={self.seed})"


class GilbertElliott(_Model):
    """Two-state Gilbert-Elliott losses with a given stationary loss rate and mean burst.

    P(bad -> good) = 1 / mean_burst and P(good -> bad) = loss_rate / ((1 - loss_rate) *
    mean_burst); bursts are geometric with mean ``mean_burst``. The initial state is drawn
    from the stationary distribution.

    Args:
        loss_rate: stationary loss rate in [0, 1).
        mean_burst: mean loss-run length in packets, >= 1.
        seed: int in [0, 2**64).

    Raises:
        ConfigError: loss_rate outside [0, 1), mean_burst < 1, or an infeasible pair whose
            P(good -> bad) would exceed 1 (mean_burst < loss_rate / (1 - loss_rate)).
    """

    def __init__(self, loss_rate: float, mean_burst: float, seed: int) -> None:
        self.loss_rate = _check_rate("loss_rate", loss_rate)
        self.mean_burst = _check_rate("mean_burst", mean_burst)
        self.seed = _check_seed(seed)
        self._impl = _t.GilbertElliottLoss(self.loss_rate, self.mean_burst, self.seed)

    @property
    def p_good_to_bad(self) -> float:
        return float(self._impl.p_good_to_bad)

    @property
    def p_bad_to_good(self) -> float:
        return float(self._impl.p_bad_to_good)

    def __repr__(self) -> str:
        return (
            f"GilbertElliott(loss_rate={self.loss_rate}, mean_burst={self.mean_burst}, "
            f"seed={self.seed})"
        )


class WlanMarkov(_Model):
    """The 3-state WLAN model of Milner & James (DESIGN section 6).

    States: 1 long loss-free run, 2 loss, 3 short gap. Transitions 1->1 0.9363, 1->2 0.0637;
    2->1 0.3631, 2->2 0.4072, 2->3 0.2297; 3->3 0.5662, 3->2 0.4338. The analytic
    stationary loss rate is ``WlanMarkov.STATIONARY_LOSS_RATE`` (0.13832) and the mean
    burst ``WlanMarkov.MEAN_BURST`` = 1 / (1 - 0.4072) = 1.6869.

    Args:
        seed: int in [0, 2**64).
    """

    STATIONARY_LOSS_RATE: float = float(_t.WlanMarkovLoss.stationary_loss_rate)
    MEAN_BURST: float = float(_t.WlanMarkovLoss.mean_burst)

    def __init__(self, seed: int) -> None:
        self.seed = _check_seed(seed)
        self._impl = _t.WlanMarkovLoss(self.seed)

    def __repr__(self) -> str:
        return f"WlanMarkov(seed={self.seed})"


class Trace(_Model):
    """Replays a loss trace; past its end it wraps around to the first entry.

    The file is text: one entry per line, ``1`` = lost, ``0`` = received; blank lines and
    lines starting with ``#`` are skipped; surrounding spaces, tabs and ``\\r`` are ignored.

    Args:
        path: the trace file.

    Raises:
        ConfigError: the file is missing, a folder, unreadable, empty or larger than
            ``MAX_TRACE_BYTES``; a line that is not 0/1/comment/blank (its number is
            named), or a trace with no entry. Every message names the file.
    """

    MAX_TRACE_BYTES = 64 << 20
    """Largest trace file read (64 MiB: tens of millions of packets)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        try:
            if os.path.isdir(path):
                raise ConfigError(f"cannot read loss trace {name}: it is a folder, not a file")
            with open(path, "rb") as f:
                text = f.read(self.MAX_TRACE_BYTES + 1)
        except FileNotFoundError:
            raise ConfigError(f"cannot read loss trace {name}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read loss trace {name}: {exc.strerror or exc}") from None
        if not text:
            raise ConfigError(f"loss trace {name} is empty; expected one 0/1 per line")
        if len(text) > self.MAX_TRACE_BYTES:
            raise ConfigError(f"loss trace {name} is larger than {self.MAX_TRACE_BYTES >> 20} MiB")
        self.path = name
        try:
            mask = _t.TraceLoss.parse_text(text)
        except ConfigError as exc:
            msg = str(exc).removeprefix("loss trace ")
            raise ConfigError(f"loss trace {name}: {msg}") from None
        self._init(mask)

    @classmethod
    def from_mask(cls, mask: npt.ArrayLike) -> Trace:
        """Builds a trace from a 1-D array of 0/1 (or bools), True/1 = lost.

        Raises:
            ConfigError: an empty mask or values other than 0/1.
            ValueError: mask is not 1-D.
        """
        arr = np.asarray(mask)
        if arr.ndim != 1:
            raise ValueError(f"mask must be 1-D [N] of 0/1, got shape {arr.shape}")
        if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"mask must hold bools or integers 0/1, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ConfigError("mask entries must be 0 or 1")
        self = cls.__new__(cls)
        self.path = None  # type: ignore[assignment]
        self._init(np.ascontiguousarray(arr, dtype=np.uint8))
        return self

    def _init(self, mask: npt.NDArray[np.uint8]) -> None:
        self._impl = _t.TraceLoss(mask)

    def __len__(self) -> int:
        return int(self._impl.size)

    @property
    def position(self) -> int:
        """Index of the next trace entry to replay."""
        return int(self._impl.position)

    def __repr__(self) -> str:
        return f"Trace(path={self.path!r}, entries={len(self)})"


LOSS_MODEL_KINDS = ("bernoulli", "gilbert", "wlan", "trace", "none")
"""What :func:`make_loss_model` builds: the ``--channel`` choices of the commands."""


@dataclass(frozen=True)
class LossSpec:
    """A loss model by name and parameters, without its seed.

    Attributes:
        kind: one of ``LOSS_MODEL_KINDS``; ``"none"`` is a lossless channel.
        loss_rate: loss probability in [0, 1) (``bernoulli``; ``gilbert``'s mean rate).
        mean_burst: mean run of consecutive losses, >= 1 (``gilbert``).
        trace: the loss-trace file (``trace``).
    """

    kind: str
    loss_rate: float = 0.0
    mean_burst: float = 1.0
    trace: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOSS_MODEL_KINDS:
            raise ConfigError(f"loss model kind must be one of {', '.join(LOSS_MODEL_KINDS)}, "
                              f"got {self.kind!r}")
        if self.kind == "trace" and not self.trace:
            raise ConfigError("a trace loss model needs a trace file")


def make_loss_model(spec: LossSpec, seed: int) -> LossModel | None:
    """The one factory of loss models by name: a fresh, seeded model of ``spec``.

    Returns:
        The model (its ``losses(n)`` starts at the beginning of its stream), or None for
        ``kind="none"`` (nothing is lost). ``trace`` ignores the seed.

    Raises:
        ConfigError: the parameters the model refuses (see each model), or an unreadable
            trace file.

    Example:
        >>> make_loss_model(LossSpec("gilbert", 0.1, 2.0), seed=0).losses(4).shape
        (4,)
    """
    if spec.kind == "bernoulli":
        return Bernoulli(spec.loss_rate, seed)
    if spec.kind == "gilbert":
        return GilbertElliott(spec.loss_rate, spec.mean_burst, seed)
    if spec.kind == "wlan":
        return WlanMarkov(seed)
    if spec.kind == "trace":
        return Trace(spec.trace)  # type: ignore[arg-type]  # checked in LossSpec
    return None


__all__ = [
    "LOSS_MODEL_KINDS",
    "Bernoulli",
    "GilbertElliott",
    "LossModel",
    "LossSpec",
    "Trace",
    "WlanMarkov",
    "make_loss_model",
]
