"""``soundspring bench coder``: range-coder symbols/s, ours vs the Python mirror vs
constriction (``soundspring.bench``), as text or one JSON object."""

from __future__ import annotations

import argparse
import json

from ..bench import MAX_BENCH_SYMBOLS, bench_coder
from ..errors import ConfigError
from ._common import int_arg, seed_arg


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


def run(args: argparse.Namespace) -> int:
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
