"""Shared options and I/O rules of the transceiver commands (opusenc / encodec manners):
``-`` is stdin/stdout, an existing output is refused without ``--force``, progress goes to
stderr on long inputs."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from ..config import BITRATES_KBPS, DEFAULT_CHUNK_FRAMES
from ..errors import ConfigError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", default=None, help="codec weights/checkpoint (default: shipped)")
    parser.add_argument(
        "--lm",
        default="default",
        help="SpringLM weights, 'default' (shipped) or 'none' (static PMFs, no LM)",
    )


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-b",
        "--bitrate",
        type=float,
        default=6.0,
        help=f"raw token bitrate in kbps, one of {BITRATES_KBPS}",
    )
    parser.add_argument(
        "--chunk-frames",
        type=int,
        default=DEFAULT_CHUNK_FRAMES,
        help="frames (20 ms) per packet interval, 1-5",
    )
    from ..pipeline import TransceiverConfig

    defaults = TransceiverConfig()
    parser.add_argument(
        "--context-frames", type=int, default=defaults.context_frames,
        help=f"entropy-context reach of the LM in frames (default {defaults.context_frames})",
    )
    parser.add_argument("--progressive", action="store_true", help="progressive fine coding")
    parser.add_argument("--check-bits", type=int, default=defaults.check_bits,
                        help="integrity bits per chunk (per fine packet with --layered)")
    parser.add_argument(
        "--fec", action="store_true", help="copy each base payload into the next chunk"
    )
    parser.add_argument(
        "--layered", action="store_true",
        help="one packet per layer (base, fine groups) instead of one packet per chunk",
    )
    parser.add_argument(
        "--rd-lambda", type=float, default=defaults.rd_lambda,
        help="rate-distortion weight of the transmitter's token choice (latent squared error "
             f"per bit; 0 = nearest codewords; default {defaults.rd_lambda:g}); receivers "
             "need not know it",
    )


def add_io_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 = the real-time setting)"
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Sets torch's thread count; streaming inference on one thread avoids spin-waits."""
    import torch

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)


def check_output(path: str, force: bool) -> None:
    if path != "-" and Path(path).exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite")


def read_input_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r}: {exc}") from exc


def read_audio(path: str) -> np.ndarray:
    """float32 mono [T] at 16 kHz from a file or stdin (any rate: resampled)."""
    from ..audio import read_wav

    if path == "-":
        return read_wav(io.BytesIO(sys.stdin.buffer.read()))  # type: ignore[arg-type]
    return read_wav(path)


def write_audio(path: str, wav: np.ndarray) -> None:
    from ..audio import write_wav

    if path == "-":
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.clip(wav, -1, 1), 16000, subtype="PCM_16", format="WAV")
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
    else:
        write_wav(path, wav)


def write_output_bytes(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(p)


def show_progress(args: argparse.Namespace, n_samples: int) -> bool:
    return not args.quiet and sys.stderr.isatty() and n_samples > 16000 * 20
