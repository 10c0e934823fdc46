"""Transport throughput: packet parse/serialise, container write/read, loss-model draws,
jitter-buffer pushes. Run: ``pytest benchmarks/bench_transport.py`` (CI smoke run:
``--benchmark-disable``). Inputs are synthetic with fixed seeds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from soundspring.transport import (
    Bernoulli,
    FecCopy,
    GilbertElliott,
    JitterBuffer,
    Packet,
    Trace,
    WlanMarkov,
    parse_packet,
    read_container,
    write_container,
)
from soundspring.transport.container import encode_record

N_PACKETS = 10_000
SIZES = {"8B": 8, "64B": 64, "512B": 512}


def packets(size: int, fec: bool) -> list[Packet]:
    rng = np.random.default_rng(0)
    return [
        Packet(i % 4, rng.bytes(size), FecCopy(1, rng.bytes(8)) if fec and i % 4 else None)
        for i in range(N_PACKETS)
    ]


@pytest.mark.parametrize("fec", [False, True], ids=["plain", "fec"])
@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_packet_serialize(benchmark, size: int, fec: bool) -> None:  # type: ignore[no-untyped-def]
    pkts = packets(size, fec)
    benchmark.extra_info["packets"] = N_PACKETS
    benchmark(lambda: [p.to_bytes() for p in pkts])


@pytest.mark.parametrize("fec", [False, True], ids=["plain", "fec"])
@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_packet_parse(benchmark, size: int, fec: bool) -> None:  # type: ignore[no-untyped-def]
    data = [p.to_bytes() for p in packets(size, fec)]
    benchmark.extra_info["packets"] = N_PACKETS
    benchmark(lambda: [parse_packet(d) for d in data])


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_container_write(benchmark, size: int) -> None:  # type: ignore[no-untyped-def]
    items = [(i, i // 4, p.to_bytes()) for i, p in enumerate(packets(size, False))]
    benchmark.extra_info["packets"] = N_PACKETS
    benchmark(lambda: write_container(io.BytesIO(), {"model_id": "bench"}, items))


@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "damaged"])
@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_container_read(benchmark, size: int, damaged: bool) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    write_container(
        buf,
        {"model_id": "bench"},
        [(i, i // 4, p.to_bytes()) for i, p in enumerate(packets(size, False))],
    )
    data = bytearray(buf.getvalue())
    if damaged:  # every 100th record hit
        rec = len(encode_record(0, 0, b"\x40" * size))
        for i in range(0, N_PACKETS, 100):
            data[60 + i * rec] ^= 0xFF
    benchmark.extra_info["packets"] = N_PACKETS
    benchmark(lambda: read_container(bytes(data)))


MODELS = {
    "bernoulli": lambda: Bernoulli(0.1, seed=1),
    "gilbert_elliott": lambda: GilbertElliott(0.1, 2.0, seed=1),
    "wlan": lambda: WlanMarkov(seed=1),
    "trace": lambda: Trace.from_mask(np.random.default_rng(0).random(10_000) < 0.1),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_channel_draws(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    model = MODELS[name]()
    benchmark.extra_info["draws"] = 1_000_000
    benchmark(model.losses, 1_000_000)


@pytest.mark.parametrize("reorder", [False, True], ids=["in_order", "reordered"])
@pytest.mark.parametrize("layers", [1, 4], ids=["1layer", "4layers"])
def test_jitter_buffer_push(benchmark, layers: int, reorder: bool) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n_chunks = N_PACKETS // layers
    events = [
        (40.0 * k + (rng.exponential(15.0) if reorder else 0.0), k, layer)
        for k in range(n_chunks)
        for layer in range(layers)
    ]
    events.sort()
    data = [Packet(layer, bytes(16)).to_bytes() for layer in range(layers)]

    def run() -> int:
        jb = JitterBuffer(
            num_layers=layers,
            chunk_ms=40.0,
            playout_delay_ms=80.0,
            anchor_chunk=0,
            anchor_time_ms=0.0,
        )
        released = 0
        for seq, (t, k, layer) in enumerate(events):
            if seq % layers == 0:
                released += len(jb.pop(t))
            jb.push(seq & 0xFFFF, k, t, data[layer])
        return released + len(jb.flush())

    benchmark.extra_info["packets"] = len(events)
    benchmark(run)
