"""``soundspring data fetch|prepare|info``: the speech corpus commands."""

from __future__ import annotations

import argparse
import json

from . import corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    for name, help_ in (
        ("fetch", "apt-get download + dpkg-deb -x the Asterisk G.722 prompt packages"),
        ("prepare", "decode to 16 kHz WAV, split, and write the manifest"),
        ("info", "print clip counts and minutes per language and split"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--cache-dir", default=None,
                       help="cache root (default $SOUNDSPRING_CACHE or ~/.cache/soundspring)")
        p.add_argument("--languages", nargs="+", default=list(corpus.LANGUAGES),
                       choices=corpus.LANGUAGES)
        if name == "fetch":
            p.add_argument("--update", action="store_true", help="always run apt-get update first")
    from . import tokens

    tokens.add_arguments(sub.add_parser("tokens", help="precompute codec tokens for SpringLM training"))


def run(args: argparse.Namespace) -> int:
    if args.action == "tokens":
        from . import tokens

        return tokens.run(args)
    if args.action == "fetch":
        out = corpus.fetch(args.cache_dir, args.languages, update=True if args.update else None)
        print(f"extracted to {out}")
    elif args.action == "prepare":
        manifest = corpus.prepare(args.cache_dir, args.languages)
        clips = corpus.read_manifest(manifest)
        print(f"manifest {manifest}: {len(clips)} clips")
        print(json.dumps(corpus.summary(clips), indent=1))
    else:
        clips = corpus.read_manifest(corpus.default_manifest(args.cache_dir))
        print(json.dumps(corpus.summary(clips), indent=1))
    return 0
