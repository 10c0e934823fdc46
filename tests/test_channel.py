"""Loss models: reproducibility, a pure-Python oracle of the PRNG, and statistics over 10^6
draws (loss rate and mean burst length)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from soundspring._native import core
from soundspring.errors import ConfigError
from soundspring.transport import Bernoulli, GilbertElliott, Trace, WlanMarkov

N = 1_000_000
M64 = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def xoshiro_ref(seed: int, n: int) -> list[int]:
    """Reference xoshiro256** (Blackman & Vigna), seeded by four SplitMix64 outputs."""
    s, st = [], seed
    for _ in range(4):
        st, v = splitmix64(st)
        s.append(v)
    rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
    out = []
    for _ in range(n):
        out.append((rotl((s[1] * 5) & M64, 7) * 9) & M64)
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def uniforms(seed: int, n: int) -> list[float]:
    return [(x >> 11) * 2.0**-53 for x in xoshiro_ref(seed, n)]


def burst_lengths(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def test_prng_matches_reference() -> None:
    for seed in (0, 1, 2**63 + 5, M64):
        assert core.transport.xoshiro256ss(seed, 50).tolist() == xoshiro_ref(seed, 50)
    assert splitmix64(0)[1] == 0xE220A8397B1DCDAF


def test_bernoulli_and_ge_match_python_oracle() -> None:
    u = uniforms(9, 2001)
    assert Bernoulli(0.3, 9).losses(2000).tolist() == [x < 0.3 for x in u[:2000]]
    ge = GilbertElliott(0.2, 3.0, 9)
    p, r = 0.2 / (0.8 * 3.0), 1 / 3.0
    bad, ref = u[0] < 0.2, []
    for x in u[1:]:
        ref.append(bad)
        bad = (not x < r) if bad else (x < p)
    assert ge.losses(2000).tolist() == ref
    assert ge.p_good_to_bad == pytest.approx(p) and ge.p_bad_to_good == pytest.approx(r)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: Bernoulli(0.1, s),
        lambda s: GilbertElliott(0.1, 2.0, s),
        lambda s: WlanMarkov(s),
    ],
    ids=["bernoulli", "gilbert_elliott", "wlan"],
)
def test_seeded_reproducible_continuing_and_reset(make) -> None:  # type: ignore[no-untyped-def]
    a, b, c = make(123), make(123), make(124)
    whole = a.losses(10_000)
    parts = np.concatenate([b.losses(3), b.losses(0), b.losses(4_997), b.losses(5_000)])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, c.losses(10_000))
    a.reset()
    assert np.array_equal(a.losses(10_000), whole)
    out = np.zeros(10_000, dtype=bool)
    a.reset()
    a.losses_into(out)
    assert np.array_equal(out, whole)


def test_bernoulli_statistics() -> None:
    p = 0.1
    mask = Bernoulli(p, seed=2024).losses(N)
    k = int(mask.sum())
    assert abs(k - N * p) <= 4 * np.sqrt(N * p * (1 - p))
    # loss runs are geometric: P(len = j) = (1 - p) p^(j - 1)
    runs = burst_lengths(mask)
    assert runs.mean() == pytest.approx(1 / (1 - p), rel=0.02)
    for j in (1, 2, 3):
        expected = len(runs) * (1 - p) * p ** (j - 1)
        assert abs((runs == j).sum() - expected) <= 5 * np.sqrt(expected)


@pytest.mark.parametrize(
    ("loss_rate", "mean_burst"),
    [(0.1, 2.0), (0.2, 4.0), (0.3, 1.5), (0.05, 1.0)],
    ids=["10pct-b2", "20pct-b4", "30pct-b1.5", "5pct-b1"],
)
def test_gilbert_elliott_statistics(loss_rate: float, mean_burst: float) -> None:
    mask = GilbertElliott(loss_rate, mean_burst, seed=77).losses(N)
    assert mask.mean() == pytest.approx(loss_rate, rel=0.02)
    assert burst_lengths(mask).mean() == pytest.approx(mean_burst, rel=0.02)


def test_wlan_statistics() -> None:
    pi2 = 1 / (1 + 0.3631 / (1 - 0.9363) + (1 - 0.3631 - 0.4072) / (1 - 0.5662))
    assert WlanMarkov.STATIONARY_LOSS_RATE == pytest.approx(pi2, rel=1e-12)
    assert WlanMarkov.STATIONARY_LOSS_RATE == pytest.approx(0.1383, abs=5e-4)
    assert WlanMarkov.MEAN_BURST == pytest.approx(1 / (1 - 0.4072))
    mask = WlanMarkov(seed=5).losses(N)
    assert mask.mean() == pytest.approx(pi2, rel=0.02)
    assert burst_lengths(mask).mean() == pytest.approx(1 / (1 - 0.4072), rel=0.02)


@pytest.mark.parametrize(
    ("loss_rate", "mean_burst", "match"),
    [
        (0.5, 0.5, "mean_burst must be"),
        (0.9, 2.0, r"infeasible.*> 1"),
        (1.0, 5.0, r"\[0, 1\)"),
        (-0.1, 2.0, r"\[0, 1\)"),
        (0.1, float("inf"), "finite"),
        (float("nan"), 2.0, "finite"),
    ],
)
def test_gilbert_elliott_rejects_infeasible(
    loss_rate: float, mean_burst: float, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        GilbertElliott(loss_rate, mean_burst, seed=1)


def test_argument_errors() -> None:
    with pytest.raises(ConfigError, match="loss_rate"):
        Bernoulli(1.5, 1)
    with pytest.raises(ConfigError, match="seed"):
        Bernoulli(0.1, -1)
    with pytest.raises(ConfigError, match="seed"):
        WlanMarkov(2**64)
    with pytest.raises(ConfigError, match="seed"):
        WlanMarkov(1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n must be"):
        Bernoulli(0.1, 1).losses(-1)
    ch = Bernoulli(0.1, 1)
    with pytest.raises(TypeError, match="out must be a numpy array bool"):
        ch.losses_into(np.zeros(4, dtype=np.uint8))
    with pytest.raises(TypeError, match="C-contiguous"):
        ch.losses_into(np.zeros(8, dtype=bool)[::2])
    with pytest.raises(ValueError, match="1 dimension|2 dimension"):
        ch.losses_into(np.zeros((2, 2), dtype=bool))
    assert Bernoulli(0.0, 3).losses(1000).sum() == 0
    assert Bernoulli(1.0, 3).losses(1000).all()


def test_trace_file_wraps(tmp_path: Path) -> None:
    path = tmp_path / "loss.txt"
    path.write_text("# recorded trace\n1\n0\r\n\n  1 \n0\n0\n")
    tr = Trace(path)
    assert len(tr) == 5
    assert tr.losses(12).tolist() == [True, False, True, False, False] * 2 + [True, False]
    assert tr.position == 2
    tr.reset()
    assert tr.losses(2).tolist() == [True, False]
    assert Trace.from_mask([0, 1]).losses(3).tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\n0\n2\n", "line 3"),
        ("1\n01\n", "line 2"),
        ("# only a comment\n\n", "no 0/1"),
        ("", "is empty"),
        ("1 0\n", "line 1"),
    ],
)
def test_trace_file_rejected(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Trace(path)


def test_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.txt: no such file"):
        Trace(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="folder"):
        Trace(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty.txt is empty"):
        Trace(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="0 or 1"):
        Trace.from_mask([0, 2])
    with pytest.raises(ValueError, match="1-D"):
        Trace.from_mask([[0, 1]])
    with pytest.raises(ConfigError, match="at least one"):
        Trace.from_mask(np.zeros(0, dtype=np.uint8))
