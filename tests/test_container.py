"""The .spring container: round trips, header errors, header copies and recovery around
damage, strict header JSON."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from soundspring.errors import (
    BitstreamError,
    ConfigError,
    IntegrityError,
    ModelMismatchError,
    TruncatedError,
    UnsupportedVersionError,
)
from soundspring.transport import ContainerWriter, Record, read_container, write_container
from soundspring.transport.container import (
    CONTAINER_VERSION,
    HEADER_COPY_INTERVAL,
    HEADER_COPY_MARKER,
    MAX_HEADER_COPY_JSON_BYTES,
    MAX_JSON_DEPTH,
    RECORD_OVERHEAD_BYTES,
    encode_header,
    encode_header_copy,
    encode_record,
    parse_header_json,
)

HEADER = {"model_id": "springlm-test", "sample_rate_hz": 16000, "chunk_frames": 2}
# The shape of a real stream header (transceiver.stream.stream_header), ids as long as real ones.
REAL_HEADER = {
    "format": "soundspring",
    "codec_id": "3f" * 32,
    "model_id": "a1" * 32,
    "sample_rate_hz": 16000,
    "n_samples": 123456,
    "bitrate_kbps": 6.0,
    "chunk_frames": 2,
    "context_frames": 15,
    "progressive": False,
    "check_bits": 8,
    "precision_bits": 16,
    "fec": True,
    "layered": False,
}

# write_container(buf, {"a": 1}, [(7, 3, b"\x40\xaa")]): header, copy, record, closing copy.
GOLDEN_HEX = (
    "535052470200070000007b2261223a317d5f454098"  # SPRG v2 json_len=7 {"a":1} crc
    "5aa51500ffffffffffffffff"  # header copy: sync, len 21, seq = chunk = 0xFFFFFFFF
    "535052470200070000007b2261223a317d5f454098"  # ... its payload: the stream header
    "0bbbd430"  # ... record crc
    "5aa5020007000000030000" "0040aad434dc35"  # record seq 7 chunk 3 packet 40 aa, crc
    "5aa51500ffffffffffffffff535052470200070000007b2261223a317d5f4540980bbbd430"  # copy
)


def make_records(n: int, rng: np.random.Generator) -> list[Record]:
    out = []
    for i in range(n):
        size = int(rng.integers(1, 40))
        out.append(Record(i, i // 3, bytes([0x40 | (i % 3) << 4]) + rng.bytes(size - 1)))
    return out


def encode(records: list[Record], header: dict = HEADER) -> bytes:
    buf = io.BytesIO()
    write_container(buf, header, records)
    return buf.getvalue()


def header_only(records: list[Record], header: dict = HEADER) -> bytes:
    """A version-2 container written without header copies (as a writer may do)."""
    body = b"".join(encode_record(r.seq, r.chunk, r.packet) for r in records)
    return encode_header(header) + body


def fix_crc(data: bytes | bytearray) -> bytes:
    """Recomputes the stream-header CRC after an edit of the header bytes."""
    data = bytearray(data)
    n = int.from_bytes(data[6:10], "little")
    data[10 + n : 14 + n] = zlib.crc32(bytes(data[: 10 + n])).to_bytes(4, "little")
    return bytes(data)


@given(
    header=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5),
    items=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 2), st.binary(min_size=1, max_size=64)
        ),
        max_size=20,
    ),
)
def test_round_trip(header: dict, items: list[tuple[int, int, bytes]]) -> None:
    data = encode([Record(*it) for it in items], header)
    contents = read_container(data)
    assert contents.header == header and contents.damage == []
    assert [(r.seq, r.chunk, r.packet) for r in contents.records] == items
    assert contents.version == CONTAINER_VERSION == 2 and not contents.header_recovered
    assert contents.header_copies == (2 if items else 1)  # after the header and at the end


def test_path_and_writer_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    recs = make_records(30, rng)
    path = tmp_path / "a.spring"
    write_container(path, HEADER, [(r.seq, r.chunk, r.packet) for r in recs])
    with ContainerWriter(tmp_path / "b.spring", HEADER) as w:
        for r in recs:
            w.write(r.seq, r.chunk, r.packet)
    assert path.read_bytes() == (tmp_path / "b.spring").read_bytes()
    with open(path, "rb") as f:
        contents = read_container(f)
    assert [r.packet for r in contents.records] == [r.packet for r in recs]
    assert contents.records[0].offset == len(encode_header(HEADER)) + len(
        encode_header_copy(HEADER)
    )
    w.close()  # idempotent
    with pytest.raises(ConfigError, match="after close"):
        w.write(0, 0, b"\x40")


def test_layout_matches_spec_with_zlib_crc() -> None:
    data = encode([Record(7, 3, b"\x40\xaa")], {"a": 1})
    assert data.hex() == GOLDEN_HEX
    json_len = int.from_bytes(data[6:10], "little")
    assert data[:6] == b"SPRG\x02\x00" and data[10 : 10 + json_len] == b'{"a":1}'
    head_end = 14 + json_len
    head = data[:head_end]
    assert int.from_bytes(head[-4:], "little") == zlib.crc32(head[:-4])
    copy = data[head_end : head_end + RECORD_OVERHEAD_BYTES + len(head)]
    assert copy[:2] == b"\x5a\xa5" and int.from_bytes(copy[2:4], "little") == len(head)
    assert copy[4:12] == b"\xff" * 8 and copy[12:-4] == head
    assert int.from_bytes(copy[-4:], "little") == zlib.crc32(copy[2:-4])
    rec = data[head_end + len(copy) : head_end + len(copy) + RECORD_OVERHEAD_BYTES + 2]
    assert rec[:2] == b"\x5a\xa5" and int.from_bytes(rec[2:4], "little") == 2
    assert int.from_bytes(rec[4:8], "little") == 7 and int.from_bytes(rec[8:12], "little") == 3
    assert int.from_bytes(rec[-4:], "little") == zlib.crc32(rec[2:-4])
    assert data.endswith(copy) and len(data) == head_end + 2 * len(copy) + len(rec)


def test_copies_every_interval_and_at_the_end() -> None:
    n = 2 * HEADER_COPY_INTERVAL + 100
    recs = [Record(i, i, b"\x40") for i in range(n)]
    data = encode(recs)
    contents = read_container(data)
    assert contents.header_copies == 4 and len(contents.records) == n
    head, copy, rec = len(encode_header(HEADER)), len(encode_header_copy(HEADER)), 17
    assert len(data) == head + 4 * copy + n * rec
    offsets = [r.offset for r in contents.records]
    assert offsets[0] == head + copy
    assert offsets[HEADER_COPY_INTERVAL] == head + 2 * copy + HEADER_COPY_INTERVAL * rec
    # a record count that is a multiple of the interval ends with a single copy
    exact = encode(recs[:HEADER_COPY_INTERVAL])
    assert read_container(exact).header_copies == 2
    # an empty stream: the header and one copy
    assert len(encode([])) == head + copy and read_container(encode([])).header_copies == 1


def test_every_single_bit_flip_of_a_real_header_is_recovered() -> None:
    recs = [Record(i, i, bytes([0x40, i])) for i in range(12)]
    data = encode(recs, REAL_HEADER)
    head = len(encode_header(REAL_HEADER))
    assert head > 250
    for bit in range(8 * head):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        contents = read_container(bytes(bad))
        assert contents.header == REAL_HEADER, bit
        assert contents.header_recovered and contents.header_copy_offset == head, bit
        assert [(r.seq, r.packet) for r in contents.records] == [(r.seq, r.packet) for r in recs]
        assert contents.damage[0].offset == 0 and contents.damage[0].size == head, bit
        assert len(contents.damage) == 1 and contents.header_error, bit
        with pytest.raises(IntegrityError, match="stream header"):
            read_container(bytes(bad), strict=True)


def test_header_and_first_copy_lost_later_copies_stand_in(rng: np.random.Generator) -> None:
    recs = [Record(i, i, b"\x40" + rng.bytes(3)) for i in range(HEADER_COPY_INTERVAL + 50)]
    data = bytearray(encode(recs, REAL_HEADER))
    head, copy = len(encode_header(REAL_HEADER)), len(encode_header_copy(REAL_HEADER))
    data[: head + copy] = bytes(head + copy)  # zeroes over the header and the first copy
    contents = read_container(bytes(data))
    assert contents.header == REAL_HEADER and contents.header_recovered
    assert contents.damage[0].offset == 0 and contents.damage[0].size == head + copy
    assert len(contents.records) == len(recs)
    second = head + copy + HEADER_COPY_INTERVAL * (RECORD_OVERHEAD_BYTES + 4)
    assert contents.header_copy_offset == second
    # truncated before the closing copy: the periodic copy still serves
    cut = read_container(bytes(data[: len(data) - copy - 40]))
    assert cut.header == REAL_HEADER and cut.header_copy_offset == second
    # every copy gone too: the primary header's own error
    wiped = bytearray(data)
    for off in (second, len(data) - copy):
        wiped[off : off + copy] = bytes(copy)
    with pytest.raises(BitstreamError, match="magic"):
        read_container(bytes(wiped))


def test_header_errors() -> None:
    recs = [Record(0, 0, b"\x40")]
    data = header_only(recs)  # no copies: the primary header's errors show
    with pytest.raises(BitstreamError, match="magic"):
        read_container(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="magic"):
        read_container(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200))
    with pytest.raises(TruncatedError, match="magic"):
        read_container(b"SP")
    with pytest.raises(TruncatedError):
        read_container(data[:12])
    with pytest.raises(UnsupportedVersionError, match="version 3"):
        read_container(fix_crc(data[:4] + b"\x03" + data[5:]))
    with pytest.raises(UnsupportedVersionError, match="version 0"):
        read_container(data[:4] + b"\x00" + data[5:])
    with pytest.raises(BitstreamError, match="reserved"):
        read_container(data[:5] + b"\x01" + data[6:])
    with pytest.raises(BitstreamError, match="maximum"):
        read_container(data[:6] + (1 << 20).to_bytes(4, "little") + data[10:])
    bad = bytearray(data)
    bad[12] ^= 0x01
    with pytest.raises(IntegrityError, match="header CRC"):
        read_container(bytes(bad))
    # The same damage with copies present: recovered.
    full = encode(recs)
    for damaged in (
        b"RIFF" + full[4:],
        full[:4] + b"\x03" + full[5:],
        full[:5] + b"\x01" + full[6:],
        full[:6] + (1 << 20).to_bytes(4, "little") + full[10:],
        full[:6] + (1 << 14).to_bytes(4, "little") + full[10:],
        full[:12] + bytes([full[12] ^ 1]) + full[13:],
    ):
        contents = read_container(damaged)
        assert contents.header == HEADER and contents.header_recovered
        assert [r.packet for r in contents.records] == [b"\x40"]
    # An unsupported version with an intact CRC is a newer file, copies or not.
    with pytest.raises(UnsupportedVersionError, match="version 3"):
        read_container(fix_crc(full[:4] + b"\x03" + full[5:]))


def test_copy_of_a_newer_version_is_not_used() -> None:
    newer = fix_crc(encode_header(HEADER)[:4] + b"\x03" + encode_header(HEADER)[5:])
    from soundspring._native import core

    # a header-copy record carrying a version-3 header (record CRC intact)
    record = bytes(core.transport.encode_record(HEADER_COPY_MARKER, HEADER_COPY_MARKER, newer))
    data = b"XXXX" + bytes(20) + record + encode_record(0, 0, b"\x40")
    with pytest.raises(UnsupportedVersionError, match="version 3"):
        read_container(data)


def test_version_1_files_are_read() -> None:
    data = bytearray(encode_header(HEADER))
    data[4] = 1
    v1 = fix_crc(data)
    from soundspring._native import core

    # in version 1, seq = chunk = 0xFFFFFFFF was an ordinary packet record
    rec = bytes(core.transport.encode_record(HEADER_COPY_MARKER, HEADER_COPY_MARKER, b"\x40"))
    contents = read_container(v1 + encode_record(1, 2, b"\x40\x01") + rec)
    assert contents.version == 1 and contents.header == HEADER
    assert [(r.seq, r.chunk) for r in contents.records] == [(1, 2), (2**32 - 1, 2**32 - 1)]
    assert contents.header_copies == 0


def test_long_headers_are_written_without_copies() -> None:
    long = {"x": "a" * (MAX_HEADER_COPY_JSON_BYTES)}
    data = encode([Record(0, 0, b"\x40")], long)
    assert data == header_only([Record(0, 0, b"\x40")], long)
    contents = read_container(data)
    assert contents.header == long and contents.header_copies == 0
    fits = {"x": "a" * (MAX_HEADER_COPY_JSON_BYTES - 8)}  # {"x":"..."} is 8 bytes more
    assert len(json.dumps(fits, separators=(",", ":"))) == MAX_HEADER_COPY_JSON_BYTES
    assert read_container(encode([], fits)).header_copies == 1
    with pytest.raises(ConfigError, match="header copy"):
        encode_header_copy(long)
    buf = io.BytesIO()
    assert not ContainerWriter(buf, long).writes_copies


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_damage_recovers_every_intact_record(where: str, rng: np.random.Generator) -> None:
    recs = make_records(60, rng)
    data = bytearray(encode(recs))
    offsets = [r.offset for r in read_container(bytes(data)).records]
    end_copy = len(data) - len(encode_header_copy(HEADER))
    victims = {"start": [0, 1], "middle": [25, 26, 27], "end": [59]}[where]
    lo = offsets[victims[0]] + 3
    hi = offsets[victims[-1]] + RECORD_OVERHEAD_BYTES - 2
    data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    header, got, damage = read_container(bytes(data))
    assert header == HEADER
    expected = [r for i, r in enumerate(recs) if i not in victims]
    assert [(r.seq, r.packet) for r in got] == [(r.seq, r.packet) for r in expected]
    assert len(damage) == 1
    assert damage[0].offset == offsets[victims[0]]
    end = offsets[victims[-1] + 1] if victims[-1] + 1 < len(offsets) else end_copy
    assert damage[0].offset + damage[0].size == end
    with pytest.raises(IntegrityError, match="damaged region"):
        read_container(bytes(data), strict=True)


def test_inserted_and_deleted_bytes_resynchronise(rng: np.random.Generator) -> None:
    recs = make_records(40, rng)
    data = encode(recs)
    offsets = [r.offset for r in read_container(data).records]
    spliced = data[: offsets[10] + 5] + b"garbage\x5a\xa5" + data[offsets[10] + 9 :]
    _, got, damage = read_container(spliced)
    assert [r.seq for r in got] == [i for i in range(40) if i != 10]
    assert len(damage) == 1
    truncated = data[: offsets[39] + 4]
    _, got, damage = read_container(truncated)
    assert len(got) == 39 and damage[0].offset == offsets[39]


def test_header_json_must_be_an_object() -> None:
    from soundspring._native import core

    for payload in (b"[1, 2]", b"\xff\xfe", b"{not json", b"7", b'"s"', b"null", b""):
        with pytest.raises(BitstreamError, match="JSON"):
            read_container(bytes(core.transport.encode_header(payload)))


@pytest.mark.parametrize(
    "payload,match",
    [
        (b'{"n_samples": NaN}', "NaN"),
        (b'{"n_samples": Infinity}', "Infinity"),
        (b'{"n_samples": -Infinity}', "Infinity"),
        (b'{"n_samples": 1e400}', "float range"),
        (b'{"n_samples": -1e400}', "float range"),
        (b'{"n_samples": 1' + b"0" * 80 + b"}", "digit"),
        (b'{"n_samples": 1.' + b"0" * 80 + b"}", "character"),
        (b'{"a": 1, "a": 2}', "repeats the key"),
        (b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", "nests"),
        (b'{"a": ' + b"[" * 30000 + b"]" * 30000 + b"}", "nests"),
        (b'{"a": ' + b'{"b":' * 5000 + b"1" + b"}" * 5000 + b"}", "nests"),
        (b'{"a": ' + b"[" * 30000 + b"}", "JSON"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (b'{"a": "\xc3"}', "UTF-8"),
    ],
)
def test_hostile_header_json_is_refused(payload: bytes, match: str) -> None:
    from soundspring._native import core

    with pytest.raises(BitstreamError, match=match):
        read_container(bytes(core.transport.encode_header(payload)))
    with pytest.raises(BitstreamError, match=match):
        parse_header_json(payload)


def test_header_json_limits_accept_what_writers_write() -> None:
    nested: object = 1
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = [nested]
    header = {"deep": nested, "big": 10**60, "small": -1.5e300, "s": "\u00e9\U0001f600"}
    assert read_container(encode([], header)).header == header
    with pytest.raises(ConfigError, match="readable"):
        encode([], {"deep": [nested]})


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                  max_size=3),
    max_leaves=20,
))
def test_random_json_values_parse_or_raise_bitstream_error(value: object) -> None:
    text = json.dumps(value, allow_nan=True)
    try:
        got = parse_header_json(text.encode())
    except BitstreamError:
        return
    assert isinstance(got, dict) and got == json.loads(text)


def test_writer_errors() -> None:
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        encode([], {"x": object()})
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        encode([], {"x": float("nan")})
    with pytest.raises(ConfigError, match="dict"):
        encode([], [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="maximum"):
        encode([], {"x": "a" * 70000})
    with pytest.raises(ConfigError, match="seq"):
        encode([Record(2**32, 0, b"\x40")])
    with pytest.raises(ConfigError, match="record packet"):
        encode([Record(0, 0, b"")])
    with pytest.raises(ConfigError, match="reserved"):
        encode([Record(2**32 - 1, 2**32 - 1, b"\x40")])
    with pytest.raises(ConfigError, match="reserved"):
        encode_record(2**32 - 1, 2**32 - 1, b"\x40")
    with pytest.raises(ConfigError, match="reserved"):
        ContainerWriter(io.BytesIO(), HEADER).write(2**32 - 1, 2**32 - 1, b"\x40")
    assert read_container(encode([Record(2**32 - 1, 0, b"\x40")])).records[0].seq == 2**32 - 1
    with pytest.raises(TypeError, match="path_or_data"):
        read_container(123)  # type: ignore[arg-type]


def test_model_mismatch_refused() -> None:
    data = encode([Record(0, 0, b"\x40")])
    assert read_container(data, require={"model_id": "springlm-test"}).header == HEADER
    with pytest.raises(ModelMismatchError, match="model_id"):
        read_container(data, require={"model_id": "other"})
