"""Tux Paint spoken descriptions: naming, dedup, mono mix, trimming, resampling, split by
language, manifests and resuming, on a small fake package tree (no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from soundspring.config import TUXPAINT_HELDOUT_LANGUAGES
from soundspring.data import corpus, tuxpaint
from soundspring.errors import ConfigError

SR = 44_100


@pytest.mark.parametrize(("name", "lang"), [
    ("koala_desc_ro.ogg", "ro"),
    ("koala_desc.ogg", "en"),
    ("inukshuk-photo_desc_da.ogg.ogg", "da"),
    ("foo_bar_desc_pt_BR.ogg", "pt_BR"),
    ("anthoorium_desc_ml.ogg", "ml"),
    ("koala.ogg", None),           # sound effect
    ("7_en_GB.ogg", None),         # spoken digit, not a description
    ("koala_desc_ro.txt", None),
    ("koala_description.ogg", None),
])
def test_language_of(name: str, lang: str | None) -> None:
    assert tuxpaint.language_of(name) == lang


def test_heldout_languages_are_large_non_asterisk_ones() -> None:
    large = {"ro", "es", "ru", "el", "fr", "bg", "be", "ca", "da"}
    assert len(TUXPAINT_HELDOUT_LANGUAGES) >= 3
    assert set(TUXPAINT_HELDOUT_LANGUAGES) <= large
    assert not set(TUXPAINT_HELDOUT_LANGUAGES) & set(corpus.LANGUAGES)
    assert tuxpaint.split_for_language(TUXPAINT_HELDOUT_LANGUAGES[0]) == "heldout"
    assert tuxpaint.split_for_language("ro") == "train"


def _speech(seconds: float, seed: int, lead_s: float = 0.0, tail_s: float = 0.0,
            sr: int = SR) -> np.ndarray:
    """A voiced-like burst between silent (-70 dB noise) lead and tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * seed
    x = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x += 0.3 * np.sin(2 * np.pi * 3 * f0 * t)
    pad = lambda s: 1e-4 * rng.standard_normal(int(s * sr))
    return np.concatenate([pad(lead_s), x, pad(tail_s)]).astype(np.float32)


def _write_ogg(path, x: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format="OGG", subtype="VORBIS")


def _fake_package(root, done: bool = True) -> dict[str, np.ndarray]:
    """A fake extraction tree; returns the sources by relative path."""
    stamps = root / "extracted" / "tuxpaint" / tuxpaint.STAMPS_SUBDIR
    held = TUXPAINT_HELDOUT_LANGUAGES[0]
    clips = {
        "animals/koala_desc.ogg": _speech(1.0, 0, lead_s=0.4, tail_s=0.3),
        "animals/koala_desc_ro.ogg": _speech(1.2, 1, lead_s=0.2),
        f"animals/koala_desc_{held}.ogg": _speech(0.9, 2, tail_s=0.5),
        "animals/koala_desc_da.ogg.ogg": _speech(0.8, 3),
        "animals/short_desc_ro.ogg": _speech(0.3, 4, lead_s=0.4, tail_s=0.4),  # < 0.5 s of speech
    }
    for rel, x in clips.items():
        _write_ogg(stamps / rel, x)
    # Same recording under two stamps (byte copy) -> one row with files=2.
    apple = stamps / "food/apple_desc_ro.ogg"
    apple.parent.mkdir(parents=True)
    apple.write_bytes((stamps / "animals/koala_desc_ro.ogg").read_bytes())
    # Stereo with one silent channel must keep its level in the mono mix.
    st = _speech(1.0, 5)
    _write_ogg(stamps / "food/pear_desc_fr.ogg", np.stack([st, np.zeros_like(st)], axis=1))
    # Not descriptions: a sound effect and a spoken digit.
    _write_ogg(stamps / "animals/koala.ogg", _speech(1.0, 6))
    _write_ogg(stamps / "symbols/7_en_GB.ogg", _speech(1.0, 7))
    if done:
        (root / "extracted" / "tuxpaint" / ".done").write_text("fake\n")
    return clips


def test_description_files_excludes_sound_effects(tmp_path) -> None:
    _fake_package(tmp_path)
    found = tuxpaint.description_files(tmp_path / "extracted" / "tuxpaint")
    rels = [rel for _lang, rel, _f in found]
    assert rels == sorted(rels)
    assert "animals/koala.ogg" not in rels and "symbols/7_en_GB.ogg" not in rels
    assert {rel: lang for lang, rel, _f in found}["animals/koala_desc_da.ogg.ogg"] == "da"
    assert len(found) == 7


def test_trim_silence_keeps_margin() -> None:
    x = np.zeros(16000, np.float32)
    x[4000:12000] = 0.5 * np.sin(np.arange(8000) * 0.3)
    y = tuxpaint.trim_silence(x)
    margin = round(tuxpaint.TRIM_MARGIN_S * 16000)
    assert y.size == 8000 + 2 * margin
    assert tuxpaint.trim_silence(np.zeros(100, np.float32)).size == 0
    assert tuxpaint.trim_silence(np.zeros(0, np.float32)).size == 0
    # A quiet tail 30 dB under the peak is speech-like (kept); 50 dB under is silence.
    z = np.concatenate([x[4000:12000], 0.5 * 10 ** (-30 / 20) * np.ones(3200, np.float32),
                        0.5 * 10 ** (-50 / 20) * np.ones(3200, np.float32)])
    assert tuxpaint.trim_silence(z).size == 8000 + 3200 + margin


def test_to_mono_ignores_silent_channel() -> None:
    x = np.ones((10, 2), np.float32)
    x[:, 1] = 0.0
    assert np.allclose(tuxpaint.to_mono(x), 1.0)
    x[:, 1] = 0.5
    assert np.allclose(tuxpaint.to_mono(x), 0.75)


def test_process_resamples_and_limits_peak() -> None:
    x = _speech(1.0, 0)[:, None] * 4.0  # peak above 1
    y = tuxpaint.process(x, SR)
    assert y.dtype == np.float32
    assert abs(y.size - 16000) <= round(2 * tuxpaint.TRIM_MARGIN_S * 16000) + 160
    assert np.isclose(np.abs(y).max(), 1.0, atol=1e-6)
    y8 = tuxpaint.process(_speech(1.0, 0, sr=8000)[:, None], 8000)
    assert abs(y8.size - 16000) <= 160 + 2 * 800


def test_prepare_manifest_dedup_split_and_resume(tmp_path) -> None:
    _fake_package(tmp_path)
    manifest = tuxpaint.prepare(tmp_path, progress=False)
    assert manifest == tuxpaint.default_manifest(tmp_path)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_path = {r["path"]: r for r in rows}
    held = TUXPAINT_HELDOUT_LANGUAGES[0]
    assert set(by_path) == {
        "wav/en/animals/koala_desc.wav", "wav/ro/animals/koala_desc_ro.wav",
        f"wav/{held}/animals/koala_desc_{held}.wav", "wav/da/animals/koala_desc_da.wav",
        "wav/fr/food/pear_desc_fr.wav",
    }  # apple = copy of koala_ro; short_desc_ro under 0.5 s after trimming
    assert by_path["wav/ro/animals/koala_desc_ro.wav"]["files"] == 2
    for r in rows:
        assert {"path", "language", "duration_s", "split", "source", "speaker"} <= set(r)
        assert r["source"] == "tuxpaint" and r["speaker"] == f"tuxpaint-{r['language']}"
        assert r["split"] == ("heldout" if r["language"] == held else "train")
        assert r["orig_rate_hz"] == SR
        info = sf.info(str(manifest.parent / r["path"]))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - r["duration_s"]) < 1e-3
    # Trimmed: 1.0 s of speech between 0.7 s of silence -> about 1.1 s.
    assert 1.0 < by_path["wav/en/animals/koala_desc.wav"]["duration_s"] < 1.2
    # The silent right channel did not halve the level.
    pear = sf.read(str(manifest.parent / "wav/fr/food/pear_desc_fr.wav"))[0]
    assert np.abs(pear).max() > 0.45

    clips = corpus.read_manifest(manifest)
    assert {c.source for c in clips} == {"tuxpaint"} and all(c.path.exists() for c in clips)
    heldout = corpus.read_manifest(tuxpaint.heldout_manifest(tmp_path))
    assert [c.language for c in heldout] == [held]
    assert all(c.split == "heldout" for c in heldout)

    info = json.loads((manifest.parent / "prepare_info.json").read_text())["languages"]
    assert info["ro"]["files"] == 3 and info["ro"]["recordings"] == 2
    assert info["ro"]["kept"] == 1 and info["ro"]["dropped_short"] == 1

    # Resume: same manifest, WAVs reused (not rewritten).
    first = manifest.read_text()
    wav = manifest.parent / "wav/ro/animals/koala_desc_ro.wav"
    mtime = wav.stat().st_mtime_ns
    assert tuxpaint.prepare(tmp_path, progress=False).read_text() == first
    assert wav.stat().st_mtime_ns == mtime
    # Other held-out languages: only the splits move.
    tuxpaint.prepare(tmp_path, heldout_languages=("ro",), progress=False)
    moved = corpus.read_manifest(manifest, split="heldout")
    assert {c.language for c in moved} == {"ro"} and wav.stat().st_mtime_ns == mtime


def test_prepare_rebuilds_wavs_made_with_other_settings(tmp_path) -> None:
    _fake_package(tmp_path)
    tuxpaint.prepare(tmp_path, progress=False)
    stamp = tuxpaint.tuxpaint_dir(tmp_path) / "wav" / ".processing.json"
    stale = tuxpaint.tuxpaint_dir(tmp_path) / "wav" / "xx" / "stale.wav"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    stamp.write_text('{"version": 0}')
    tuxpaint.prepare(tmp_path, progress=False)
    assert not stale.exists() and json.loads(stamp.read_text()) == tuxpaint.PROCESSING


def test_prepare_requires_fetch(tmp_path) -> None:
    _fake_package(tmp_path, done=False)
    with pytest.raises(ConfigError, match="not fetched"):
        tuxpaint.prepare(tmp_path, progress=False)


def test_fetch_skips_when_done(tmp_path, monkeypatch) -> None:
    _fake_package(tmp_path)

    def no_network(*_a, **_k):
        raise AssertionError("fetch must not run apt or dpkg when the package is extracted")

    monkeypatch.setattr(corpus, "_run", no_network)
    assert tuxpaint.fetch(tmp_path) == tuxpaint.extracted_dir(tmp_path)


def test_data_info_cli_lists_sources(tmp_path, capsys) -> None:
    from soundspring.cli import main

    _fake_package(tmp_path)
    assert main(["data", "prepare", "--source", "tuxpaint", "--cache-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["data", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| tuxpaint | ro | train | 1 |" in out
    assert f"| tuxpaint | {TUXPAINT_HELDOUT_LANGUAGES[0]} | heldout | 1 |" in out
    assert "asterisk: no manifest" in out
