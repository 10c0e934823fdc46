"""``soundspring simulate in.wav out.wav``: the transceiver over a simulated lossy channel.

Losses are drawn per packet in send order (one packet per chunk by default; with
``--layered`` the layers of a chunk are sent back to back, so a burst hits neighbouring
layers and chunks). Prints bitrate (packet bytes, FEC included),
packets sent / lost / concealed / undecodable, and PESQ-WB / STOI against the input
(``null`` with a ``<metric>_null_reason`` where a metric cannot be computed, e.g. audio
shorter than 0.25 s; ``--json`` is strict JSON, never NaN).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError
from ..models.weights_io import load_models
from ..transceiver import algorithmic_latency_ms, receive, transmit
from ..transport import LOSS_MODEL_KINDS, LossSpec, make_loss_model
from ._common import (
    add_channel_arguments,
    add_conceal_argument,
    add_io_flags,
    add_model_arguments,
    add_stream_arguments,
    apply_threads,
    check_output,
    conceal_from_args,
    read_audio,
    show_progress,
    write_audio,
)
from .encode import config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="audio file, or - for stdin")
    parser.add_argument("output", help="decoded 16 kHz WAV, or - for stdout")
    add_stream_arguments(parser)
    parser.add_argument(
        "--channel", choices=LOSS_MODEL_KINDS, default="bernoulli"
    )
    add_channel_arguments(parser)
    parser.add_argument("--trace", default=None, help="loss trace file, one 0/1 per packet")
    add_conceal_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_arguments(parser)
    add_io_flags(parser)


def make_channel(args: argparse.Namespace):
    """The loss model of ``--channel/--loss/--burst/--trace/--seed`` (None for ``none``)."""
    if args.channel == "gilbert" and not args.loss < 1:
        raise ConfigError(f"--channel gilbert needs --loss below 1, got {args.loss:g}")
    if args.channel == "trace" and not getattr(args, "trace", None):
        raise ConfigError("--channel trace needs --trace FILE")
    spec = LossSpec(args.channel, args.loss, args.burst, getattr(args, "trace", None))
    return make_loss_model(spec, args.seed)


def simulate(
    codec, model, cfg, pcm: np.ndarray, channel, progress: bool = False
) -> tuple[np.ndarray, dict]:
    """Runs transmit -> channel -> receive on float32 [T]; returns (decoded [T], report)."""
    packets, tx = transmit(codec, model, pcm, cfg, progress)
    lost = channel.losses(len(packets)) if channel is not None else np.zeros(len(packets), bool)
    return receive_lossy(codec, model, cfg, packets, tx, lost, len(pcm), progress)


def receive_lossy(codec, model, cfg, packets, tx, lost: np.ndarray, n_samples: int,
                  progress: bool = False) -> tuple[np.ndarray, dict]:
    """Receives ``packets`` minus those flagged in ``lost`` (bool [n_packets]); returns
    (decoded float32 [n_samples], report)."""
    received = [p for p, gone in zip(packets, lost) if not gone]
    decoded, rx = receive(codec, model, cfg, received, tx.chunks_sent, n_samples, progress)
    duration_s = tx.chunks_sent * cfg.chunk_samples / SAMPLE_RATE_HZ
    n_bytes = sum(len(p.data) for p in packets)
    n_tokens = tx.chunks_sent * cfg.chunk_frames * cfg.layout.n_codebooks
    raw_bps = cfg.raw_bitrate_bps
    report = {
        "bitrate_bps": n_bytes * 8 / duration_s,
        "raw_bitrate_bps": raw_bps,
        "saving_vs_raw": 1 - n_bytes * 8 / duration_s / raw_bps,
        "bits_per_token": n_bytes * 8 / n_tokens,
        "packets_sent": len(packets),
        "packets_lost": int(lost.sum()),
        "packets_concealed": rx.stats.chunks_concealed,
        "packets_undecodable": rx.stats.fine_packets_undecodable
        + rx.stats.fine_packets_failed_check,
        "packets_failed_check": rx.stats.fine_packets_failed_check,
        "packets_from_fec": rx.stats.chunks_from_fec,
        "algorithmic_latency_ms": algorithmic_latency_ms(codec, cfg),
    }
    return decoded, report


def format_report(report: dict, width: int = 20) -> list[str]:
    """Text lines ``key: value`` (floats to 4 places; a null metric as ``n/a (reason)``)."""
    lines = []
    for key, value in report.items():
        if key.endswith("_null_reason"):
            continue
        if value is None:
            reason = report.get(f"{key}_null_reason")
            text = "n/a" + (f" ({reason})" if reason else "")
        elif isinstance(value, float):
            text = f"{value:.4f}"
        else:
            text = str(value)
        lines.append(f"{key:>{width}}: {text}")
    return lines


def strict_json(obj, **kwargs) -> str:
    """``json.dumps`` that never writes NaN/Infinity (ValueError if a caller let one in)."""
    return json.dumps(obj, allow_nan=False, **kwargs)


def run(args: argparse.Namespace) -> int:
    check_output(args.output, args.force)
    apply_threads(args)
    conceal = conceal_from_args(args)
    cfg = config_from_args(args, conceal)
    channel = make_channel(args)  # a bad --trace fails here, before any audio is coded
    pcm = read_audio(args.input)
    codec, model = load_models(args.codec, args.lm, backend=args.lm_backend)
    decoded, report = simulate(
        codec, model, cfg, pcm, channel, progress=show_progress(args, len(pcm))
    )
    from ..evaluation.metrics import quality_report

    report.update(quality_report(pcm, decoded))
    report["conceal"] = conceal
    text = strict_json(report) if args.json else "\n".join(format_report(report))
    write_audio(args.output, decoded)
    out = sys.stderr if args.output == "-" else sys.stdout
    print(text, file=out)
    return 0
