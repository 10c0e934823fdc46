"""``soundspring decode in.spring out.wav``: a .spring file back to audio.

Damaged or missing records are concealed like lost packets; a file written with another
codec or LM is refused (ModelMismatchError).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ModelMismatchError
from ..pipeline import SentPacket, codec_id, config_from_header, load_models, receive
from ..plc import CONCEAL_MODES
from ..transport import read_container
from ._common import (
    add_io_flags,
    add_model_arguments,
    apply_threads,
    check_output,
    read_input_bytes,
    show_progress,
    write_audio,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help=".spring file, or - for stdin")
    parser.add_argument("output", help="16 kHz WAV file, or - for stdout")
    parser.add_argument("--conceal", choices=CONCEAL_MODES, default="lm")
    add_model_arguments(parser)
    add_io_flags(parser)


def run(args: argparse.Namespace) -> int:
    check_output(args.output, args.force)
    apply_threads(args)
    contents = read_container(read_input_bytes(args.input))
    header = contents.header
    codec, model = load_models(args.codec, args.lm)
    if header.get("codec_id") != codec_id(codec):
        raise ModelMismatchError(
            f"the stream was coded with codec {header.get('codec_id')}, "
            f"the loaded codec is {codec_id(codec)}"
        )
    if header.get("model_id") != model.model_id:
        raise ModelMismatchError(
            f"the stream was coded with model {header.get('model_id')}, "
            f"the loaded model is {model.model_id}"
        )
    conceal = args.conceal if (args.conceal != "lm" or args.lm != "none") else "repeat"
    cfg = config_from_header(header, conceal)
    n_samples = int(header.get("n_samples", 0))
    n_chunks = -(-n_samples // cfg.chunk_samples)
    packets = [SentPacket(r.seq, r.chunk, -1, r.packet) for r in contents.records]
    wav, rx = receive(
        codec, model, cfg, packets, n_chunks, n_samples, progress=show_progress(args, n_samples)
    )
    write_audio(args.output, wav)
    if contents.damage and not args.quiet:
        print(
            f"soundspring decode: {len(contents.damage)} damaged region(s); "
            f"{rx.stats.chunks_concealed} chunk(s) concealed",
            file=sys.stderr,
        )
    return 0
