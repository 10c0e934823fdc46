"""``soundspring data fetch|prepare|info|tokens|synth``: the speech corpus commands
(``soundspring.data``).

``fetch`` and ``prepare`` handle the human-speech sources (``--source asterisk|tuxpaint|all``,
default all): the Asterisk prompts (``corpus``) and Tux Paint's spoken stamp descriptions
(``tuxpaint``); ``info`` prints clips and minutes per source, language and split::

    soundspring data fetch && soundspring data prepare && soundspring data info

``synth`` writes the out-of-domain TTS test set (``synth.synth_speech_set``)::

    soundspring data synth --out-dir runs/ood --per-voice 4

``tokens`` precomputes a codec's tokens of the corpus for SpringLM training
(``tokens.precompute_tokens``)::

    soundspring data tokens --codec runs/codec
"""

from __future__ import annotations

import argparse
import json

from ..config import TUXPAINT_HELDOUT_LANGUAGES
from ..data import corpus, synth, tuxpaint

SOURCES = ("asterisk", "tuxpaint", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    for name, help_ in (
        ("fetch", ("apt-get download + dpkg-deb -x the Asterisk G.722 prompt packages and "
                   "tuxpaint-stamps-default")),
        ("prepare", "decode to 16 kHz WAV, split, and write the manifests"),
        ("info", "print clip counts and minutes per source, language and split"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--cache-dir", default=None,
                       help="cache root (default $SOUNDSPRING_CACHE or ~/.cache/soundspring)")
        p.add_argument("--source", default="all", choices=SOURCES,
                       help="which human-speech source (default: all)")
        p.add_argument("--languages", nargs="+", default=list(corpus.LANGUAGES),
                       choices=corpus.LANGUAGES,
                       help="Asterisk languages (Tux Paint always takes every language: "
                            "its split is by language)")
        if name == "fetch":
            p.add_argument("--update", action="store_true", help="always run apt-get update first")
    _add_tokens_arguments(sub.add_parser("tokens",
                                         help="precompute codec tokens for SpringLM training"))
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
        return _run_tokens(args)
    if args.action == "synth":
        return _run_synth(args)
    sources = ("asterisk", "tuxpaint") if args.source == "all" else (args.source,)
    if args.action == "fetch":
        update = True if args.update else None
        for source in sources:
            if source == "asterisk":
                out = corpus.fetch(args.cache_dir, args.languages, update=update)
            else:
                out = tuxpaint.fetch(args.cache_dir, update=update)
            print(f"{source}: extracted to {out}")
            update = None if update is None else False  # apt-get update once
        return 0
    if args.action == "prepare":
        for source in sources:
            if source == "asterisk":
                manifest = corpus.prepare(args.cache_dir, args.languages)
            else:
                manifest = tuxpaint.prepare(args.cache_dir)
            print(f"{source}: manifest {manifest}: {len(corpus.read_manifest(manifest))} clips")
    manifests = {"asterisk": corpus.default_manifest(args.cache_dir),
                 "tuxpaint": tuxpaint.default_manifest(args.cache_dir)}
    rows = []
    for source in sources:
        if manifests[source].exists():
            rows += corpus.summary_rows(corpus.read_manifest(manifests[source]), source)
        elif args.action == "info":
            print(f"{source}: no manifest at {manifests[source]} "
                  f"(run `soundspring data prepare --source {source}`)")
    if rows:
        print(format_summary(rows))
        langs = ", ".join(TUXPAINT_HELDOUT_LANGUAGES)
        print(f"heldout sets: asterisk = \"{corpus.EVAL_SET}\" (other prompts of the training "
              f"speakers); tuxpaint = \"{tuxpaint.EVAL_SET}\" (languages {langs}: "
              f"{tuxpaint.heldout_manifest(args.cache_dir)})")
    return 0


def format_summary(rows: list[dict]) -> str:
    """A markdown table of ``corpus.summary_rows`` with a total per source and split."""
    lines = ["| source | language | split | clips | minutes |", "|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['language']} | {r['split']} | {r['clips']} | "
              f"{r['minutes']:.2f} |" for r in rows]
    totals: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        t = totals.setdefault((r["source"], r["split"]), [0, 0.0])
        t[0] += r["clips"]
        t[1] += r["minutes"]
    lines += [f"| {s} | all | {sp} | {int(t[0])} | {t[1]:.2f} |"
              for (s, sp), t in sorted(totals.items())]
    return "\n".join(lines)


def _add_tokens_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``soundspring data tokens``."""
    parser.add_argument("--codec", required=True,
                        help="codec weights file, checkpoint.pt or run directory")
    parser.add_argument("--manifest", nargs="+", default=None,
                        help="corpus manifest(s), pooled per split (default: the cache's)")
    parser.add_argument("--heldout-manifest", nargs="+", default=None,
                        help="take the heldout split from these manifests instead (e.g. the "
                             "speaker-disjoint Tux Paint languages)")
    parser.add_argument("--out-dir", default=None,
                        help="output directory (default <cache>/tokens/<tokenizer hash[:16]>)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="only the first N clips per split")
    parser.add_argument("--no-progress", action="store_true")


def _run_tokens(args: argparse.Namespace) -> int:
    """``soundspring data tokens``: precomputes the tokens, prints each split's file."""
    import torch

    from ..data.tokens import load_tokens, precompute_tokens

    torch.set_num_threads(max(1, args.threads))
    paths = precompute_tokens(args.codec, args.manifest, args.out_dir,
                              overwrite=args.overwrite, progress=not args.no_progress,
                              max_clips=args.max_clips, heldout_manifest=args.heldout_manifest)
    for split, p in paths.items():
        ts = load_tokens(p)
        print(f"{split}: {p} ({len(ts)} clips, {ts.frames} frames, codec {ts.tokenizer_sha256[:16]})")
    return 0
