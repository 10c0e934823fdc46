"""Loss conditions of the evaluation protocol (DESIGN.md section 9) and how a condition's
loss pattern reaches each system's packets.

Conditions
----------
Named ids, parsed by :func:`parse_condition`:

=============  =====================================================================
id             channel
=============  =====================================================================
``bern<P>``    Bernoulli, loss rate P % (``bern0`` = no loss)
``ge<P>b<B>``  Gilbert-Elliott, stationary loss rate P %, mean burst B packets
``wlan``       the 3-state WLAN Markov model of Milner & James (about 13.8 %, bursts 1.69)
=============  =====================================================================

:data:`DEFAULT_CONDITIONS` is the protocol: ``bern0 bern5 bern10 bern20 bern30 ge10b2
ge10b4 ge20b2 ge20b4 wlan``.

One pattern per condition and clip
----------------------------------
Each (condition, clip) pair draws ONE loss sequence ``flags[n]`` (True = lost) from its
channel model, seeded by :func:`pattern_seed` (SHA-256 of ``"<condition id>|<clip id>"``),
so every system, bitrate and rerun sees the same draw. The sequence is indexed on the 20 ms
grid: ``flags[n]`` belongs to the n-th 20 ms cell of the clip.

Mapping the pattern to packets (the loss-mapping rule)
------------------------------------------------------
A system sends one *transmission slot* every ``slot_frames`` x 20 ms: an Opus packet
(20 ms, 1 cell), or one SoundSpring chunk of C frames (C x 20 ms) with all of its layered
packets (base, fine groups, and any FEC copy riding in them) sent back to back. All packets
of a slot share the slot's fate. :func:`slot_losses` maps the flags to slots by one of two
rules:

``"packet"`` (default)
    slot ``i`` takes ``flags[i]``: the channel runs per transmitted slot, from the same
    seeded state sequence for every system. Every system then sees the condition's nominal
    per-packet loss rate and burst length *in packets* (DESIGN.md section 6 defines bursts
    in packets), and for 20 ms systems (Opus) this is exactly the 20 ms time grid. A system
    with longer slots loses more audio per lost packet (a 40 ms chunk in a burst of 4 is
    160 ms of audio); that is the real cost of its packetisation, so the harness does not
    hide it. This is how the reference system and the Opus literature report "x % loss".
``"time"``
    slot ``i`` is lost iff the 20 ms cell at its start (``flags[i * slot_frames]``) is
    lost: losses coincide in time across systems and bursts keep their duration in ms. The
    stationary loss rate is still the nominal one (sampling a stationary sequence), but
    bursts count fewer packets for long slots. Offered for the sensitivity check.

"Any cell in the slot lost" was rejected: it inflates the loss rate of a C-frame system to
about ``1 - (1 - p)^C`` (19 % instead of 10 % for 40 ms chunks), which is not a matched
condition. Whatever the rule, the sweep records each system's realised slot loss rate.

Example:
    >>> c = parse_condition("ge20b4")
    >>> c.model, c.loss_rate, c.mean_burst, c.expected_loss_pct
    ('gilbert_elliott', 0.2, 4.0, 20)
    >>> flags = c.flags("en/digits/1", 100)
    >>> flags.dtype, flags.shape
    (dtype('bool'), (100,))
    >>> bool((slot_losses(flags, 10, 2, "packet") == flags[:10]).all())
    True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..transport import LossSpec, WlanMarkov, make_loss_model

LossMapping = Literal["packet", "time"]
LOSS_MAPPINGS: tuple[str, ...] = ("packet", "time")

DEFAULT_CONDITIONS: tuple[str, ...] = (
    "bern0", "bern5", "bern10", "bern20", "bern30",
    "ge10b2", "ge10b4", "ge20b2", "ge20b4", "wlan",
)
"""The DESIGN.md section 9 protocol."""

_BERN = re.compile(r"^bern(\d{1,2})$")
_GE = re.compile(r"^ge(\d{1,2})b(\d{1,2})$")


@dataclass(frozen=True)
class Condition:
    """One loss condition.

    Attributes:
        id: the name (``bern10``, ``ge20b4``, ``wlan``).
        model: ``"bernoulli"``, ``"gilbert_elliott"`` or ``"wlan"``.
        loss_rate: nominal stationary loss rate in [0, 1).
        mean_burst: mean loss-run length in packets (1 / (1 - p) for Bernoulli).
    """

    id: str
    model: str
    loss_rate: float
    mean_burst: float

    @property
    def family(self) -> str:
        """Group for tables and plots: ``bernoulli``, ``ge_b<B>`` or ``wlan``."""
        if self.model == "gilbert_elliott":
            return f"ge_b{self.mean_burst:g}"
        return self.model

    @property
    def expected_loss_pct(self) -> int:
        """The loss rate a sender would be told (Opus ``OPUS_SET_PACKET_LOSS_PERC``), %."""
        return round(100 * self.loss_rate)

    @property
    def label(self) -> str:
        if self.model == "bernoulli":
            return f"Bernoulli {100 * self.loss_rate:g} %"
        if self.model == "gilbert_elliott":
            return f"Gilbert-Elliott {100 * self.loss_rate:g} %, burst {self.mean_burst:g}"
        return f"WLAN 3-state ({100 * self.loss_rate:.1f} %)"

    def channel(self, seed: int):  # type: ignore[no-untyped-def]
        """A fresh seeded ``soundspring.transport`` loss model for this condition."""
        kind = {"gilbert_elliott": "gilbert"}.get(self.model, self.model)
        return make_loss_model(LossSpec(kind, self.loss_rate, self.mean_burst), seed)

    def flags(self, clip_id: str, n: int) -> np.ndarray:
        """The first ``n`` flags bool [n] (True = lost) of this condition's pattern for a clip.

        Prefixes agree: ``flags(c, n)[:m] == flags(c, m)``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n must be an int >= 0, got {n!r}")
        if self.loss_rate == 0.0:
            return np.zeros(int(n), dtype=bool)
        return self.channel(pattern_seed(self.id, clip_id)).losses(int(n))


def parse_condition(cid: str) -> Condition:
    """Parses a condition id (see the module docstring).

    Raises:
        ConfigError: unknown form, or an infeasible Gilbert-Elliott pair.
    """
    if not isinstance(cid, str):
        raise ConfigError(f"condition id must be a str, got {type(cid).__name__}")
    if cid == "wlan":
        return Condition("wlan", "wlan", float(WlanMarkov.STATIONARY_LOSS_RATE),
                         float(WlanMarkov.MEAN_BURST))
    m = _BERN.match(cid)
    if m:
        p = int(m.group(1)) / 100
        return Condition(cid, "bernoulli", p, 1.0 / (1.0 - p))
    m = _GE.match(cid)
    if m:
        p, b = int(m.group(1)) / 100, float(m.group(2))
        if p <= 0 or b < 1 or b < p / (1 - p):
            raise ConfigError(f"condition {cid!r}: infeasible Gilbert-Elliott loss {p} / "
                              f"burst {b} (need 0 < p, burst >= max(1, p / (1 - p)))")
        return Condition(cid, "gilbert_elliott", p, b)
    raise ConfigError(f"unknown condition {cid!r}: use bern<P> (P in 0..99), ge<P>b<B> "
                      "(e.g. ge20b4) or wlan")


def pattern_seed(condition_id: str, clip_id: str) -> int:
    """64-bit channel seed of one (condition, clip) pair: SHA-256 of ``"<cond>|<clip>"``."""
    digest = hashlib.sha256(f"{condition_id}|{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def slot_losses(flags: np.ndarray, n_slots: int, slot_frames: int,
                mapping: str = "packet") -> np.ndarray:
    """Maps a 20 ms-grid loss pattern to a system's transmission slots.

    Args:
        flags: bool [N] pattern on the 20 ms grid (True = lost).
        n_slots: slots the system sends for the clip.
        slot_frames: 20 ms cells per slot (1 for Opus, C for C-frame chunks).
        mapping: ``"packet"`` (slot i <- flags[i]) or ``"time"`` (slot i <- the cell at
            its start, flags[i * slot_frames]).

    Returns:
        bool [n_slots].

    Raises:
        ConfigError: unknown mapping, or ``flags`` too short for the slots.
    """
    if mapping not in LOSS_MAPPINGS:
        raise ConfigError(f"loss mapping must be one of {LOSS_MAPPINGS}, got {mapping!r}")
    if slot_frames < 1 or n_slots < 0:
        raise ConfigError(f"need slot_frames >= 1 and n_slots >= 0, got {slot_frames}, {n_slots}")
    idx = np.arange(n_slots) * (slot_frames if mapping == "time" else 1)
    if n_slots and idx[-1] >= flags.shape[0]:
        raise ConfigError(f"loss pattern of {flags.shape[0]} cells is too short for "
                          f"{n_slots} slots of {slot_frames} cells ({mapping!r} mapping)")
    return np.ascontiguousarray(flags[idx], dtype=bool)


__all__ = [
    "DEFAULT_CONDITIONS",
    "LOSS_MAPPINGS",
    "Condition",
    "LossMapping",
    "parse_condition",
    "pattern_seed",
    "slot_losses",
]
