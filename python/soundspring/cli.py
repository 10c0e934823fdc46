"""The ``soundspring`` command line: a thin ``main(argv) -> int`` over the library.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its command runs, so
``soundspring --help`` stays fast and needs neither torch nor audio packages.

Errors: one line on stderr, ``soundspring CMD: error: ...``; exit 2 for usage errors
(bad or missing options, values out of range), 1 for runtime errors, 130 on Ctrl-C.
Set ``SOUNDSPRING_DEBUG=1`` to see the traceback as well.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Sequence
from importlib import import_module
from typing import NoReturn

from .errors import SoundspringError

COMMANDS: dict[str, tuple[str, str]] = {
    "encode": ("soundspring.commands.encode", "encode audio into a .spring file"),
    "decode": ("soundspring.commands.decode", "decode a .spring file into audio"),
    "simulate": ("soundspring.commands.simulate", "run the transceiver over a simulated lossy channel"),
    "send": ("soundspring.commands.send", "send audio live over UDP/RTP, paced by the audio clock"),
    "receive": ("soundspring.commands.receive", "receive a live UDP/RTP stream into a WAV file"),
    "demo": (
        "soundspring.commands.demo",
        "the transceiver on the shipped models: loss, LM concealment vs controls",
    ),
    "linktest": (
        "soundspring.commands.linktest",
        "push synthetic tokens through coder, packets, jitter buffer and container",
    ),
    "bench": ("soundspring.commands.bench", "throughput benchmarks (coder) as JSON"),
    "data": ("soundspring.commands.data", "fetch and prepare the speech corpus"),
    "train": ("soundspring.commands.train", "train the codec or SpringLM"),
    "eval": ("soundspring.commands.eval", "evaluate models against baselines"),
    "export": ("soundspring.commands.export",
               "export the codec steps and SpringLM (TorchScript, torch.export, manifest)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``soundspring CMD: error: MSG (see ... --help)``,
    exit 2 (argparse's multi-line usage block is left to ``--help``)."""

    def error(self, message: str) -> NoReturn:
        command = " ".join(self.prog.split()[:2])  # "soundspring bench", also in "bench coder"
        self.exit(2, f"{command}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _usage() -> str:
    lines = ["usage: soundspring COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `soundspring COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    """Joins a message's lines with " | " so that every error is one line."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _describe_os_error(exc: OSError) -> str:
    words = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno or 0)
    if name:
        words = f"{words} ({name})"
    if exc.filename is not None:
        target = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
        return f"cannot access {target}: {words}"
    return f"input/output error: {words}"


def _debug() -> bool:
    return os.environ.get("SOUNDSPRING_DEBUG", "") not in ("", "0")


def _fail(name: str, message: str, code: int = 1) -> int:
    if _debug():
        traceback.print_exc()
    print(f"soundspring {name}: error: {_one_line(message) or 'unknown error'}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand and returns its exit code (0 ok, 1 error, 2 usage, 130 Ctrl-C).

    Every error is one line on stderr, ``soundspring CMD: error: ...``, without a
    traceback (``SOUNDSPRING_DEBUG=1`` adds it): typed SoundSpring errors and OSErrors
    with their message, MemoryError as "out of memory", anything else as
    "internal error: <type>: <message>". Usage errors (argparse) exit 2, the rest 1.
    """
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
        print(f"soundspring: error: unknown command {name!r} (commands: {', '.join(COMMANDS)}; "
              "see soundspring --help)", file=sys.stderr)
        return 2
    try:
        module = import_module(COMMANDS[name][0])
        parser = _Parser(prog=f"soundspring {name}", description=COMMANDS[name][1])
        module.add_arguments(parser)
    except KeyboardInterrupt:
        print(f"soundspring {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (a missing dependency or a broken install)
        return _fail(name, f"cannot load the command: {type(exc).__name__}: {exc}")
    try:
        ns = parser.parse_args(args[1:])
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(module.run(ns))
    except KeyboardInterrupt:
        print(f"soundspring {name}: interrupted", file=sys.stderr)
        return 130
    except SoundspringError as exc:
        return _fail(name, str(exc) or type(exc).__name__)
    except MemoryError as exc:
        return _fail(name, "out of memory" + (f": {exc}" if str(exc) else ""))
    except OSError as exc:
        return _fail(name, _describe_os_error(exc))
    except Exception as exc:  # noqa: BLE001  (the last resort: one line, never a traceback)
        hint = "" if _debug() else " (set SOUNDSPRING_DEBUG=1 for a traceback)"
        return _fail(name, f"internal error: {type(exc).__name__}: {exc}{hint}")
