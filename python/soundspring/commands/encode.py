"""``soundspring encode in.wav out.spring``: audio to a .spring file."""

from __future__ import annotations

import argparse
import io

from ..config import DEFAULT_CONCEAL
from ..models.weights_io import load_models
from ..transceiver import TransceiverConfig, transmit
from ..transceiver.stream import stream_header
from ..transport import ContainerWriter
from ._common import (
    add_io_flags,
    add_model_arguments,
    add_stream_arguments,
    apply_threads,
    check_output,
    read_audio,
    show_progress,
    write_output_bytes,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="audio file (any rate, mono or mixed down), or - for stdin")
    parser.add_argument("output", help=".spring file, or - for stdout")
    add_stream_arguments(parser)
    add_model_arguments(parser)
    add_io_flags(parser)


def config_from_args(args: argparse.Namespace,
                     conceal: str = DEFAULT_CONCEAL) -> TransceiverConfig:
    return TransceiverConfig(
        bitrate_kbps=args.bitrate,
        chunk_frames=args.chunk_frames,
        context_frames=args.context_frames,
        progressive=args.progressive,
        check_bits=args.check_bits,
        fec=args.fec,
        layered=args.layered,
        conceal=conceal,
        rd_lambda=args.rd_lambda,
    )


def run(args: argparse.Namespace) -> int:
    check_output(args.output, args.force)
    apply_threads(args)
    cfg = config_from_args(args)
    pcm = read_audio(args.input)
    codec, model = load_models(args.codec, args.lm, backend=args.lm_backend)
    packets, _ = transmit(codec, model, pcm, cfg, progress=show_progress(args, len(pcm)))
    buf = io.BytesIO()
    # The writer repeats the header in header-copy records (after the header, every
    # HEADER_COPY_INTERVAL records and at the end) so that a damaged header is recoverable.
    with ContainerWriter(buf, stream_header(codec, model, cfg, len(pcm))) as writer:
        for p in packets:
            writer.write(p.seq, p.chunk, p.data)
    write_output_bytes(args.output, buf.getvalue())
    return 0
