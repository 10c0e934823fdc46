"""Fuzz the transport parsers through the Python API: random, truncated and bit-flipped
inputs to parse_packet, read_container and JitterBuffer.push must raise only the typed
errors of soundspring.errors (never crash, hang or raise anything else).

The default run makes > 10^5 attempts in a few seconds; ``-m fuzz`` runs a 10x longer one
(``SOUNDSPRING_FUZZ_SEED`` picks the seed, printed either way)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from soundspring.errors import BitstreamError
from soundspring.transport import (
    PACKET_VERSION,
    FecCopy,
    JitterBuffer,
    Packet,
    parse_packet,
    read_container,
    write_container,
)
from soundspring.transport.container import encode_header, encode_record


def corpus() -> tuple[list[bytes], list[bytes]]:
    packets = [
        Packet(0, b"\x01\x02\x03").to_bytes(),
        Packet(1, b"\x10" * 9, FecCopy(0, b"\xaa\xbb")).to_bytes(),
        Packet(2, b"", FecCopy(7, bytes(range(200)))).to_bytes(),
        Packet(3, bytes(40)).to_bytes(),
    ]
    header = {"model_id": "fuzz", "n": 1}
    items = [(i, i // 4, p) for i, p in enumerate(packets * 3)]
    buf = io.BytesIO()
    write_container(buf, header, items)  # with header copies (container version 2)
    bare = encode_header(header) + b"".join(encode_record(*it) for it in items)  # without
    return packets, [buf.getvalue(), bare]


def mutate(rng: np.random.Generator, seeds: list[bytes]) -> bytes:
    base = seeds[int(rng.integers(len(seeds)))]
    mode = int(rng.integers(4))
    if mode == 0:  # truncated
        return base[: int(rng.integers(0, len(base) + 1))]
    if mode == 1:  # bit flips
        arr = bytearray(base)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(arr)))
            arr[i] ^= 1 << int(rng.integers(8))
        return bytes(arr)
    if mode == 2:  # random bytes with a plausible first byte
        data = bytearray(rng.bytes(int(rng.integers(0, 80))))
        if data and rng.random() < 0.8:
            data[0] = (PACKET_VERSION << 6) | (data[0] & 0x3F)
        return bytes(data)
    arr = bytearray(base)  # spliced: duplicate or delete a slice
    i, j = sorted(int(x) for x in rng.integers(0, len(arr) + 1, 2))
    return bytes(arr[:i] + arr[j:] if rng.random() < 0.5 else arr[:j] + arr[i:])


def run(iterations: int, seed: int) -> dict[str, int]:
    print(f"fuzz seed={seed} iterations={iterations}")
    rng = np.random.default_rng(seed)
    packets, container = corpus()
    inputs = [mutate(rng, packets) for _ in range(iterations)]
    files = [mutate(rng, container) for _ in range(iterations // 10)]
    counts = {
        "packet_ok": 0,
        "packet_err": 0,
        "file_ok": 0,
        "file_err": 0,
        "file_recovered": 0,
        "push_ok": 0,
        "push_err": 0,
    }
    for data in inputs:
        try:
            pkt = parse_packet(data)
            assert pkt.to_bytes() == data
            counts["packet_ok"] += 1
        except BitstreamError:
            counts["packet_err"] += 1
    for data in files:
        try:
            contents = read_container(data)
            counts["file_ok"] += 1
            covered = sum(len(r.packet) + 16 for r in contents.records) + sum(
                d.size for d in contents.damage
            )
            assert covered <= len(data)
            assert isinstance(contents.header, dict)
            assert all(r.seq != 2**32 - 1 or r.chunk != 2**32 - 1 for r in contents.records)
            if contents.header_recovered:
                counts["file_recovered"] += 1
                assert contents.damage and contents.damage[0].offset == 0
        except BitstreamError:
            counts["file_err"] += 1
    jb = JitterBuffer(num_layers=4, chunk_ms=20.0, playout_delay_ms=60.0)
    seqs = rng.integers(0, 65536, iterations)
    chunks = rng.integers(0, 40, iterations)
    for i, data in enumerate(inputs):
        t = 0.5 * i
        try:
            jb.push(int(seqs[i]), int(chunks[i]), t, data)
            counts["push_ok"] += 1
        except BitstreamError:
            counts["push_err"] += 1
        if i % 64 == 0:
            jb.pop(t)
    jb.flush()
    return counts


def test_fuzz_quick() -> None:
    counts = run(60_000, seed=int(os.environ.get("SOUNDSPRING_FUZZ_SEED", "1")))
    total = sum(counts.values())
    assert total >= 100_000
    # every target saw both accepted and rejected inputs (the mutations reach both paths)
    for key in ("packet", "file", "push"):
        assert counts[f"{key}_ok"] > 0 and counts[f"{key}_err"] > 0, counts
    assert counts["file_recovered"] > 0, counts


@pytest.mark.fuzz
def test_fuzz_long(request: pytest.FixtureRequest) -> None:
    if "fuzz" not in (request.config.getoption("-m") or ""):
        pytest.skip("long fuzz run: select it with -m fuzz")
    seed = int(os.environ.get("SOUNDSPRING_FUZZ_SEED", "12345"))
    counts = run(600_000, seed=seed)
    assert sum(counts.values()) >= 1_000_000
