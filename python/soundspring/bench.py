"""Range-coder throughput behind ``soundspring bench coder``: ours vs the Python mirror vs
constriction.

All implementations code the same workload in one run: adaptive per-symbol distributions
(every symbol has its own CDF row, V = 1024, 16-bit precision), symbols drawn from their
own distributions. Our coder takes integer CDFs (and, fused, float32 logits); constriction
(``constriction.stream.queue`` range coder, ``Categorical(perfect=False)``) takes the same
distributions as float probabilities, its native interface. The stream is coded in chunks
of rows (one encoder across chunks) so that memory stays bounded; only coding calls are
timed. Results are symbols per second; compare ratios, not absolute numbers.

``bench_lm`` (``soundspring bench lm``) and ``bench_transceiver`` (``soundspring bench
transceiver``) time the real-time path on the shipped models: SpringLM's chunk step on the
C++ engine against the PyTorch reference in the same run (batch 1 / 8 / 64 for the engine,
1 and 2 threads), logits -> bytes -> symbols against constriction fed numpy softmax
probabilities, and the transmitter + receiver real-time factor with its time per chunk
split by stage. The machine is usually shared: read the ratios.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import coding
from .coding import reference
from .config import (
    BASE_CODEBOOKS,
    CODEBOOK_SIZE,
    MASK,
    SAMPLE_RATE_HZ,
    TransceiverConfig,
)
from .errors import ConfigError


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
        "machine": _machine(),
    }


def _machine() -> dict:
    return {"python": platform.python_version(), "processor": platform.machine(),
            "cpu_count": os.cpu_count()}


# ---- SpringLM: the engine against the PyTorch reference ---------------------------------


BENCH_BITRATES_KBPS = (6.0, 12.0)
"""The operating points ``bench lm`` and ``bench transceiver`` measure by default."""
BENCH_BATCHES = (1, 8, 64)
"""Streams the engine steps together in ``bench lm`` (one memory each)."""
BENCH_THREADS = (1, 2)
"""Thread counts ``bench lm`` measures (torch intra-op threads and engine workers)."""
MAX_BENCH_BATCH = 1024
MAX_BENCH_SECONDS = 600.0


def _best_ms(fn: Callable[[], Any], calls: int) -> float:
    """The fastest wall time of ``calls`` calls of ``fn`` (after one warm-up call), in ms:
    on a shared machine the least disturbed by other load, and the same statistic for
    every implementation compared."""
    fn()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _shipped_lm(lm_path: str | None):
    """(SpringLM in eval mode, "shipped" / the path / "random"): the shipped weights when
    present (timing does not depend on training, but the PMFs' shape does for coding)."""
    import torch

    from .config import springlm_default
    from .models.masked_lm import SpringLM
    from .models.weights_io import DEFAULT_LM_WEIGHTS, load_lm

    if lm_path is not None:
        return load_lm(lm_path), str(lm_path)
    if DEFAULT_LM_WEIGHTS.exists():
        return load_lm(DEFAULT_LM_WEIGHTS), "shipped"
    torch.manual_seed(0)
    return SpringLM(springlm_default()).eval(), "random (no shipped weights)"


def _coding_views(rng: np.random.Generator, n: int, k_max: int, k: int, c: int) -> np.ndarray:
    """int64 [n, K_max, C] coding views: random base, fine levels < k MASK, MASK_UPPER above."""
    views = np.full((n, k_max, c), MASK + 1, dtype=np.int64)
    views[:, :BASE_CODEBOOKS] = rng.integers(0, CODEBOOK_SIZE, size=(n, BASE_CODEBOOKS, c))
    views[:, BASE_CODEBOOKS:k] = MASK
    return views


def _bench_lm_step(lm, threads: int, bitrate_kbps: float, batches: Sequence[int],
                   calls: int, seed: int) -> dict:
    """One (threads, bitrate) cell: per-chunk coding pass + memory pass times."""
    import torch

    from .models.lm_adapter import SpringLMCodingModel
    from .models.lm_engine import SpringLMEngine

    cfg = TransceiverConfig(bitrate_kbps=bitrate_kbps)
    k, c, r = cfg.layout.n_codebooks, cfg.chunk_frames, cfg.context_frames
    levels = (BASE_CODEBOOKS, k)
    torch.set_num_threads(threads)
    engine = SpringLMEngine.from_model(lm, num_threads=threads)
    ref = SpringLMCodingModel(lm)
    rng = np.random.default_rng(seed)
    k_max = lm.cfg.n_codebooks
    n_fill = r // c + 1  # a full memory, as in steady state
    out: dict = {"levels": list(levels), "chunk_frames": c, "context_frames": r,
                 "isa": engine.isa, "weight_storage": engine.weight_storage}

    view = _coding_views(rng, 1, k_max, k, c)[0]
    st_t, st_e = ref.new_state(r, c), engine.new_state(r, c)
    for _ in range(n_fill):
        ref.commit(st_t, view[:BASE_CODEBOOKS])
        engine.commit(st_e, view[:BASE_CODEBOOKS])
    fine_t = _best_ms(lambda: ref.fine_logits(st_t, view, levels), calls)
    commit_t = _best_ms(lambda: ref.commit(st_t.snapshot(), view[:BASE_CODEBOOKS]), calls)
    fine_e = _best_ms(lambda: engine.fine_logits(st_e, view, levels), calls)
    cdfs_e = _best_ms(lambda: engine.fine_cdfs(st_e, view, levels, cfg.precision_bits), calls)
    logits = engine.fine_logits(st_e, view, levels).reshape(-1, CODEBOOK_SIZE)
    cdf_np = _best_ms(lambda: coding.cdf_from_logits(logits, cfg.precision_bits), calls)
    commit_e = _best_ms(lambda: engine.commit(st_e.snapshot(), view[:BASE_CODEBOOKS]), calls)
    out["torch"] = {"fine_ms": fine_t, "commit_ms": commit_t, "step_ms": fine_t + commit_t}
    out["engine"] = {"fine_ms": fine_e, "fine_cdfs_ms": cdfs_e, "commit_ms": commit_e,
                     "step_ms": fine_e + commit_e,
                     "separate_cdf_from_logits_ms": cdf_np}
    out["step_speedup_engine_over_torch"] = (fine_t + commit_t) / (fine_e + commit_e)
    out["max_abs_logit_diff"] = float(np.abs(
        engine.fine_logits(st_e, view, levels) - ref.fine_logits(st_t, view, levels)).max())

    chunk_s = cfg.chunk_samples / SAMPLE_RATE_HZ
    out["engine_batches"] = {}
    for b in batches:
        views = _coding_views(rng, b, k_max, k, c)
        states = [engine.new_state(r, c) for _ in range(b)]
        base = np.ascontiguousarray(views[:, :BASE_CODEBOOKS])
        for _ in range(n_fill):
            engine.commit_batch(states, base)
        fine_b = _best_ms(lambda st=states, v=views: engine.fine_logits_batch(st, v, levels),
                            calls)
        commit_b = _best_ms(
            lambda st=states, bs=base: engine.commit_batch([x.snapshot() for x in st], bs), calls)
        step_s = (fine_b + commit_b) / 1e3
        out["engine_batches"][str(b)] = {
            "fine_ms": fine_b, "commit_ms": commit_b, "step_ms": fine_b + commit_b,
            "step_ms_per_stream": (fine_b + commit_b) / b,
            "stream_chunks_per_s": b / step_s,
            "realtime_streams": b * chunk_s / step_s,
        }
    if "1" in out["engine_batches"]:
        one = out["engine_batches"]["1"]["step_ms"]
        for cell in out["engine_batches"].values():
            cell["per_stream_speedup_over_batch1"] = one / cell["step_ms_per_stream"]
    return out


def _bench_entropy(lm, n_chunks: int, seed: int) -> dict:
    """logits -> bytes -> symbols on the shipped LM's 12 kbps fine logits: ours
    (``cdf_from_logits`` fused in the coder) against constriction's range coder with
    ``Categorical(perfect=False)`` fed numpy softmax probabilities (computed in the timed
    region at both ends, as its users must)."""
    from .models.lm_engine import SpringLMEngine

    cfg = TransceiverConfig(bitrate_kbps=12)
    k, c, r = cfg.layout.n_codebooks, cfg.chunk_frames, cfg.context_frames
    engine = SpringLMEngine.from_model(lm)
    rng = np.random.default_rng(seed)
    state = engine.new_state(r, c)
    rows = []
    for view in _coding_views(rng, n_chunks, lm.cfg.n_codebooks, k, c):
        rows.append(engine.fine_logits(state, view, (BASE_CODEBOOKS, k)).reshape(-1, CODEBOOK_SIZE))
        engine.commit(state, view[:BASE_CODEBOOKS])
    logits = np.ascontiguousarray(np.concatenate(rows))  # [N, V]
    p = cfg.precision_bits
    cdfs = coding.cdf_from_logits(logits, p)
    u = rng.integers(0, 1 << p, size=len(cdfs))
    symbols = np.array([np.searchsorted(row, x, side="right") - 1 for row, x in zip(cdfs, u)],
                       dtype=np.int32)
    n = len(symbols)

    def ours_enc():
        e = coding.Encoder(p)
        e.encode_logits(symbols, logits)
        return e.finish()

    data = ours_enc()
    out: dict = {"n_symbols": n, "vocab": CODEBOOK_SIZE, "precision_bits": p,
                 "source": "SpringLM 12 kbps fine logits, symbols drawn from their CDFs"}
    t_enc = _best_ms(ours_enc, 5) / 1e3
    t_dec = _best_ms(lambda: coding.Decoder(data, p).decode_logits(logits), 5) / 1e3
    ok = np.array_equal(coding.Decoder(data, p).decode_logits(logits), symbols)
    out["soundspring"] = {"encode_symbols_per_s": n / t_enc, "decode_symbols_per_s": n / t_dec,
                          "round_trip_symbols_per_s": n / (t_enc + t_dec),
                          "bits_per_symbol": 8.0 * len(data) / n, "round_trip_ok": bool(ok)}
    try:
        import constriction
    except ImportError:
        out["constriction"] = None
        out["constriction_missing"] = "constriction is not installed"
        return out
    model = constriction.stream.model.Categorical(perfect=False)

    def softmax() -> np.ndarray:
        z = logits.astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def c_enc():
        e = constriction.stream.queue.RangeEncoder()
        e.encode(symbols, model, softmax())
        return e.get_compressed()

    cdata = c_enc()
    probs = softmax()
    t_cenc = _best_ms(c_enc, 5) / 1e3
    t_cdec = _best_ms(
        lambda: constriction.stream.queue.RangeDecoder(cdata).decode(model, softmax()), 5) / 1e3
    t_cenc_only = _best_ms(lambda: constriction.stream.queue.RangeEncoder().encode(
        symbols, model, probs), 5) / 1e3
    cok = np.array_equal(constriction.stream.queue.RangeDecoder(cdata).decode(model, probs),
                         symbols)
    out["constriction"] = {
        "encode_symbols_per_s": n / t_cenc, "decode_symbols_per_s": n / t_cdec,
        "round_trip_symbols_per_s": n / (t_cenc + t_cdec),
        "encode_without_softmax_symbols_per_s": n / t_cenc_only,
        "bits_per_symbol": 32.0 * int(cdata.size) / n, "round_trip_ok": bool(cok)}
    out["round_trip_soundspring_over_constriction"] = (t_cenc + t_cdec) / (t_enc + t_dec)
    return out


def _bench_gpu(lm, calls: int, seed: int) -> dict:
    """The PyTorch reference's chunk step on CUDA when a device is present."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device visible to torch"}
    cfg = TransceiverConfig(bitrate_kbps=6)
    k, c, r = cfg.layout.n_codebooks, cfg.chunk_frames, cfg.context_frames
    dev_lm = type(lm)(lm.cfg).eval()
    dev_lm.load_state_dict(lm.state_dict())
    dev_lm = dev_lm.to("cuda")
    out: dict = {"available": True, "device": torch.cuda.get_device_name(0), "batches": {}}
    rng = np.random.default_rng(seed)
    for b in BENCH_BATCHES:
        views = torch.from_numpy(_coding_views(rng, b, lm.cfg.n_codebooks, k, c)).cuda()
        state = dev_lm.init_state(b, r, c)
        with torch.inference_mode():
            for _ in range(r // c + 1):
                state = dev_lm.commit(views[:, :BASE_CODEBOOKS], state)

            def step(views=views, state=state):
                dev_lm.step(views, state, commit=False, levels=(BASE_CODEBOOKS, k))
                torch.cuda.synchronize()
            ms = _best_ms(step, calls)
        out["batches"][str(b)] = {"fine_ms": ms, "fine_ms_per_stream": ms / b}
    return out


def bench_lm(bitrates_kbps: Sequence[float] = BENCH_BITRATES_KBPS,
             batches: Sequence[int] = BENCH_BATCHES, threads: Sequence[int] = BENCH_THREADS,
             calls: int = 30, entropy_chunks: int = 200, seed: int = 0,
             lm_path: str | None = None, progress: bool = False) -> dict:
    """SpringLM's chunk step on the C++ engine against the PyTorch reference, same run.

    For every thread count and bitrate: the fastest of ``calls`` times of one chunk's
    coding pass (``fine_logits``, the fused ``fine_cdfs``) and memory pass (``commit``)
    against a memory filled to the bitrate's default reach (``TransceiverConfig``), for
    the engine and for the reference (batch 1), and the engine's batched step
    at each batch size (per stream, stream-chunks per second, real-time streams); then
    logits -> bytes -> symbols against constriction, and the reference on CUDA when a
    device is present.

    Args:
        bitrates_kbps: operating points (their levels and reach from ``TransceiverConfig``).
        batches: engine batch sizes. threads: thread counts (torch and engine alike).
        calls: timed calls per measurement (the fastest is kept). entropy_chunks: chunks of logits in
            the entropy-coding workload. seed: token seed. lm_path: SpringLM weights
            (None = shipped, else random weights of the shipped shape).
        progress: one line per measurement on stderr.

    Returns:
        {"model", "steps": [{"threads", "bitrate_kbps", "torch", "engine",
        "engine_batches", "step_speedup_engine_over_torch", ...}], "entropy_coding",
        "gpu", "machine"}.

    Raises:
        ConfigError: a batch, thread count or call count out of range.
    """
    import torch

    _check_counts(batches, threads, calls)
    lm, source = _shipped_lm(lm_path)
    saved = torch.get_num_threads()
    steps = []
    try:
        for t in threads:
            for kbps in bitrates_kbps:
                _log(progress, f"bench lm: {kbps:g} kbps, {t} thread(s) ...")
                cell = _bench_lm_step(lm, t, kbps, batches, calls, seed)
                steps.append({"threads": t, "bitrate_kbps": kbps, **cell})
        torch.set_num_threads(1)
        _log(progress, "bench lm: logits -> bytes -> symbols ...")
        entropy = _bench_entropy(lm, entropy_chunks, seed)
        _log(progress, "bench lm: GPU ...")
        gpu = _bench_gpu(lm, calls, seed)
    finally:
        torch.set_num_threads(saved)
    return {"model": {"weights": source, "config": dataclasses.asdict(lm.cfg)},
            "steps": steps, "entropy_coding": entropy, "gpu": gpu, "machine": _machine()}


def _check_counts(batches: Sequence[int], threads: Sequence[int], calls: int) -> None:
    for b in batches:
        if not isinstance(b, int) or not 1 <= b <= MAX_BENCH_BATCH:
            raise ConfigError(f"batch sizes must be ints in [1, {MAX_BENCH_BATCH}], got {b!r}")
    for t in threads:
        if not isinstance(t, int) or not 1 <= t <= 256:
            raise ConfigError(f"thread counts must be ints in [1, 256], got {t!r}")
    if not isinstance(calls, int) or not 1 <= calls <= 100_000:
        raise ConfigError(f"calls must be an int in [1, 100000], got {calls!r}")


# ---- the transceiver: real-time factor and where the time goes ---------------------------


class _StageClock:
    """Exclusive CPU time of this process per stage of methods wrapped on instances (a
    nested timed call is charged to its own stage, not to its caller's). CPU time, not wall
    time: on a shared machine other processes' load does not inflate it (one thread of
    work: torch and the engine both run with ``threads`` = 1 in the headline cells)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[float] = []
        self._patched: list[tuple[Any, str]] = []

    def wrap(self, obj: Any, names: Sequence[str], stage: str) -> None:
        for name in names:
            fn = getattr(obj, name, None)
            if fn is None:
                continue
            own = vars(obj).get(name, _NOT_OWN) if hasattr(obj, "__dict__") else _NOT_OWN

            def timed(*args, _fn=fn, **kwargs):
                self._stack.append(0.0)
                t0 = time.process_time()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    dt = time.process_time() - t0
                    inner = self._stack.pop()
                    self.seconds[stage] += dt - inner
                    self.calls[stage] += 1
                    if self._stack:
                        self._stack[-1] += dt

            object.__setattr__(obj, name, timed)
            self._patched.append((obj, name, own))

    def add(self, stage: str, seconds: float) -> None:
        """Moves ``seconds`` timed inside a C++ call into ``stage`` (negative: out of it)."""
        self.seconds[stage] += seconds

    def restore(self) -> None:
        for obj, name, own in reversed(self._patched):
            if own is _NOT_OWN:
                object.__delattr__(obj, name)
            else:  # an attribute the instance held itself (a bound callable kept at init)
                object.__setattr__(obj, name, own)
        self._patched.clear()


_NOT_OWN = object()


def speechlike(seconds: float) -> np.ndarray:
    """float32 [T] at 16 kHz: a harmonic voice-like tone (f0 gliding 110-170 Hz, eleven
    harmonics, a 3 Hz syllable envelope), deterministic."""
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SAMPLE_RATE_HZ) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


TX_STAGES = ("encoder", "rd_search", "lm", "range_coding")
RX_STAGES = ("range_coding", "lm", "decoder")


def _transceiver_run(codec, make_model: Callable[[], Any], cfg: TransceiverConfig,
                     pcm: np.ndarray) -> dict:
    """One stream through a Transmitter and a Receiver (each its own model), no loss."""
    from .transceiver import Receiver, Transmitter

    clock = _StageClock()
    model_calls = ("fine_logits", "fine_cdfs", "commit", "conceal_logits")
    # The codec first: both ends look its numpy steps up when they are made.
    clock.wrap(codec, ("encode_step", "encode_latent_step", "encode_latent_frames"),
               "tx.encoder")
    clock.wrap(codec, ("decode_step", "decode_latent_step", "decode_tokens"), "rx.decoder")
    tx = Transmitter(codec, make_model(), cfg)
    rx = Receiver(codec, make_model(), cfg, keep_history=False, history_chunks=1)
    clock.wrap(tx, ("_rd_tokens",), "tx.rd_search")
    clock.wrap(tx.model, model_calls, "tx.lm")
    clock.wrap(tx.coder, ("encode_chunk", "encode_fine", "encode_base"), "tx.range_coding")
    clock.wrap(rx.model, model_calls, "rx.lm")
    clock.wrap(rx.coder, ("decode_chunk", "decode_fine", "decode_base", "decode_chunk_base"),
               "rx.range_coding")
    # The C++ chunk coders run the model, the search and the payload in one call each;
    # their own CPU clocks split it (ChunkEncoder, ChunkDecoder ``profiling``).
    natives = [nat for nat in (tx.chunk_encoder, tx.coder.native, rx.coder.native)
               if nat is not None]
    for nat in natives:
        nat.profiling = True
    try:
        n = cfg.chunk_samples
        t0, c0 = time.perf_counter(), time.process_time()
        packets = []
        for start in range(0, len(pcm) - len(pcm) % n, n):
            packets += tx.push(pcm[start:start + n])
        tx_s, tx_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        for p in packets:
            rx.push(p.data, p.seq, p.chunk)
        rx.decode_until(tx.chunks_sent)
        rx_s, rx_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        clock.restore()
        for nat in natives:
            nat.profiling = False
    for end, coder in (("tx", tx.coder), ("rx", rx.coder)):
        if coder.native is not None:  # the model's share of the C++ coder's calls
            clock.add(f"{end}.lm", coder.native.model_cpu_seconds)
            clock.add(f"{end}.range_coding", -coder.native.model_cpu_seconds)
    enc = tx.chunk_encoder
    if enc is not None:  # the fused call, inside no Python stage: out of "tx.other"
        clock.add("tx.rd_search", enc.search_cpu_seconds)
        clock.add("tx.range_coding", enc.chunk_cpu_seconds - enc.search_cpu_seconds)
    chunks = tx.chunks_sent
    per_chunk = {k: 1e3 * v / chunks for k, v in sorted(clock.seconds.items())}
    per_chunk["tx.other"] = 1e3 * tx_cpu / chunks - sum(
        v for k, v in per_chunk.items() if k.startswith("tx."))
    per_chunk["rx.other"] = 1e3 * rx_cpu / chunks - sum(
        v for k, v in per_chunk.items() if k.startswith("rx.") and k != "rx.other")
    seconds = chunks * n / SAMPLE_RATE_HZ
    return {"chunks": chunks, "audio_seconds": seconds, "model_id": tx.model.model_id,
            "fused_cdfs": bool(tx.coder.fused_cdfs), "tx_rtf": tx_s / seconds,
            "rx_rtf": rx_s / seconds, "rtf": (tx_s + rx_s) / seconds,
            "tx_cpu_rtf": tx_cpu / seconds, "rx_cpu_rtf": rx_cpu / seconds,
            "cpu_rtf": (tx_cpu + rx_cpu) / seconds, "cpu_ms_per_chunk": per_chunk,
            "bits_per_second": 8.0 * sum(len(p.data) for p in packets) / seconds,
            "fine_packets_failed_check": int(rx.stats.fine_packets_failed_check),
            "chunks_concealed": int(rx.stats.chunks_concealed)}


def bench_transceiver(bitrates_kbps: Sequence[float] = BENCH_BITRATES_KBPS,
                      backends: Sequence[str] = ("engine", "torch"),
                      threads: Sequence[int] = (1,), seconds: float = 4.0, rounds: int = 2,
                      codec_path: str | None = None, lm_path: str | None = None,
                      progress: bool = False) -> dict:
    """Transmitter + receiver real-time factor on the shipped models, engine against the
    PyTorch reference in the same run, with the time per chunk split by stage.

    Each (threads, bitrate, backend) cell codes ``seconds`` of a voice-like signal
    (``speechlike``) through a ``Transmitter`` and, once every packet is sent, a
    ``Receiver`` (no loss), at the default ``TransceiverConfig`` of the bitrate
    (rate-distortion token choice on); the run of least CPU time of ``rounds`` is kept.
    The ``engine`` backend runs SpringLM and the codec's encoder and decoder steps in C++
    (``CodecEngine``); ``torch`` runs both on the PyTorch reference.
    RTF = (transmit + receive seconds) / audio seconds, in wall time (``rtf``) and in this
    process's CPU time (``cpu_rtf``: what one dedicated core would take; on a shared
    machine the wall time also counts other processes). Stages, in CPU ms per chunk
    (``cpu_ms_per_chunk``), exclusive of each other: ``tx.encoder`` (codec encoder step), ``tx.rd_search`` (rate-distortion
    search, bit costs included), ``tx.lm`` / ``rx.lm`` (SpringLM calls: coding and memory
    passes), ``tx.range_coding`` / ``rx.range_coding`` (payloads, CDFs from logits on the
    torch path), ``rx.decoder`` (codec decoder step), ``*.other`` (the rest: packets, jitter
    buffer, bookkeeping).

    Args:
        bitrates_kbps: operating points. backends: ``engine`` and / or ``torch`` (see
            ``weights_io.load_coding_model``). threads: torch intra-op threads = engine
            threads per cell. seconds: audio per run, (0, 600]. rounds: runs per cell.
        codec_path, lm_path: weights (None = the shipped ones).
        progress: one line per cell on stderr.

    Returns:
        {"cells": [{"threads", "bitrate_kbps", "backend", "rtf", "tx_rtf", "rx_rtf",
        "cpu_rtf", "tx_cpu_rtf", "rx_cpu_rtf", "cpu_ms_per_chunk", ...}],
        "torch_rtf_over_engine_rtf": {...} (CPU RTF ratios), "machine"}.

    Raises:
        ConfigError: bad backends, counts or duration; missing weights.
        ModelMismatchError: an LM trained on another codec.
    """
    import torch

    from .config import CODING_BACKENDS
    from .models.codec_engine import CodecEngine
    from .models.weights_io import load_codec, load_coding_model

    for b in backends:
        if b not in CODING_BACKENDS:
            raise ConfigError(f"backends must be in {CODING_BACKENDS}, got {b!r}")
    _check_counts((), threads, rounds)
    if not 0 < float(seconds) <= MAX_BENCH_SECONDS:
        raise ConfigError(f"seconds must be in (0, {MAX_BENCH_SECONDS:g}], got {seconds!r}")
    codec = load_codec(codec_path)
    engine_codec = CodecEngine(codec)  # the engine backend's codec steps run in C++ too
    pcm = speechlike(float(seconds))
    saved = torch.get_num_threads()
    cells = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            for kbps in bitrates_kbps:
                cfg = TransceiverConfig(bitrate_kbps=kbps)
                for backend in backends:
                    _log(progress, f"bench transceiver: {kbps:g} kbps, {backend}, {t} "
                                   f"thread(s) ...")
                    made = load_coding_model(lm_path, codec, backend, num_threads=t)

                    def make_model(made=made, backend=backend, t=t):
                        if backend == "engine":  # another engine, the same weights
                            return load_coding_model(lm_path, codec, backend, num_threads=t)
                        return type(made)(made.lm)
                    streaming = engine_codec if backend == "engine" else codec
                    runs = [_transceiver_run(streaming, make_model, cfg, pcm)
                            for _ in range(rounds)]
                    best = min(runs, key=lambda r: r["cpu_rtf"])
                    cells.append({"threads": t, "bitrate_kbps": kbps, "backend": backend,
                                  **best})
    finally:
        torch.set_num_threads(saved)
    ratios = {}
    for c in cells:
        if c["backend"] != "engine":
            continue
        for o in cells:
            if (o["backend"] == "torch" and o["threads"] == c["threads"]
                    and o["bitrate_kbps"] == c["bitrate_kbps"]):
                ratios[f"{c['bitrate_kbps']:g}kbps_{c['threads']}t"] = (o["cpu_rtf"]
                                                                        / c["cpu_rtf"])
    return {"signal": {"kind": "speechlike", "seconds": float(seconds)}, "cells": cells,
            "torch_rtf_over_engine_rtf": ratios, "machine": _machine()}


MAX_BENCH_SYMBOLS = 10_000_000
"""Most symbols per implementation (the workload holds a CDF row per symbol in memory)."""


__all__ = ["BENCH_BATCHES", "BENCH_BITRATES_KBPS", "BENCH_THREADS", "MAX_BENCH_BATCH",
           "MAX_BENCH_SECONDS", "MAX_BENCH_SYMBOLS", "RX_STAGES", "TX_STAGES", "Workload",
           "bench_coder", "bench_lm", "bench_transceiver", "make_workload", "speechlike"]
