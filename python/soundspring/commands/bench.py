"""``soundspring bench coder | lm | transceiver``: range-coder symbols/s (ours vs the Python
mirror vs constriction), SpringLM's chunk step (C++ engine vs PyTorch reference, batches,
threads, logits -> bytes -> symbols vs constriction, the GPU when present), and the
transceiver's real-time factor with its time per chunk by stage (``soundspring.bench``), as
text or one JSON object. ``lm`` and ``transceiver`` report progress on stderr."""

from __future__ import annotations

import argparse
import json

from ..bench import (
    BENCH_BATCHES,
    BENCH_BITRATES_KBPS,
    BENCH_THREADS,
    MAX_BENCH_BATCH,
    MAX_BENCH_SECONDS,
    MAX_BENCH_SYMBOLS,
    bench_coder,
    bench_lm,
    bench_transceiver,
)
from ..errors import ConfigError
from ._common import bitrate_arg, float_arg, int_arg, seed_arg, threads_arg

BACKENDS = ("engine", "torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True)
    p = sub.add_parser("coder", help="range coder symbols/s: ours, Python mirror, constriction")
    p.add_argument("--symbols", type=int_arg(1, MAX_BENCH_SYMBOLS), default=1_000_000,
                   help=f"symbols per implementation, 1-{MAX_BENCH_SYMBOLS}")
    p.add_argument(
        "--mirror-symbols", type=int_arg(1, MAX_BENCH_SYMBOLS), default=20_000,
        help="symbols for the Python mirror",
    )
    p.add_argument("--vocab", type=int_arg(2, 1 << 16), default=1024,
                   help="alphabet size V, 2-65536 (at most 2**precision-bits)")
    p.add_argument("--precision-bits", type=int_arg(1, 16), default=16,
                   help="CDF precision, 1-16")
    p.add_argument("--seed", type=seed_arg, default=0, help="workload seed in [0, 2**64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("lm", help="SpringLM chunk step: C++ engine vs PyTorch, batches, "
                                  "threads; logits -> bytes -> symbols vs constriction")
    p.add_argument("--bitrates", type=bitrate_arg, nargs="+", default=list(BENCH_BITRATES_KBPS),
                   metavar="KBPS", help="operating points (default: 6 12)")
    p.add_argument("--batches", type=int_arg(1, MAX_BENCH_BATCH), nargs="+",
                   default=list(BENCH_BATCHES), metavar="B",
                   help=f"engine batch sizes, 1-{MAX_BENCH_BATCH} (default: 1 8 64)")
    p.add_argument("--threads", type=threads_arg, nargs="+", default=list(BENCH_THREADS),
                   metavar="N", help="thread counts, torch and engine alike (default: 1 2)")
    p.add_argument("--calls", type=int_arg(1, 100_000), default=30,
                   help="timed calls per measurement (the fastest is kept), 1-100000")
    p.add_argument("--entropy-chunks", type=int_arg(1, 100_000), default=200,
                   help="chunks of 12 kbps logits in the entropy-coding workload")
    p.add_argument("--lm", default=None, help="SpringLM weights (default: shipped)")
    p.add_argument("--seed", type=seed_arg, default=0, help="token seed in [0, 2**64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("transceiver", help="transmitter + receiver real-time factor and time "
                                           "per chunk by stage, engine vs PyTorch")
    p.add_argument("--bitrates", type=bitrate_arg, nargs="+", default=list(BENCH_BITRATES_KBPS),
                   metavar="KBPS", help="operating points (default: 6 12)")
    p.add_argument("--backends", choices=BACKENDS, nargs="+", default=list(BACKENDS),
                   help="coding-model backends (default: engine torch)")
    p.add_argument("--threads", type=threads_arg, nargs="+", default=[1], metavar="N",
                   help="thread counts, torch and engine alike (default: 1)")
    p.add_argument("--seconds", type=float_arg(0.0, MAX_BENCH_SECONDS, lo_open=True),
                   default=4.0, help=f"audio per run, (0, {MAX_BENCH_SECONDS:g}] s")
    p.add_argument("--rounds", type=int_arg(1, 100), default=2,
                   help="runs per cell (the fastest is kept), 1-100")
    p.add_argument("--codec", default=None, help="codec weights/checkpoint (default: shipped)")
    p.add_argument("--lm", default=None, help="SpringLM weights (default: shipped)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_coder(args: argparse.Namespace) -> int:
    if args.vocab > 1 << args.precision_bits:
        raise ConfigError(f"--vocab {args.vocab} is larger than 2**--precision-bits = "
                          f"{1 << args.precision_bits}; raise --precision-bits or lower --vocab")
    report = bench_coder(
        args.symbols,
        args.mirror_symbols,
        args.vocab,
        args.precision_bits,
        args.seed,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return 0
    print(f"workload: {report['workload']}")
    for name, r in report["results"].items():
        print(
            f"{name:>24}: encode {r['encode_symbols_per_s'] / 1e6:8.3f} M sym/s, "
            f"decode {r['decode_symbols_per_s'] / 1e6:8.3f} M sym/s, "
            f"{r['bits_per_symbol']:.4f} bits/sym, round trip {'ok' if r['round_trip_ok'] else 'FAILED'}"
        )
    for k, v in report["ratios"].items():
        print(f"{k}: {v:.2f}x")
    return 0


def _unique(values: list) -> tuple:
    return tuple(dict.fromkeys(values))


def _run_lm(args: argparse.Namespace) -> int:
    report = bench_lm(_unique(args.bitrates), _unique(args.batches), _unique(args.threads),
                      args.calls, args.entropy_chunks, args.seed, args.lm, progress=True)
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return 0
    print(f"model: {report['model']['weights']}")
    for s in report["steps"]:
        print(f"{s['bitrate_kbps']:g} kbps, {s['threads']} thread(s), {s['isa']}: torch step "
              f"{s['torch']['step_ms']:.3f} ms, engine step {s['engine']['step_ms']:.3f} ms "
              f"({s['step_speedup_engine_over_torch']:.1f}x), fused CDFs "
              f"{s['engine']['fine_cdfs_ms']:.3f} ms")
        for b, cell in s["engine_batches"].items():
            print(f"    engine batch {b:>4}: {cell['step_ms_per_stream']:.3f} ms per stream-chunk,"
                  f" {cell['realtime_streams']:.0f} real-time streams")
    e = report["entropy_coding"]
    line = (f"logits -> bytes -> symbols: ours "
            f"{e['soundspring']['round_trip_symbols_per_s'] / 1e3:.1f} k sym/s")
    if e.get("constriction"):
        line += (f", constriction {e['constriction']['round_trip_symbols_per_s'] / 1e3:.1f} "
                 f"k sym/s ({e['round_trip_soundspring_over_constriction']:.2f}x)")
    else:
        line += f" ({e.get('constriction_missing', 'constriction not measured')})"
    print(line)
    gpu = report["gpu"]
    print(f"gpu: {gpu['device'] if gpu['available'] else gpu['reason']}")
    return 0


def _run_transceiver(args: argparse.Namespace) -> int:
    report = bench_transceiver(_unique(args.bitrates), _unique(args.backends),
                               _unique(args.threads), args.seconds, args.rounds, args.codec,
                               args.lm, progress=True)
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return 0
    for c in report["cells"]:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_ms_per_chunk"].items())
        print(f"{c['bitrate_kbps']:g} kbps, {c['backend']}, {c['threads']} thread(s): CPU RTF "
              f"{c['cpu_rtf']:.3f} (tx {c['tx_cpu_rtf']:.3f}, rx {c['rx_cpu_rtf']:.3f}), wall "
              f"RTF {c['rtf']:.3f}; CPU ms per chunk: {stages}")
    for k, v in report["torch_rtf_over_engine_rtf"].items():
        print(f"torch CPU RTF / engine CPU RTF, {k}: {v:.2f}x")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target == "lm":
        return _run_lm(args)
    if args.target == "transceiver":
        return _run_transceiver(args)
    return _run_coder(args)
