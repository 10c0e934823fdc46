"""Range coder throughput: ours vs the Python mirror vs constriction, same workload.

Adaptive per-symbol CDFs (one row per symbol), V = 1024, 16-bit precision. Each case
codes one chunk of 20,000 symbols (the Python mirror: 2,000) so that rounds are short;
``soundspring bench coder --json`` runs the 10^6-symbol version.
"""

from __future__ import annotations

import numpy as np
import pytest
from soundspring import coding
from soundspring.bench import make_workload
from soundspring.coding import reference

constriction = pytest.importorskip("constriction")


@pytest.fixture(scope="module")
def work():
    w = make_workload(20_000, seed=0)
    symbols, cdfs, logits = w.chunks[0]
    probs = np.diff(cdfs.astype(np.int64), axis=1) / 65536.0
    return symbols, cdfs, logits, probs


def _constriction_encode(symbols, probs):
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(symbols, constriction.stream.model.Categorical(perfect=False), probs)
    return enc.get_compressed()


@pytest.mark.parametrize("impl", ["soundspring", "soundspring-from-logits", "constriction"])
def test_encode(benchmark, work, impl):
    symbols, cdfs, logits, probs = work
    fn = {
        "soundspring": lambda: coding.encode(symbols, cdfs, 16),
        "soundspring-from-logits": lambda: coding.encode_logits(symbols, logits, 16),
        "constriction": lambda: _constriction_encode(symbols, probs),
    }[impl]
    benchmark.extra_info["symbols"] = len(symbols)
    benchmark(fn)


@pytest.mark.parametrize("impl", ["soundspring", "soundspring-from-logits", "constriction"])
def test_decode(benchmark, work, impl):
    symbols, cdfs, logits, probs = work
    if impl == "constriction":
        data = _constriction_encode(symbols, probs)
        model = constriction.stream.model.Categorical(perfect=False)

        def fn():
            return constriction.stream.queue.RangeDecoder(data).decode(model, probs)
    elif impl == "soundspring":
        data = coding.encode(symbols, cdfs, 16)

        def fn():
            return coding.decode(data, cdfs, 16)
    else:
        data = coding.encode(symbols, cdfs, 16)

        def fn():
            return coding.decode_logits(data, logits, 16)

    benchmark.extra_info["symbols"] = len(symbols)
    out = benchmark(fn)
    np.testing.assert_array_equal(out, symbols)


@pytest.mark.parametrize("op", ["encode", "decode"])
def test_python_mirror(benchmark, work, op):
    symbols, cdfs, _, _ = work
    symbols, cdfs = symbols[:2000], cdfs[:2000]
    data = reference.encode(symbols, cdfs, 16)
    fn = (
        (lambda: reference.encode(symbols, cdfs, 16))
        if op == "encode"
        else (lambda: reference.decode(data, cdfs, 16))
    )
    benchmark.extra_info["symbols"] = len(symbols)
    benchmark.pedantic(fn, rounds=3, iterations=1)


def test_cdf_from_logits(benchmark, work):
    _, _, logits, _ = work
    benchmark.extra_info["rows"] = len(logits)
    benchmark(lambda: coding.cdf_from_logits(logits, 16))
