"""Codec tokens of the corpus, precomputed once per codec for SpringLM training.

Every clip of the manifest is encoded at the full depth (24 codebooks, 12 kbps) and the
tokens of one split are stored in one ``.npz`` file::

    <cache>/tokens/<tokenizer hash[:16]>/train.npz
    <cache>/tokens/<tokenizer hash[:16]>/heldout.npz

with ``<cache>`` = ``$SOUNDSPRING_CACHE`` or ``~/.cache/soundspring``. A file holds

    tokens      int16 [K, N]   the clips' tokens [K, F_i] concatenated along frames
    offsets     int64 [n + 1]  clip i is tokens[:, offsets[i]:offsets[i + 1]]
    names       str [n]        manifest paths relative to the corpus directory
    tokenizer_sha256 str []    codec_tokenizer_hash of the codec that produced the tokens

so an LM trained on one codec is refused with another (``ModelMismatchError``). The
tokenizer hash covers the codec's config and its fp16 encoder and quantizer tensors (not
the decoder: a decoder-only fine-tune keeps the tokens and the LM); a codec loaded from a training checkpoint is rounded to
fp16 first, so its tokens equal those of its exported weights.

Example (needs a codec and the prepared corpus)::

    from soundspring.data.tokens import precompute_tokens, load_tokens
    paths = precompute_tokens("runs/codec/codec_latest.pt")
    train = load_tokens(paths["train"])          # TokenSet, train.clip(0) -> int16 [24, F]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import MAX_CODEBOOKS, SAMPLE_RATE_HZ
from ..errors import ConfigError, ModelMismatchError
from .corpus import corpus_dir, default_cache_dir, read_manifest

SPLITS = ("train", "heldout")
TOKENS_BITRATE_KBPS = 12.0


@dataclasses.dataclass(frozen=True)
class TokenSet:
    """The tokens of one split.

    Attributes:
        tokens: int16 [K, N], every clip's frames concatenated.
        offsets: int64 [n + 1] clip boundaries.
        names: clip names (manifest paths relative to the corpus directory).
        tokenizer_sha256: tokenizer hash (encoder + quantizer) of the codec that made them.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    names: tuple[str, ...]
    tokenizer_sha256: str

    def __len__(self) -> int:
        return len(self.names)

    @property
    def frames(self) -> int:
        return int(self.tokens.shape[1])

    def clip(self, i: int) -> np.ndarray:
        """int16 [K, F_i] tokens of clip i."""
        return self.tokens[:, self.offsets[i]:self.offsets[i + 1]]


def codec_tokenizer_hash(codec: torch.nn.Module) -> str:
    """sha256 of the codec's encoder + quantizer (what decides its tokens)."""
    from ..models.codec import codec_tokenizer_hash as _hash

    return _hash(codec)


def load_codec_for_tokens(path: str | Path) -> tuple[torch.nn.Module, str]:
    """Loads a codec (weights file, ``checkpoint.pt`` or run dir) for token precompute.

    Returns:
        (codec in eval mode with fp16-rounded weights, its tokenizer hash).
    """
    from ..models.codec import load_codec

    codec = load_codec(path)
    with torch.no_grad():
        sd = codec.state_dict()
        from ..models.codec import inference_state_dict

        for k in inference_state_dict(codec):
            t = sd[k]
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return codec.eval(), codec_tokenizer_hash(codec)


def token_dir(tokenizer_sha256: str, cache_dir: str | Path | None = None) -> Path:
    """``<cache>/tokens/<hash[:16]>``."""
    return Path(cache_dir or default_cache_dir()) / "tokens" / tokenizer_sha256[:16]


def save_tokens(path: str | Path, clips: list[np.ndarray], names: list[str],
                tokenizer_sha256: str) -> Path:
    """Writes one split's tokens (clips int [K, F_i]) atomically as ``.npz``."""
    path = Path(path)
    if len(clips) != len(names) or not clips:
        raise ConfigError("clips and names must be non-empty and of equal length")
    k = clips[0].shape[0]
    if any(c.ndim != 2 or c.shape[0] != k for c in clips):
        raise ConfigError(f"every clip must be [K={k}, F]")
    offsets = np.zeros(len(clips) + 1, np.int64)
    offsets[1:] = np.cumsum([c.shape[1] for c in clips])
    tokens = np.concatenate(clips, axis=1).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.part.npz")
    np.savez(tmp, tokens=tokens, offsets=offsets, names=np.array(names, dtype=str),
             tokenizer_sha256=np.array(tokenizer_sha256))
    tmp.replace(path)
    return path


def load_tokens(path: str | Path, tokenizer_sha256: str | None = None) -> TokenSet:
    """Reads a split written by ``save_tokens``.

    Args:
        path: the ``.npz`` file.
        tokenizer_sha256: when given, the hash the tokens must come from.

    Raises:
        ConfigError: missing or malformed file.
        ModelMismatchError: the tokens come from another codec.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"token file {str(path)!r} not found: run the token precompute "
                          f"(soundspring.data.tokens)")
    with np.load(path, allow_pickle=False) as z:
        try:
            ts = TokenSet(z["tokens"], z["offsets"], tuple(str(n) for n in z["names"]),
                          str(z["tokenizer_sha256"]))
        except KeyError as exc:
            raise ConfigError(f"{path} is not a token file: missing {exc}") from exc
    if ts.tokens.ndim != 2 or ts.offsets[-1] != ts.tokens.shape[1]:
        raise ConfigError(f"{path}: inconsistent tokens/offsets")
    if tokenizer_sha256 is not None and ts.tokenizer_sha256 != tokenizer_sha256:
        raise ModelMismatchError(f"{path}: tokens come from codec {ts.tokenizer_sha256[:16]}, "
                                 f"expected {tokenizer_sha256[:16]}")
    return ts


@torch.inference_mode()
def encode_clip(codec: torch.nn.Module, wav: np.ndarray,
                bitrate_kbps: float = TOKENS_BITRATE_KBPS) -> np.ndarray:
    """float32 [T] at 16 kHz -> int16 tokens [K, ceil(T / 320)]."""
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None]
    return codec.encode(x, bitrate_kbps)[0].numpy().astype(np.int16)


def precompute_tokens(codec_path: str | Path,
                      manifest: str | Path | Sequence[str | Path] | None = None,
                      out_dir: str | Path | None = None, splits: tuple[str, ...] = SPLITS,
                      overwrite: bool = False, progress: bool = True,
                      max_clips: int | None = None,
                      heldout_manifest: str | Path | Sequence[str | Path] | None = None,
                      ) -> dict[str, Path]:
    """Encodes every clip of the manifest's splits at 24 codebooks; skips finished splits.

    Args:
        codec_path: codec weights file, ``checkpoint.pt`` or run directory (read only).
        manifest: corpus manifest, or several (their clips of each split are pooled, in
            order; default: the cache's Asterisk manifest).
        heldout_manifest: where the "heldout" split comes from instead (e.g. only the
            speaker-disjoint Tux Paint languages); default: ``manifest``.
        out_dir: output directory (default ``token_dir(hash)``).
        splits: which splits.
        overwrite: re-encode even if a split's file exists for this codec.
        progress: tqdm bars.
        max_clips: encode only the first n clips of each split (smoke tests).

    Returns:
        {split: path of its .npz}.

    Raises:
        ConfigError: missing codec, manifest or audio; a split with no clips.
    """
    from tqdm import tqdm

    from ..audio import read_wav

    codec, h = load_codec_for_tokens(codec_path)
    if codec.n_codebooks < MAX_CODEBOOKS:
        raise ConfigError(f"the codec has {codec.n_codebooks} codebooks; tokens need "
                          f"{MAX_CODEBOOKS}")
    out = Path(out_dir) if out_dir else token_dir(h)
    manifests = _manifest_list(manifest)
    sources = {"heldout": _manifest_list(heldout_manifest) if heldout_manifest else manifests}
    root = corpus_dir() if manifest is None else Path(manifests[0]).parent
    paths = {}
    for split in splits:
        path = out / f"{split}.npz"
        paths[split] = path
        if path.exists() and not overwrite:
            try:
                load_tokens(path, h)
                continue
            except (ConfigError, ModelMismatchError):
                pass
        clips = [c for m in sources.get(split, manifests)
                 for c in read_manifest(m, split=split)][:max_clips]
        if not clips:
            raise ConfigError(f"manifest has no {split!r} clips")
        toks, names = [], []
        t0 = time.time()
        for c in tqdm(clips, desc=f"tokens {split}", unit="clip", disable=not progress):
            toks.append(encode_clip(codec, read_wav(c.path)))
            names.append(str(Path(c.path).relative_to(root)) if Path(c.path).is_relative_to(
                root) else str(c.path))
        save_tokens(path, toks, names, h)
        if progress:
            sec = sum(t.shape[1] for t in toks) / (SAMPLE_RATE_HZ / 320)
            print(f"{split}: {len(toks)} clips, {sec / 60:.1f} min of audio, "
                  f"{time.time() - t0:.0f} s -> {path}", flush=True)
    return paths


def _manifest_list(manifest) -> list:
    """[manifest] for one path (or None: the cache's default), the list for several."""
    if manifest is None or isinstance(manifest, (str, Path)):
        return [manifest]
    return list(manifest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    paths = precompute_tokens(args.codec, args.manifest, args.out_dir,
                              overwrite=args.overwrite, progress=not args.no_progress,
                              max_clips=args.max_clips, heldout_manifest=args.heldout_manifest)
    for split, p in paths.items():
        ts = load_tokens(p)
        print(f"{split}: {p} ({len(ts)} clips, {ts.frames} frames, codec {ts.tokenizer_sha256[:16]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundspring.data.tokens",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "SPLITS",
    "TokenSet",
    "add_arguments",
    "codec_tokenizer_hash",
    "encode_clip",
    "load_codec_for_tokens",
    "load_tokens",
    "precompute_tokens",
    "run",
    "save_tokens",
    "token_dir",
]
