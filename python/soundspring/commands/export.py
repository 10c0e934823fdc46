"""``soundspring export --out DIR``: the codec steps and SpringLM as TorchScript and
``torch.export`` artifacts with explicit streaming state, the flat codec decoder and
SpringLM weights of the C++ engines (examples/cpp_receiver), and ``manifest.json``
(``soundspring.models.export``).

``DIR`` is created (one level, inside an existing folder); a directory that already holds
an export needs ``--force``. ``--lm none`` exports the codec alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONTEXT_FRAMES,
    MAX_CHUNK_FRAMES,
    MAX_CONTEXT_FRAMES,
)
from ..errors import ConfigError
from ..models.export import FORMATS, MANIFEST_NAME, export_models
from ..models.weights_io import DEFAULT_LM_WEIGHTS, codec_tokenizer_hash, load_codec, load_lm
from ._common import apply_threads, int_arg, threads_arg


def formats_arg(text: str) -> tuple[str, ...]:
    """``--formats``: a comma-separated subset of ``FORMATS``."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts or any(p not in FORMATS for p in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(
            f"expected distinct names from {', '.join(FORMATS)} separated by commas, got {text!r}")
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="export directory")
    parser.add_argument("--codec", default=None, help="codec weights/checkpoint (default: shipped)")
    parser.add_argument("--lm", default="default",
                        help="SpringLM weights, 'default' (shipped) or 'none' (codec only)")
    parser.add_argument("--chunk-frames", type=int_arg(1, MAX_CHUNK_FRAMES),
                        default=DEFAULT_CHUNK_FRAMES,
                        help=f"frames per step (packet interval), 1-{MAX_CHUNK_FRAMES}")
    parser.add_argument("--context-frames", type=int_arg(0, MAX_CONTEXT_FRAMES),
                        default=DEFAULT_CONTEXT_FRAMES,
                        help=f"the LM's entropy-context reach R, 0-{MAX_CONTEXT_FRAMES}")
    parser.add_argument("--formats", type=formats_arg, default=FORMATS,
                        help=f"comma-separated artifact formats (default {','.join(FORMATS)})")
    parser.add_argument("--threads", type=threads_arg, default=1,
                        help="torch intra-op threads (default 1)")
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _prepare_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a directory")
    if not out.exists():
        if not out.parent.is_dir():
            raise ConfigError(f"folder {str(out.parent)!r} does not exist")
        out.mkdir()
    elif (out / MANIFEST_NAME).exists() and not force:
        raise ConfigError(f"{str(out)!r} already holds an export (use --force to replace it)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    apply_threads(args)
    out = Path(args.out)
    _prepare_dir(out, args.force)
    codec = load_codec(args.codec)
    lm = None
    if args.lm != "none":
        path = DEFAULT_LM_WEIGHTS if args.lm == "default" else Path(args.lm)
        if not path.exists():
            raise ConfigError(f"SpringLM weights {str(path)!r} not found")
        lm = load_lm(path, tokenizer_sha256=codec_tokenizer_hash(codec))
    n_files = len(args.formats) * (3 + (0 if lm is None else 1 + (
        args.context_frames >= args.chunk_frames))) + (lm is not None) + 1
    bar = tqdm(total=n_files, desc="export", unit="file", disable=args.quiet)

    def progress(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        manifest = export_models(codec, lm, out, chunk_frames=args.chunk_frames,
                                 context_frames=args.context_frames, formats=args.formats,
                                 progress=progress)
    finally:
        bar.close()
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"soundspring export: {len(manifest['files'])} files ({total / 1e6:.1f} MB) and "
          f"{MANIFEST_NAME} in {out}", file=sys.stderr)
    return 0
