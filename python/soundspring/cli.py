"""The ``soundspring`` command line: a thin ``main(argv) -> int`` over the library.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its command runs, so
``soundspring --help`` stays fast and needs neither torch nor audio packages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from .errors import SoundspringError

COMMANDS: dict[str, tuple[str, str]] = {
    "encode": ("soundspring.commands.encode", "encode audio into a .spring file"),
    "decode": ("soundspring.commands.decode", "decode a .spring file into audio"),
    "simulate": ("soundspring.commands.simulate", "run the transceiver over a simulated lossy channel"),
    "demo": (
        "soundspring.commands.demo",
        "the transceiver on the shipped models: loss, LM concealment vs controls",
    ),
    "linktest": (
        "soundspring.linktest",
        "push synthetic tokens through coder, packets, jitter buffer and container",
    ),
    "bench": ("soundspring.bench", "throughput benchmarks (coder) as JSON"),
    "data": ("soundspring.data.cli", "fetch and prepare the speech corpus"),
    "train": ("soundspring.training.cli", "train the codec or SpringLM"),
    "eval": ("soundspring.evaluation.cli", "evaluate models against baselines"),
}


def _usage() -> str:
    lines = ["usage: soundspring COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `soundspring COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand and returns its exit code (0 ok, 1 error, 2 usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from . import __version__

        print(f"soundspring {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"soundspring: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"soundspring {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    try:
        ns = parser.parse_args(args[1:])
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(module.run(ns))
    except SoundspringError as exc:
        print(f"soundspring {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"soundspring {name}: interrupted", file=sys.stderr)
        return 130
