"""Range-coder throughput behind ``soundspring bench coder``: ours vs the Python mirror vs
constriction.

All implementations code the same workload in one run: adaptive per-symbol distributions
(every symbol has its own CDF row, V = 1024, 16-bit precision), symbols drawn from their
own distributions. Our coder takes integer CDFs (and, fused, float32 logits); constriction
(``constriction.stream.queue`` range coder, ``Categorical(perfect=False)``) takes the same
distributions as float probabilities, its native interface. The stream is coded in chunks
of rows (one encoder across chunks) so that memory stays bounded; only coding calls are
timed. Results are symbols per second; compare ratios, not absolute numbers.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import coding
from .coding import reference


@dataclass(frozen=True)
class Workload:
    """Chunks of (symbols int32 [C], cdfs uint32 [C, V+1], logits float32 [C, V])."""

    chunks: list
    vocab: int
    precision_bits: int

    @property
    def n_symbols(self) -> int:
        return sum(len(s) for s, _, _ in self.chunks)


def make_workload(
    n_symbols: int,
    vocab: int = 1024,
    precision_bits: int = 16,
    chunk: int = 10_000,
    pool_rows: int = 4096,
    seed: int = 0,
) -> Workload:
    """Random logits (per-row temperature) -> CDFs; symbols drawn from their own CDF."""
    rng = np.random.default_rng(seed)
    pool_logits = (
        rng.normal(size=(pool_rows, vocab)) * rng.uniform(0.5, 6.0, size=(pool_rows, 1))
    ).astype(np.float32)
    pool_cdfs = coding.cdf_from_logits(pool_logits, precision_bits)
    chunks = []
    for start in range(0, n_symbols, chunk):
        rows = rng.integers(0, pool_rows, min(chunk, n_symbols - start))
        cdfs = pool_cdfs[rows]
        t = rng.integers(0, 1 << precision_bits, len(rows))
        symbols = np.array(
            [np.searchsorted(c, x, side="right") - 1 for c, x in zip(cdfs, t)], dtype=np.int32
        )
        chunks.append((symbols, cdfs, np.ascontiguousarray(pool_logits[rows])))
    return Workload(chunks, vocab, precision_bits)


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _bench_ours(w: Workload, use_logits: bool) -> dict:
    p = w.precision_bits

    def enc():
        e = coding.Encoder(p)
        for s, c, lg in w.chunks:
            e.encode_logits(s, lg) if use_logits else e.encode(s, c)
        return e.finish()

    def dec(data):
        d = coding.Decoder(data, p)
        return [d.decode_logits(lg) if use_logits else d.decode(c) for _, c, lg in w.chunks]

    t_enc, data = min((_timed(enc) for _ in range(3)), key=lambda r: r[0])
    t_dec, out = min((_timed(lambda: dec(data)) for _ in range(3)), key=lambda r: r[0])
    ok = all(np.array_equal(o, s) for o, (s, _, _) in zip(out, w.chunks))
    return _result(w.n_symbols, t_enc, t_dec, len(data), ok)


def _bench_mirror(w: Workload) -> dict:
    p = w.precision_bits
    t_enc, data = _timed(
        lambda: reference.encode(
            np.concatenate([s for s, _, _ in w.chunks]),
            np.concatenate([c for _, c, _ in w.chunks]),
            p,
        )
    )
    t_dec, out = _timed(
        lambda: reference.decode(data, np.concatenate([c for _, c, _ in w.chunks]), p)
    )
    ok = np.array_equal(out, np.concatenate([s for s, _, _ in w.chunks]))
    return _result(w.n_symbols, t_enc, t_dec, len(data), ok)


def _bench_constriction(w: Workload) -> dict | None:
    try:
        import constriction
    except ImportError:
        return None
    model = constriction.stream.model.Categorical(perfect=False)
    probs = [
        (np.diff(c.astype(np.int64), axis=1) / float(1 << w.precision_bits)) for _, c, _ in w.chunks
    ]

    def enc():
        e = constriction.stream.queue.RangeEncoder()
        for (s, _, _), pr in zip(w.chunks, probs):
            e.encode(s, model, pr)
        return e.get_compressed()

    def dec(data):
        d = constriction.stream.queue.RangeDecoder(data)
        return [d.decode(model, pr) for pr in probs]

    t_enc, data = min((_timed(enc) for _ in range(3)), key=lambda r: r[0])
    t_dec, out = min((_timed(lambda: dec(data)) for _ in range(3)), key=lambda r: r[0])
    ok = all(np.array_equal(o, s) for o, (s, _, _) in zip(out, w.chunks))
    return _result(w.n_symbols, t_enc, t_dec, int(data.nbytes), ok)


def _result(n: int, t_enc: float, t_dec: float, n_bytes: int, ok: bool) -> dict:
    return {
        "n_symbols": n,
        "encode_symbols_per_s": n / t_enc,
        "decode_symbols_per_s": n / t_dec,
        "bits_per_symbol": 8.0 * n_bytes / n,
        "round_trip_ok": bool(ok),
    }


def bench_coder(
    n_symbols: int = 1_000_000,
    mirror_symbols: int = 20_000,
    vocab: int = 1024,
    precision_bits: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Runs every implementation on the same workload and returns one JSON-able dict.

    Args:
        n_symbols: symbols coded by our coder and constriction (>= 10^6 for the report).
        mirror_symbols: symbols coded by the slow pure-Python mirror (a prefix of the workload).
        vocab: alphabet size V. precision_bits: CDF precision. seed: workload seed.

    Returns:
        {"workload": {...}, "results": {name: {...}}, "ratios": {...}, "machine": {...}}.
    """
    w = make_workload(n_symbols, vocab, precision_bits, seed=seed)
    mirror_w = make_workload(mirror_symbols, vocab, precision_bits, seed=seed)
    steps = [
        ("soundspring", lambda: _bench_ours(w, use_logits=False)),
        ("soundspring_from_logits", lambda: _bench_ours(w, use_logits=True)),
        ("constriction", lambda: _bench_constriction(w)),
        ("python_mirror", lambda: _bench_mirror(mirror_w)),
    ]
    results = {}
    for name, fn in steps:
        if progress:
            print(f"bench coder: {name} ...", file=sys.stderr)
        r = fn()
        if r is not None:
            results[name] = r
    ratios = {}
    if "constriction" in results:
        for op in ("encode", "decode"):
            key = f"{op}_symbols_per_s"
            ratios[f"{op}_soundspring_over_constriction"] = (
                results["soundspring"][key] / results["constriction"][key]
            )
    return {
        "workload": {
            "n_symbols": n_symbols,
            "vocab": vocab,
            "precision_bits": precision_bits,
            "distribution": "adaptive: one CDF row per symbol",
            "seed": seed,
        },
        "results": results,
        "ratios": ratios,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpu_count": __import__("os").cpu_count(),
        },
    }


MAX_BENCH_SYMBOLS = 10_000_000
"""Most symbols per implementation (the workload holds a CDF row per symbol in memory)."""


__all__ = ["MAX_BENCH_SYMBOLS", "Workload", "bench_coder", "make_workload"]
