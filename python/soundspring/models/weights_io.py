"""Every weight and checkpoint file of the models, and the loaders built on them.

* The versioned weights file (``write_weights_file`` / ``read_weights_file``): a plain dict
  of str / int / tensors (format, version, config JSON, fp16 state dict, sha256 content
  hash, plus fields), loadable with ``torch.load(..., weights_only=True)`` (no pickled
  classes), written atomically.
* The codec's weights (``save_codec_weights``, ``read_codec_weights``, ``codec_from_weights``)
  and its two hashes: the content hash (``codec_content_hash``, the id stream headers
  record) and the tokenizer hash (``codec_tokenizer_hash``: config + encoder + quantizer,
  what SpringLM weights and token caches bind to).
* SpringLM's weights (``save_lm_weights``, ``read_lm_weights``, ``load_lm``)::

      {"format": "soundspring-springlm", "version": 1, "config": <SpringLMConfig JSON>,
       "tokenizer_sha256": <codec_tokenizer_hash of the codec whose tokens it models>,
       "meta": <JSON>, "state_dict": {name: fp16 tensor}, "sha256": <content hash>}

  whose content hash doubles as the model id that stream headers record.
* Codec training checkpoints (``atomic_save``, ``load_checkpoint``,
  ``load_checkpoint_codec``): the full training state in a run directory.
* The loaders: ``load_codec`` (weights file, checkpoint or run directory),
  ``load_coding_model`` (SpringLM checked against a codec) and ``load_models`` (both, the
  one entry point of the commands and the Python API). The coding model runs on the C++
  engine by default (``backend="engine"``: ``lm_engine.SpringLMEngine``, built by
  ``load_lm_engine`` from the tensors read here); ``backend="torch"`` gives the PyTorch
  reference (``lm_adapter.SpringLMCodingModel``). Their ``model_id`` differ (the engine's carries
  ``lm_engine.ENGINE_ID_SUFFIX``), so a stream coded by one is refused by the other.

Example:
    >>> import tempfile, pathlib
    >>> from soundspring.models.masked_lm import SpringLM, springlm_tiny
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "lm.pt"
    >>> _ = save_lm_weights(SpringLM(springlm_tiny()), p, tokenizer_sha256="0" * 64)
    >>> load_lm(p, tokenizer_sha256="0" * 64).cfg.dim
    64
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

from ..config import (
    CODING_BACKENDS,
    DEFAULT_CODING_BACKEND,
    CodecConfig,
    SpringLMConfig,
    from_json,
    to_json,
)
from ..entropy.static import StaticModel
from ..errors import ConfigError, ModelMismatchError
from .codec import Codec
from .codec_engine import CodecEngine
from .lm_adapter import SpringLMCodingModel
from .lm_engine import SpringLMEngine
from .masked_lm import SpringLM
from .rvq import ResidualVQ

_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CODEC_WEIGHTS = _WEIGHTS_DIR / "codec_default.pt"
"""The shipped codec weights."""
DEFAULT_LM_WEIGHTS = _WEIGHTS_DIR / "springlm_default.pt"
"""The shipped SpringLM weights (trained on the shipped codec's tokens)."""

CODEC_WEIGHTS_FORMAT = "soundspring-codec"
CODEC_WEIGHTS_VERSION = 1
LM_WEIGHTS_FORMAT = "soundspring-springlm"
LM_WEIGHTS_VERSION = 1


# ---- the weights file --------------------------------------------------------------------


def content_hash(config_json: str, state: dict[str, torch.Tensor]) -> str:
    """sha256 over the config JSON and every tensor (name, shape, dtype, bytes), sorted by name.

    Weights files record it; loaders recompute it to refuse corrupt files, and streams and
    LMs record a codec's tokenizer hash to refuse a mismatched codec.
    """
    h = hashlib.sha256(config_json.encode())
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_weights_file(path: str | Path, fmt: str, version: int, config_json: str,
                       state: dict[str, torch.Tensor], **fields: str) -> Path:
    """Writes a versioned weights file atomically: a plain dict of str / int / tensors
    (format, version, config JSON, state dict, sha256, plus ``fields``), loadable with
    ``torch.load(..., weights_only=True)`` (no pickled classes)."""
    blob = {"format": fmt, "version": version, "config": config_json, "state_dict": state,
            "sha256": content_hash(config_json, state), **fields}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(blob, buf)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path


def read_weights_file(path: str | Path, fmt: str, version: int, what: str) -> dict:
    """Reads and verifies a weights file written by :func:`write_weights_file`.

    Returns:
        The dict, with its content hash checked.

    Raises:
        ConfigError: missing or unreadable file, wrong format or version.
        ModelMismatchError: the content hash does not match (a corrupt file).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} weights {str(path)!r} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign bytes
        raise ConfigError(f"{path} is not a readable {fmt} weights file: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise ConfigError(f"{path} is not a {fmt} weights file")
    if blob.get("version") != version:
        raise ConfigError(f"{path}: weights version {blob.get('version')} unsupported "
                          f"(this build reads {version})")
    state = blob.get("state_dict")
    if not isinstance(state, dict) or content_hash(blob.get("config", ""), state) != blob.get("sha256"):
        raise ModelMismatchError(f"{path}: sha256 content hash mismatch (corrupt file?)")
    return blob


def atomic_save(obj: dict, path: Path) -> None:
    """``torch.save`` of ``obj`` to ``path`` via ``NAME.<pid>.part``, fsynced, then renamed:
    a reader never sees half a checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)

# ---- the codec ---------------------------------------------------------------------------


def codec_inference_state_dict(codec: Codec) -> dict[str, torch.Tensor]:
    """The tensors inference needs (no EMA statistics), as fp16 on CPU."""
    skip = {f"quantizer.{n}" for n in ResidualVQ.TRAINING_ONLY}
    return {k: v.detach().to("cpu", torch.float16).contiguous()
            for k, v in codec.state_dict().items() if k not in skip}


def codec_content_hash(codec: Codec) -> str:
    """sha256 of a codec as its shipped weights file records it (fp16 inference tensors)."""
    return content_hash(to_json(codec.cfg), codec_inference_state_dict(codec))


TOKENIZER_PREFIXES = ("encoder.", "quantizer.")


def codec_tokenizer_hash(codec: Codec) -> str:
    """sha256 of the part of a codec that decides its tokens: config + encoder + quantizer.

    SpringLM weights and token caches bind to this hash, not to the full content hash:
    a codec whose decoder alone was retrained produces the same tokens, so its LM still
    fits (and the LM's coding is unchanged bit for bit).
    """
    state = {k: v for k, v in codec_inference_state_dict(codec).items()
             if k.startswith(TOKENIZER_PREFIXES)}
    return content_hash(to_json(codec.cfg), state)


def save_codec_weights(codec: Codec, path: str | Path, meta: dict | None = None) -> Path:
    """Writes the versioned weights file: config JSON + fp16 state dict + sha256.

    A plain dict of str / int / tensors (no pickled classes), loadable with
    ``torch.load(..., weights_only=True)``; written atomically.
    """
    return write_weights_file(path, CODEC_WEIGHTS_FORMAT, CODEC_WEIGHTS_VERSION, to_json(codec.cfg),
                              codec_inference_state_dict(codec),
                              meta=json.dumps(meta or {}, sort_keys=True))


def read_codec_weights(path: str | Path) -> tuple[CodecConfig, dict[str, torch.Tensor], dict]:
    """Reads and verifies a weights file; returns (config, fp16 state dict, meta).

    Raises:
        ConfigError: missing file or wrong format/version.
        ModelMismatchError: the content hash does not match.
    """
    blob = read_weights_file(path, CODEC_WEIGHTS_FORMAT, CODEC_WEIGHTS_VERSION, "codec")
    return (from_json(CodecConfig, blob["config"]), blob["state_dict"],
            json.loads(blob.get("meta", "{}")))


def codec_from_weights(path: str | Path) -> Codec:
    """Builds a float32 ``Codec`` from a weights file (EMA statistics rebuilt)."""
    cfg, state, meta = read_codec_weights(path)
    codec = Codec(cfg)
    missing, unexpected = codec.load_state_dict({k: v.float() for k, v in state.items()},
                                                strict=False)
    allowed = {f"quantizer.{n}" for n in ResidualVQ.TRAINING_ONLY}
    if unexpected or set(missing) - allowed:
        raise ModelMismatchError(f"{path}: missing {sorted(set(missing) - allowed)}, "
                                 f"unexpected {sorted(unexpected)}")
    codec.quantizer.reset_ema()
    codec.meta = meta  # type: ignore[attr-defined]
    return codec


def load_checkpoint(path: str | Path) -> dict:
    """The dict of a codec training checkpoint (``checkpoint.pt``).

    Raises:
        ConfigError: missing, or not a codec training checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {str(path)!r} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "codec_config" not in ckpt:
        raise ConfigError(f"{path} is not a soundspring codec training checkpoint")
    return ckpt


def load_checkpoint_codec(path: str | Path) -> Codec:
    """A float32 ``Codec`` from a training checkpoint (all buffers, EMA included)."""
    ckpt = load_checkpoint(path)
    codec = Codec(from_json(CodecConfig, ckpt["codec_config"]))
    codec.load_state_dict(ckpt["model"])
    codec.meta = {"step": ckpt.get("step"), "train_seconds": ckpt.get("train_seconds")}  # type: ignore[attr-defined]
    return codec


def load_codec(path: str | Path | None = None, as_exported: bool = False) -> Codec:
    """Loads a codec for inference (eval mode, CPU), offline.

    Args:
        path: a weights file written by ``save_codec_weights``, a training checkpoint
            (``checkpoint.pt``) or run directory; None = the shipped default weights.
        as_exported: round a checkpoint's float32 inference tensors to fp16, as its
            exported weights file would hold them, so that its tokens equal those of the
            exported weights (token precompute; a weights file is fp16 already).

    Raises:
        ConfigError: the file is missing or not a codec weights file.
        ModelMismatchError: its hash or tensors do not match the config.
    """
    p = Path(path) if path is not None else DEFAULT_CODEC_WEIGHTS
    if p.is_dir():
        p = p / "checkpoint.pt"
    codec = load_checkpoint_codec(p) if p.name == "checkpoint.pt" else codec_from_weights(p)
    if as_exported:
        with torch.no_grad():
            state = codec.state_dict()
            for k in codec_inference_state_dict(codec):
                t = state[k]
                if t.is_floating_point():
                    t.copy_(t.to(torch.float16).to(t.dtype))
    return codec.eval()


# ---- SpringLM ----------------------------------------------------------------------------


def lm_inference_state_dict(model: SpringLM) -> dict[str, torch.Tensor]:
    """Every persistent tensor as fp16 on CPU."""
    return {k: v.detach().to("cpu", torch.float16).contiguous()
            for k, v in model.state_dict().items()}


def lm_model_id(model: SpringLM) -> str:
    """The content hash ``save_lm_weights`` would record for ``model``."""
    return content_hash(to_json(model.cfg), lm_inference_state_dict(model))


def save_lm_weights(model: SpringLM, path: str | Path, tokenizer_sha256: str,
                    meta: dict | None = None) -> Path:
    """Writes the shipped weights file (atomically); returns its path.

    Args:
        model: the LM (its fp32 tensors are stored as fp16).
        path: output file.
        tokenizer_sha256: ``codec_tokenizer_hash`` (encoder + quantizer) of the codec whose
            tokens the LM was trained on.
        meta: JSON-able training metadata (step, held-out numbers).
    """
    if not isinstance(tokenizer_sha256, str) or not tokenizer_sha256:
        raise ConfigError("tokenizer_sha256 must be a non-empty hex string")
    return write_weights_file(path, LM_WEIGHTS_FORMAT, LM_WEIGHTS_VERSION, to_json(model.cfg),
                              lm_inference_state_dict(model), tokenizer_sha256=tokenizer_sha256,
                              meta=json.dumps(meta or {}, sort_keys=True))


def read_lm_weights(path: str | Path) -> tuple[SpringLMConfig, dict[str, torch.Tensor], str,
                                                 str, dict]:
    """Reads and verifies a weights file.

    Returns:
        (config, fp16 state dict, tokenizer_sha256, content sha256 (model id), meta).

    Raises:
        ConfigError: missing file, wrong format or version.
        ModelMismatchError: the content hash does not match (corrupt file).
    """
    blob = read_weights_file(path, LM_WEIGHTS_FORMAT, LM_WEIGHTS_VERSION, "SpringLM")
    return (from_json(SpringLMConfig, blob["config"]), blob["state_dict"],
            str(blob["tokenizer_sha256"]), str(blob["sha256"]), json.loads(blob.get("meta", "{}")))


def load_lm(path: str | Path, tokenizer_sha256: str | None = None) -> SpringLM:
    """A float32 ``SpringLM`` in eval mode from a weights file.

    Args:
        path: a file written by ``save_lm_weights``.
        tokenizer_sha256: when given, the codec tokenizer hash the LM must have been trained on.

    Raises:
        ConfigError: missing or malformed file.
        ModelMismatchError: corrupt file, tensors that do not fit the config, or an LM
            trained on another codec.

    The loaded model carries ``model_id`` (content hash), ``tokenizer_sha256`` and ``meta``.
    """
    cfg, state, codec_h, sha, meta = read_lm_weights(path)
    _check_tokenizer(path, codec_h, tokenizer_sha256)
    model = SpringLM(cfg)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()},
                                                strict=False)
    if missing or unexpected:
        raise ModelMismatchError(f"{path}: missing {sorted(missing)}, unexpected "
                                 f"{sorted(unexpected)}")
    model.model_id = sha  # type: ignore[attr-defined]
    model.tokenizer_sha256 = codec_h  # type: ignore[attr-defined]
    model.meta = meta  # type: ignore[attr-defined]
    return model.eval()

# ---- the loaders -------------------------------------------------------------------------


def load_lm_engine(path: str | Path, tokenizer_sha256: str | None = None, *,
                   isa: str | None = None, num_threads: int = 1) -> SpringLMEngine:
    """The C++ engine of a SpringLM weights file (its SHA-256 verified on reading).

    Args:
        path: a file written by ``save_lm_weights``.
        tokenizer_sha256: when given, the codec tokenizer hash the LM must model.
        isa: the engine's kernel level (``lm_engine.ISA_LEVELS``; None reads
            ``SOUNDSPRING_ENGINE_ISA``, else the best this CPU runs); never changes the bits.
        num_threads: engine worker threads per call, 1..256; never changes the bits.

    Raises:
        ConfigError: missing or malformed file, bad ``isa`` or ``num_threads``.
        ModelMismatchError: corrupt file, tensors that do not fit the config, or an LM
            trained on another codec.
    """
    cfg, state, codec_h, sha, _ = read_lm_weights(path)
    _check_tokenizer(path, codec_h, tokenizer_sha256)
    return SpringLMEngine(cfg, state, weights_id=sha, isa=isa, num_threads=num_threads)


def _check_tokenizer(path: str | Path, trained_on: str, in_use: str | None) -> None:
    if in_use is not None and trained_on != in_use:
        raise ModelMismatchError(f"{path}: SpringLM was trained on the tokens of codec "
                                 f"tokenizer {trained_on[:16]}, but the codec in use has "
                                 f"tokenizer {in_use[:16]} (train or pick the LM of this codec)")


def _check_backend(backend: str) -> str:
    if backend not in CODING_BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(CODING_BACKENDS)}, got "
                          f"{backend!r}")
    return backend


def load_coding_model(path: str | Path | None, codec, backend: str = DEFAULT_CODING_BACKEND, *,
                      isa: str | None = None, num_threads: int = 1
                      ) -> SpringLMEngine | SpringLMCodingModel:
    """Loads SpringLM weights (None = the shipped default) checked against ``codec``, as
    the coding model of the transceiver.

    Args:
        path: SpringLM weights (``save_lm_weights``); None = ``DEFAULT_LM_WEIGHTS``.
        codec: the codec whose tokens are coded (its tokenizer hash must be the LM's).
        backend: ``engine`` (default: the C++ engine, fused CDFs) or ``torch`` (the
            PyTorch reference); streams of one are refused by the other (``model_id``).
        isa, num_threads: the engine's (see ``load_lm_engine``); ignored for ``torch``.

    Raises:
        ConfigError: no weights at ``path``, unknown ``backend``.
        ModelMismatchError: the LM was trained on the tokens of another codec.
    """
    _check_backend(backend)
    p = Path(path) if path is not None else DEFAULT_LM_WEIGHTS
    if not p.exists():
        raise ConfigError(f"SpringLM weights {str(p)!r} not found"
                          + ("; the shipped weights are missing from this install: pass "
                             "--lm PATH or --lm none" if path is None else ""))
    tokenizer = codec_tokenizer_hash(codec)
    if backend == "engine":
        return load_lm_engine(p, tokenizer, isa=isa, num_threads=num_threads)
    return SpringLMCodingModel(load_lm(p, tokenizer_sha256=tokenizer))


def load_models(codec_path: str | Path | None = None, lm: str | Path | None = "default",
                backend: str = DEFAULT_CODING_BACKEND
                ) -> tuple[Codec | CodecEngine, SpringLMEngine | SpringLMCodingModel | StaticModel]:
    """The one model loader: (codec, coding model), offline.

    With ``backend="engine"`` the codec is a ``codec_engine.CodecEngine``: its streaming
    encoder and decoder steps run in C++ (everything else is the PyTorch ``Codec``, its
    ``reference``); with ``torch`` both models are the PyTorch reference.

    Args:
        codec_path: codec weights, a training checkpoint or run dir; None = shipped default.
        lm: "none" for the static-PMF control (uniform PMFs), "default" for the shipped
            SpringLM, or a path to SpringLM weights.
        backend: where SpringLM and the codec's streaming steps run: ``engine`` (default,
            the C++ engines) or ``torch`` (the PyTorch reference); see ``load_coding_model``.

    Raises:
        ConfigError: missing weights, unknown ``backend``.
        ModelMismatchError: an LM trained on another codec.
    """
    _check_backend(backend)
    codec = load_codec(codec_path)
    model = (StaticModel() if lm in (None, "none")
             else load_coding_model(None if lm == "default" else lm, codec, backend))
    return (CodecEngine(codec) if backend == "engine" else codec), model


__all__ = [
    "CODEC_WEIGHTS_FORMAT",
    "CODEC_WEIGHTS_VERSION",
    "CODING_BACKENDS",
    "DEFAULT_CODEC_WEIGHTS",
    "DEFAULT_CODING_BACKEND",
    "DEFAULT_LM_WEIGHTS",
    "LM_WEIGHTS_FORMAT",
    "LM_WEIGHTS_VERSION",
    "TOKENIZER_PREFIXES",
    "atomic_save",
    "codec_content_hash",
    "codec_from_weights",
    "codec_inference_state_dict",
    "codec_tokenizer_hash",
    "content_hash",
    "lm_inference_state_dict",
    "lm_model_id",
    "load_checkpoint",
    "load_checkpoint_codec",
    "load_codec",
    "load_coding_model",
    "load_lm",
    "load_lm_engine",
    "load_models",
    "read_codec_weights",
    "read_lm_weights",
    "read_weights_file",
    "save_codec_weights",
    "save_lm_weights",
    "write_weights_file",
]
