"""``soundspring decode in.spring out.wav``: a .spring file back to audio.

Damaged or missing records are concealed like lost packets; a file written with another
codec or LM is refused (ModelMismatchError). Every stream-header field is validated
(``soundspring.transceiver.stream``); a damaged header is taken from one of its copies; the
output is as long as the records justify (``plan_decode``), never longer than the header
says. Whenever audio was concealed, one line on stderr says how much::

    soundspring decode: concealed 12 of 250 chunks (4.8 % of the audio): 10 missing, 2 corrupt

``--report FILE.json`` writes the per-chunk outcomes (strict JSON) for link debugging.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from typing import Any

from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError
from ..models.weights_io import load_models
from ..transceiver import CHUNK_STATUSES
from ..transceiver.stream import DecodePlan, StreamHeader, open_stream
from ..transport import ContainerContents
from ._common import (
    add_conceal_argument,
    add_io_flags,
    add_model_arguments,
    apply_threads,
    check_output_path,
    conceal_from_args,
    read_input_bytes,
    show_progress,
    write_audio_stream,
    write_output_bytes,
)

REPORT_FORMAT = "soundspring-decode-report"
REPORT_VERSION = 1
CONCEALED_STATUSES = ("concealed", "corrupt", "late")
"""The per-chunk outcomes (``transceiver.CHUNK_STATUSES``) whose audio was concealed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help=".spring file, or - for stdin")
    parser.add_argument("output", help="16 kHz WAV file, or - for stdout")
    add_conceal_argument(parser)
    parser.add_argument(
        "--report",
        metavar="FILE.json",
        default=None,
        help="write the per-chunk outcome (received at how many levels, base only, FEC, "
        "concealed, corrupt, late) and the totals as JSON (- = stdout)",
    )
    add_model_arguments(parser)
    add_io_flags(parser)


def summarize(history: list, plan: DecodePlan) -> dict[str, Any]:
    """Totals of the per-chunk outcomes: counts per status, concealed chunks and their
    share of the output samples (a last, partial chunk counts for its samples only)."""
    counts = Counter(o.status for o in history)
    concealed_samples = 0
    for o in history:
        if o.status in CONCEALED_STATUSES:
            start = o.chunk * plan.chunk_samples
            concealed_samples += max(0, min(plan.chunk_samples, plan.n_samples - start))
    concealed = sum(counts[s] for s in CONCEALED_STATUSES)
    share = concealed_samples / plan.n_samples if plan.n_samples else 0.0
    if plan.n_samples == 0 and history:  # no output sample, but chunks were decoded
        share = concealed / len(history)
    return {
        "chunks": len(history),
        "by_status": {s: int(counts[s]) for s in CHUNK_STATUSES},
        "concealed_chunks": int(concealed),
        "concealed_samples": int(concealed_samples),
        "concealed_share": float(share),
        "late_packets": int(sum(o.late_packets for o in history)),
    }


def concealment_line(totals: dict[str, Any], contents: ContainerContents) -> str | None:
    """The one stderr line about concealed audio (None when nothing was concealed and no
    byte was damaged)."""
    by = totals["by_status"]
    damage = contents.damage
    if contents.header_recovered and damage and damage[0].offset == 0:
        damage = damage[1:]  # the damaged header: said by its own line (``notes``)
    n_bytes = sum(d.size for d in damage)
    dmg = f"{len(damage)} damaged byte range(s) ({n_bytes} bytes) skipped" if damage else ""
    if totals["concealed_chunks"]:
        parts = [f"{by['concealed']} missing", f"{by['corrupt']} corrupt"]
        if by["late"]:
            parts.append(f"{by['late']} late")
        line = (
            f"soundspring decode: concealed {totals['concealed_chunks']} of "
            f"{totals['chunks']} chunks ({100 * totals['concealed_share']:.1f} % of the "
            f"audio): {', '.join(parts)}"
        )
        return line + (f"; {dmg}" if dmg else "")
    if damage:
        return f"soundspring decode: {dmg}; no chunk was concealed"
    return None


def _seconds(n_samples: int) -> str:
    return f"{n_samples / SAMPLE_RATE_HZ:.2f} s"


def notes(contents: ContainerContents, plan: DecodePlan) -> list[str]:
    """The stderr lines about the header copy used and the records dropped."""
    out = []
    if contents.header_recovered:
        why = contents.header_error.rstrip(".") or "the stream header is damaged"
        out.append(
            f"soundspring decode: {why}; recovered the header from its copy at byte "
            f"{contents.header_copy_offset}"
        )
    parts = []
    if plan.truncated:
        parts.append(
            f"decoded {_seconds(plan.n_samples)} of the {_seconds(plan.header_n_samples)} the "
            f"header announces: the records reach chunk {plan.last_record_chunk}, and at most "
            f"{plan.max_gap_chunks} missing chunks are concealed after them"
        )
    if plan.dropped_records:
        parts.append(
            f"dropped {plan.dropped_records} record(s) of chunk {plan.n_chunks} or later "
            "(past the end of the stream)"
        )
    if parts:
        out.append("soundspring decode: " + "; ".join(parts))
    return out


def report_text(report: dict[str, Any]) -> str:
    """The report as strict JSON: indented, one line per chunk (NaN/Infinity refused)."""
    body = dict(report)
    chunks = body.pop("chunks")
    head = json.dumps(body, allow_nan=False, indent=1)
    rows = ",\n".join("  " + json.dumps(c, allow_nan=False) for c in chunks)
    return head[: -len("\n}")] + ',\n "chunks": [\n' + rows + "\n ]\n}\n"


def build_report(
    args: argparse.Namespace,
    contents: ContainerContents,
    hdr: StreamHeader,
    plan: DecodePlan,
    history: list,
    totals: dict[str, Any],
    rx,
    conceal: str,
) -> dict[str, Any]:
    """The ``--report`` object (every value finite: written with allow_nan=False)."""
    stats = rx.stats
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "input": str(args.input),
        "container": {
            "version": contents.version,
            "header_recovered": contents.header_recovered,
            "header_copy_offset": contents.header_copy_offset,
            "header_error": contents.header_error,
            "header_copies": contents.header_copies,
            "records": len(contents.records),
            "damage": [{"offset": d.offset, "size": d.size} for d in contents.damage],
        },
        "stream": {
            "bitrate_kbps": hdr.bitrate_kbps,
            "chunk_frames": hdr.chunk_frames,
            "chunk_samples": hdr.chunk_samples,
            "layered": hdr.layered,
            "fec": hdr.fec,
            "conceal": conceal,
            "header_n_samples": plan.header_n_samples,
            "header_chunks": hdr.n_chunks,
        },
        "plan": {
            "n_chunks": plan.n_chunks,
            "n_samples": plan.n_samples,
            "max_gap_chunks": plan.max_gap_chunks,
            "last_record_chunk": plan.last_record_chunk,
            "records_kept": plan.records_kept,
            "records_dropped": plan.dropped_records,
        },
        "totals": totals,
        "receiver": dataclasses.asdict(stats),
        "chunks": [
            {
                "chunk": int(o.chunk),
                "status": str(o.status),
                "n_levels": int(o.n_levels),
                "late_packets": int(o.late_packets),
            }
            for o in history
        ],
    }


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output, args.force)
    if args.report is not None:
        if args.report == "-" and args.output == "-":
            raise ConfigError("--report - and output - would both write to stdout")
        if args.report != "-" and args.report == args.output:
            raise ConfigError("--report must name another file than the audio output")
        check_output_path(args.report, args.force, "report")
    apply_threads(args)
    conceal = conceal_from_args(args)
    # the header is validated before the models load; the models are checked against it
    stream = open_stream(read_input_bytes(args.input),
                         lambda: load_models(args.codec, args.lm, backend=args.lm_backend), conceal)
    contents, hdr, plan = stream.contents, stream.header, stream.plan
    # streamed to the output: memory bounded by one chunk
    rx, blocks = stream.blocks(progress=show_progress(args, plan.n_samples), keep_history=True)
    write_audio_stream(args.output, plan.n_samples, blocks)
    history = list(rx.history or [])
    totals = summarize(history, plan)
    if args.report is not None:
        report = build_report(args, contents, hdr, plan, history, totals, rx, conceal)
        write_output_bytes(args.report, report_text(report).encode("utf-8"))
    for line in notes(contents, plan):
        print(line, file=sys.stderr)
    line = concealment_line(totals, contents)
    if line:
        print(line, file=sys.stderr)
    return 0
