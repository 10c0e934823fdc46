"""RTP framing of SoundSpring packets (RFC 3550 header layout) and the two control messages
(session description, end of stream) as RTCP APP packets on the same port (RFC 5761
multiplexing).

Data datagram (network byte order, as RFC 3550; the SoundSpring packet inside keeps its own
layout, docs/bitstream.md "Packets")::

     0                   1                   2                   3
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |                             SSRC                              |
    |        SoundSpring packet: TOC byte + payload (1..2048 bytes)  ...

- ``PT``: ``PAYLOAD_TYPE`` (96, the first dynamic type); ``M``: set on the first packet of
  a stream.
- ``sequence number``: the transport sequence number of the packet (``SentPacket.seq``:
  ``(chunk * packets_per_chunk + layer) mod 2^16``).
- ``timestamp``: ``(timestamp_base + chunk * chunk_samples) mod 2^32``, in **samples** of
  the 16 kHz audio clock (``CLOCK_RATE_HZ``). Samples, not chunk units, because RFC 3550
  defines the timestamp as the sampling instant on the media clock: the interarrival
  jitter (A.8), RTP analysers and any later change of chunk length then work unchanged.
  The receiver unwraps it to 64 bits and divides by ``chunk_samples`` (a timestamp that is
  not on a chunk boundary is refused).
- ``SSRC``: random per stream; the receiver follows one SSRC.

Control datagram (RTCP APP, PT 204)::

    |V=2|P| subtype |   PT=204      |             length            |
    |                             SSRC                              |
    |                          name = "SSPR"                        |
    |        UTF-8 JSON object, padded with spaces to 32 bits       ...

``subtype`` 0 is the session description (``net.session``), 1 the end of stream. The JSON
follows the strict rules of the stream header (``transport.container.parse_header_json``).

``parse_datagram`` is strict: every field is checked, padding, CSRC lists and header
extensions are bounds-checked, and any violation raises ``TruncatedError`` (too short) or
``BitstreamError`` (anything else), never another exception.

Example:
    >>> d = pack_rtp(RtpPacket(seq=7, timestamp=640, ssrc=0x1234, payload=b"\\x80\\x01"))
    >>> d.hex()
    '8060000700000280000012348001'
    >>> parse_datagram(d)
    RtpPacket(seq=7, timestamp=640, ssrc=4660, payload=b'\\x80\\x01', payload_type=96, marker=False)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .._validate import int_in
from ..config import SAMPLE_RATE_HZ
from ..errors import BitstreamError, ConfigError, TruncatedError
from ..transport import MAX_PACKET_BYTES
from ..transport.container import header_json, parse_header_json

RTP_VERSION = 2
PAYLOAD_TYPE = 96
"""RTP payload type of SoundSpring data packets (the first of the dynamic range 96-127)."""
CLOCK_RATE_HZ = SAMPLE_RATE_HZ
"""RTP timestamp clock: the audio sample clock."""
RTP_HEADER_BYTES = 12
RTCP_APP = 204
APP_NAME = b"SSPR"
SUBTYPE_SESSION = 0
SUBTYPE_END = 1
CONTROL_SUBTYPES = (SUBTYPE_SESSION, SUBTYPE_END)
MAX_CONTROL_JSON_BYTES = 1400
"""Largest control JSON (fits one Ethernet MTU with the IP, UDP and RTCP headers)."""
MAX_DATAGRAM_BYTES = 4096
"""Largest datagram a receiver reads; anything longer is truncated by the read and refused."""

_RTP = struct.Struct("!BBHII")
_RTCP = struct.Struct("!BBHI4s")


@dataclass(frozen=True)
class RtpPacket:
    """One data datagram: a SoundSpring packet with its transport fields.

    Attributes:
        seq: RTP sequence number, 0..65535 (the transport seq).
        timestamp: RTP timestamp in samples of the 16 kHz clock, 0..2^32-1.
        ssrc: synchronisation source, 0..2^32-1.
        payload: the SoundSpring packet (TOC + payload), 1..MAX_PACKET_BYTES bytes.
        payload_type: 0..127 (data packets carry PAYLOAD_TYPE).
        marker: the RTP marker bit (first packet of a stream).
    """

    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    payload_type: int = PAYLOAD_TYPE
    marker: bool = False


@dataclass(frozen=True)
class ControlMessage:
    """One control datagram (RTCP APP "SSPR").

    Attributes:
        subtype: SUBTYPE_SESSION or SUBTYPE_END.
        ssrc: the stream's SSRC.
        body: the JSON object carried.
    """

    subtype: int
    ssrc: int
    body: dict[str, Any]


def pack_rtp(pkt: RtpPacket) -> bytes:
    """The datagram bytes of a data packet.

    Raises:
        ConfigError: a field out of range, or a payload of 0 or more than
            MAX_PACKET_BYTES bytes.
    """
    seq = int_in("seq", pkt.seq, 0, 0xFFFF)
    ts = int_in("timestamp", pkt.timestamp, 0, 0xFFFFFFFF)
    ssrc = int_in("ssrc", pkt.ssrc, 0, 0xFFFFFFFF)
    pt = int_in("payload_type", pkt.payload_type, 0, 127)
    if pt in range(72, 96):  # 200..223 with the marker bit: would read as RTCP (RFC 5761)
        raise ConfigError(f"payload_type {pt} collides with RTCP packet types (RFC 5761)")
    payload = bytes(pkt.payload)
    if not 1 <= len(payload) <= MAX_PACKET_BYTES:
        raise ConfigError(f"payload must be 1..{MAX_PACKET_BYTES} bytes, got {len(payload)}")
    return _RTP.pack(RTP_VERSION << 6, (0x80 if pkt.marker else 0) | pt, seq, ts, ssrc) + payload


def pack_control(msg: ControlMessage) -> bytes:
    """The datagram bytes of a control message (JSON canonical, space-padded to 32 bits).

    Raises:
        ConfigError: an unknown subtype, an SSRC out of range, a body that is not
            JSON-serialisable or longer than MAX_CONTROL_JSON_BYTES.
    """
    if msg.subtype not in CONTROL_SUBTYPES:
        raise ConfigError(f"subtype must be one of {CONTROL_SUBTYPES}, got {msg.subtype!r}")
    ssrc = int_in("ssrc", msg.ssrc, 0, 0xFFFFFFFF)
    body = header_json(msg.body)
    if len(body) > MAX_CONTROL_JSON_BYTES:
        raise ConfigError(
            f"control JSON is {len(body)} bytes; the maximum is {MAX_CONTROL_JSON_BYTES}"
        )
    body += b" " * (-len(body) % 4)
    n_words = (_RTCP.size + len(body)) // 4
    return _RTCP.pack((RTP_VERSION << 6) | msg.subtype, RTCP_APP, n_words - 1, ssrc,
                      APP_NAME) + body


def _parse_control(data: bytes) -> ControlMessage:
    if len(data) < _RTCP.size:
        raise TruncatedError(f"RTCP packet of {len(data)} bytes (at least {_RTCP.size})")
    b0, pt, length, ssrc, name = _RTCP.unpack_from(data)
    if b0 & 0x20:
        raise BitstreamError("RTCP APP with the padding bit set (never written)")
    if pt != RTCP_APP:
        raise BitstreamError(f"RTCP packet type {pt} (only APP, {RTCP_APP}, is used)")
    total = 4 * (length + 1)
    if total > len(data):
        raise TruncatedError(f"RTCP length field says {total} bytes, the datagram has {len(data)}")
    if total != len(data):
        raise BitstreamError(f"{len(data) - total} bytes after the RTCP packet (no compound "
                             "packets are used)")
    if name != APP_NAME:
        raise BitstreamError(f"RTCP APP name {name!r} (expected {APP_NAME!r})")
    subtype = b0 & 0x1F
    if subtype not in CONTROL_SUBTYPES:
        raise BitstreamError(f"unknown control subtype {subtype}")
    text = data[_RTCP.size:]
    if len(text.rstrip(b" ")) > MAX_CONTROL_JSON_BYTES:
        raise BitstreamError(f"control JSON longer than {MAX_CONTROL_JSON_BYTES} bytes")
    body = parse_header_json(text.rstrip(b" "))
    return ControlMessage(subtype, int(ssrc), body)


def parse_datagram(data: bytes | bytearray | memoryview) -> RtpPacket | ControlMessage:
    """Parses one received datagram (data or control; RFC 5761 rule: a second byte in
    200..223 is RTCP).

    Raises:
        TruncatedError: shorter than its headers say.
        BitstreamError: any other malformation (version, sizes, padding, unknown control).
        TypeError: ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"datagram must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 2:
        raise TruncatedError(f"datagram of {len(data)} bytes")
    if data[0] >> 6 != RTP_VERSION:
        raise BitstreamError(f"RTP version {data[0] >> 6} (expected {RTP_VERSION})")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise BitstreamError(f"datagram of {len(data)} bytes (at most {MAX_DATAGRAM_BYTES})")
    if 200 <= data[1] <= 223:
        return _parse_control(data)
    if len(data) < RTP_HEADER_BYTES:
        raise TruncatedError(f"RTP packet of {len(data)} bytes (header is {RTP_HEADER_BYTES})")
    b0, b1, seq, ts, ssrc = _RTP.unpack_from(data)
    start = RTP_HEADER_BYTES + 4 * (b0 & 0x0F)  # CSRC list
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < start + 4:
            raise TruncatedError("RTP packet ends inside its header extension")
        (n_words,) = struct.unpack_from("!H", data, start + 2)
        start += 4 + 4 * n_words
    end = len(data)
    if b0 & 0x20:  # padding: the last byte counts the padding bytes, itself included
        pad = data[-1]
        if pad == 0:
            raise BitstreamError("RTP padding count of 0")
        end -= pad
    if end < start:
        raise TruncatedError("RTP packet shorter than its header, CSRCs, extension and padding")
    payload = data[start:end]
    if not payload:
        raise TruncatedError("RTP packet without payload")
    if len(payload) > MAX_PACKET_BYTES:
        raise BitstreamError(f"RTP payload of {len(payload)} bytes (at most {MAX_PACKET_BYTES})")
    return RtpPacket(int(seq), int(ts), int(ssrc), payload, b1 & 0x7F, bool(b1 & 0x80))


class TimestampUnwrapper:
    """RTP timestamps (32 bits, wrapping) to 64-bit sample positions relative to a base.

    Serial-number arithmetic: a timestamp is read as the value nearest the reference (the
    last one ``commit``-ted; the base before any), so the mapping survives the 2^32 wrap
    (74.6 h at 16 kHz) and a hostile timestamp cannot move the reference unless committed.
    """

    def __init__(self, base: int) -> None:
        self.base = int_in("timestamp_base", base, 0, 0xFFFFFFFF)
        self._ref = 0  # samples since the base of the last committed timestamp

    def position(self, timestamp: int) -> int:
        """Samples since the base (may be negative: before the stream start)."""
        ref_ts = (self.base + self._ref) & 0xFFFFFFFF
        delta = (timestamp - ref_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        return self._ref + delta

    def commit(self, position: int) -> None:
        """Makes ``position`` (from ``position``) the reference of later reads."""
        self._ref = int(position)


__all__ = [
    "APP_NAME", "CLOCK_RATE_HZ", "MAX_CONTROL_JSON_BYTES", "MAX_DATAGRAM_BYTES",
    "PAYLOAD_TYPE", "RTP_HEADER_BYTES", "SUBTYPE_END", "SUBTYPE_SESSION", "ControlMessage",
    "RtpPacket", "TimestampUnwrapper", "pack_control", "pack_rtp", "parse_datagram",
]
