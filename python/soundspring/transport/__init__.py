"""Transport: packets, the .spring container, loss models and the jitter buffer.

See docs/bitstream.md for the normative byte layouts and behaviours.
"""

from __future__ import annotations

from .channel import (
    LOSS_MODEL_KINDS,
    Bernoulli,
    GilbertElliott,
    LossModel,
    LossSpec,
    Trace,
    WlanMarkov,
    make_loss_model,
)
from .container import (
    ContainerContents,
    ContainerWriter,
    DamageRegion,
    Record,
    read_container,
    write_container,
)
from .jitter_buffer import JitterBuffer, JitterStats, PlayoutChunk, PushOutcome
from .packet import MAX_LAYERS, MAX_PACKET_BYTES, PACKET_VERSION, FecCopy, Packet, parse_packet

__all__ = [
    "LOSS_MODEL_KINDS",
    "MAX_LAYERS",
    "MAX_PACKET_BYTES",
    "PACKET_VERSION",
    "Bernoulli",
    "ContainerContents",
    "ContainerWriter",
    "DamageRegion",
    "FecCopy",
    "GilbertElliott",
    "JitterBuffer",
    "JitterStats",
    "LossModel",
    "LossSpec",
    "Packet",
    "PlayoutChunk",
    "PushOutcome",
    "Record",
    "Trace",
    "WlanMarkov",
    "make_loss_model",
    "parse_packet",
    "read_container",
    "write_container",
]
