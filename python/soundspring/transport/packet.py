"""Packets: one TOC byte (version, layer, FEC flag) + payload (docs/bitstream.md, "Packets").

Example:
    >>> from soundspring.transport import Packet, FecCopy, parse_packet
    >>> pkt = Packet(layer=1, payload=b"\\x12\\x34", fec=FecCopy(offset=0, payload=b"\\xab"))
    >>> data = pkt.to_bytes()
    >>> data.hex()
    '580001ab1234'
    >>> parse_packet(data) == pkt
    True
"""

from __future__ import annotations

import dataclasses

from .._native import core

_t = core.transport

PACKET_VERSION: int = int(_t.PACKET_VERSION)
"""Format version carried in TOC bits 7-6."""
MAX_LAYERS: int = int(_t.MAX_LAYERS)
"""Layers 0 (base) .. 3 (fine groups)."""
MAX_PACKET_BYTES: int = int(_t.MAX_PACKET_BYTES)
"""Largest packet, TOC included."""
MAX_FEC_BYTES: int = int(_t.MAX_FEC_BYTES)
"""Largest FEC copy that the 1-2 byte length field can announce."""


@dataclasses.dataclass(frozen=True)
class FecCopy:
    """A copy of the base payload of chunk ``this_chunk - offset``.

    Attributes:
        offset: chunks back, 0..255 (0 = the same chunk; only in fine packets).
        payload: the copied base payload, 1..MAX_FEC_BYTES bytes.
    """

    offset: int
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Packet:
    """One layer of one chunk.

    Attributes:
        layer: 0 = base (codebooks 0-2), 1..3 = fine groups.
        payload: the layer's coded payload (may be empty).
        fec: an optional FEC copy of an earlier chunk's base payload.
    """

    layer: int
    payload: bytes
    fec: FecCopy | None = None

    def to_bytes(self) -> bytes:
        """Serialises the packet.

        Raises:
            ConfigError: layer outside 0..3, FEC offset outside 0..255 (or 0 in a base
                packet), FEC payload empty or too long, or more than MAX_PACKET_BYTES in all.
            TypeError: payloads that are not bytes-like.
        """
        if self.fec is None:
            return bytes(_t.serialize_packet(self.layer, self.payload))
        return bytes(
            _t.serialize_packet(self.layer, self.payload, self.fec.offset, self.fec.payload)
        )


def parse_packet(data: bytes | bytearray | memoryview) -> Packet:
    """Parses one packet.

    Args:
        data: the packet bytes (1..MAX_PACKET_BYTES).

    Returns:
        The Packet; ``parse_packet(p.to_bytes()) == p`` and every accepted input
        re-serialises to the same bytes.

    Raises:
        TruncatedError: empty input, or an FEC block longer than the bytes left.
        UnsupportedVersionError: a TOC version other than PACKET_VERSION.
        BitstreamError: oversized input, reserved TOC bits set, a zero or non-shortest
            FEC length, or a base packet with FEC offset 0.
        TypeError: data is not bytes-like.
    """
    layer, payload, fec_offset, fec_payload = _t.parse_packet(data)
    fec = None if fec_offset is None else FecCopy(int(fec_offset), bytes(fec_payload))
    return Packet(int(layer), bytes(payload), fec)


__all__ = [
    "MAX_FEC_BYTES",
    "MAX_LAYERS",
    "MAX_PACKET_BYTES",
    "PACKET_VERSION",
    "FecCopy",
    "Packet",
    "parse_packet",
]
