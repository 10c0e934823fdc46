"""SpringLM shipped weights: config JSON + fp16 state dict + sha256, plus the codec's tokenizer hash.

The file is a plain dict (str / int / tensors, no pickled classes) loadable with
``torch.load(..., weights_only=True)``, written atomically::

    {"format": "soundspring-springlm", "version": 1, "config": <SpringLMConfig JSON>,
     "tokenizer_sha256": <codec_tokenizer_hash of the codec whose tokens it models>, "meta": <JSON>,
     "state_dict": {name: fp16 tensor}, "sha256": <content hash of config + tensors>}

The content hash doubles as the model id that stream headers record.

Example:
    >>> import tempfile, pathlib
    >>> from soundspring.models.masked_lm import SpringLM, springlm_tiny
    >>> from soundspring.models.lm_weights import load_lm, save_lm_weights
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "lm.pt"
    >>> _ = save_lm_weights(SpringLM(springlm_tiny()), p, tokenizer_sha256="0" * 64)
    >>> load_lm(p, tokenizer_sha256="0" * 64).cfg.dim
    64
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import from_json, to_json
from ..errors import ConfigError, ModelMismatchError
from .masked_lm import SpringLM, SpringLMConfig
from .weights_io import content_hash, read_weights_file, write_weights_file

WEIGHTS_FORMAT = "soundspring-springlm"
WEIGHTS_VERSION = 1


def inference_state_dict(model: SpringLM) -> dict[str, torch.Tensor]:
    """Every persistent tensor as fp16 on CPU."""
    return {k: v.detach().to("cpu", torch.float16).contiguous()
            for k, v in model.state_dict().items()}


def model_id(model: SpringLM) -> str:
    """The content hash ``save_lm_weights`` would record for ``model``."""
    return content_hash(to_json(model.cfg), inference_state_dict(model))


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
    return write_weights_file(path, WEIGHTS_FORMAT, WEIGHTS_VERSION, to_json(model.cfg),
                              inference_state_dict(model), tokenizer_sha256=tokenizer_sha256,
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
    blob = read_weights_file(path, WEIGHTS_FORMAT, WEIGHTS_VERSION, "SpringLM")
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
    if tokenizer_sha256 is not None and codec_h != tokenizer_sha256:
        raise ModelMismatchError(f"{path}: SpringLM was trained on the tokens of codec "
                                 f"tokenizer {codec_h[:16]}, but the codec in use has tokenizer "
                                 f"{tokenizer_sha256[:16]} (train or pick the LM of this codec)")
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


__all__ = ["WEIGHTS_FORMAT", "WEIGHTS_VERSION", "content_hash", "inference_state_dict",
           "load_lm", "model_id", "read_lm_weights", "save_lm_weights"]
