"""Fuzzing the range decoder and the CDF quantiser: random, truncated and bit-flipped
inputs never crash or hang and raise only typed errors.

The CI run feeds 10^5+ inputs; ``pytest -m fuzz tests/test_coding_fuzz.py`` runs a longer one
(set SOUNDSPRING_FUZZ_ITERS to choose its size).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from soundspring import coding
from soundspring.errors import BitstreamError, ConfigError


def _fuzz_decoder(n_inputs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    v, n = 64, 16
    logits = (rng.normal(size=(256, v)) * rng.uniform(0.1, 8, size=(256, 1))).astype(np.float32)
    pool = coding.cdf_from_logits(logits, 16)
    valid = []
    for _ in range(64):
        cdfs = pool[rng.integers(0, 256, n)]
        symbols = rng.integers(0, v, n).astype(np.int32)
        valid.append((coding.encode(symbols, cdfs, 16), cdfs))
    counts = {"ok": 0, "bitstream_error": 0}
    for i in range(n_inputs):
        data, cdfs = valid[i % len(valid)]
        kind = i % 3
        if kind == 0:
            data = rng.bytes(int(rng.integers(0, 48)))
        elif kind == 1:
            data = data[: int(rng.integers(0, len(data) + 1))]
        else:
            buf = bytearray(data or b"\x00")
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(buf) * 8))
                buf[pos // 8] ^= 1 << (pos % 8)
            data = bytes(buf)
        try:
            out = coding.decode(data, cdfs, 16)
        except BitstreamError:
            counts["bitstream_error"] += 1
            continue
        assert out.dtype == np.int32 and out.shape == (n,)
        assert ((out >= 0) & (out < v)).all()
        counts["ok"] += 1
    return counts


def test_decoder_fuzz_100k():
    counts = _fuzz_decoder(100_002, seed=1234)
    print(counts)
    assert counts["ok"] + counts["bitstream_error"] == 100_002
    assert counts["bitstream_error"] > 0  # corrupt input is detected at least sometimes


def test_garbage_cdfs_never_crash(rng):
    """Arbitrary uint32 tables: the coder checks what it touches and stays in bounds."""
    errors = 0
    for _ in range(2000):
        v = int(rng.integers(1, 40))
        n = int(rng.integers(1, 10))
        cdfs = rng.integers(0, 1 << 17, size=(n, v + 1), dtype=np.uint32)
        if rng.random() < 0.5:
            cdfs[:, -1] = 1 << 16
        symbols = rng.integers(-2, v + 2, n).astype(np.int32)
        try:
            coding.encode(symbols, cdfs, 16)
        except ConfigError:
            errors += 1
        try:
            out = coding.decode(rng.bytes(8), cdfs, 16)
            assert ((out >= 0) & (out < v)).all()
        except (ConfigError, BitstreamError):
            errors += 1
    assert errors > 0


def test_garbage_logits_never_crash(rng):
    for _ in range(2000):
        v = int(rng.integers(1, 40))
        raw = rng.integers(0, 1 << 32, size=(2, v), dtype=np.uint64).astype(np.uint32)
        logits = raw.view(np.float32)  # any bit pattern: NaN, inf, denormals, huge
        try:
            cdfs = coding.cdf_from_logits(logits, 16)
        except ConfigError:
            continue
        assert (cdfs[:, -1] == 1 << 16).all() and (np.diff(cdfs.astype(np.int64)) >= 1).all()


@pytest.mark.fuzz
def test_decoder_fuzz_long():
    n = int(os.environ.get("SOUNDSPRING_FUZZ_ITERS", "10000000"))
    counts = _fuzz_decoder(n, seed=int(os.environ.get("SOUNDSPRING_FUZZ_SEED", "1")))
    assert counts["ok"] + counts["bitstream_error"] == n
