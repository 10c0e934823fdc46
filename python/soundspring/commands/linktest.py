"""``soundspring linktest``: synthetic tokens through the real transceiver (token
transmitter, packets, a lossy jittery channel, the clocked token receiver on the jitter
buffer) and the container, with a synthetic coding model (``soundspring.linktest``); prints
a report, exit 1 when a decoded token or the container does not come back exact."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from ..linktest import LinktestConfig, run_linktest
from ._common import add_bitrate_argument, add_channel_arguments, float_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = LinktestConfig()
    add_bitrate_argument(parser, d.bitrate_kbps)
    parser.add_argument("--seconds", type=float_arg(0.0, 3600.0, lo_open=True),
                        default=d.seconds, help="synthetic speech length in seconds, (0, 3600]")
    parser.add_argument(
        "--channel", default=d.channel, choices=["bernoulli", "gilbert", "wlan", "none"]
    )
    add_channel_arguments(parser, d.loss, d.burst)
    parser.add_argument(
        "--jitter-ms", type=float_arg(0.0, 10_000.0), default=d.jitter_ms,
        help="mean extra network delay in ms, 0-10000",
    )
    parser.add_argument("--playout-delay-ms", type=float_arg(0.0, 10_000.0),
                        default=d.playout_delay_ms, help="jitter-buffer delay in ms, 0-10000")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    cfg = LinktestConfig(
        bitrate_kbps=args.bitrate,
        seconds=args.seconds,
        channel=args.channel,
        loss=args.loss,
        burst=args.burst,
        jitter_ms=args.jitter_ms,
        playout_delay_ms=args.playout_delay_ms,
        seed=args.seed,
    )
    if cfg.channel == "gilbert" and not cfg.loss < 1:
        raise ConfigError(f"--channel gilbert needs --loss below 1, got {cfg.loss:g}")
    report = run_linktest(cfg, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        for key, value in report.items():
            if key != "config":
                print(
                    f"{key:>26}: {value:.4f}" if isinstance(value, float) else f"{key:>26}: {value}"
                )
    ok = report["decoded_tokens_exact"] and report["container_round_trip_ok"]
    return 0 if ok else 1
