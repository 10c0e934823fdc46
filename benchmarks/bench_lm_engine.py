"""SpringLM per-chunk latency: the C++ engine against the PyTorch reference, same run.

Run: ``pytest benchmarks/bench_lm_engine.py --benchmark-only`` (smoke: ``--benchmark-disable``).
Shipped size (``springlm_default``), random weights rounded to fp16 like the shipped file
(latency does not depend on their values; the engine streams them as binary16),
R = 15 frames of context, chunks of C = 2 frames (40 ms), batch 1, one thread for both
(torch's intra-op threads are set to 1 by benchmarks/conftest.py). Each case runs on the
engine at every kernel level this CPU has and on the PyTorch adapter
(``lm_adapter.SpringLMCodingModel``), the path the transceiver calls today.

Cases:
    fine:     one chunk's coding pass against a full memory (levels 3..K of the bitrate)
    commit:   one chunk's memory pass (into a copy of the memory, so every call is alike)
    conceal:  the concealment window over R + C frames with the last chunk lost
    batch:    the engine's coding pass of 8 or 64 streams at once (per call, not per stream)
    storage:  the best level's engine on the same model in binary16 storage (the fp16
              weights) and in int8 storage (those weights rounded by
              ``block_float.round_engine_weights``), timed in interleaved A/B rounds of
              one coding pass + memory pass per chunk; ``extra_info`` holds the median and
              best int8 / binary16 time ratio (below 1: int8 is faster)
    cdf:      the logits -> integer CDF step behind the heads, per row of V = 1024, on the
              best level's engine: ``fine_cdfs`` against ``fine_logits`` of the same chunk
              (their difference is the fused step) and the public ``coding.cdf_from_logits``
              on those logits, in interleaved rounds; ``extra_info`` holds the medians and
              bests per call and per row (ns per entry for the public function). For a
              before/after comparison run it against another build of ``_core``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
from soundspring import coding
from soundspring.config import MASK, springlm_default
from soundspring.models.block_float import round_engine_weights
from soundspring.models.lm_adapter import SpringLMCodingModel
from soundspring.models.lm_engine import SpringLMEngine, supported_isas
from soundspring.models.masked_lm import SpringLM

R, C = 15, 2
AB_ROUNDS = 15        # interleaved A/B rounds of the storage case (1 with --benchmark-disable)
AB_CHUNKS = 20        # chunks (coding pass + memory pass) timed per engine per round
CDF_ROUNDS = 200      # interleaved rounds of the cdf case (3 with --benchmark-disable)
LEVELS = {"6kbps": 12, "12kbps": 24}
IMPLS = ["torch", *(f"engine-{isa}" for isa in supported_isas() if isa != "generic")]


@pytest.fixture(scope="module")
def lm() -> SpringLM:
    torch.manual_seed(0)
    model = SpringLM(springlm_default()).eval()
    with torch.no_grad():  # the shipped file's fp16 values, as load_lm gives them
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


@pytest.fixture(scope="module")
def models(lm):
    out = {"torch": SpringLMCodingModel(lm)}
    for impl in IMPLS[1:]:
        out[impl] = SpringLMEngine.from_model(lm, isa=impl.removeprefix("engine-"))
    return out


def _view(k: int, frames: int = C, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 1024, size=(k, frames)).astype(np.int64)
    x[3:] = MASK
    return x


def _warm(model, k: int):
    state = model.new_state(R, C)
    for i in range(R // C + 2):  # a full ring
        state = model.commit(state, _view(3, seed=i))
    return state


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_fine(benchmark, models, impl: str, bitrate: str) -> None:
    k = LEVELS[bitrate]
    model = models[impl]
    state, view = _warm(model, k), _view(k)
    logits = benchmark(model.fine_logits, state, view, (3, k))
    assert logits.shape == (k - 3, C, 1024)
    ref = models["torch"]
    want = ref.fine_logits(_warm(ref, k), view, (3, k))
    assert float(np.abs(logits - want).max()) < 1e-4


@pytest.mark.parametrize("impl", IMPLS)
def test_commit(benchmark, models, impl: str) -> None:
    model = models[impl]
    state, base = _warm(model, 3), _view(3, seed=99)
    benchmark(lambda: model.commit(state.snapshot(), base))


@pytest.mark.parametrize("impl", IMPLS)
def test_conceal(benchmark, models, impl: str) -> None:
    window = _view(3, R + C, seed=5)
    window[:, -C:] = MASK
    logits = benchmark(models[impl].conceal_logits, window)
    assert logits.shape == (3, R + C, 1024)


@pytest.mark.parametrize("batch", [8, 64])
def test_batch(benchmark, models, batch: int) -> None:
    engine = models[IMPLS[-1]]
    states = [_warm(engine, 12) for _ in range(batch)]
    views = np.stack([_view(12, seed=s) for s in range(batch)])
    logits = benchmark(engine.fine_logits_batch, states, views, (3, 12))
    assert logits.shape == (batch, 9, C, 1024)


@pytest.fixture(scope="module")
def storage_engines(lm):
    """The best level's engine on the fp16 weights (binary16) and on them rounded (int8)."""
    rounded = SpringLM(lm.cfg).eval()
    rounded.load_state_dict(round_engine_weights(lm.state_dict()))
    engines = {"binary16": SpringLMEngine.from_model(lm),
               "int8": SpringLMEngine.from_model(rounded)}
    storage = {name: e.weight_storage for name, e in engines.items()}
    if storage["binary16"] != "binary16":
        pytest.skip(f"the best level here ({engines['int8'].isa}) has no binary16 product")
    assert storage["int8"] == "int8", storage
    return engines


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_storage(benchmark, storage_engines, bitrate: str) -> None:
    k = LEVELS[bitrate]
    views = [_view(k, seed=s) for s in range(AB_CHUNKS)]

    def chunks(engine) -> float:  # seconds for AB_CHUNKS chunks of one stream
        state = _warm(engine, k)
        t0 = time.perf_counter()
        for view in views:
            engine.fine_logits(state, view, (3, k))
            engine.commit(state, view[:3])
        return time.perf_counter() - t0

    rounds = 1 if benchmark.disabled else AB_ROUNDS
    times = {name: [] for name in storage_engines}
    for r in range(rounds):  # alternate which storage goes first: drift hits both alike
        order = list(storage_engines) if r % 2 == 0 else list(reversed(storage_engines))
        for name in order:
            times[name].append(chunks(storage_engines[name]))
    ratios = [a / b for a, b in zip(times["int8"], times["binary16"], strict=True)]
    per_chunk_ms = {name: 1e3 * min(t) / AB_CHUNKS for name, t in times.items()}
    benchmark.extra_info.update(
        isa=storage_engines["int8"].isa, rounds=rounds, chunks_per_round=AB_CHUNKS,
        best_chunk_ms=per_chunk_ms, median_ratio=statistics.median(ratios),
        best_ratio=min(times["int8"]) / min(times["binary16"]))
    print(f"\nstorage {bitrate} {storage_engines['int8'].isa}: best chunk ms {per_chunk_ms}, "
          f"int8/binary16 median ratio {statistics.median(ratios):.3f}, "
          f"best-of-{rounds} ratio {benchmark.extra_info['best_ratio']:.3f}")
    engine = storage_engines["int8"]
    state = _warm(engine, k)
    logits = benchmark(engine.fine_logits, state, views[0], (3, k))
    assert logits.shape == (k - 3, C, 1024)


@pytest.mark.parametrize("bitrate", list(LEVELS), ids=str)
def test_cdf(benchmark, models, bitrate: str) -> None:
    k = LEVELS[bitrate]
    engine = models[IMPLS[-1]]
    state, view = _warm(engine, k), _view(k)
    precision_bits = 16
    logits = engine.fine_logits(state, view, (3, k)).reshape(-1, 1024)  # [(K - 3) C, V]
    rows = logits.shape[0]
    want = coding.cdf_from_logits(logits, precision_bits)
    cdfs = engine.fine_cdfs(state, view, (3, k), precision_bits)
    assert np.array_equal(cdfs.reshape(rows, 1025), want)

    calls = {"fine_logits": lambda: engine.fine_logits(state, view, (3, k)),
             "fine_cdfs": lambda: engine.fine_cdfs(state, view, (3, k), precision_bits),
             "cdf_from_logits": lambda: coding.cdf_from_logits(logits, precision_bits)}
    times = {name: [] for name in calls}
    for _ in range(3 if benchmark.disabled else CDF_ROUNDS):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    fused_us = 1e6 * (med["fine_cdfs"] - med["fine_logits"]) / rows
    public_us = 1e6 * med["cdf_from_logits"] / rows
    benchmark.extra_info.update(
        isa=engine.isa, rows=rows, median_call_ms={n: 1e3 * t for n, t in med.items()},
        best_call_ms={n: 1e3 * t for n, t in best.items()},
        fused_row_us_median=fused_us, public_row_us_median=public_us,
        public_ns_per_entry_best=1e9 * best["cdf_from_logits"] / logits.size)
    print(f"\ncdf {bitrate} {engine.isa}: {rows} rows; median ms per call "
          + ", ".join(f"{n} {1e3 * t:.3f}" for n, t in med.items())
          + f"; per row: fused {fused_us:.2f} us, cdf_from_logits {public_us:.2f} us "
          f"(best {1e9 * best['cdf_from_logits'] / logits.size:.2f} ns per entry)")
    benchmark(calls["fine_cdfs"])
