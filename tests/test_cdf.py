"""cdf_from_logits: invariants, determinism, C++ == Python mirror, golden vectors."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from soundspring import coding
from soundspring.coding import reference
from soundspring.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden" / "cdf_golden.json"


@st.composite
def logit_rows(draw):
    p = draw(st.integers(1, 16))
    v = draw(st.integers(1, min(1 << p, 300)))
    n = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.0, 1e-6, 1.0, 10.0, 100.0, 1e4, 1e30]))
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n, v)) * scale + rng.normal() * 1e3).astype(np.float32)
    if draw(st.booleans()) and v > 1:
        neg = rng.random((n, v)) < draw(st.floats(0.0, 0.9))
        neg[:, 0] = False
        logits[neg] = -np.inf
    return p, logits


@given(logit_rows())
def test_mirror_bits_and_invariants(case):
    p, logits = case
    cdfs = coding.cdf_from_logits(logits, p)
    np.testing.assert_array_equal(cdfs, reference.cdf_from_logits(logits, p))
    assert cdfs.dtype == np.uint32 and cdfs.shape == (logits.shape[0], logits.shape[1] + 1)
    assert (cdfs[:, 0] == 0).all() and (cdfs[:, -1] == 1 << p).all()
    assert (np.diff(cdfs.astype(np.int64), axis=1) >= 1).all()


@pytest.mark.parametrize("p", [11, 16])
def test_residual_fallback_when_argmax_cannot_absorb(p):
    """Half the symbols at probability 0 are bumped to frequency 1; the deficit exceeds
    the argmax's frequency, so the index-order fallback runs (same bits in the mirror)."""
    logits = np.zeros((1, 1024), dtype=np.float32)
    logits[0, 512:] = -np.inf
    cdfs = coding.cdf_from_logits(logits, p)
    np.testing.assert_array_equal(cdfs, reference.cdf_from_logits(logits, p))
    freq = np.diff(cdfs[0].astype(np.int64))
    assert freq.min() >= 1 and freq.sum() == 1 << p
    assert (freq[512:] == 1).all()


def test_probabilities_track_softmax(rng):
    logits = rng.normal(size=(50, 1024)).astype(np.float32) * 3
    cdfs = coding.cdf_from_logits(logits, 16)
    q = np.diff(cdfs.astype(np.float64), axis=1) / 65536
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    kl_bits = np.sum(p * np.log2(p / q), axis=1)
    print(f"mean KL(p || q) = {kl_bits.mean():.5f} bits")
    assert kl_bits.mean() < 0.02


def test_independent_of_batch_split_and_threads(rng):
    logits = (rng.normal(size=(257, 1024)) * 4).astype(np.float32)
    whole = coding.cdf_from_logits(logits, 16)
    parts = np.concatenate(
        [
            coding.cdf_from_logits(np.ascontiguousarray(logits[a : a + 37]), 16)
            for a in range(0, 257, 37)
        ]
    )
    np.testing.assert_array_equal(whole, parts)
    rows = [np.ascontiguousarray(logits[i : i + 1]) for i in range(257)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = np.concatenate(list(pool.map(lambda r: coding.cdf_from_logits(r, 16), rows)))
    np.testing.assert_array_equal(whole, threaded)


def test_fused_logit_coding_equals_explicit_cdfs(rng):
    logits = (rng.normal(size=(500, 1024)) * 2).astype(np.float32)
    cdfs = coding.cdf_from_logits(logits, 16)
    symbols = rng.integers(0, 1024, 500).astype(np.int32)
    data = coding.encode_logits(symbols, logits, 16)
    assert data == coding.encode(symbols, cdfs, 16)
    np.testing.assert_array_equal(coding.decode_logits(data, logits, 16), symbols)
    dec = coding.Decoder(data, 16)
    np.testing.assert_array_equal(
        np.concatenate([dec.decode_logits(logits[:200]), dec.decode(cdfs[200:])]), symbols
    )


def test_det_exp_mirror(rng):
    x = -np.abs(rng.normal(size=10_000) * 100)
    x[:4] = [0.0, -700.0, -700.5, -1e300]
    from soundspring._native import core

    np.testing.assert_array_equal(core.coding.det_exp(x), reference.det_exp(x))
    assert np.max(np.abs(reference.det_exp(x[x > -700]) / np.exp(x[x > -700]) - 1)) < 1e-14


def _golden_case() -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(64)[:, None]
    j = np.arange(1024)[None, :]
    logits = (((i * 7919 + j * 104729 + i * j * 13) % 2003) / 150.0 - 6.0).astype(np.float32)
    logits[5, ::3] = -np.inf
    symbols = ((np.arange(64) * 389) % 1024).astype(np.int32)
    return logits, symbols


@pytest.mark.golden
def test_golden_vectors():
    """Pinned bits: any change to the quantiser or coder must be a deliberate format change."""
    logits, symbols = _golden_case()
    got = {}
    for p in (10, 12, 16):
        cdfs = coding.cdf_from_logits(logits, p)
        got[str(p)] = {
            "cdf_sha256": hashlib.sha256(cdfs.tobytes()).hexdigest(),
            "stream_hex": coding.encode(symbols, cdfs, p).hex(),
        }
    if os.environ.get("SOUNDSPRING_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())


class TestValidation:
    def test_nan(self):
        logits = np.zeros((2, 4), dtype=np.float32)
        logits[1, 2] = np.nan
        with pytest.raises(ConfigError, match="row 1.*NaN at symbol 2"):
            coding.cdf_from_logits(logits)

    def test_pos_inf(self):
        with pytest.raises(ConfigError, match=r"\+inf"):
            coding.cdf_from_logits(np.array([[0, np.inf]], dtype=np.float32))

    def test_all_neg_inf(self):
        with pytest.raises(ConfigError, match="every logit of a row is -inf"):
            coding.cdf_from_logits(np.full((1, 3), -np.inf, dtype=np.float32))

    def test_alphabet_larger_than_precision(self):
        with pytest.raises(ConfigError, match="V = 1024"):
            coding.cdf_from_logits(np.zeros((1, 1024), dtype=np.float32), 9)

    def test_float64_refused(self):
        with pytest.raises(TypeError, match="logits must be a numpy array float32"):
            coding.cdf_from_logits(np.zeros((1, 4)))

    def test_1d_refused(self):
        with pytest.raises(ValueError, match=r"float32 \[N, V\]"):
            coding.cdf_from_logits(np.zeros(4, dtype=np.float32))
