"""Packets: TOC layout, FEC block, round trips, and every rejection path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from soundspring.errors import BitstreamError, ConfigError, TruncatedError, UnsupportedVersionError
from soundspring.transport import MAX_PACKET_BYTES, FecCopy, Packet, parse_packet

fec_st = st.none() | st.builds(FecCopy, st.integers(1, 255), st.binary(min_size=1, max_size=300))


@given(layer=st.integers(0, 3), payload=st.binary(max_size=400), fec=fec_st)
def test_round_trip(layer: int, payload: bytes, fec: FecCopy | None) -> None:
    pkt = Packet(layer, payload, fec)
    data = pkt.to_bytes()
    assert parse_packet(data) == pkt
    assert data[0] >> 6 == 2 and (data[0] >> 4) & 3 == layer
    assert bool(data[0] & 0x08) == (fec is not None)


def test_golden_layout() -> None:
    assert Packet(0, b"\x01\x02").to_bytes() == b"\x80\x01\x02"
    assert Packet(3, b"").to_bytes() == b"\xb0"
    # fine packet with an FEC copy of its own chunk's base (offset 0), 1-byte length
    assert Packet(1, b"\x12", FecCopy(0, b"\xab\xcd")).to_bytes() == b"\x98\x00\x02\xab\xcd\x12"
    # 2-byte FEC length: 300 = 0x012C -> 0x81 0x2C
    data = Packet(2, b"", FecCopy(5, bytes(300))).to_bytes()
    assert data[:4] == b"\xa8\x05\x81\x2c" and len(data) == 304


def test_every_accepted_byte_string_reserialises_identically() -> None:
    for toc in range(256):
        for tail in (b"", b"\x01", b"\x01\x01\x07", b"\x02\x81\x00" + bytes(256), b"\x00\x03abc"):
            data = bytes([toc]) + tail
            try:
                pkt = parse_packet(data)
            except BitstreamError:
                continue
            assert pkt.to_bytes() == data


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", TruncatedError, "empty"),
        (b"\x00", UnsupportedVersionError, "version 0"),
        (b"\x40\x01", UnsupportedVersionError, "version 1"),  # format 1: before the base checks
        (b"\xc0", UnsupportedVersionError, "version 3"),
        (b"\x81", BitstreamError, "reserved"),
        (b"\x84\x00", BitstreamError, "reserved"),
        (b"\x98", TruncatedError, "FEC"),
        (b"\x98\x01", TruncatedError, "FEC"),
        (b"\x98\x01\x05ab", TruncatedError, "announces 5"),
        (b"\x98\x01\x81", TruncatedError, "2-byte"),
        (b"\x98\x01\x80\x05abcde", BitstreamError, "1-byte form"),
        (b"\x98\x01\x00", BitstreamError, "length 0"),
        (b"\x88\x00\x01a", BitstreamError, "offset 0"),
        (b"\x80" + bytes(MAX_PACKET_BYTES), BitstreamError, "exceeds"),
    ],
)
def test_malformed_rejected(data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_packet(data)


def test_truncation_of_valid_packet_is_typed() -> None:
    data = Packet(1, b"xyz", FecCopy(3, bytes(range(200)))).to_bytes()
    for n in range(len(data)):
        try:
            parse_packet(data[:n])
        except TruncatedError:
            pass
        # a cut inside the primary payload is still a valid (shorter) packet


def test_max_size_accepted_and_oversize_serialise_refused() -> None:
    assert parse_packet(b"\x80" + bytes(MAX_PACKET_BYTES - 1)).payload == bytes(
        MAX_PACKET_BYTES - 1
    )
    with pytest.raises(ConfigError, match="maximum"):
        Packet(0, bytes(MAX_PACKET_BYTES)).to_bytes()


@pytest.mark.parametrize(
    ("pkt", "match"),
    [
        (Packet(4, b""), "layer"),
        (Packet(-1, b""), "layer"),
        (Packet(0, b"", FecCopy(0, b"a")), "fec_offset >= 1"),
        (Packet(1, b"", FecCopy(256, b"a")), "fec_offset"),
        (Packet(1, b"", FecCopy(1, b"")), "FEC payload"),
    ],
)
def test_serialise_rejects_bad_fields(pkt: Packet, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        pkt.to_bytes()


def test_wrong_types() -> None:
    with pytest.raises(TypeError, match="packet must be bytes-like"):
        parse_packet("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload"):
        Packet(0, 123).to_bytes()  # type: ignore[arg-type]
    parse_packet(memoryview(b"\x80\x01"))
    parse_packet(bytearray(b"\x80\x01"))
