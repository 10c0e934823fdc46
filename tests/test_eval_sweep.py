"""The loss-sweep harness (soundspring.evaluation.sweep and friends).

Audio is made here: a speech-like synthetic signal (glottal pulse train with a moving f0
through moving formant resonators, syllabic envelope with pauses). The codec is a
random-init tiny codec. Opus systems skip cleanly where their library is missing; outputs
go to tmp_path only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal as sps
from soundspring.config import codec_tiny
from soundspring.errors import ConfigError
from soundspring.evaluation import metrics
from soundspring.evaluation.conditions import (
    DEFAULT_CONDITIONS,
    parse_condition,
    pattern_seed,
    slot_losses,
)
from soundspring.evaluation.mos import speechmos_unavailable_reason
from soundspring.evaluation.sweep import SweepClip, load_sweep_clips, run_sweep
from soundspring.evaluation.systems import (
    SYSTEM_NAMES,
    CodecNoLM,
    System,
    SystemOutput,
    build_systems,
)
from soundspring.models.codec import Codec

SR = 16000


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """float32 [T]: pulse train (f0 100-180 Hz) through 3 moving formants, syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = np.cumsum(f0 / SR)
    src = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    src += 0.02 * rng.standard_normal(n)
    y = np.zeros(n)
    for k, (lo, hi) in enumerate(((300, 800), (900, 2200), (2300, 3200))):
        fc = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.9 + 0.3 * k) * t))
        seg = 800
        for i in range(0, n, seg):
            b, a = sps.iirpeak(fc[i] / (SR / 2), 8)
            y[i:i + seg] += sps.lfilter(b, a, src[i:i + seg]) / (k + 1)
    env = np.clip(np.sin(2 * np.pi * 2.2 * t + rng.uniform(0, 6)), 0, None) ** 0.6
    y *= env
    return (0.3 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> list[SweepClip]:
    return [SweepClip(f"synth/{i}", speech_like(2.0, i)) for i in range(2)]


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    return Codec(codec_tiny()).eval()


class Passthrough(System):
    """Ideal system: 20 ms slots, output = input, lost slots muted; records what it saw."""

    name = "passthrough"
    description = "identity (test)"
    slot_frames = 1

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def n_slots(self, n_samples: int) -> int:
        return -(-n_samples // 320)

    def run(self, wav, bitrate_kbps, lost, expected_loss_pct):  # type: ignore[no-untyped-def]
        self._check_run(wav, lost)
        self.seen.append(lost.copy())
        y = wav.copy()
        y[np.repeat(lost, 320)[: wav.size]] = 0.0
        return SystemOutput(decoded=y, bytes_sent=int(bitrate_kbps * 1000 / 8 * 0.02) * lost.size,
                            n_slots=lost.size, slot_frames=1, n_lost=int(lost.sum()),
                            n_concealed=int(lost.sum()))


def _available(names, codec):  # type: ignore[no-untyped-def]
    systems = build_systems(names, codec=codec)
    return {n: s for n, s in systems.items() if s.unavailable_reason() is None}


# ---- metrics ----------------------------------------------------------------------------


def test_identical_input_gives_ideal_metrics(clips: list[SweepClip]) -> None:
    x = clips[0].wav
    m = metrics.all_metrics(x, x)
    assert m["pesq_wb"] == pytest.approx(4.64, abs=0.01)  # P.862.2 maximum
    assert m["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert m["si_sdr_db"] > 100
    assert m["log_mel_dist"] == 0.0


def test_sweep_of_identity_system_reports_ideal_values(tmp_path: Path,
                                                      clips: list[SweepClip]) -> None:
    res = run_sweep(clips[:1], tmp_path, {"passthrough": Passthrough()}, ["bern0"], [6.0],
                    mos=False, plots=False, progress=False)
    (row,) = res["summary"]
    assert row["pesq_wb"] == pytest.approx(4.64, abs=0.01)
    assert row["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert row["log_mel_dist"] == 0.0
    assert row["realised_loss_rate"] == 0.0


@pytest.mark.skipif(speechmos_unavailable_reason() is not None,
                    reason=str(speechmos_unavailable_reason()))
def test_mos_scores_are_deterministic_and_in_range(clips: list[SweepClip]) -> None:
    from soundspring.evaluation.mos import mos_scores

    a, b = mos_scores(clips[0].wav), mos_scores(clips[0].wav.copy())
    assert a == b
    assert all(1.0 <= v <= 5.0 for v in a.values()), a


# ---- conditions and loss mapping --------------------------------------------------------


def test_conditions_parse_and_reject() -> None:
    ids = [parse_condition(c).id for c in DEFAULT_CONDITIONS]
    assert ids == list(DEFAULT_CONDITIONS)
    assert parse_condition("ge10b4").family == "ge_b4"
    assert parse_condition("wlan").expected_loss_pct == 14
    for bad in ("bern", "ge10", "ge50b0", "foo", "bern100"):
        with pytest.raises(ConfigError):
            parse_condition(bad)
    with pytest.raises(ConfigError):
        slot_losses(np.zeros(4, bool), 3, 2, "time")  # needs cells 0, 2, 4


def test_pattern_is_seeded_by_condition_and_clip() -> None:
    c = parse_condition("bern20")
    a, b = c.flags("x", 500), c.flags("x", 500)
    assert (a == b).all()
    assert (c.flags("x", 200) == a[:200]).all()  # prefixes agree
    assert not (c.flags("y", 500) == a).all()
    assert pattern_seed("bern20", "x") != pattern_seed("bern30", "x")
    assert not parse_condition("bern0").flags("x", 100).any()


def test_loss_mappings() -> None:
    flags = parse_condition("ge20b4").flags("clip", 400)
    assert (slot_losses(flags, 100, 2, "packet") == flags[:100]).all()
    assert (slot_losses(flags, 100, 2, "time") == flags[0:200:2]).all()


# ---- every system sees exactly its pattern ----------------------------------------------


def test_each_system_conceals_exactly_the_lost_slots(clips: list[SweepClip],
                                                    codec: Codec) -> None:
    wav = clips[0].wav
    systems = _available(SYSTEM_NAMES, codec)
    assert "codec_nolm" in systems
    cond = parse_condition("ge20b2")
    for name, s in systems.items():
        n = s.n_slots(wav.size)
        lost = slot_losses(cond.flags("c", n), n, s.slot_frames)
        assert lost.any() and not lost.all()
        out = s.run(wav, 6.0, lost, cond.expected_loss_pct)
        assert out.decoded.dtype == np.float32 and out.decoded.shape == wav.shape, name
        assert out.n_slots == n and out.n_lost == int(lost.sum()), name
        assert out.n_concealed == int(lost.sum()), name
        if name.startswith("opus"):
            info = out.info
            assert info["n_plc"] + info["n_fec"] + info["n_dred"] == int(lost.sum())
        assert out.bytes_sent > 0 and out.measured_kbps > 0
        with pytest.raises(ConfigError):
            s.run(wav, 6.0, lost[:-1], 10)


def test_codec_nolm_runs_the_transceiver_and_accounts_every_byte(clips: list[SweepClip],
                                                                 codec: Codec) -> None:
    s = CodecNoLM(codec, chunk_frames=2)
    wav = clips[0].wav
    n = s.n_slots(wav.size)
    assert n == -(-wav.size // 640)
    none = s.run(wav, 3.0, np.zeros(n, dtype=bool), 0)
    assert none.n_concealed == 0
    lost = np.zeros(n, dtype=bool)
    lost[0] = lost[10] = lost[11] = True
    out = s.run(wav, 3.0, lost, 10)
    assert out.bytes_sent == none.bytes_sent  # lost packets were still sent
    assert out.n_concealed == out.info["n_conceal"] == 3 and out.info["n_fec"] == 0
    # one packet per 40 ms chunk: 6 codebooks x 2 frames x 10 bits (uniform) = 120 bits,
    # + 8 check bits + the TOC byte = 17 bytes (termination may save a byte) = 3.4 kbps
    assert n * 16 <= none.bytes_sent <= n * 17
    assert 3.2 <= none.measured_kbps <= 3.4
    assert np.abs(out.decoded[: 10 * 640] - none.decoded[: 10 * 640]).max() > 0  # chunk 0 lost


def test_fec_variant_recovers_isolated_losses_from_copies(clips: list[SweepClip],
                                                         codec: Codec) -> None:
    from soundspring.entropy.static import StaticModel
    from soundspring.evaluation.systems import PipelineSystem

    s = PipelineSystem("fec_test", StaticModel, codec, "repeat", True, 2, "test")
    assert s.unavailable_reason() is None
    wav = clips[0].wav
    n = s.n_slots(wav.size)
    lost = np.zeros(n, dtype=bool)
    lost[[3, 7, 8]] = True  # 3: copy in chunk 4 arrives; 7: its copy rides in lost chunk 8
    out = s.run(wav, 6.0, lost, 10)
    assert out.n_concealed == 3
    assert out.info["n_fec"] == 2 and out.info["n_conceal"] == 1  # 3 and 8 from copies


def test_soundspring_reports_why_it_is_unavailable(codec: Codec) -> None:
    systems = build_systems(["soundspring", "soundspring_fec"], codec=codec)
    for s in systems.values():
        reason = s.unavailable_reason()
        if reason is not None:
            assert "SpringLM" in reason or "lm" in reason.lower()
    assert build_systems(["soundspring"], codec=None)["soundspring"].unavailable_reason()


def test_codec_systems_skip_bitrates_that_are_no_operating_point(codec: Codec) -> None:
    nolm = build_systems(["codec_nolm"], codec=codec)["codec_nolm"]
    assert nolm.unsupported_reason(6.0) is None and nolm.unsupported_reason(12.0) is None
    assert "operating points" in nolm.unsupported_reason(9.0)  # Opus-only bracketing rate


def test_sweep_passes_the_condition_pattern_to_each_system(tmp_path: Path,
                                                           clips: list[SweepClip]) -> None:
    spy = Passthrough()
    res = run_sweep(clips, tmp_path, {"passthrough": spy}, ["bern30", "wlan"], [6.0],
                    mos=False, plots=False, progress=False)
    expected = []
    for clip in clips:
        for cid in ("bern30", "wlan"):
            n = spy.n_slots(clip.wav.size)
            expected.append(parse_condition(cid).flags(clip.id, n))
    assert len(spy.seen) == len(expected)
    for seen, exp in zip(spy.seen, expected, strict=True):
        assert (seen == exp).all()
    for it in res["items"]:
        assert it["n_concealed"] == it["n_lost"]
        assert it["realised_loss_rate"] == pytest.approx(it["n_lost"] / it["n_slots"], abs=1e-4)


# ---- resuming ---------------------------------------------------------------------------


def _metrics_by_key(res: dict) -> dict:
    return {i["key"]: (i["metrics"], i["bytes_sent"], i["n_lost"]) for i in res["items"]}


def test_resume_skips_done_items_and_gives_the_same_results(tmp_path: Path,
                                                           clips: list[SweepClip],
                                                           codec: Codec) -> None:
    systems = ["opus13_plc", "codec_nolm"] if "opus13_plc" in _available(
        ["opus13_plc"], None) else ["codec_nolm"]
    kw = {"conditions": ["bern10", "ge20b4"], "bitrates": [3.0], "codec": codec, "codec_id": "tiny",
              "mos": False, "plots": False, "progress": False}
    total = len(clips) * len(systems) * 2
    full = run_sweep(clips, tmp_path / "full", systems, **kw)
    assert full["n_computed"] == total

    part = run_sweep(clips, tmp_path / "resumed", systems, max_new_items=3, **kw)
    assert part["n_computed"] == 3 and not part["settings"]["complete"]
    lines = (tmp_path / "resumed" / "items.jsonl").read_text().splitlines()
    assert len(lines) == 3
    with open(tmp_path / "resumed" / "items.jsonl", "a") as f:  # a write torn by a kill
        f.write('{"key": "torn')
    rest = run_sweep(clips, tmp_path / "resumed", systems, **kw)
    assert rest["n_skipped"] == 3 and rest["n_computed"] == total - 3
    lines = (tmp_path / "resumed" / "items.jsonl").read_text().splitlines()
    assert len(lines) == total and len({json.loads(x)["key"] for x in lines}) == total
    assert _metrics_by_key(rest) == _metrics_by_key(full)

    again = run_sweep(clips, tmp_path / "resumed", systems, **kw)
    assert again["n_computed"] == 0 and again["n_skipped"] == total

    with pytest.raises(ConfigError, match="other settings"):
        run_sweep(clips, tmp_path / "resumed", systems, **{**kw, "codec_id": "other"})


class Broken(Passthrough):
    name = "broken"

    def run(self, wav, bitrate_kbps, lost, expected_loss_pct):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


def test_a_failing_system_does_not_stop_the_sweep(tmp_path: Path,
                                                  clips: list[SweepClip]) -> None:
    systems = {"broken": Broken(), "passthrough": Passthrough()}
    res = run_sweep(clips, tmp_path, systems, ["bern10"], [6.0], mos=False, plots=False,
                    progress=False)
    assert res["failures"]["broken"]["items"] == len(clips)
    assert "boom" in res["failures"]["broken"]["error"]
    assert {i["system"] for i in res["items"]} == {"passthrough"}
    assert "FAILED" in (tmp_path / "report.md").read_text()
    again = run_sweep(clips, tmp_path, {"passthrough": Passthrough()}, ["bern10"], [6.0],
                      mos=False, plots=False, progress=False)
    assert again["n_computed"] == 0 and not again["failures"]


# ---- CI smoke run -----------------------------------------------------------------------


def test_smoke_sweep_writes_results_report_and_plots(tmp_path: Path, clips: list[SweepClip],
                                                    codec: Codec) -> None:
    clips = clips[:1]
    res = run_sweep(clips, tmp_path, None, ["bern0", "bern20"], [3.0, 6.0], codec=codec,
                    codec_id="tiny-random", progress=False, jobs=1)
    ran = [n for n, m in res["systems"].items() if m["available"]]
    assert "codec_nolm" in ran
    if not res["systems"]["soundspring"]["available"]:
        assert "soundspring: pending" in (tmp_path / "report.md").read_text()
    assert len(res["items"]) == len(ran) * 2 * 2 * len(clips)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["items"]) == len(res["items"]) and saved["summary"]
    report = (tmp_path / "report.md").read_text()
    assert "## Every number" in report
    assert "measured kbps" in report
    for p in res["plots"]:
        assert (tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not res["plots"] and "matplotlib" in report
    else:
        assert any(p.startswith("quality_vs_loss_") for p in res["plots"])
        assert any(p.startswith("quality_vs_bitrate_") for p in res["plots"])
    if speechmos_unavailable_reason() is None:
        assert "plcmos" in res["summary"][0]
    else:
        assert res["metrics_unavailable"]["plcmos"]


def test_worker_processes_give_the_same_results(tmp_path: Path, clips: list[SweepClip],
                                                codec: Codec) -> None:
    kw = {"conditions": ["bern20", "wlan"], "bitrates": [6.0], "codec": codec, "codec_id": "tiny",
              "mos": False, "plots": False, "progress": False}
    one = run_sweep(clips, tmp_path / "one", ["codec_nolm"], jobs=1, **kw)
    two = run_sweep(clips, tmp_path / "two", ["codec_nolm"], jobs=2, **kw)
    assert _metrics_by_key(one) == _metrics_by_key(two) and len(one["items"]) == 4


@pytest.mark.parametrize("doc_module", ["clips", "conditions", "report", "systems", "mos"])
def test_docstring_examples(doc_module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"soundspring.evaluation.{doc_module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_load_sweep_clips_from_directory(tmp_path: Path, clips: list[SweepClip]) -> None:
    from soundspring.audio import write_wav

    for c in clips:
        write_wav(tmp_path / "in" / f"{c.id}.wav", c.wav)
    got = load_sweep_clips(tmp_path / "in", max_clips=1, seconds_per_clip=1.0)
    assert [c.id for c in got] == ["synth/0"] and got[0].wav.size == SR
    with pytest.raises(ConfigError):
        load_sweep_clips(tmp_path / "in", seconds_per_clip=0.0)


def test_paired_deltas_pair_by_clip_and_flip_lower_is_better():
    """paired_deltas: per-clip differences on shared (condition, bitrate, clip) items only,
    a system missing one of the baseline's clips is left out, log-mel is negated."""
    from soundspring.evaluation.report import paired_deltas, paired_tables

    def item(system, clip, pesq, mel, cond="bern10"):
        return {"system": system, "condition": cond, "bitrate_kbps": 6.0, "clip": clip,
                "metrics": {"pesq_wb": pesq, "log_mel_dist": mel}}

    items = [item("soundspring_repeat", "a", 1.0, 0.5), item("soundspring_repeat", "b", 2.0, 0.5),
             item("soundspring_lm", "a", 1.4, 0.4), item("soundspring_lm", "b", 1.8, 0.7),
             item("partial", "a", 3.0, 0.1),                     # lacks clip b: not compared
             item("soundspring_lm", "a", 9.0, 0.0, cond="bern20")]  # no baseline there
    rows = paired_deltas(items, metrics=("pesq_wb", "log_mel_dist"))
    assert [(r["system"], r["condition"]) for r in rows] == [("soundspring_lm", "bern10")]
    r = rows[0]
    assert r["n"] == 2 and r["pesq_wb_wins"] == 1 and r["log_mel_dist_wins"] == 1
    assert r["pesq_wb_delta"] == pytest.approx(0.1) and r["pesq_wb"] == pytest.approx(1.6)
    assert r["log_mel_dist_delta"] == pytest.approx(-0.05)   # (-(-0.1) + -(0.2)) / 2
    table = paired_tables(items, metrics=("pesq_wb",))
    assert any("soundspring_lm" in line and "+0.100" in line and "1/2" in line for line in table)
    assert paired_tables(items, baseline="nobody") == []
