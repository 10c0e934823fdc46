"""``soundspring data fetch|prepare|info|tokens|synth``: the speech corpus commands.

``synth`` writes the out-of-domain TTS test set (``synth.synth_speech_set``)::

    soundspring data synth --out-dir runs/ood --per-voice 4
"""

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
    from . import synth

    p = sub.add_parser("synth", help="write an out-of-domain TTS speech test set (espeak-ng, piper), or "
                                  "its training counterpart (--role train)")
    p.add_argument("--out-dir", required=True, help="directory for wav/, manifest.jsonl")
    p.add_argument("--per-voice", type=int, default=4,
                   help="sentences per voice (1..8; English-only voices up to 12)")
    p.add_argument("--seed", type=int, default=0, help="which sentences each voice speaks")
    p.add_argument("--espeak-voices", nargs="*", default=None,
                   choices=sorted({**synth.ESPEAK_VOICES, **synth.TRAIN_ESPEAK_VOICES}),
                   help="eSpeak NG voices of the role (default: all; none: Piper only)")
    p.add_argument("--no-piper", action="store_true", help="skip the Piper 'joe' voice")
    p.add_argument("--role", default="test", choices=synth.ROLES,
                   help="test: the out-of-domain test set; train: other voices and texts, "
                        "split 'train', for codec training (no Piper)")


def _run_synth(args: argparse.Namespace) -> int:
    """``soundspring data synth``: writes the set, prints clips and minutes per source."""
    from . import synth

    manifest = synth.synth_speech_set(args.out_dir, n_per_voice=args.per_voice, seed=args.seed,
                                      progress=True, espeak_voices=args.espeak_voices,
                                      piper=not args.no_piper, role=args.role)
    per_source = synth.summary_by_source(manifest)
    info = json.loads((manifest.parent / "synth_info.json").read_text())
    print(f"manifest {manifest}: {sum(int(d['clips']) for d in per_source.values())} clips, "
          f"{sum(d['minutes'] for d in per_source.values()):.2f} minutes")
    print("| source | clips | minutes |\n|---|---|---|")
    for source, d in per_source.items():
        print(f"| {source} | {int(d['clips'])} | {d['minutes']:.2f} |")
    for source, why in info["skipped"].items():
        print(f"skipped {source}: {why}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "tokens":
        from . import tokens

        return tokens.run(args)
    if args.action == "synth":
        return _run_synth(args)
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
