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

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import MAX_CODEBOOKS, SAMPLE_RATE_HZ
from ..errors import ConfigError, ModelMismatchError
from ..models.weights_io import codec_tokenizer_hash, load_codec
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


def eval_windows(tokens: TokenSet, n_windows: int, frames: int) -> torch.Tensor:
    """Fixed, evenly spaced windows int64 [n, K, frames] of the held-out stream."""
    n = tokens.frames
    if n < frames:
        raise ConfigError(f"held-out split holds {n} frames, fewer than {frames}")
    count = min(n_windows, n // frames)
    starts = np.linspace(0, n - frames, count).astype(np.int64)
    stream = torch.from_numpy(tokens.tokens.astype(np.int64))
    return torch.stack([stream[:, s:s + frames] for s in starts])


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

    codec = load_codec(codec_path, as_exported=True)
    h = codec_tokenizer_hash(codec)
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


__all__ = [
    "SPLITS",
    "TokenSet",
    "encode_clip",
    "eval_windows",
    "load_tokens",
    "precompute_tokens",
    "save_tokens",
    "token_dir",
]
