"""The C++ residual-VQ search (``soundspring._core.rvq``, csrc/core/rvq_search.h) and its use
in ``ResidualVQ.encode`` / ``RateDistortionQuantizer``: agreement with a float64 numpy
reference (the exact argmin, except between candidates within float rounding of each
other), identical bits across ISA levels, thread counts and storage, the rate term, typed
errors, and the tiny codec's streaming == offline round trip through the kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from soundspring._native import core
from soundspring.config import codec_tiny
from soundspring.errors import ConfigError, NativeFeatureError
from soundspring.models.codec import Codec
from soundspring.models.rd import RateDistortionQuantizer
from soundspring.models.rvq import RVQ_ISA_ENV

SEED = 20261202
ISAS = list(core.lm.supported_isas())
TOL_REL = 1e-5  # float64 distance gap tolerated, relative to ||r||^2 + ||c||^2


def _codebooks(k: int, v: int, d: int, seed: int, grid: bool = False) -> np.ndarray:
    cb = np.random.default_rng(seed).normal(0.0, 0.5, size=(k, v, d)).astype(np.float32)
    if grid:  # values on a binary16 grid: fp16 storage is lossless
        cb = (np.round(cb * 256) / 256).astype(np.float32)
    return cb


def _reference_check(cb: np.ndarray, r0: np.ndarray, lo: int, hi: int, codes: np.ndarray,
                     bits: np.ndarray | None = None, rd_lambda: float = 0.0) -> int:
    """Follows the kernel's picks ``codes`` [L, N] in float64 and checks each against the
    float64 argmin of ||r - c||^2 + rd_lambda * bits: returns how many picks are exactly the
    argmin, and asserts every other pick is within TOL_REL of it."""
    r = r0.astype(np.float64)
    exact = 0
    for k in range(lo, hi):
        c = cb[k].astype(np.float64)  # [V, D]
        dist = ((r[:, None, :] - c[None]) ** 2).sum(-1)  # [N, V]
        if bits is not None and rd_lambda:
            dist = dist + rd_lambda * bits[:, k - lo, :c.shape[0]].astype(np.float64)
        got = codes[k - lo]
        best = dist.argmin(1)
        exact += int((got == best).sum())
        scale = (r * r).sum(1) + (c * c).sum(1).max()
        gap = dist[np.arange(len(got)), got] - dist[np.arange(len(got)), best]
        assert (gap <= TOL_REL * scale).all(), f"level {k}: gap {gap.max()} over tolerance"
        r = (r.astype(np.float32) - cb[k][got]).astype(np.float64)  # the kernel's float32 step
    return exact


def _search(cb: np.ndarray, r: np.ndarray, lo: int, hi: int, bits=None, rd_lambda=0.0,
            **kw) -> tuple[np.ndarray, np.ndarray]:
    packed = core.rvq.Codebooks(cb, **kw)
    res = r.copy()
    codes = packed.search(res, lo, hi, bits, rd_lambda)
    return codes, res


# ---- the kernel against float64 ------------------------------------------------------------


@pytest.mark.parametrize("rd_lambda", [0.0, 0.8])
def test_kernel_matches_float64_reference(rd_lambda):
    k, v, d, n = 5, 300, 128, 70  # V not a multiple of 16; N over one row block of 64
    cb = _codebooks(k, v, d, SEED)
    rng = np.random.default_rng(SEED + 1)
    r = rng.normal(0.0, 1.0, size=(n, d)).astype(np.float32)
    bits = rng.uniform(0, 12, size=(n, k, v + 5)).astype(np.float32)
    codes, res = _search(cb, r, 0, k, bits, rd_lambda)
    assert codes.dtype == np.int64 and codes.shape == (k, n)
    assert ((codes >= 0) & (codes < v)).all()
    exact = _reference_check(cb, r, 0, k, codes, bits, rd_lambda)
    print(f"rd_lambda {rd_lambda}: {exact} / {k * n} picks equal the float64 argmin")
    assert exact >= k * n - 2  # random data: near-ties are rare
    # The residual is r minus the chosen codewords, float32 step by step.
    want = r.copy()
    for lvl in range(k):
        want = want - cb[lvl][codes[lvl]]
    np.testing.assert_array_equal(res, want)


def test_kernel_agrees_with_the_pytorch_search():
    k, v, d, n = 4, 1024, 128, 40
    cb = _codebooks(k, v, d, SEED + 2)
    r = np.random.default_rng(SEED + 3).normal(0.0, 1.0, size=(n, d)).astype(np.float32)
    codes, _ = _search(cb, r, 0, k)
    cbt = torch.from_numpy(cb)
    rt = torch.from_numpy(r.copy())
    same = 0
    for lvl in range(k):
        norms = (cbt[lvl] * cbt[lvl]).sum(1)
        idx = (norms[None] - 2.0 * (rt @ cbt[lvl].t())).argmin(1)
        same += int((idx.numpy() == codes[lvl]).sum())
        rt = rt - cbt[lvl][torch.from_numpy(codes[lvl])]  # follow the kernel
    assert same >= k * n - 2


# ---- determinism: ISA levels, threads, storage, row split ----------------------------------


def test_identical_bits_across_isa_threads_and_rows():
    k, v, d, n = 3, 200, 128, 150
    cb = _codebooks(k, v, d, SEED + 4)
    rng = np.random.default_rng(SEED + 5)
    r = rng.normal(0.0, 1.0, size=(n, d)).astype(np.float32)
    bits = rng.uniform(0, 12, size=(n, k, v)).astype(np.float32)
    assert "generic" in ISAS
    for rd_lambda in (0.0, 0.5):
        ref_codes, ref_res = _search(cb, r, 0, k, bits, rd_lambda, isa="generic")
        for isa in ISAS:
            for threads in (1, 2, 3):
                codes, res = _search(cb, r, 0, k, bits, rd_lambda, isa=isa, num_threads=threads)
                np.testing.assert_array_equal(codes, ref_codes, err_msg=f"{isa} x{threads}")
                assert res.tobytes() == ref_res.tobytes(), f"{isa} x{threads}"
        # one row at a time == all rows; two calls (levels [0, 1) then [1, k)) == one
        for row in (0, 63, 64, 149):
            codes, res = _search(cb, r[row:row + 1], 0, k, bits[row:row + 1], rd_lambda)
            np.testing.assert_array_equal(codes[:, 0], ref_codes[:, row])
            assert res.tobytes() == ref_res[row:row + 1].tobytes()
        packed = core.rvq.Codebooks(cb)
        res = r.copy()
        first = packed.search(res, 0, 1, np.ascontiguousarray(bits[:, :1]), rd_lambda)
        rest = packed.search(res, 1, k, np.ascontiguousarray(bits[:, 1:]), rd_lambda)
        np.testing.assert_array_equal(np.concatenate([first, rest]), ref_codes)
        assert res.tobytes() == ref_res.tobytes()


def test_half_storage_is_lossless_or_refused():
    k, v, d, n = 3, 128, 128, 20
    grid = _codebooks(k, v, d, SEED + 6, grid=True)
    r = np.random.default_rng(SEED + 7).normal(0.0, 1.0, size=(n, d)).astype(np.float32)
    ref_codes, ref_res = _search(grid, r, 0, k, isa="generic", storage="fp32")
    wide = [isa for isa in ISAS if isa in ("avx2", "avx512")]
    for isa in wide:
        packed = core.rvq.Codebooks(grid, isa=isa)
        assert packed.storage == "fp16"
        assert packed.level_bytes == v * d * 2
        codes, res = _search(grid, r, 0, k, isa=isa, storage="fp16")
        np.testing.assert_array_equal(codes, ref_codes)
        assert res.tobytes() == ref_res.tobytes()
    lossy = _codebooks(1, v, d, SEED + 8)
    assert core.rvq.Codebooks(lossy).storage == "fp32"
    with pytest.raises(ConfigError, match="fp16"):
        core.rvq.Codebooks(lossy, storage="fp16")
    with pytest.raises(ConfigError, match="fp16"):
        core.rvq.Codebooks(grid, isa="generic", storage="fp16")


def test_ties_go_to_the_lowest_index():
    cb = np.full((1, 40, 16), 5.0, dtype=np.float32)
    cb[0, [7, 17, 37]] = 0.25  # three equal nearest codewords
    for isa in ISAS:
        codes, _ = _search(cb, np.zeros((2, 16), np.float32), 0, 1, isa=isa)
        assert codes.tolist() == [[7, 7]]


# ---- the rate term -------------------------------------------------------------------------


def test_lambda_and_bits():
    cb = np.array([[[1.0], [2.0]]], dtype=np.float32)  # distances 1 and 4 from r = 0
    r = np.zeros((1, 1), np.float32)
    bits = np.array([[[10.0, 0.0, 99.0]]], dtype=np.float32)  # V' = 3 > V: the tail unread
    assert _search(cb, r, 0, 1)[0].tolist() == [[0]]
    assert _search(cb, r, 0, 1, None, 5.0)[0].tolist() == [[0]]  # no bits: the nearest
    assert _search(cb, r, 0, 1, bits, 0.2)[0].tolist() == [[0]]  # 1 + 2 < 4
    assert _search(cb, r, 0, 1, bits, 0.5)[0].tolist() == [[1]]  # 1 + 5 > 4
    nan_bits = np.full((1, 1, 2), np.nan, np.float32)
    assert _search(cb, r, 0, 1, nan_bits, 0.0)[0].tolist() == [[0]]  # lambda 0: never read


# ---- typed errors ----------------------------------------------------------------------------


def test_bad_input_gives_typed_errors():
    cb = _codebooks(2, 32, 8, SEED + 9)
    packed = core.rvq.Codebooks(cb)
    assert (packed.n_codebooks, packed.codebook_size, packed.dim) == (2, 32, 8)
    r = np.zeros((3, 8), np.float32)
    with pytest.raises(TypeError, match="codebooks"):
        core.rvq.Codebooks(cb.astype(np.float64))
    with pytest.raises(ValueError, match="codebooks"):
        core.rvq.Codebooks(cb[0])
    with pytest.raises(ConfigError, match="finite"):
        bad = cb.copy()
        bad[1, 2, 3] = np.inf
        core.rvq.Codebooks(bad)
    with pytest.raises(ConfigError, match="isa"):
        core.rvq.Codebooks(cb, isa="neon")
    with pytest.raises(ConfigError, match="storage"):
        core.rvq.Codebooks(cb, storage="int8")
    with pytest.raises(ConfigError, match="num_threads"):
        core.rvq.Codebooks(cb, num_threads=0)
    with pytest.raises(TypeError, match="residual"):
        packed.search(r.astype(np.float64), 0, 1)
    with pytest.raises(TypeError, match="residual"):
        packed.search(np.zeros((8, 3), np.float32).T, 0, 1)
    with pytest.raises(ConfigError, match="D=8"):
        packed.search(np.zeros((3, 9), np.float32), 0, 1)
    for lo, hi in ((0, 3), (1, 1), (-1, 1), (2, 1)):
        with pytest.raises(ConfigError, match="levels"):
            packed.search(r, lo, hi)
    with pytest.raises(ConfigError, match="bits"):
        packed.search(r, 0, 2, np.zeros((3, 1, 32), np.float32), 1.0)
    with pytest.raises(ConfigError, match="bits"):
        packed.search(r, 0, 1, np.zeros((3, 1, 31), np.float32), 1.0)
    with pytest.raises(TypeError, match="bits"):
        packed.search(r, 0, 1, np.zeros((3, 1, 32), np.float64), 1.0)
    with pytest.raises(ConfigError, match="finite"):
        packed.search(r, 0, 1, np.full((3, 1, 32), np.nan, np.float32), 1.0)
    for lam in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="rd_lambda"):
            packed.search(r, 0, 1, None, lam)
    frozen = r.copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        packed.search(frozen, 0, 1)
    bad_r = np.ones((3, 8), np.float32)
    bad_r[2, 5] = np.nan
    before = bad_r.copy()
    with pytest.raises(ConfigError, match="finite"):
        packed.search(bad_r, 0, 2)
    assert np.array_equal(bad_r, before, equal_nan=True)  # untouched on error
    assert packed.search(np.zeros((0, 8), np.float32), 0, 2).shape == (2, 0)


def test_quantizer_entry_points_refuse_bad_input():
    torch.manual_seed(SEED)
    q = Codec(codec_tiny()).eval().quantizer
    z = torch.randn(1, q.dim, 3)
    with torch.inference_mode():
        with pytest.raises(ConfigError, match="search"):
            q.encode(z, 2, search="blas")
        for n_q in (0, q.n_codebooks + 1, 2.0, True):
            with pytest.raises(ConfigError, match="n_q"):
                q.encode(z, n_q)
        with pytest.raises(ConfigError, match="z must"):
            q.encode(z[:, :-1], 2)
    with torch.enable_grad(), pytest.raises(NativeFeatureError):
        q.encode(z.requires_grad_(), 2, search="native")
    with pytest.raises(ConfigError, match="search"):
        RateDistortionQuantizer(q, [(0, 3)], search="blas")


# ---- the codec through the kernel ------------------------------------------------------------


def test_codec_encode_uses_the_kernel_and_streaming_equals_offline(monkeypatch):
    torch.manual_seed(SEED)
    codec = Codec(codec_tiny()).eval()
    q = codec.quantizer
    n_q = min(12, q.n_codebooks)
    rng = np.random.default_rng(SEED + 10)
    wav = torch.from_numpy(rng.normal(0, 0.1, size=(1, 1, 320 * 24)).astype(np.float32))
    offline = codec.encode(wav, n_q * 0.5)
    assert q.native_search() is not None
    state = codec.init_encoder_state(1)
    parts = []
    for start in range(0, wav.shape[-1], 640):  # 2-frame chunks, as the transmitter sends
        codes, state = codec.encode_step(wav[..., start:start + 640], state, n_q * 0.5)
        parts.append(codes)
    np.testing.assert_array_equal(torch.cat(parts, -1).numpy(), offline.numpy())
    with torch.inference_mode():
        z = codec.encoder(wav)
        native = q.encode(z, n_q, search="native")
        ref = q.encode(z, n_q, search="torch")
    np.testing.assert_array_equal(native.numpy(), offline.numpy())
    agree = float((native == ref).float().mean())
    assert agree >= 0.99, agree
    # every kernel pick is the float64 argmin within rounding
    r0 = z[0].t().contiguous().numpy()
    cb = q.codebooks.detach().numpy()
    _reference_check(cb, r0, 0, n_q, native[0].numpy())
    # the kernel level never changes the tokens
    for isa in ISAS:
        monkeypatch.setenv(RVQ_ISA_ENV, isa)
        np.testing.assert_array_equal(codec.encode(wav, n_q * 0.5).numpy(), offline.numpy())
    monkeypatch.setenv(RVQ_ISA_ENV, "neon")
    with pytest.raises(ConfigError, match="isa"):
        codec.encode(wav, n_q * 0.5)


def test_rd_quantizer_native_matches_torch_reference():
    torch.manual_seed(SEED + 1)
    q = Codec(codec_tiny()).eval().quantizer
    k = q.n_codebooks - q.n_codebooks % 3
    layers = [(i, i + 3) for i in range(0, k, 3)]
    rng = np.random.default_rng(SEED + 11)
    table = rng.uniform(0, 12, size=(16, 4, 32, q.codebook_size + 8)).astype(np.float32)

    def costs(layer: int, tokens: np.ndarray) -> np.ndarray:  # depends on the tokens so far
        return table[int(tokens.sum() * 7 + layer) % 16, :, 3 * layer:3 * layer + 3]

    native = RateDistortionQuantizer(q, layers, search="native")
    torch_rd = RateDistortionQuantizer(q, layers, search="torch")
    same = total = 0
    for trial in range(6):
        z = torch.from_numpy(rng.normal(size=(q.dim, 4)).astype(np.float32)) * 2
        for lam in (0.0, 0.05, 0.5, 5.0):
            got = native.quantize(z, costs, lam)
            want = torch_rd.quantize(z, costs, lam)
            assert got.shape == (k, 4) and got.dtype == np.int64
            same += int((got == want).all())
            total += 1
        with torch.inference_mode():
            nearest = q.encode(z[None], k)[0].numpy()
        np.testing.assert_array_equal(native.quantize(z, costs, 0.0), nearest)
    assert same >= total - 1, (same, total)
    with pytest.raises(ConfigError, match="latents must be finite"):
        native.quantize(torch.full((q.dim, 2), float("nan")), costs, 0.5)


def test_native_cache_follows_codebook_changes():
    torch.manual_seed(SEED + 2)
    q = Codec(codec_tiny()).eval().quantizer
    first = q.native_search()
    assert q.native_search() is first  # packed once
    with torch.no_grad():
        q.codebooks.mul_(1.0)  # in place: a new version, repacked
    second = q.native_search()
    assert second is not first
    q.codebooks = q.codebooks.clone()  # a replaced buffer, repacked
    assert q.native_search() is not second
    z = torch.randn(1, q.dim, 4)
    with torch.inference_mode():
        before = q.encode(z, 3)
    with torch.no_grad():
        q.codebooks[:, ::2] *= -1.5
    with torch.inference_mode():
        after = q.encode(z, 3)
        np.testing.assert_array_equal(after.numpy(), q.encode(z, 3, search="torch").numpy())
    assert not torch.equal(before, after)
    q.codebooks = q.codebooks.double()  # not float32: the PyTorch search
    assert q.native_search() is None
