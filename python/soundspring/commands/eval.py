"""``soundspring eval codec`` (codec quality per bitrate on held-out clips, plus RTF),
``soundspring eval lm`` (``lm_eval``), ``soundspring eval rd`` (``rd_eval``) and
``soundspring eval sweep`` (``sweep``): the options, the printed reports and ``--json``;
the numbers come from ``soundspring.evaluation``.

Every command evaluates the speaker-disjoint set by default (Tux Paint's held-out
languages; ``--set same-speakers`` for the Asterisk held-out prompts, ``--manifest FILE``
for any manifest, ``--set-name`` to name it) and names the set in every report: the first
line of the markdown, the JSON field ``eval_set`` and plot titles
(``soundspring.evaluation.clips``).

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
from pathlib import Path
from typing import Any

from ..config import DEFAULT_CHUNK_FRAMES
from ..errors import ConfigError
from ..evaluation.clips import (
    DEFAULT_SET,
    SAME_SPEAKERS,
    SET_CHOICES,
    SET_DESCRIPTIONS,
    SPEAKER_DISJOINT,
    EvalSet,
    heading_line,
    resolve_eval_set,
)
from ..evaluation.conditions import DEFAULT_CONDITIONS, LOSS_MAPPINGS
from ..evaluation.systems import DEFAULT_SYSTEM_NAMES, PIPELINE_SYSTEM_NAMES, SYSTEM_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    _add_sweep_arguments(sub.add_parser(
        "sweep", help="loss sweep: systems x conditions x bitrates x clips, with report and plots"))
    _add_lm_eval_arguments(sub.add_parser(
        "lm", help="SpringLM bits/token per level vs context reach, and measured packet bitrates"))
    _add_rd_eval_arguments(sub.add_parser(
        "rd", help="rate-distortion: measured kbps and PESQ-WB / STOI against rd_lambda"))
    p = sub.add_parser("codec", help="PESQ-WB / STOI / SI-SDR / log-mel per bitrate, and RTF")
    p.add_argument("--weights", default=None,
                   help="weights file, checkpoint.pt or run dir (default: shipped weights)")
    _add_set_arguments(p)
    p.add_argument("--split", default="heldout", choices=["heldout", "train"],
                   help="manifest split (default heldout; train takes manifest order)")
    p.add_argument("--bitrates", type=float, nargs="+", default=[1.5, 3.0, 6.0, 12.0])
    p.add_argument("--max-clips", type=int, default=40,
                   help="clips, a fixed language-balanced subset (0 = all)")
    p.add_argument("--no-opus", action="store_true", help="skip the Opus 1.3 comparison")
    p.add_argument("--no-rtf", action="store_true", help="skip the real-time factor timing")
    p.add_argument("--json", default=None, help="also write every number to this JSON file")


def _add_set_arguments(parser: argparse.ArgumentParser, manifest: bool = True) -> None:
    """Adds ``--set``, ``--set-name`` and (with ``manifest``) ``--manifest``."""
    parser.add_argument("--set", dest="eval_set", default=None, choices=SET_CHOICES,
                        help=f"evaluation set (default {DEFAULT_SET}: "
                             f"{SET_DESCRIPTIONS[SPEAKER_DISJOINT]}; {SAME_SPEAKERS}: "
                             f"{SET_DESCRIPTIONS[SAME_SPEAKERS]})")
    if manifest:
        parser.add_argument("--manifest", default=None,
                            help="evaluate the clips of this manifest instead of --set (paths "
                                 "resolve against its directory; the set is named after the "
                                 "file unless --set-name)")
    parser.add_argument("--set-name", default=None,
                        help="what the reports call the set (default: from --set or the file)")


def _eval_set(args: argparse.Namespace, max_clips: int | None = None,
                       split: str = "heldout", **kw: Any) -> EvalSet:
    """``resolve_eval_set`` from the options of ``_add_set_arguments`` (``max_clips``
    defaults to ``args.max_clips``)."""
    return resolve_eval_set(getattr(args, "eval_set", None), getattr(args, "manifest", None),
                            getattr(args, "set_name", None),
                            getattr(args, "max_clips", 0) if max_clips is None else max_clips,
                            split=split, **kw)


def _add_lm_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lm", default=None, help="SpringLM weights (default: shipped)")
    parser.add_argument("--codec", default=None, help="codec weights (default: shipped)")
    parser.add_argument("--tokens-dir", default=None,
                        help="read the model-bits windows from DIR/heldout.npz (soundspring "
                             "data tokens --codec W makes it; the cache's is "
                             "<cache>/tokens/<tokenizer hash[:16]>) instead of encoding the "
                             "evaluation set's clips (the default)")
    parser.add_argument("--reach", type=int, nargs="+", default=[0, 2, 4, 8, 15, 30],
                        help="entropy-context reaches R in frames to compare")
    parser.add_argument("--chunk-frames", type=int, default=2)
    parser.add_argument("--windows", type=int, default=256, help="held-out token windows")
    parser.add_argument("--bitrates", type=float, nargs="+", default=[6.0, 12.0])
    _add_set_arguments(parser)
    parser.add_argument("--max-clips", type=int, default=40,
                        help="clips of the set for packet bits, the first N of its fixed "
                             "language-balanced order (0: skip packet bits)")
    parser.add_argument("--context-frames", type=int, default=None,
                        help="R for the packet measurement (default: the transceiver's)")
    parser.add_argument("--rd-lambda", type=float, default=0.0,
                        help="transmitter rate-distortion weight for the packet measurement "
                             "(default 0: the nearest codewords, so both codings code the "
                             "same tokens; `eval rd` measures the token choice)")
    parser.add_argument("--json", default=None, help="also write every number here")


def _add_rd_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lm", default=None, help="SpringLM weights (default: shipped)")
    parser.add_argument("--codec", default=None, help="codec weights (default: shipped)")
    parser.add_argument("--bitrates", type=float, nargs="+", default=[6.0, 12.0],
                        help="raw bitrate classes in kbps")
    parser.add_argument("--rd-lambdas", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0],
                        help="rate-distortion weights (latent squared error per bit)")
    parser.add_argument("--static", action="store_true",
                        help="also code with static PMFs (no LM) at every weight")
    parser.add_argument("--opus-bitrates", type=float, nargs="*", default=[6.0, 9.0, 12.0, 16.0],
                        help="Opus 1.3 target kbps for the comparison curve (none: skip)")
    _add_set_arguments(parser)
    parser.add_argument("--max-clips", type=int, default=40,
                        help="clips, a fixed language-balanced subset (0 = all)")
    parser.add_argument("--json", default=None, help="also write every number here")
    parser.add_argument("--plot", default=None, help="also draw PESQ-WB against kbps here (.png)")


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``soundspring eval sweep`` options to ``parser``."""
    parser.add_argument("--clips", default=None,
                        help="a directory of .wav files or a manifest (.jsonl, held-out split) "
                             "instead of --set; the set is named after it unless --set-name")
    _add_set_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory (resumable)")
    parser.add_argument("--systems", nargs="+", default=None, choices=SYSTEM_NAMES,
                        metavar="SYSTEM", help=f"default: {' '.join(DEFAULT_SYSTEM_NAMES)}; "
                        f"also: {' '.join(sorted(set(SYSTEM_NAMES) - set(DEFAULT_SYSTEM_NAMES)))}")
    parser.add_argument("--conditions", nargs="+", default=None, metavar="COND",
                        help=f"default: {' '.join(DEFAULT_CONDITIONS)}")
    parser.add_argument("--bitrates", nargs="+", type=float, default=None, metavar="KBPS",
                        help="nominal kbps classes (default 1.5 3 6 12)")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="first N clips of the set's fixed order (default all)")
    parser.add_argument("--seconds-per-clip", type=float, default=None,
                        help="keep the first S seconds of each clip (default whole clips)")
    parser.add_argument("--codec", default=None,
                        help="codec weights, checkpoint.pt or run dir (default: shipped weights, "
                             "else the newest runs/*/codec_latest.pt)")
    parser.add_argument("--lm", default=None, help="SpringLM weights (SoundSpring systems)")
    parser.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK_FRAMES,
                        help="frames per chunk for the codec systems (default %(default)s)")
    parser.add_argument("--loss-mapping", choices=LOSS_MAPPINGS, default="packet",
                        help="pattern -> slots rule (default %(default)s)")
    parser.add_argument("--no-mos", action="store_true", help="skip PLCMOS and DNSMOS")
    parser.add_argument("--no-dnsmos", action="store_true",
                        help="skip DNSMOS only (the costliest metric), keep PLCMOS")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (default %(default)s; results do not depend on it)")


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
        return _run_sweep(args)
    if args.what == "lm":
        return _run_lm(args)
    if args.what == "rd":
        return _run_rd(args)
    return _run_codec(args)


def _write_json(path: str, result: dict, **kw: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1, **kw))


def _run_codec(args: argparse.Namespace) -> int:
    """``soundspring eval codec``: prints the tables, writes ``--json``."""
    from ..evaluation.codec_eval import codec_report
    from ..models.weights_io import load_codec

    eval_set = _eval_set(args, split=args.split)
    codec = load_codec(args.weights)
    result = codec_report(codec, eval_set, args.bitrates, str(args.weights or "default"),
                          opus=not args.no_opus, rtf=not args.no_rtf)
    print(eval_set.heading() + "\n")
    print(_table(result["codec"], result["opus_1.3"]))
    print(_group_table(result["by_source"], result["group_by"]))
    if "unavailable" in result["opus_1.3"]:
        print(f"Opus columns left out: {result['opus_1.3']['unavailable']}")
    if "rtf" in result:
        for r in result["rtf"]:
            print(f"RTF ({r['threads']} thread{'s' if r['threads'] > 1 else ''}): encode "
                  f"{r['encode_rtf']}, decode {r['decode_rtf']}, total {r['total_rtf']}")
    if args.json:
        _write_json(args.json, result, sort_keys=True, default=str)
        print(f"wrote {args.json}")
    return 0


def _run_lm(args: argparse.Namespace) -> int:
    """``soundspring eval lm``: prints the markdown report, writes ``--json``."""
    import torch

    from ..evaluation.lm_eval import lm_report, report_markdown
    from ..models.weights_io import load_codec, load_coding_model

    if args.max_clips < 0:
        raise ConfigError(f"--max-clips must be >= 0, got {args.max_clips}")
    torch.set_num_threads(1)
    eval_set = _eval_set(args, max_clips=0)  # every clip: the token windows need them
    codec = load_codec(args.codec)
    coding_model = load_coding_model(args.lm, codec, "torch")  # lm_report reads .lm
    result = lm_report(codec, coding_model, eval_set, args.tokens_dir, args.windows,
                       args.reach, args.chunk_frames, args.max_clips, args.bitrates,
                       args.context_frames, args.rd_lambda)
    print(report_markdown(result))
    if args.json:
        _write_json(args.json, result)
    return 0


def _run_rd(args: argparse.Namespace) -> int:
    """``soundspring eval rd``: prints the markdown report, writes ``--json`` and ``--plot``."""
    import torch

    from ..evaluation.rd_eval import rd_report, report_markdown, write_plot
    from ..models.weights_io import load_codec, load_coding_model

    torch.set_num_threads(1)
    eval_set = _eval_set(args)  # the clips `eval lm` measures packets on
    codec = load_codec(args.codec)
    coding_model = load_coding_model(args.lm, codec)
    result = rd_report(codec, coding_model, eval_set, args.bitrates, args.rd_lambdas,
                       args.static, args.opus_bitrates)
    print(report_markdown(result))
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        print(f"plot: {write_plot(result, args.plot)}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    """``soundspring eval sweep``: runs (or resumes) the sweep; exit 1 if a system failed."""
    from ..evaluation.sweep import load_sweep_set, resolve_codec, run_sweep

    if args.clips and args.manifest:
        raise ConfigError("give --clips or --manifest, not both")
    clips, set_info = load_sweep_set(args.clips or args.manifest, args.max_clips,
                                     args.seconds_per_clip, eval_set=args.eval_set,
                                     set_name=args.set_name)
    want = args.systems or list(DEFAULT_SYSTEM_NAMES)
    codec, codec_id, reason = None, "none", "not needed"
    if any(s in want for s in PIPELINE_SYSTEM_NAMES):
        codec, codec_id, reason = resolve_codec(args.codec)
    res = run_sweep(clips, args.out, want, args.conditions, args.bitrates, codec=codec,
                    codec_id=codec_id, codec_missing_reason=reason or "",
                    chunk_frames=args.chunk_frames, loss_mapping=args.loss_mapping,
                    mos=not args.no_mos, dnsmos=not args.no_dnsmos, plots=not args.no_plots,
                    torch_threads=args.threads,
                    jobs=args.jobs, lm_path=args.lm, eval_set=set_info)
    skipped = [f"{n}: {m['reason']}" for n, m in res["systems"].items() if not m["available"]]
    print(heading_line(res["eval_set"]))
    print(f"{res['n_computed']} items computed, {res['n_skipped']} already done; "
          f"{res['timing']['total_cpu_s_per_clip_s']} s CPU per clip-second; {res['wall_s']} s wall")
    for s in skipped:
        print(f"skipped {s}")
    for n, fl in res["failures"].items():
        print(f"FAILED {n} ({fl['items']} items): {fl['error']}")
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'report.md'}")
    return 1 if res["failures"] else 0
