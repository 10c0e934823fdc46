"""Range coder: round trips, C++ == Python mirror, compression, termination, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from coding_helpers import ideal_bits, random_cdfs, sample_symbols
from hypothesis import given
from hypothesis import strategies as st
from soundspring import coding
from soundspring.coding import reference
from soundspring.errors import BitstreamError, ConfigError


@st.composite
def coding_cases(draw, max_n: int = 300):
    p = draw(st.integers(1, 16))
    v = draw(st.integers(1, min(1 << p, 64)))
    n = draw(st.integers(0, max_n))
    extreme = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    cdfs = random_cdfs(rng, n, v, p, extreme=extreme)
    return p, cdfs, sample_symbols(rng, cdfs)


@given(coding_cases())
def test_round_trip_and_mirror_bytes(case):
    p, cdfs, symbols = case
    data = coding.encode(symbols, cdfs, p)
    assert data == reference.encode(symbols, cdfs, p)
    np.testing.assert_array_equal(coding.decode(data, cdfs, p), symbols)
    np.testing.assert_array_equal(reference.decode(data, cdfs, p), symbols)
    if len(symbols) == 0:
        assert data == b""


@given(coding_cases(max_n=60), st.integers(1, 5))
def test_incremental_equals_one_shot(case, n_steps):
    p, cdfs, symbols = case
    cuts = np.linspace(0, len(symbols), n_steps + 1).astype(int)
    enc = coding.Encoder(p)
    for a, b in itertools.pairwise(cuts):
        enc.encode(symbols[a:b], cdfs[a:b])
    data = enc.finish()
    assert data == coding.encode(symbols, cdfs, p)
    assert enc.finish() == data  # idempotent
    dec = coding.Decoder(data, p)
    out = [dec.decode(cdfs[a:b]) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate(out), symbols)


def test_large_stream_mirror_bytes(rng):
    """N = 10^5 symbols: C++ bytes equal the Python mirror's and decode back."""
    pool = random_cdfs(rng, 64, 16, 16)
    cdfs = pool[rng.integers(0, 64, 100_000)]
    symbols = sample_symbols(rng, cdfs)
    data = coding.encode(symbols, cdfs, 16)
    assert data == reference.encode(symbols, cdfs, 16)
    np.testing.assert_array_equal(coding.decode(data, cdfs, 16), symbols)


@pytest.mark.parametrize("precision_bits", [1, 8, 16])
def test_extreme_cdfs_cost_almost_nothing(precision_bits):
    """Certain symbols (p = 1 - (V-1) 2^-p) cost about (V-1) 2^-p / ln 2 bits each."""
    v = 2 if precision_bits == 1 else 16
    total = 1 << precision_bits
    cdf = np.concatenate([[0], np.arange(total - v + 1, total + 1)]).astype(np.uint32)
    cdfs = np.tile(cdf, (10_000, 1))
    symbols = np.zeros(10_000, dtype=np.int32)
    data = coding.encode(symbols, cdfs, precision_bits)
    assert len(data) * 8 <= ideal_bits(symbols, cdfs) * 1.001 + 16
    np.testing.assert_array_equal(coding.decode(data, cdfs, precision_bits), symbols)


def test_compression_within_0p1_percent_of_ideal(rng):
    """10^6 symbols from their own V=1024, 16-bit CDFs: size <= ideal * 1.001 + 2 bytes."""
    logits = (rng.normal(size=(1000, 1024)) * rng.uniform(0.5, 6.0, size=(1000, 1))).astype(
        np.float32
    )
    pool = coding.cdf_from_logits(logits, 16)
    enc = coding.Encoder(16)
    ideal = 0.0
    for _ in range(100):
        cdfs = pool[rng.integers(0, 1000, 10_000)]
        symbols = sample_symbols(rng, cdfs)
        ideal += ideal_bits(symbols, cdfs)
        enc.encode(symbols, cdfs)
    size_bits = len(enc.finish()) * 8
    print(f"coded {size_bits} bits, ideal {ideal:.0f} bits, excess {size_bits / ideal - 1:.6%}")
    assert size_bits <= ideal * 1.001 + 16


def test_termination_overhead_small_packets(rng):
    """Packets of 8..64 symbols pay on average at most about one byte of termination."""
    pool = random_cdfs(rng, 256, 1024, 16)
    excess = []
    for n in range(8, 65):
        for _ in range(40):
            cdfs = pool[rng.integers(0, 256, n)]
            symbols = sample_symbols(rng, cdfs)
            excess.append(len(coding.encode(symbols, cdfs, 16)) * 8 - ideal_bits(symbols, cdfs))
    mean_bits = float(np.mean(excess))
    print(f"mean termination overhead {mean_bits:.2f} bits, max {max(excess):.2f} bits")
    assert mean_bits <= 8.0
    assert max(excess) <= 16.0


def test_decoder_reads_zero_padding_and_flags_impossible_values():
    cdf = np.array([[0, 1 << 15, 1 << 16]], dtype=np.uint32)
    # 0xFF... decodes to a value in the upper half; wasted range is flagged corrupt for a
    # CDF whose r * total < range (precision 16, range 2^32 - 1).
    with pytest.raises(BitstreamError):
        coding.decode(b"\xff\xff\xff\xff", cdf, 16)
    np.testing.assert_array_equal(coding.decode(b"", cdf, 16), [0])


def test_errors_are_sticky():
    cdfs = np.tile(np.array([0, 1 << 15, 1 << 16], dtype=np.uint32), (2, 1))
    dec = coding.Decoder(b"\xff\xff\xff\xff", 16)
    for _ in range(2):
        with pytest.raises(BitstreamError):
            dec.decode(cdfs)


class TestValidation:
    cdfs = np.tile(np.array([0, 100, 65536], dtype=np.uint32), (3, 1))
    symbols = np.array([0, 1, 0], dtype=np.int32)

    def test_wrong_symbol_dtype(self):
        with pytest.raises(TypeError, match="symbols must be a numpy array int32"):
            coding.encode(self.symbols.astype(np.int64), self.cdfs)

    def test_list_instead_of_array(self):
        with pytest.raises(TypeError, match="symbols"):
            coding.encode([0, 1, 0], self.cdfs)

    def test_wrong_cdf_dtype(self):
        with pytest.raises(TypeError, match="cdfs must be a numpy array uint32"):
            coding.encode(self.symbols, self.cdfs.astype(np.int32))

    def test_non_contiguous(self):
        wide = np.tile(self.cdfs, (1, 2))[:, ::2]
        with pytest.raises(TypeError, match="C-contiguous"):
            coding.encode(self.symbols, wide)

    def test_row_count_mismatch(self):
        with pytest.raises(ValueError, match=r"cdfs must be uint32 \[N, V\+1\] with N = 2"):
            coding.encode(self.symbols[:2], self.cdfs)

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match="dimension"):
            coding.encode(self.symbols[None], self.cdfs)

    @pytest.mark.parametrize("p", [0, 17, -3])
    def test_precision_out_of_range(self, p):
        with pytest.raises(ConfigError, match=r"precision_bits must be an int in \[1, 16\]"):
            coding.encode(self.symbols, self.cdfs, p)

    def test_symbol_out_of_range(self):
        with pytest.raises(ConfigError, match="outside"):
            coding.encode(np.array([0, 2, 0], dtype=np.int32), self.cdfs)

    def test_zero_frequency_symbol(self):
        cdfs = self.cdfs.copy()
        cdfs[0, 1] = 0  # symbol 0 of row 0 gets frequency 0
        with pytest.raises(ConfigError, match="non-zero frequency"):
            coding.encode(self.symbols, cdfs)

    def test_wrong_total(self):
        with pytest.raises(ConfigError):
            coding.encode(self.symbols, self.cdfs, 15)

    def test_data_must_be_bytes(self):
        with pytest.raises(TypeError, match="data must be bytes-like"):
            coding.decode("abc", self.cdfs)

    def test_validate_cdfs(self):
        coding.validate_cdfs(self.cdfs, 16)
        bad = self.cdfs.copy()
        bad[2, 1] = 70000
        with pytest.raises(ConfigError, match="row 2"):
            coding.validate_cdfs(bad, 16)

    def test_encoder_after_error_keeps_raising(self):
        enc = coding.Encoder(16)
        with pytest.raises(ConfigError):
            enc.encode(np.array([5], dtype=np.int32), self.cdfs[:1])
        with pytest.raises(ConfigError):
            enc.finish()
        with pytest.raises(ConfigError):
            enc.finish()

    def test_finish_stays_idempotent_after_a_refused_encode(self):
        enc = coding.Encoder(16)
        enc.encode(np.array([1], dtype=np.int32), self.cdfs[:1])
        data = enc.finish()
        for _ in range(2):  # a refused call leaves the finished stream as it was
            with pytest.raises(ConfigError, match="after finish"):
                enc.encode(np.array([1], dtype=np.int32), self.cdfs[:1])
            with pytest.raises(ConfigError, match="after finish"):
                enc.encode_logits(np.array([1], dtype=np.int32),
                                  np.zeros((1, self.cdfs.shape[1] - 1), np.float32))
            assert enc.finish() == data
