"""Exported models: the codec's streaming steps and SpringLM as TorchScript and
``torch.export`` (``.pt2``) artifacts with explicit state, flat weights files of the codec
decoder and SpringLM for the C++ engines, and the ``manifest.json`` that binds them to the
models they came from.

Artifacts (``export_models``; C frames per chunk, K_max = 24 levels, D latent width):

* ``encoder_step``: pcm float32 [1, 1, C * 320] + state -> (codes int64 [1, K_max, C],
  latents float32 [1, D, C], new state). One artifact for every bitrate: greedy residual
  search gives level k the same code whatever the number of levels, so the codes of
  bitrate b are ``codes[:, :K(b)]``. The search is the PyTorch reference
  (``ResidualVQ._nearest``'s arithmetic); a transmitter that picks its tokens with a rate
  term (``rd_lambda``) starts from ``latents``.
* ``decoder_step``: codes int64 [1, K_max, C] (levels >= n_levels are ignored, any value
  in [0, V)), n_levels int64 [1] in [1, K_max], frames int64 [1] (frames decoded so far) +
  state -> (pcm float32 [1, 1, C * 320], frames + C, new state). The output is the eager
  ``Codec.decode_step`` of ``codes[:, :n_levels]``: one artifact for every bitrate and for
  chunks received at fewer levels.
* ``decoder_latent_step``: latents float32 [1, D, C] + frames + state -> the same outputs
  (``Codec.decode_latent_step``: concealment that decodes expected latents).
* ``lm_fine_step``: SpringLM's coding pass of one chunk, view int64 [1, K_max, C] (base
  visible, fine levels MASK / MASK_UPPER) -> logits float32 [1, K_max - 3, C, V] of
  levels [3, K_max); with a reach R >= C also frames int64 [1] and the memory (keys,
  values float32 [L, 1, H, cap, Dh], slot_frame int64 [cap], valid bool [cap]).
* ``lm_commit_step`` (only when R >= C; below that the memory is empty): base int64
  [1, 3, C] + frames + memory + write int64 [1] -> (new memory, write, frames).
* ``springlm_engine.bin``: SpringLM's weights in a flat file the C++ engine reads with no
  Python or torch (``write_lm_flat``; ``read_lm_flat`` reads it back).
* ``codec_decoder.bin``: the codec decoder's weights (``decoder.*``) and the quantizer
  codebooks [K_max, V, D] in a flat file the C++ codec decoder (csrc/core/codec_engine.h,
  read by csrc/core/flat_weights.h) runs with no Python or torch (``write_codec_flat``;
  ``read_codec_flat``). Written with or without SpringLM; the manifest names it in
  ``codec.decoder_weights``.

Both flat files share one container (``write_flat_tensors`` documents the layout), each
kind with its own magic and header ``format`` (``FlatKind``).

States are lists of float32 tensors in a fixed order whose shapes the manifest records
(their zeros are the initial state). ``load_exported`` verifies the manifest (format,
version, every file's SHA-256 and size, every artifact's input and output shapes against
the ones its recorded configuration implies, and the codec and LM hashes against models
it is asked to match) and refuses a mismatch with ``ConfigError`` (malformed manifest,
unsupported version) or ``ModelMismatchError`` (a file that is not the one recorded, a
shape that does not fit, another model).

Example (the codec alone; pass ``lm=weights_io.load_lm(...)`` for SpringLM too):
    >>> import tempfile, torch
    >>> from soundspring.models.export import export_models, load_exported
    >>> from soundspring.models.weights_io import load_codec
    >>> codec, out = load_codec(), tempfile.mkdtemp()
    >>> _ = export_models(codec, None, out, formats=("torchscript",))
    >>> ex = load_exported(out, codec=codec)
    >>> codes, z, state = ex.run("encoder_step", torch.zeros(1, 1, 640),
    ...                          ex.initial_state("encoder_step"))
    >>> tuple(codes.shape), tuple(z.shape)
    ((1, 24, 2), (1, 128, 2))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import (
    BASE_CODEBOOKS,
    BITRATES_KBPS,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONTEXT_FRAMES,
    FRAME_SAMPLES,
    LAYER_BOUNDS,
    MASK,
    MASK_UPPER,
    MAX_CHUNK_FRAMES,
    SAMPLE_RATE_HZ,
    CodecConfig,
    SpringLMConfig,
    codebooks_for_bitrate,
    from_json,
    to_json,
)
from ..entropy.chunk import BASE_CHECK_SALT, COMBINED_CHECK_SALT
from ..errors import ConfigError, ModelMismatchError
from .codec import Codec
from .lm_engine import ENGINE_ID_SUFFIX
from .masked_lm import SpringLM, _attend
from .weights_io import codec_content_hash, codec_tokenizer_hash, lm_inference_state_dict

EXPORT_FORMAT = "soundspring-export"
"""Value of the manifest's ``format`` key."""
EXPORT_VERSION = 1
"""Manifest version this build writes and reads."""
MANIFEST_NAME = "manifest.json"
FORMATS = ("torchscript", "pt2")
"""Artifact formats: TorchScript (``torch.jit.trace``, loadable from C++ with libtorch)
and ``torch.export`` (``torch.export.save``)."""
_SUFFIX = {"torchscript": ".ts.pt", "pt2": ".pt2"}

LM_FLAT_NAME = "springlm_engine.bin"
CODEC_FLAT_NAME = "codec_decoder.bin"
FLAT_ALIGN = 64
"""Tensor offsets in a flat file's data section are multiples of this (bytes)."""


@dataclass(frozen=True)
class FlatKind:
    """One kind of flat weights file: its 8-byte magic, header ``format`` and version, and
    the words that name it in messages (the C++ reader's ``flat::FlatKind``)."""

    magic: bytes
    format: str
    version: int
    what: str


LM_FLAT = FlatKind(b"SSLMFLAT", "soundspring-springlm-flat", 1, "flat SpringLM weights")
CODEC_FLAT = FlatKind(b"SSCDFLAT", "soundspring-codec-decoder-flat", 1,
                      "flat codec decoder weights")
_FLAT_KEYS = frozenset({"format", "version", "data_bytes", "tensors"})

_DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.bool: "bool"}


# ---- functional step modules ---------------------------------------------------------------


def _flatten(nested: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    return [t for group in nested for t in group]


class EncoderStep(nn.Module):
    """The codec encoder step with its state as explicit tensors (see the module doc)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.encoder = codec.encoder
        cb = codec.quantizer.codebooks.detach().to(torch.float32)
        self.register_buffer("codebooks", cb.clone())  # [K_max, V, D]
        # the squared norms exactly as ResidualVQ._codebook_norms computes them
        self.register_buffer("norms", torch.stack([(c * c).sum(1) for c in cb]))
        self.groups = [len(g) for g in codec.init_encoder_state(1).convs]

    def forward(self, pcm: torch.Tensor,
                states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                     list[torch.Tensor]]:
        nested, pos = [], 0
        for n in self.groups:
            nested.append(list(states[pos:pos + n]))
            pos += n
        z, new = self.encoder.step(pcm, nested)  # [1, D, C]
        b, d, f = z.shape
        r = z.transpose(1, 2).reshape(b * f, d)
        codes = []
        for k in range(self.codebooks.shape[0]):
            cb = self.codebooks[k]
            idx = (self.norms[k][None, :] - 2.0 * (r @ cb.t())).argmin(dim=1)
            r = r - cb[idx]
            codes.append(idx)
        out = torch.stack(codes, dim=1).reshape(b, f, -1).transpose(1, 2)
        return out, z, _flatten(new)


class _DecoderTrunk(nn.Module):
    """Latents + state -> audio: the body both decoder steps share (the overlap-add start
    is a tensor condition on ``frames``, so one traced graph serves every step)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.decoder = codec.decoder
        if codec.decoder.ola.lookahead >= codec.hop:
            raise ConfigError("the exported decoder step needs an overlap-add lookahead "
                              "shorter than one frame")

    def run(self, z: torch.Tensor, frames: torch.Tensor,
            states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        # The eager decoder step itself (whichever kernels it takes), then its start rule as
        # a tensor condition: at frame 0 the first N - H output samples are zeros instead of
        # the partial window sums plus the (zero) initial tail. They lie before the new
        # tail (N - H < C * H), so the state is the same either way.
        y, new = self.decoder.step(z, list(states), at_start=False)  # y [B, 1, C * H]
        la = self.decoder.ola.lookahead
        head = y[..., :la]
        head = torch.where((frames == 0).reshape(-1, 1, 1), torch.zeros_like(head), head)
        return torch.cat([head, y[..., la:]], dim=-1), frames + z.shape[-1], list(new)


class DecoderStep(_DecoderTrunk):
    """The codec decoder step from codes [1, K_max, C] and n_levels (see the module doc)."""

    def __init__(self, codec: Codec) -> None:
        super().__init__(codec)
        self.register_buffer("codebooks",
                             codec.quantizer.codebooks.detach().to(torch.float32).clone())

    def forward(self, codes: torch.Tensor, n_levels: torch.Tensor, frames: torch.Tensor,
                states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                     list[torch.Tensor]]:
        k_max = self.codebooks.shape[0]
        keep = (torch.arange(k_max) < n_levels).to(torch.float32)  # [K_max]
        b, _, f = codes.shape
        q = torch.zeros(b, f, self.codebooks.shape[2], dtype=torch.float32)
        for k in range(k_max):  # adding 0 * v leaves q's bits as ResidualVQ.decode's
            q = q + self.codebooks[k][codes[:, k]] * keep[k]
        return self.run(q.transpose(1, 2), frames, states)


class DecoderLatentStep(_DecoderTrunk):
    """The codec decoder step from latents [1, D, C] (``Codec.decode_latent_step``)."""

    def forward(self, latents: torch.Tensor, frames: torch.Tensor,
                states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                     list[torch.Tensor]]:
        return self.run(latents, frames, states)


class _LMStep(nn.Module):
    """What both SpringLM steps hold: the model, the memory capacity in frames (the whole
    chunks within the reach) and the in-chunk relative distances ``own`` [C, C]."""

    def __init__(self, lm: SpringLM, context_frames: int, chunk_frames: int) -> None:
        super().__init__()
        self.lm = lm
        self.cap = (context_frames // chunk_frames) * chunk_frames
        self.chunk_frames = chunk_frames
        t = torch.arange(chunk_frames)
        self.register_buffer("own", t[:, None] - t[None, :])


class LMFineStep(_LMStep):
    """SpringLM's coding pass of one chunk against an explicit memory (``SpringLM.step``
    with ``commit=False``, levels [base, K_max))."""

    def _logits(self, view: torch.Tensor, frames: torch.Tensor | None,
                mem: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        lm = self.lm
        x2 = lm._embed(view)
        for li, blk in enumerate(lm.blocks):
            self_b = lm._rel(lm.rel_bias_self[li], self.own)
            q2, k2, v2 = blk.project(x2)
            if mem is not None and frames is not None:
                keys, values, slot_frame, valid = mem
                tq = frames + torch.arange(self.chunk_frames)
                mem_dist = tq[:, None] - slot_frame[None, :]
                mem_b = lm._rel(lm.rel_bias_mem[li], mem_dist).masked_fill(
                    ~valid[None, :], float("-inf"))
                a2 = _attend(q2, torch.cat([keys[li], k2], dim=2),
                             torch.cat([values[li], v2], dim=2),
                             torch.cat([mem_b, self_b], dim=2))
            else:
                a2 = _attend(q2, k2, v2, self_b)
            x2 = blk.finish(x2, a2)
        return lm._heads(x2, lm.cfg.base_codebooks, lm.cfg.n_codebooks)

    def forward(self, view: torch.Tensor, *memory: torch.Tensor) -> torch.Tensor:
        if self.cap == 0:
            return self._logits(view, None, None)
        frames, keys, values, slot_frame, valid = memory
        return self._logits(view, frames, (keys, values, slot_frame, valid))


class LMCommitStep(_LMStep):
    """SpringLM's memory pass of one chunk (``SpringLM.commit``) on an explicit memory."""

    def forward(self, base: torch.Tensor, frames: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor, slot_frame: torch.Tensor, valid: torch.Tensor,
                write: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lm = self.lm
        c = self.chunk_frames
        x1 = lm._embed(lm._memory_view(base))
        idx = write + torch.arange(c)  # [C] slots written
        new_k, new_v = [], []
        for li, blk in enumerate(lm.blocks):
            q1, k1, v1 = blk.project(x1)
            new_k.append(keys[li].index_copy(2, idx, k1))
            new_v.append(values[li].index_copy(2, idx, v1))
            if li + 1 < len(lm.blocks):
                x1 = blk.finish(x1, _attend(q1, k1, v1, lm._rel(lm.rel_bias_self[li], self.own)))
        tq = frames + torch.arange(c)
        return (torch.stack(new_k), torch.stack(new_v), slot_frame.index_copy(0, idx, tq),
                valid.index_copy(0, idx, torch.ones(c, dtype=torch.bool)),
                torch.remainder(write + c, self.cap), frames + c)


def coding_constants() -> dict:
    """The bitstream constants a receiver outside Python needs (docs/bitstream.md, "Token
    payloads"), recorded in the manifest so that a C++ receiver built against other values
    refuses the export instead of mis-decoding: the layer bounds, the base levels, the MASK
    and MASK_UPPER token ids and the integrity-check salts."""
    return {"layer_bounds": list(LAYER_BOUNDS), "base_codebooks": BASE_CODEBOOKS,
            "mask": MASK, "mask_upper": MASK_UPPER, "base_check_salt": BASE_CHECK_SALT,
            "combined_check_salt": COMBINED_CHECK_SALT}


# ---- specs: the shapes each artifact takes and returns ---------------------------------------


def _spec(name: str, shape: Sequence[int], dtype: str) -> dict:
    return {"name": name, "shape": [int(s) for s in shape], "dtype": dtype}


def _tensor_spec(name: str, t: torch.Tensor) -> dict:
    return _spec(name, tuple(t.shape), _DTYPES[t.dtype])


def _codec_dims(codec_info: Mapping[str, Any]) -> tuple[int, int, int]:
    return int(codec_info["n_codebooks"]), int(codec_info["codebook_size"]), int(
        codec_info["latent_dim"])


def _lm_memory_specs(cfg: SpringLMConfig, cap: int) -> list[dict]:
    dh = cfg.dim // cfg.n_heads
    kv = [cfg.n_layers, 1, cfg.n_heads, cap, dh]
    return [_spec("frames", [1], "int64"), _spec("keys", kv, "float32"),
            _spec("values", kv, "float32"), _spec("slot_frame", [cap], "int64"),
            _spec("valid", [cap], "bool")]


def _expected_specs(codec_info: Mapping[str, Any], enc_states: list[dict],
                    dec_states: list[dict], lm_cfg: SpringLMConfig | None,
                    chunk_frames: int, context_frames: int) -> dict[str, dict]:
    """Inputs and outputs of every artifact, from the configuration alone (the manifest
    records them; ``load_exported`` recomputes them to refuse a tampered manifest)."""
    k_max, _v, d = _codec_dims(codec_info)
    c = chunk_frames
    n = c * FRAME_SAMPLES
    specs = {
        "encoder_step": {
            "inputs": [_spec("pcm", [1, 1, n], "float32")],
            "outputs": [_spec("codes", [1, k_max, c], "int64"),
                        _spec("latents", [1, d, c], "float32")],
            "state": enc_states,
        },
        "decoder_step": {
            "inputs": [_spec("codes", [1, k_max, c], "int64"), _spec("n_levels", [1], "int64"),
                       _spec("frames", [1], "int64")],
            "outputs": [_spec("pcm", [1, 1, n], "float32"), _spec("frames", [1], "int64")],
            "state": dec_states,
        },
        "decoder_latent_step": {
            "inputs": [_spec("latents", [1, d, c], "float32"), _spec("frames", [1], "int64")],
            "outputs": [_spec("pcm", [1, 1, n], "float32"), _spec("frames", [1], "int64")],
            "state": dec_states,
        },
    }
    if lm_cfg is not None:
        cap = (context_frames // c) * c
        nb, kl, vl = lm_cfg.base_codebooks, lm_cfg.n_codebooks, lm_cfg.codebook_size
        mem = _lm_memory_specs(lm_cfg, cap) if cap else []
        specs["lm_fine_step"] = {
            "inputs": [_spec("view", [1, kl, c], "int64"), *mem],
            "outputs": [_spec("logits", [1, kl - nb, c, vl], "float32")],
            "state": [],
        }
        if cap:
            specs["lm_commit_step"] = {
                "inputs": [_spec("base", [1, nb, c], "int64"), *mem,
                           _spec("write", [1], "int64")],
                "outputs": [*(dict(s) for s in mem[1:]), _spec("write", [1], "int64"),
                            _spec("frames", [1], "int64")],
                "state": [],
            }
    return specs


def _state_specs(codec: Codec) -> tuple[list[dict], list[dict]]:
    """The encoder's and the decoder's state tensors (names, shapes, dtypes)."""
    enc = [_tensor_spec(f"state{i}", t)
           for i, t in enumerate(_flatten(codec.init_encoder_state(1).convs))]
    dec = [_tensor_spec(f"state{i}", t) for i, t in enumerate(codec.init_decoder_state(1).convs)]
    return enc, dec


# ---- flat weights files --------------------------------------------------------------------


def write_flat_tensors(path: str | Path, kind: FlatKind, meta: Mapping[str, Any],
                       tensors: Mapping[str, np.ndarray]) -> Path:
    """Writes float16 / float32 tensors and a JSON header in the flat layout the C++
    readers take (csrc/core/flat_weights.h: ``flat::ReadFlatTensors``).

    Layout (little-endian): ``kind.magic`` (8 bytes) | version u32 (``kind.version``) |
    json_len u32 | JSON header (UTF-8) | crc32 u32 over every byte before it | zero padding
    to a multiple of 64 bytes | data (each tensor at ``offset`` bytes from the data start, a
    multiple of 64, row-major, its dtype ``float16`` or ``float32``) | crc32 u32 of the
    data. The JSON: ``format`` (``kind.format``), ``version``, ``data_bytes``, ``tensors``
    (``name``, ``dtype``, ``shape``, ``offset``, ``nbytes``, sorted by name) and the keys
    of ``meta``.

    Args:
        path: the file, written atomically.
        kind: ``LM_FLAT`` or ``CODEC_FLAT``.
        meta: the kind's own header keys (JSON values; none of format, version,
            data_bytes, tensors).
        tensors: name -> float16 or float32 array (any shape).

    Returns:
        The path written.

    Raises:
        ConfigError: a reserved ``meta`` key, or a tensor of another dtype.
    """
    clash = _FLAT_KEYS & set(meta)
    if clash:
        raise ConfigError(f"meta must not hold the reserved keys {sorted(clash)}")
    table, chunks, off = [], [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if a.dtype not in (np.float16, np.float32):
            raise ConfigError(f"tensor {name!r} must be float16 or float32, got {a.dtype}")
        half = a.dtype == np.float16
        raw = np.ascontiguousarray(a, dtype="<f2" if half else "<f4").tobytes()
        table.append({"name": name, "dtype": "float16" if half else "float32",
                      "shape": [int(n) for n in a.shape], "offset": off, "nbytes": len(raw)})
        pad = (-len(raw)) % FLAT_ALIGN
        chunks.append(raw + b"\0" * pad)
        off += len(raw) + pad
    data = b"".join(chunks)
    header = json.dumps({**meta, "format": kind.format, "version": kind.version,
                         "data_bytes": len(data), "tensors": table}, sort_keys=True).encode()
    head = kind.magic + struct.pack("<II", kind.version, len(header)) + header
    head += struct.pack("<I", zlib.crc32(head))
    head += b"\0" * ((-len(head)) % FLAT_ALIGN)
    blob = head + data + struct.pack("<I", zlib.crc32(data))
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def read_flat_tensors(path: str | Path, kind: FlatKind) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads a flat file of ``kind`` (``write_flat_tensors``), checking both CRCs and that
    every tensor lies in the data section.

    Returns:
        (the JSON header, {name: float16/float32 array, read-only}).

    Raises:
        ConfigError: not a file of ``kind`` (magic or format), an unsupported version.
        ModelMismatchError: truncated, a CRC mismatch, or a header or tensor table that
            does not fit the data.
    """
    blob = Path(path).read_bytes()
    if len(blob) < 16 or blob[:8] != kind.magic:
        raise ConfigError(f"{path} is not a {kind.what} file")
    version, n = struct.unpack_from("<II", blob, 8)
    if version != kind.version:
        raise ConfigError(f"{path}: {kind.what} version {version} unsupported (this build "
                          f"reads {kind.version})")
    end = 16 + n
    if end + 4 > len(blob):
        raise ModelMismatchError(f"{path}: truncated header")
    if struct.unpack_from("<I", blob, end)[0] != zlib.crc32(blob[:end]):
        raise ModelMismatchError(f"{path}: header CRC mismatch (corrupt file?)")
    try:
        header = json.loads(blob[16:end])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelMismatchError(f"{path}: header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != kind.format:
        raise ConfigError(f"{path}: not a {kind.format} header")
    start = end + 4 + ((-(end + 4)) % FLAT_ALIGN)
    size = header.get("data_bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ModelMismatchError(f"{path}: data_bytes {size!r} is not a byte count")
    if len(blob) < start + size + 4:
        raise ModelMismatchError(f"{path}: data section truncated")
    data = blob[start:start + size]
    if struct.unpack_from("<I", blob, start + size)[0] != zlib.crc32(data):
        raise ModelMismatchError(f"{path}: data CRC mismatch (corrupt file?)")
    out: dict[str, np.ndarray] = {}
    try:
        for t in header["tensors"]:
            name, shape = t["name"], [int(d) for d in t["shape"]]
            dt = np.dtype({"float16": "<f2", "float32": "<f4"}[t["dtype"]])
            o, nb = int(t["offset"]), int(t["nbytes"])
            if (name in out or o < 0 or o + nb > size or min(shape, default=0) < 0
                    or nb != dt.itemsize * math.prod(shape)):
                raise ValueError(f"tensor {name!r} does not fit the data")
            out[name] = np.frombuffer(data, dtype=dt, count=nb // dt.itemsize,
                                      offset=o).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelMismatchError(f"{path}: bad tensor table: {exc}") from exc
    return header, out


def _lm_config_dict(cfg: SpringLMConfig) -> dict:
    return json.loads(to_json(cfg))


def write_lm_flat(lm: SpringLM, path: str | Path, model_id: str, tokenizer_sha256: str) -> Path:
    """Writes SpringLM's inference weights (the fp16 tensors of its shipped weights file)
    as a flat file of kind ``LM_FLAT`` (``write_flat_tensors``), which the C++ engine loader
    reads (csrc/core/flat_weights.h: ``lm::LoadFlatLm``).

    Header keys beside the container's: ``config`` (SpringLMConfig fields), ``model_id``
    (the weights' content hash: what streams coded through PyTorch record),
    ``engine_model_id`` (what streams coded by the engine record), ``tokenizer_sha256``.

    Returns:
        The path written (atomically).
    """
    state = lm_inference_state_dict(lm)
    tensors = {name: t.contiguous().numpy() for name, t in state.items()}
    meta = {"config": _lm_config_dict(lm.cfg), "model_id": model_id,
            "engine_model_id": model_id + ENGINE_ID_SUFFIX, "tokenizer_sha256": tokenizer_sha256}
    return write_flat_tensors(path, LM_FLAT, meta, tensors)


def read_lm_flat(path: str | Path) -> tuple[SpringLMConfig, dict[str, np.ndarray], dict]:
    """Reads a flat SpringLM weights file (``write_lm_flat``), checking both CRCs.

    Returns:
        (config, {name: float16/float32 array}, the JSON header).

    Raises:
        ConfigError: not such a file, or an unsupported version.
        ModelMismatchError: a CRC mismatch or a tensor table that does not fit the data.
    """
    header, out = read_flat_tensors(path, LM_FLAT)
    return from_json(SpringLMConfig, header["config"]), out, header


def codec_decoder_tensors(codec: Codec) -> dict[str, np.ndarray]:
    """What the C++ codec decoder needs of ``codec``: its floating ``decoder.*`` state-dict
    tensors and ``quantizer.codebooks`` [K_max, V, D], as float32 (the values
    ``CodecEngine`` packs), each one stored as float16 where that is exact for every
    element (the shipped fp16 weights: half the bytes, the same values)."""
    out = {}
    for name, t in codec.state_dict().items():
        if not ((name.startswith("decoder.") or name == "quantizer.codebooks")
                and t.is_floating_point()):
            continue
        a = t.detach().to("cpu", torch.float32).numpy()
        h = a.astype(np.float16)
        exact = np.array_equal(h.astype(np.float32).view(np.uint32), a.view(np.uint32))
        out[name] = h if exact else a
    return out


def write_codec_flat(codec: Codec, path: str | Path) -> Path:
    """Writes the codec decoder's weights and the quantizer codebooks
    (``codec_decoder_tensors``) as a flat file of kind ``CODEC_FLAT``
    (``write_flat_tensors``), which the C++ codec decoder loader reads
    (csrc/core/flat_weights.h: ``codec::LoadFlatCodec``).

    Header keys beside the container's: ``config`` (every CodecConfig field; the decoder
    takes latent_dim, enc_* (the hop and the shape check), dec_*, istft_*, n_codebooks and
    codebook_size), ``codec_id`` (``weights_io.codec_content_hash``, what streams record)
    and ``tokenizer_sha256``.

    Returns:
        The path written (atomically).
    """
    meta = {"config": json.loads(to_json(codec.cfg)), "codec_id": codec_content_hash(codec),
            "tokenizer_sha256": codec_tokenizer_hash(codec)}
    return write_flat_tensors(path, CODEC_FLAT, meta, codec_decoder_tensors(codec))


def read_codec_flat(path: str | Path) -> tuple[CodecConfig, dict[str, np.ndarray], dict]:
    """Reads a flat codec decoder file (``write_codec_flat``), checking both CRCs.

    Returns:
        (config, {name: float16/float32 array}, the JSON header).

    Raises:
        ConfigError: not such a file, an unsupported version or a malformed config.
        ModelMismatchError: a CRC mismatch or a tensor table that does not fit the data.
    """
    header, out = read_flat_tensors(path, CODEC_FLAT)
    return from_json(CodecConfig, header["config"]), out, header


# ---- writing -----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _zeros(specs: Sequence[Mapping[str, Any]]) -> list[torch.Tensor]:
    dt = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}
    return [torch.zeros(s["shape"], dtype=dt[s["dtype"]]) for s in specs]


@dataclass
class _Artifact:
    name: str
    module: nn.Module
    example: tuple


def _artifacts(codec: Codec, lm: SpringLM | None, chunk_frames: int,
               context_frames: int, specs: dict[str, dict]) -> list[_Artifact]:
    c = chunk_frames
    enc_state = _zeros(specs["encoder_step"]["state"])
    dec_state = _zeros(specs["decoder_step"]["state"])
    k_max, _, d = codec.n_codebooks, codec.cfg.codebook_size, codec.quantizer.dim
    frames = torch.zeros(1, dtype=torch.int64)
    out = [
        _Artifact("encoder_step", EncoderStep(codec),
                  (torch.zeros(1, 1, c * FRAME_SAMPLES), enc_state)),
        _Artifact("decoder_step", DecoderStep(codec),
                  (torch.zeros(1, k_max, c, dtype=torch.int64),
                   torch.full((1,), k_max, dtype=torch.int64), frames, dec_state)),
        _Artifact("decoder_latent_step", DecoderLatentStep(codec),
                  (torch.zeros(1, d, c), frames, dec_state)),
    ]
    if lm is not None:
        spec = specs["lm_fine_step"]["inputs"]
        out.append(_Artifact("lm_fine_step", LMFineStep(lm, context_frames, c),
                             tuple(_zeros(spec))))
        if "lm_commit_step" in specs:
            out.append(_Artifact("lm_commit_step", LMCommitStep(lm, context_frames, c),
                                 tuple(_zeros(specs["lm_commit_step"]["inputs"]))))
    return out


def _save(art: _Artifact, fmt: str, path: Path) -> None:
    mod = art.module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the shapes a trace sees are the artifact's fixed shapes: constants by design
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TorchScript is deprecated in favour of torch.export, but it is what libtorch's
        # C++ loader (torch::jit::load) runs: the C++ receiver needs it.
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        if fmt == "torchscript":
            traced = torch.jit.trace(mod, art.example, check_trace=False, strict=False)
            torch.jit.save(traced, str(path))
        else:
            prog = torch.export.export(mod, art.example, strict=False)
            torch.export.save(prog, str(path))


def export_models(codec: Codec, lm: SpringLM | None, out_dir: str | Path, *,
                  chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                  context_frames: int = DEFAULT_CONTEXT_FRAMES,
                  formats: Iterable[str] = FORMATS,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Exports the codec steps (and SpringLM, when given) into ``out_dir``.

    Args:
        codec: the codec (eval mode, CPU).
        lm: a ``SpringLM`` from ``weights_io.load_lm`` (its ``model_id`` and
            ``tokenizer_sha256`` are recorded), or None for the codec alone.
        out_dir: created if missing; files of the same names are replaced.
        chunk_frames: C, frames per step (1..5), the receiver's packet interval.
        context_frames: the LM's entropy-context reach R (0..max); R < C exports a
            memory-free coding pass and no commit step.
        formats: a subset of ``FORMATS``.
        progress: called with each file name before it is written.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        ConfigError: bad C, R or formats; an LM trained on another codec's tokens.
    """
    from .. import __version__

    fmts = tuple(formats)
    if not fmts or any(f not in FORMATS for f in fmts) or len(set(fmts)) != len(fmts):
        raise ConfigError(f"formats must be distinct names from {FORMATS}, got {fmts!r}")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or not (
            1 <= chunk_frames <= MAX_CHUNK_FRAMES):
        raise ConfigError(f"chunk_frames must be an int in [1, {MAX_CHUNK_FRAMES}], got "
                          f"{chunk_frames!r}")
    tok = codec_tokenizer_hash(codec)
    lm_info = None
    if lm is not None:
        if not isinstance(lm, SpringLM):
            raise ConfigError(f"lm must be a SpringLM (weights_io.load_lm), got "
                              f"{type(lm).__name__}")
        if not (isinstance(context_frames, int) and not isinstance(context_frames, bool)
                and 0 <= context_frames <= lm.cfg.max_context_frames):
            raise ConfigError(f"context_frames must be an int in [0, "
                              f"{lm.cfg.max_context_frames}], got {context_frames!r}")
        lm_tok = getattr(lm, "tokenizer_sha256", None)
        if lm_tok is not None and lm_tok != tok:
            raise ModelMismatchError(f"SpringLM was trained on codec tokenizer {lm_tok[:16]}, "
                                     f"the codec has tokenizer {tok[:16]}")
        from .weights_io import lm_model_id

        weights_id = str(getattr(lm, "model_id", "")) or lm_model_id(lm)
        lm_info = {"model_id": weights_id, "engine_model_id": weights_id + ENGINE_ID_SUFFIX,
                   "tokenizer_sha256": tok, "config": _lm_config_dict(lm.cfg)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codec = codec.eval()
    codec_info = {"content_sha256": codec_content_hash(codec), "tokenizer_sha256": tok,
                  "n_codebooks": codec.n_codebooks, "codebook_size": codec.cfg.codebook_size,
                  "latent_dim": codec.quantizer.dim,
                  "lookahead_samples": codec.lookahead_samples,
                  "config": json.loads(to_json(codec.cfg))}
    enc_states, dec_states = _state_specs(codec)
    specs = _expected_specs(codec_info, enc_states, dec_states,
                            lm.cfg if lm is not None else None, chunk_frames, context_frames)
    files: dict[str, dict] = {}
    artifacts: dict[str, dict] = {}
    for art in _artifacts(codec, lm, chunk_frames, context_frames, specs):
        entry = dict(specs[art.name])
        entry["files"] = {}
        for fmt in fmts:
            name = art.name + _SUFFIX[fmt]
            if progress is not None:
                progress(name)
            _save(art, fmt, out / name)
            entry["files"][fmt] = name
        artifacts[art.name] = entry
    if lm is not None and lm_info is not None:
        if progress is not None:
            progress(LM_FLAT_NAME)
        write_lm_flat(lm, out / LM_FLAT_NAME, lm_info["model_id"], tok)
        lm_info["engine_weights"] = LM_FLAT_NAME
    if progress is not None:
        progress(CODEC_FLAT_NAME)
    write_codec_flat(codec, out / CODEC_FLAT_NAME)
    codec_info["decoder_weights"] = CODEC_FLAT_NAME
    flat_names = {CODEC_FLAT_NAME} | ({LM_FLAT_NAME} if lm is not None else set())
    for p in sorted(out.iterdir()):
        if p.name in {e["files"][f] for e in artifacts.values() for f in e["files"]} | flat_names:
            files[p.name] = {"sha256": _sha256(p), "bytes": p.stat().st_size}
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "soundspring_version": __version__,
        "torch_version": torch.__version__,
        "formats": list(fmts),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "frame_samples": FRAME_SAMPLES,
        "chunk_frames": chunk_frames,
        "chunk_samples": chunk_frames * FRAME_SAMPLES,
        "context_frames": context_frames if lm is not None else None,
        "bitrates_kbps": {f"{b:g}": codebooks_for_bitrate(b) for b in BITRATES_KBPS},
        "coding": coding_constants(),
        "codec": codec_info,
        "lm": lm_info,
        "artifacts": artifacts,
        "files": files,
    }
    tmp = out / (MANIFEST_NAME + f".{os.getpid()}.part")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / MANIFEST_NAME)
    return manifest


# ---- loading -----------------------------------------------------------------------------------


@dataclass
class ExportedModels:
    """Verified, loaded artifacts of one export directory (``load_exported``).

    Attributes:
        manifest: the verified manifest.
        format: the format the modules were loaded from.
        modules: artifact name -> callable module (``torch.jit.ScriptModule`` or the
            ``torch.export`` program's module).
    """

    manifest: dict
    format: str
    modules: dict[str, Any] = field(default_factory=dict)

    @property
    def chunk_frames(self) -> int:
        return int(self.manifest["chunk_frames"])

    def initial_state(self, name: str) -> list[torch.Tensor]:
        """The zero state tensors of artifact ``name`` (the state of a fresh stream)."""
        return _zeros(self._artifact(name)["state"])

    def _artifact(self, name: str) -> dict:
        if name not in self.modules:
            raise ConfigError(f"no exported artifact {name!r}; have {sorted(self.modules)}")
        return self.manifest["artifacts"][name]

    def run(self, name: str, *inputs: Any) -> Any:
        """Calls artifact ``name`` (inputs as the manifest lists them, then the state list
        for the codec steps) under ``torch.no_grad``. TorchScript runs with the graph
        executor's optimisation passes off (``torch.jit.optimized_execution(False)``): they
        rewrite ops (e.g. decompose ``addmm``) and move results by float rounding, while the
        graph as traced reproduces the eager step bit for bit."""
        self._artifact(name)
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return self.modules[name](*inputs)


def _load_manifest(d: Path) -> dict:
    p = d / MANIFEST_NAME
    if not p.is_file():
        raise ConfigError(f"{d}: no {MANIFEST_NAME} (not a soundspring export directory)")
    try:
        m = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not valid JSON: {exc}") from exc
    if not isinstance(m, dict) or m.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{p}: not a {EXPORT_FORMAT} manifest")
    if m.get("version") != EXPORT_VERSION:
        raise ConfigError(f"{p}: manifest version {m.get('version')!r} unsupported (this "
                          f"build reads {EXPORT_VERSION})")
    for key in ("chunk_frames", "codec", "artifacts", "files", "sample_rate_hz",
                "frame_samples"):
        if key not in m:
            raise ConfigError(f"{p}: manifest lacks {key!r}")
    return m


def verify_manifest(out_dir: str | Path, codec: Codec | None = None,
                    lm: SpringLM | Any | None = None) -> dict:
    """Checks an export directory without loading its modules.

    Checks: format and version; sample rate, frame and chunk sizes of this build; every
    listed file's size and SHA-256 (the flat weights files named by ``codec.decoder_weights``
    and ``lm.engine_weights`` among them); that every artifact's recorded inputs, outputs
    and state are the ones its configuration implies; and, when given, that ``codec`` has the
    recorded content hash and ``lm`` (a SpringLM, or any coding model with ``model_id``:
    the engine's carries ``lm_engine.ENGINE_ID_SUFFIX``) the recorded model id.

    Returns:
        The manifest.

    Raises:
        ConfigError: no manifest, malformed, another format or version.
        ModelMismatchError: a file missing or not the one recorded, a shape that does not
            fit, or another codec / LM than the one asked for.
    """
    d = Path(out_dir)
    m = _load_manifest(d)
    if m["sample_rate_hz"] != SAMPLE_RATE_HZ or m["frame_samples"] != FRAME_SAMPLES:
        raise ModelMismatchError(f"{d}: exported for {m['sample_rate_hz']} Hz / "
                                 f"{m['frame_samples']}-sample frames, this build runs "
                                 f"{SAMPLE_RATE_HZ} Hz / {FRAME_SAMPLES}")
    if m.get("coding") != coding_constants():
        raise ModelMismatchError(f"{d}: bitstream constants {m.get('coding')} differ from this "
                                 f"build's {coding_constants()}")
    c = m["chunk_frames"]
    if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_CHUNK_FRAMES:
        raise ModelMismatchError(f"{d}: chunk_frames {c!r} is not in [1, {MAX_CHUNK_FRAMES}]")
    for name, info in m["files"].items():
        p = d / name
        if Path(name).name != name or not p.is_file():
            raise ModelMismatchError(f"{d}: listed file {name!r} is missing")
        if p.stat().st_size != info.get("bytes") or _sha256(p) != info.get("sha256"):
            raise ModelMismatchError(f"{p}: SHA-256 or size differs from the manifest's "
                                     "(a modified or foreign file)")
    codec_info = m["codec"]
    lm_info = m.get("lm")
    try:
        lm_cfg = None if lm_info is None else SpringLMConfig(**{
            k: (tuple(v) if isinstance(v, list) else v) for k, v in lm_info["config"].items()})
        arts = m["artifacts"]
        shape_only = Codec(from_json(CodecConfig, codec_info["config"]))  # state shapes
        expected = _expected_specs(codec_info, *_state_specs(shape_only), lm_cfg, c,
                                   int(m["context_frames"] or 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{d}: malformed manifest: {exc!r}") from exc
    if set(arts) != set(expected):
        raise ModelMismatchError(f"{d}: artifacts {sorted(arts)} differ from the expected "
                                 f"{sorted(expected)}")
    for name, spec in expected.items():
        for key in ("inputs", "outputs", "state"):
            if arts[name].get(key) != spec[key]:
                raise ModelMismatchError(f"{d}: artifact {name!r} {key} {arts[name].get(key)} "
                                         f"do not match the configuration ({spec[key]})")
        for fmt, fname in arts[name].get("files", {}).items():
            if fmt not in FORMATS or fname not in m["files"]:
                raise ModelMismatchError(f"{d}: artifact {name!r} file {fname!r} ({fmt}) is "
                                         "not listed with a hash")
    for part, key in (("codec", "decoder_weights"), ("lm", "engine_weights")):
        fname = (m.get(part) or {}).get(key)
        if fname is not None and fname not in m["files"]:
            raise ModelMismatchError(f"{d}: flat weights {fname!r} ({part}.{key}) are not "
                                     "listed with a hash")
    if codec is not None:
        have = codec_content_hash(codec)
        if have != codec_info.get("content_sha256"):
            recorded = str(codec_info.get("content_sha256"))[:16]
            raise ModelMismatchError(f"{d}: exported from codec {recorded}, the codec in use "
                                     f"is {have[:16]}")
        if codec_info.get("n_codebooks") != codec.n_codebooks or codec_info.get(
                "latent_dim") != codec.quantizer.dim:
            raise ModelMismatchError(f"{d}: codec shape differs from the manifest's")
    if lm is not None:
        if lm_info is None:
            raise ModelMismatchError(f"{d}: the export holds no SpringLM")
        have = str(getattr(lm, "model_id", ""))
        if have not in (lm_info.get("model_id"), lm_info.get("engine_model_id")):
            recorded = str(lm_info.get("model_id"))[:16]
            raise ModelMismatchError(f"{d}: exported from SpringLM {recorded}, the model in use "
                                     f"is {have[:16] or 'unsaved'}")
    return m


def load_exported(out_dir: str | Path, codec: Codec | None = None, lm: Any | None = None,
                  fmt: str = "torchscript") -> ExportedModels:
    """Verifies an export directory (``verify_manifest``) and loads its artifacts.

    Args:
        out_dir: a directory written by ``export_models``.
        codec, lm: models the export must have come from (None: not checked).
        fmt: "torchscript" (``torch.jit.load``) or "pt2" (``torch.export.load``).

    Raises:
        ConfigError / ModelMismatchError: see ``verify_manifest``; ConfigError also for a
            format the export does not hold.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    d = Path(out_dir)
    m = verify_manifest(d, codec, lm)
    if fmt not in m.get("formats", []):
        raise ConfigError(f"{d}: no {fmt} artifacts (exported: {m.get('formats')})")
    out = ExportedModels(m, fmt)
    for name, entry in m["artifacts"].items():
        path = str(d / entry["files"][fmt])
        out.modules[name] = load_artifact(path, fmt)
    return out


def load_artifact(path: str | Path, fmt: str) -> Any:
    """One artifact file as a callable module, without any check (``load_exported``
    verifies a whole directory first): ``torch.jit.load`` for "torchscript", the
    ``torch.export.load`` program's module for "pt2"."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    if fmt == "pt2":
        return torch.export.load(str(path)).module()
    raise ConfigError(f"fmt must be one of {FORMATS}, got {fmt!r}")


__all__ = [
    "CODEC_FLAT",
    "CODEC_FLAT_NAME",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "FLAT_ALIGN",
    "FORMATS",
    "LM_FLAT",
    "LM_FLAT_NAME",
    "MANIFEST_NAME",
    "DecoderLatentStep",
    "DecoderStep",
    "EncoderStep",
    "ExportedModels",
    "FlatKind",
    "LMCommitStep",
    "LMFineStep",
    "codec_decoder_tensors",
    "coding_constants",
    "export_models",
    "load_artifact",
    "load_exported",
    "read_codec_flat",
    "read_flat_tensors",
    "read_lm_flat",
    "verify_manifest",
    "write_codec_flat",
    "write_flat_tensors",
    "write_lm_flat",
]
