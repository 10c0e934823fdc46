"""``soundspring eval codec`` (codec quality per bitrate on held-out clips, plus RTF),
``soundspring eval lm`` (``lm_eval``), ``soundspring eval rd`` (``rd_eval``) and
``soundspring eval sweep`` (``sweep``).

Every command evaluates the speaker-disjoint set by default (Tux Paint's held-out
languages; ``--set same-speakers`` for the Asterisk held-out prompts, ``--manifest FILE``
for any manifest, ``--set-name`` to name it) and names the set in every report: the first
line of the markdown, the JSON field ``eval_set`` and plot titles (see :mod:`.clips`).

Example::

    soundspring eval codec --bitrates 1.5 3 6 12 --max-clips 40 --json runs/eval/codec.json

``eval codec`` also reports PESQ-WB and STOI per group (JSON ``"by_source"``): per manifest
``"source"`` when the set mixes several, else per language (``"group_by"`` says which), so
an out-of-domain set from ``soundspring data synth`` shows which voices the codec
generalises to, and the speaker-disjoint set shows each held-out language::

    soundspring data synth --out-dir runs/ood
    soundspring eval codec --manifest runs/ood/manifest.jsonl --split heldout --max-clips 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    from .sweep import add_sweep_arguments

    add_sweep_arguments(sub.add_parser(
        "sweep", help="loss sweep: systems x conditions x bitrates x clips, with report and plots"))
    from .lm_eval import add_lm_eval_arguments

    add_lm_eval_arguments(sub.add_parser(
        "lm", help="SpringLM bits/token per level vs context reach, and measured packet bitrates"))
    from .rd_eval import add_rd_eval_arguments

    add_rd_eval_arguments(sub.add_parser(
        "rd", help="rate-distortion: measured kbps and PESQ-WB / STOI against rd_lambda"))
    p = sub.add_parser("codec", help="PESQ-WB / STOI / SI-SDR / log-mel per bitrate, and RTF")
    p.add_argument("--weights", default=None,
                   help="weights file, checkpoint.pt or run dir (default: shipped weights)")
    from .clips import add_set_arguments

    add_set_arguments(p)
    p.add_argument("--split", default="heldout", choices=["heldout", "train"],
                   help="manifest split (default heldout; train takes manifest order)")
    p.add_argument("--bitrates", type=float, nargs="+", default=[1.5, 3.0, 6.0, 12.0])
    p.add_argument("--max-clips", type=int, default=40,
                   help="clips, a fixed language-balanced subset (0 = all)")
    p.add_argument("--no-opus", action="store_true", help="skip the Opus 1.3 comparison")
    p.add_argument("--no-rtf", action="store_true", help="skip the real-time factor timing")
    p.add_argument("--json", default=None, help="also write every number to this JSON file")


def _opus_rows(wavs: list[np.ndarray], bitrates: list[float]) -> dict:
    """Opus 1.3 (VOIP, PLC mode, no loss) at the same target bitrates, or a reason why not."""
    try:
        from ..baselines.opus import OpusConfig, run_opus
        from ..errors import NativeFeatureError
    except ImportError as exc:  # the baseline module is optional
        return {"unavailable": f"soundspring.baselines.opus not importable: {exc}"}
    from . import metrics
    from .codec_eval import _mean

    out: dict = {}
    try:
        for br in bitrates:
            cfg = OpusConfig(bitrate_bps=round(br * 1000), mode="plc", version="1.3")
            rows: dict[str, list] = {}
            bps = []
            for w in wavs:
                res = run_opus(np.ascontiguousarray(w, np.float32), cfg, None)
                bps.append(res.bitrate_bps)
                for k, v in metrics.all_metrics(w, res.decoded).items():
                    rows.setdefault(k, []).append(v)
            out[f"{br:g}"] = {k: round(_mean(v), 4) for k, v in rows.items()} | {
                "measured_kbps": round(float(np.mean(bps)) / 1000, 2), "n": len(wavs)}
    except NativeFeatureError as exc:
        return {"unavailable": str(exc)}
    return out


def _table(codec_rows: dict, opus_rows: dict) -> str:
    lines = ["| kbps | PESQ-WB | STOI | SI-SDR dB | log-mel | Opus PESQ-WB | Opus STOI | Opus kbps |",
             "|---|---|---|---|---|---|---|---|"]
    for br, r in codec_rows.items():
        o = opus_rows.get(br, {}) if "unavailable" not in opus_rows else {}
        lines.append(f"| {br} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} | {r['si_sdr_db']:.2f} | "
                     f"{r['log_mel_dist']:.3f} | {o.get('pesq_wb', float('nan')):.3f} | "
                     f"{o.get('stoi', float('nan')):.3f} | {o.get('measured_kbps', '-')} |")
    return "\n".join(lines)


def _group_table(by_group: dict, group_by: str) -> str:
    """Markdown table of PESQ-WB / STOI per group and bitrate (``breakdown_by_group`` output)."""
    lines = [f"| {group_by} | kbps | PESQ-WB | STOI | n |", "|---|---|---|---|---|"]
    for group, per_br in by_group.items():
        for br, r in per_br.items():
            lines.append(f"| {group} | {br} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} | {r['n']} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.what == "sweep":
        from .sweep import run_sweep_cli

        return run_sweep_cli(args)
    if args.what == "lm":
        from .lm_eval import run_lm_eval

        return run_lm_eval(args)
    if args.what == "rd":
        from .rd_eval import run_rd_eval

        return run_rd_eval(args)
    from ..models.codec import load_codec
    from ..training.dataset import load_clips
    from .clips import eval_set_from_args
    from .codec_eval import (
        aggregate_rows,
        breakdown_by_group,
        evaluate_codec_per_clip,
        real_time_factor,
    )

    eval_set = eval_set_from_args(args, split=args.split)
    clips = list(eval_set.clips)
    # per source when the set mixes sources (e.g. `soundspring data synth` voices), else per
    # language (one human source: its languages are its speakers)
    sources = {c.source for c in clips if c.source}
    group_by = "source" if len(sources) > 1 else "language"
    groups = [(c.source or c.language) if group_by == "source" else c.language for c in clips]
    wavs = load_clips(clips)
    codec = load_codec(args.weights)
    t0 = time.time()
    result: dict = {
        "eval_set": eval_set.info(),
        "weights": str(args.weights or "default"),
        "meta": getattr(codec, "meta", {}),
        "params": codec.num_parameters(),
        "algorithmic_latency_ms": codec.algorithmic_latency_ms,
        "split": args.split, "clips": len(wavs),
        "audio_minutes": round(sum(w.size for w in wavs) / 16000 / 60, 2),
    }
    rows = evaluate_codec_per_clip(codec, wavs, args.bitrates, progress=True)
    result["codec"] = aggregate_rows(rows)
    result["group_by"] = group_by
    result["by_source"] = breakdown_by_group(rows, groups)
    result["opus_1.3"] = {"unavailable": "--no-opus"} if args.no_opus else _opus_rows(
        wavs, args.bitrates)
    if not args.no_rtf:
        result["rtf"] = [real_time_factor(codec, t) for t in (1, 2)]
    result["eval_seconds"] = round(time.time() - t0, 1)
    print(eval_set.heading() + "\n")
    print(_table(result["codec"], result["opus_1.3"]))
    print(_group_table(result["by_source"], group_by))
    if "unavailable" in result["opus_1.3"]:
        print(f"Opus columns left out: {result['opus_1.3']['unavailable']}")
    if "rtf" in result:
        for r in result["rtf"]:
            print(f"RTF ({r['threads']} thread{'s' if r['threads'] > 1 else ''}): encode "
                  f"{r['encode_rtf']}, decode {r['decode_rtf']}, total {r['total_rtf']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True, default=str))
        print(f"wrote {args.json}")
    return 0
