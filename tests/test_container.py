"""The .spring container: round trips, header errors, and recovery around damage."""

from __future__ import annotations

import io
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
from soundspring.transport.container import RECORD_OVERHEAD_BYTES, encode_header

HEADER = {"model_id": "springlm-test", "sample_rate_hz": 16000, "chunk_frames": 2}


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


@given(
    header=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5),
    items=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=64)
        ),
        max_size=20,
    ),
)
def test_round_trip(header: dict, items: list[tuple[int, int, bytes]]) -> None:
    data = encode([Record(*it) for it in items], header)
    got_header, records, damage = read_container(data)
    assert got_header == header and damage == []
    assert [(r.seq, r.chunk, r.packet) for r in records] == items


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
    assert contents.records[0].offset == len(encode_header(HEADER))


def test_layout_matches_spec_with_zlib_crc() -> None:
    data = encode([Record(7, 3, b"\x40\xaa")], {})
    json_len = int.from_bytes(data[6:10], "little")
    assert data[:6] == b"SPRG\x01\x00" and data[10 : 10 + json_len] == b"{}"
    head_end = 14 + json_len
    assert int.from_bytes(data[head_end - 4 : head_end], "little") == zlib.crc32(
        data[: head_end - 4]
    )
    rec = data[head_end:]
    assert rec[:2] == b"\x5a\xa5" and len(rec) == RECORD_OVERHEAD_BYTES + 2
    assert int.from_bytes(rec[2:4], "little") == 2
    assert int.from_bytes(rec[4:8], "little") == 7 and int.from_bytes(rec[8:12], "little") == 3
    assert int.from_bytes(rec[-4:], "little") == zlib.crc32(rec[2:-4])


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_damage_recovers_every_intact_record(where: str, rng: np.random.Generator) -> None:
    recs = make_records(60, rng)
    data = bytearray(encode(recs))
    offsets = [r.offset for r in read_container(bytes(data)).records]
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
    end = offsets[victims[-1] + 1] if victims[-1] + 1 < len(offsets) else len(data)
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


def test_header_errors() -> None:
    data = encode([Record(0, 0, b"\x40")])
    with pytest.raises(BitstreamError, match="magic"):
        read_container(b"RIFF" + data[4:])
    with pytest.raises(TruncatedError, match="magic"):
        read_container(b"SP")
    with pytest.raises(TruncatedError):
        read_container(data[:12])
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        read_container(data[:4] + b"\x02" + data[5:])
    with pytest.raises(BitstreamError, match="reserved"):
        read_container(data[:5] + b"\x01" + data[6:])
    with pytest.raises(BitstreamError, match="maximum"):
        read_container(data[:6] + (1 << 20).to_bytes(4, "little") + data[10:])
    bad = bytearray(data)
    bad[12] ^= 0x01
    with pytest.raises(IntegrityError, match="header CRC"):
        read_container(bytes(bad))


def test_header_json_must_be_an_object() -> None:
    from soundspring._native import core

    for payload in (b"[1, 2]", b"\xff\xfe", b"{not json"):
        with pytest.raises(BitstreamError, match="JSON"):
            read_container(bytes(core.transport.encode_header(payload)))


def test_writer_errors() -> None:
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        encode([], {"x": object()})
    with pytest.raises(ConfigError, match="dict"):
        encode([], [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="maximum"):
        encode([], {"x": "a" * 70000})
    with pytest.raises(ConfigError, match="seq"):
        encode([Record(2**32, 0, b"\x40")])
    with pytest.raises(ConfigError, match="record packet"):
        encode([Record(0, 0, b"")])
    with pytest.raises(TypeError, match="path_or_data"):
        read_container(123)  # type: ignore[arg-type]


def test_model_mismatch_refused() -> None:
    data = encode([Record(0, 0, b"\x40")])
    assert read_container(data, require={"model_id": "springlm-test"}).header == HEADER
    with pytest.raises(ModelMismatchError, match="model_id"):
        read_container(data, require={"model_id": "other"})
