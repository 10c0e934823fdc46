"""Block-floating-point rounding of the matrices the C++ engines pack (int8 weight storage).

The SpringLM engine and the codec engine (``csrc/core/packed_linear.h``) hold their matrices
as int8 with one power-of-two scale per output column when every column (a row of PyTorch's
``[out, in]`` weight) is exactly

    W[c, i] = q[c, i] * 2^e_c,   q integer, |q| <= 127 (INT8_MAX_MAGNITUDE),

and fall back to binary16, then float32, otherwise (``weight_storage`` of
``lm_engine.SpringLMEngine`` and ``codec_engine.CodecEngine`` says which). The values are the
same in every storage, so the engine's outputs are the same bits; int8 only halves the
bytes that binary16 reads per chunk. This module makes weights of that form:
``round_to_block_float`` rounds one tensor (round-to-nearest q, per-row e the smallest with
max |q| <= 127, so each row keeps 7 significant bits at its largest magnitude), and
``round_engine_weights`` every engine matrix of a SpringLM or codec state dict.

Rounding changes the model (and hence bits per token, audio quality): it is a tool to
measure with, applied by nobody here; training and export never call it. Every rounded
value is a binary16 value as well (e in [FP16_MIN_EXPONENT, FP16_MAX_EXPONENT]), so a
rounded model saved as the fp16 weights file keeps its exact values. A row that cannot be
both (non-finite, or its largest magnitude above 127 * 2^9 = 65024) is left unchanged, and
then its matrix (hence the engine) keeps binary16 or float32 storage.

Pure torch. Example:
    >>> import torch
    >>> w = torch.tensor([[0.30, -1.0, 0.001], [0.0, 0.0, 0.0]])     # [out, in]
    >>> r = round_to_block_float(w)
    >>> r[0].tolist()                                                 # q 2^-6
    [0.296875, -1.0, 0.0]
    >>> is_block_float(r) and bool(torch.equal(r.half().float(), r))
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

INT8_MAX_MAGNITUDE = 127
"""Largest |q| (csrc/core/packed_linear.h kInt8MaxMagnitude; -128 is never used)."""

FP16_MIN_EXPONENT = -24
"""Smallest exponent of a rounded row: 2^-24 is the least binary16 subnormal, so q 2^e is a
binary16 for every |q| <= 127 (a row whose values are all below about 2^-18 is rounded on
that grid, with fewer than 7 significant bits)."""

FP16_MAX_EXPONENT = 9
"""Largest exponent of a rounded row: 127 * 2^9 = 65024 <= 65504, the largest binary16."""

FLOAT32_MIN_EXPONENT = -149
"""The engine's smallest block exponent (packed_linear.h kInt8MinExponent: 2^-149 is the
least float32 subnormal)."""

# State-dict tensors the engines pack as matrices, with how many leading dims index the
# output columns (the rest are that column's inputs): lm_engine.cc Engine::Create (the
# layers' linears, the level heads: the tied embedding's rows or head_weight [K, V, D]) and
# codec_engine.cc (every dense causal conv [c_out, c_in, k] of the encoder, the decoder's
# input conv, pointwise linears and head; not the depthwise convs, not the quantizer).
_LM_LAYER = re.compile(r"blocks\.\d+\.(qkv|proj|ff1|ff2)\.weight")
_LM_TIED_HEADS = "embed.weight"  # the heads when there is no head_weight
_LM_HEADS = "head_weight"
_CODEC_MATRIX = re.compile(
    r"encoder\.(inp|out|blocks\.\d+\.(down|res\.\d+\.c[12]))\.conv\.weight"
    r"|decoder\.(inp\.conv|blocks\.\d+\.pw[12]|head)\.weight")


def _rows(weight: torch.Tensor, row_dims: int) -> torch.Tensor:
    """weight as float [rows, inputs]: the first row_dims dims are the output columns."""
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError("weight must be a floating-point torch.Tensor, got "
                        f"{type(weight).__name__}")
    if not 1 <= row_dims <= weight.dim():
        raise ValueError(f"row_dims must be in [1, {weight.dim()}] for a weight of shape "
                         f"{tuple(weight.shape)}, got {row_dims}")
    rows = 1
    for n in weight.shape[:row_dims]:
        rows *= int(n)
    return weight.detach().reshape(rows, -1)


def block_exponents(weight: torch.Tensor, *, row_dims: int = 1,
                    min_exponent: int = FP16_MIN_EXPONENT) -> torch.Tensor:
    """The block exponent of every row: the smallest e >= min_exponent with
    max |row| <= 127 * 2^e (packed_linear.h int8_exponent).

    Args:
        weight: float tensor whose first ``row_dims`` dims index the output columns.
        row_dims: leading dims that index output columns (1 for [out, in, ...]; 2 for the
            untied heads [K, V, D]).
        min_exponent: the floor (FP16_MIN_EXPONENT for rounding; FLOAT32_MIN_EXPONENT is
            the engine's).

    Returns:
        int64 [rows] (rows = prod(weight.shape[:row_dims])); min_exponent for zero rows,
        meaningless for non-finite ones.
    """
    rows = _rows(weight, row_dims).to(torch.float64)  # exact for float32 and float16
    max_abs = rows.abs().amax(dim=1) if rows.shape[1] else rows.new_zeros(rows.shape[0])  # [rows]
    mantissa, k = torch.frexp(max_abs)
    # max = m 2^k, m in [0.5, 1): 127 2^(k - 7) covers it iff m <= 127 / 128, else 127 2^(k - 6).
    e = k.to(torch.int64) - 7 + (mantissa > INT8_MAX_MAGNITUDE / 128).to(torch.int64)
    return e.clamp_min(min_exponent)


def round_to_block_float(weight: torch.Tensor, *, row_dims: int = 1) -> torch.Tensor:
    """weight with every row rounded to q 2^e (round half to even, |q| <= 127, e the row's
    ``block_exponents``), exactly representable both as the engine's int8 form and as
    binary16. Rows that cannot be (non-finite, or max |row| > 65024) are left unchanged.

    Args:
        weight: float tensor whose first ``row_dims`` dims index the output columns (a
            PyTorch [out, in] linear or [out, in, k] conv weight: row_dims = 1).
        row_dims: as for ``block_exponents``.

    Returns:
        A new tensor of weight's shape, dtype and device (zeros as +0.0).

    Raises:
        TypeError: weight is not a floating-point tensor.
        ValueError: row_dims out of range.
    """
    rows = _rows(weight, row_dims).to(torch.float64)
    e = block_exponents(weight, row_dims=row_dims)
    keep = ~torch.isfinite(rows).all(dim=1) | (e > FP16_MAX_EXPONENT)
    e = torch.where(keep, torch.zeros_like(e), e)[:, None]  # [rows, 1]
    q = torch.round(torch.ldexp(rows, -e)).clamp(-INT8_MAX_MAGNITUDE, INT8_MAX_MAGNITUDE)
    rounded = torch.ldexp(q, e) + 0.0  # exact; + 0.0 turns -0.0 into +0.0
    out = torch.where(keep[:, None], rows, rounded)
    return out.to(weight.dtype).reshape(weight.shape)


def is_block_float(weight: torch.Tensor, *, row_dims: int = 1) -> bool:
    """Whether every row is exactly q 2^e with |q| <= 127 for one e per row: the engine's
    int8 condition (packed_linear.h to_int8; exponents down to 2^-149)."""
    rows = _rows(weight, row_dims).to(torch.float64)
    if not bool(torch.isfinite(rows).all()):
        return False
    e = block_exponents(weight, row_dims=row_dims, min_exponent=FLOAT32_MIN_EXPONENT)
    q = torch.ldexp(rows, -e[:, None])  # exact in float64
    return bool(((q == torch.round(q)) & (q.abs() <= INT8_MAX_MAGNITUDE)).all())


def engine_matrix_names(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The tensors of a SpringLM or codec state dict that the C++ engines pack as matrices,
    each with its ``row_dims``: name -> 1 ([out, ...]) or 2 (head_weight [K, V, D])."""
    names = {}
    for name in state_dict:
        if _LM_LAYER.fullmatch(name) or _CODEC_MATRIX.fullmatch(name):
            names[name] = 1
        elif name == _LM_HEADS:
            names[name] = 2
        elif name == _LM_TIED_HEADS and _LM_HEADS not in state_dict:
            names[name] = 1  # tied: its first V rows of each level are the heads
    return names


def round_engine_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with every engine matrix (``engine_matrix_names``) rounded
    by ``round_to_block_float``; every other entry is the same tensor object. With every
    row representable, the engines built from the result hold all their matrices as int8.

    Example:
        >>> from soundspring.config import springlm_tiny
        >>> from soundspring.models.masked_lm import SpringLM
        >>> sd = round_engine_weights(SpringLM(springlm_tiny()).state_dict())
        >>> is_block_float(sd["blocks.0.qkv.weight"])
        True
    """
    names = engine_matrix_names(state_dict)
    return {name: round_to_block_float(t, row_dims=names[name]) if name in names else t
            for name, t in state_dict.items()}


__all__ = [
    "FLOAT32_MIN_EXPONENT",
    "FP16_MAX_EXPONENT",
    "FP16_MIN_EXPONENT",
    "INT8_MAX_MAGNITUDE",
    "block_exponents",
    "engine_matrix_names",
    "is_block_float",
    "round_engine_weights",
    "round_to_block_float",
]
