"""Block-float rounding (models/block_float.py) and the engines' int8 weight storage.

- rounding gives rows exactly q 2^e (|q| <= 127, 7 significant bits at the row's largest
  magnitude, within half a step of the input) that are binary16 values too; rows that cannot
  be are left as they are; idempotent; the engine matrices of a state dict are found;
- the SpringLM engine and the codec engine fed rounded weights hold them as int8 on every
  level with an int8 product, and give the same bits as the portable level (float32
  storage, the reference of every storage), and agree with PyTorch on the same weights;
- unrounded fp16 weights still take binary16 (AVX2), random ones float32.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch
from soundspring.config import MASK, MASK_UPPER, codec_tiny, springlm_tiny
from soundspring.models.block_float import (
    FP16_MAX_EXPONENT,
    FP16_MIN_EXPONENT,
    INT8_MAX_MAGNITUDE,
    block_exponents,
    engine_matrix_names,
    is_block_float,
    round_engine_weights,
    round_to_block_float,
)
from soundspring.models.codec import Codec
from soundspring.models.codec_engine import CodecEngine
from soundspring.models.lm_adapter import SpringLMCodingModel
from soundspring.models.lm_engine import SpringLMEngine, supported_isas
from soundspring.models.masked_lm import SpringLM

LEVELS = [i for i in supported_isas() if i != "auto"]
INT8_LEVELS = [i for i in LEVELS if i != "generic"]  # sse2, avx2, avx512: int8 products


# ---- rounding -------------------------------------------------------------------------------


def test_rounding_gives_exact_rows_that_are_binary16_too():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(37, 53, generator=g) * torch.logspace(-6, 3, 37)[:, None]  # [out, in]
    r = round_to_block_float(w)
    assert r.shape == w.shape and r.dtype == w.dtype
    assert is_block_float(r) and not is_block_float(w)
    assert torch.equal(r.half().float(), r)  # binary16 values
    e = block_exponents(w)
    q = torch.ldexp(r.double(), -e[:, None].double())
    assert torch.equal(q, q.round()) and int(q.abs().max()) <= INT8_MAX_MAGNITUDE
    # The finest grid: 7 bits at each row's top, but for rows below the binary16 grid.
    floor = e == FP16_MIN_EXPONENT
    assert bool(floor[0]) and not bool(floor[-1])
    assert bool((q.abs().amax(dim=1)[~floor] >= 64).all())
    step = torch.ldexp(torch.ones(37, dtype=torch.float64), e.double())
    assert bool(((r.double() - w.double()).abs() <= step[:, None] / 2).all())
    assert torch.equal(round_to_block_float(r), r)  # idempotent


def test_unrepresentable_rows_are_left_unchanged_and_zeros_are_positive():
    w = torch.tensor([[1e5, 1.0, 3.0],                 # above 127 * 2^9: not binary16 at 7 bits
                      [float("nan"), 1.0, 0.0],
                      [-3e-3, 0.25, -0.0],
                      [0.0, -0.0, 0.0],
                      [1e-9, -3e-9, 0.0]])              # below the binary16 grid: rounds to 0
    r = round_to_block_float(w)
    assert torch.equal(r[0], w[0]) and torch.equal(r[1].nan_to_num(), w[1].nan_to_num())
    assert r[2].tolist() == [-0.00390625, 0.25, 0.0]  # q 2^-8: q = -0.768 -> -1
    assert not bool((torch.signbit(r) & (r == 0)).any())  # every zero is +0.0
    assert bool((r[3:] == 0).all()) and not bool(torch.signbit(r[3:]).any())
    assert int(block_exponents(w)[0]) > FP16_MAX_EXPONENT


def test_layouts_dtypes_and_row_dims():
    g = torch.Generator().manual_seed(1)
    conv = torch.randn(8, 4, 3, generator=g)            # [c_out, c_in, k]: a row per c_out
    r = round_to_block_float(conv)
    assert r.shape == conv.shape and is_block_float(conv_rows := r.reshape(8, 12))
    assert torch.equal(conv_rows, round_to_block_float(conv.reshape(8, 12)))
    heads = torch.randn(3, 5, 16, generator=g)          # [K, V, D]: a row per (level, symbol)
    assert torch.equal(round_to_block_float(heads, row_dims=2).reshape(15, 16),
                       round_to_block_float(heads.reshape(15, 16)))
    half = torch.randn(6, 9, generator=g).half()
    rh = round_to_block_float(half)
    assert rh.dtype == torch.float16 and torch.equal(rh.float(), round_to_block_float(half.float()))
    with pytest.raises(ValueError, match="row_dims"):
        round_to_block_float(conv, row_dims=4)
    with pytest.raises(TypeError, match="weight"):
        round_to_block_float(torch.ones(2, 2, dtype=torch.int64))


def test_engine_matrix_names():
    lm = engine_matrix_names(SpringLM(springlm_tiny()).state_dict())
    cfg = springlm_tiny()
    assert set(lm) == {"embed.weight"} | {f"blocks.{i}.{n}.weight" for i in range(cfg.n_layers)
                                          for n in ("qkv", "proj", "ff1", "ff2")}
    untied = engine_matrix_names({"embed.weight": torch.ones(1),
                                  "head_weight": torch.ones(1, 1, 1)})
    assert untied == {"head_weight": 2}
    codec = engine_matrix_names(Codec(codec_tiny()).state_dict())
    assert "decoder.head.weight" in codec and "decoder.blocks.0.pw1.weight" in codec
    assert "encoder.blocks.0.res.0.c1.conv.weight" in codec and "encoder.out.conv.weight" in codec
    assert not any(".dw." in n or n.startswith("quantizer.") or n.endswith("bias") for n in codec)
    assert all(v == 1 for v in codec.values())


# ---- the SpringLM engine ----------------------------------------------------------------------


CFG = springlm_tiny()
V = CFG.codebook_size


def _lm_weights(rounded: bool) -> dict[str, np.ndarray]:
    torch.manual_seed(3)
    sd = SpringLM(CFG).state_dict()
    with torch.no_grad():  # larger than init so the PMFs vary: logits of a few units
        for name in engine_matrix_names(sd):
            sd[name] = sd[name] * 8
    if rounded:
        sd = round_engine_weights(sd)
    return {k: v.detach().float().numpy().copy() for k, v in sd.items()}


def _lm_outputs(eng) -> bytes:
    """Coding-pass logits with memory passes, fused CDFs and a concealment window."""
    rng = np.random.default_rng(11)
    st = eng.new_state(6, 2)
    parts = []
    for i in range(5):
        view = rng.integers(0, V, size=(CFG.n_codebooks, 2)).astype(np.int64)
        view[3 + i % 4:9] = MASK
        view[9 + i % 3:] = MASK_UPPER
        parts.append(eng.fine_logits(st, view, (0, CFG.n_codebooks)))
        eng.commit(st, view[:3])
    parts.append(eng.fine_cdfs(st, view, (3, CFG.n_codebooks), precision_bits=16))
    window = rng.integers(0, V, size=(CFG.n_codebooks, 9)).astype(np.int64)
    window[:3, [2, 5]] = MASK
    parts.append(eng.conceal_logits(window))
    return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()


@pytest.fixture(scope="module")
def rounded_lm() -> dict[str, np.ndarray]:
    return _lm_weights(rounded=True)


def test_lm_engine_takes_int8_and_gives_the_float32_bits(rounded_lm):
    engines = {isa: SpringLMEngine(CFG, rounded_lm, isa=isa) for isa in LEVELS}
    storage = {isa: e.weight_storage for isa, e in engines.items()}
    assert storage["generic"] == "float32"  # the reference level has only float32 products
    assert all(storage[isa] == "int8" for isa in INT8_LEVELS), storage
    outputs = {isa: _lm_outputs(e) for isa, e in engines.items()}
    assert len(set(outputs.values())) == 1, (storage, outputs)


def test_lm_engine_on_rounded_weights_matches_torch(rounded_lm):
    eng = SpringLMEngine(CFG, rounded_lm)
    model = SpringLM(CFG).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in rounded_lm.items()})
    ref = SpringLMCodingModel(model)
    rng = np.random.default_rng(4)
    st_e, st_t = eng.new_state(6, 2), ref.new_state(6, 2)
    for _ in range(4):
        view = rng.integers(0, V, size=(CFG.n_codebooks, 2)).astype(np.int64)
        view[6:] = MASK
        levels = (3, CFG.n_codebooks)
        got, want = eng.fine_logits(st_e, view, levels), ref.fine_logits(st_t, view, levels)
        assert float(np.abs(got - want).max()) < 1e-4 * max(1.0, float(np.abs(want).max()))
        eng.commit(st_e, view[:3])
        ref.commit(st_t, view[:3])


def test_unrounded_weights_keep_binary16_or_float32():
    fp32 = _lm_weights(rounded=False)
    halves = {k: v.astype(np.float16).astype(np.float32) for k, v in fp32.items()}
    for isa in LEVELS:
        assert SpringLMEngine(CFG, fp32, isa=isa).weight_storage == "float32"
        want = "binary16" if isa in ("avx2", "avx512") else "float32"
        assert SpringLMEngine(CFG, halves, isa=isa).weight_storage == want, isa
    # One layer matrix off the int8 grid (but a half): the whole model stays binary16.
    mixed = dict(_lm_weights(rounded=True))
    mixed["blocks.0.ff1.weight"] = halves["blocks.0.ff1.weight"]
    if "avx2" in LEVELS:
        assert SpringLMEngine(CFG, mixed, isa="avx2").weight_storage == "binary16"


# ---- the codec engine ---------------------------------------------------------------------------


def _codec(rounded: bool) -> Codec:
    torch.manual_seed(5)
    codec = Codec(codec_tiny()).eval()
    if rounded:
        codec.load_state_dict(round_engine_weights(codec.state_dict()))
    return codec


def _stream(engine, wav: np.ndarray, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Streaming latents [1, D, F] and audio [1, 1, T] of a Codec or CodecEngine."""
    hop = engine.hop  # CodecEngine passes it on from the wrapped Codec
    st = engine.init_encoder_state()
    zs = []
    with torch.inference_mode():
        for i in range(0, len(wav), frames * hop):
            x = torch.from_numpy(wav[i:i + frames * hop]).view(1, 1, -1)
            z, st = engine.encode_latent_step(x, st)
            zs.append(z)
        z = torch.cat(zs, -1)
        dst = engine.init_decoder_state()
        ys = []
        for i in range(0, z.shape[-1], frames):
            y, dst = engine.decode_latent_step(z[..., i:i + frames], dst)
            ys.append(y)
        ys.append(engine.decode_flush(dst))
    return z, torch.cat(ys, -1)


def test_codec_engine_takes_int8_and_gives_the_float32_bits():
    codec = _codec(rounded=True)
    wav = (np.random.default_rng(6).standard_normal(24 * 320) * 0.3).astype(np.float32)
    results = {}
    for isa in LEVELS:
        e = CodecEngine(codec, isa=isa)
        assert e.weight_storage == ("float32" if isa == "generic" else "int8"), isa
        results[isa] = _stream(e, wav, 2)
    z0, y0 = results["generic"]
    for isa, (z, y) in results.items():
        assert torch.equal(z, z0) and torch.equal(y, y0), isa
    # And PyTorch's streaming path on the same (rounded) weights, to float rounding.
    z_ref, y_ref = _stream(codec, wav, 2)
    assert float((z0 - z_ref).abs().max()) <= 1e-5 * max(float(z_ref.abs().max()), 1e-3)
    assert float((y0 - y_ref).abs().max()) <= 1e-4 * max(float(y_ref.abs().max()), 1e-3)


def test_codec_engine_unrounded_weights_keep_binary16_or_float32():
    codec = _codec(rounded=False)
    assert CodecEngine(codec, isa="generic").weight_storage == "float32"
    halves = copy.deepcopy(codec)
    halves.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                            for k, v in codec.state_dict().items()})
    for isa in INT8_LEVELS:
        assert CodecEngine(codec, isa=isa).weight_storage == "float32"
        want = "binary16" if isa in ("avx2", "avx512") else "float32"
        e = CodecEngine(halves, isa=isa)
        assert e.weight_storage == want and e.half_weights == (want == "binary16"), isa
