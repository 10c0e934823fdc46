"""Corpus preparation: split determinism, G.722 decoding, prepare() on a fake package tree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from soundspring.data import corpus
from soundspring.errors import ConfigError


def test_split_is_deterministic_and_about_ten_percent() -> None:
    names = [f"{lang}/prompt-{i}" for lang in corpus.LANGUAGES for i in range(2000)]
    first = [corpus.split_for(n) for n in names]
    assert first == [corpus.split_for(n) for n in reversed(names)][::-1]
    for lang in corpus.LANGUAGES:
        frac = np.mean([s == "heldout" for n, s in zip(names, first) if n.startswith(lang)])
        assert 0.07 < frac < 0.13


def test_split_pinned_golden() -> None:
    # Pinned: changing the hash rule would silently move clips between splits.
    names = [f"{lang}/prompt-{i}" for lang in ("en", "fr") for i in range(40)]
    held = [n for n in names if corpus.split_for(n) == "heldout"]
    assert held == ["en/prompt-1", "en/prompt-10", "fr/prompt-4", "fr/prompt-18", "fr/prompt-19"]


def _g722_bytes(seconds: float, seed: int) -> bytes:
    import G722

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    return bytes(G722.G722(16000, 64000).encode((x * 32767).astype(np.int16)))


def test_decode_g722_length_and_range() -> None:
    y = corpus.decode_g722(_g722_bytes(1.0, 0))
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert 0.1 < np.abs(y).max() <= 1.0
    assert corpus.decode_g722(b"").shape == (0,)


def _fake_tree(root, lang: str, files: dict[str, float]) -> None:
    sounds = root / "extracted" / lang / "usr/share/asterisk/sounds" / f"{lang}_XX_f_Test"
    for i, (name, sec) in enumerate(files.items()):
        p = sounds / f"{name}.g722"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_g722_bytes(sec, i))
    (root / "extracted" / lang / ".done").write_text("fake\n")


def test_prepare_writes_manifest_and_is_idempotent(tmp_path) -> None:
    _fake_tree(tmp_path, "en", {"hello": 1.0, "digits/1": 0.6, "beep": 0.2})
    _fake_tree(tmp_path, "fr", {"bonjour": 0.8})
    manifest = corpus.prepare(tmp_path, ["en", "fr"])
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {r["path"] for r in rows} == {"wav/en/hello.wav", "wav/en/digits/1.wav",
                                        "wav/fr/bonjour.wav"}  # beep < 0.5 s dropped
    for r in rows:
        name = r["path"][len("wav/"):-len(".wav")]
        assert r["split"] == corpus.split_for(name)
        assert r["source"] == "asterisk"
    first = manifest.read_text()
    assert corpus.prepare(tmp_path, ["en", "fr"]).read_text() == first
    clips = corpus.read_manifest(manifest)
    assert all(c.path.exists() for c in clips)
    assert abs(next(c for c in clips if c.path.name == "hello.wav").duration_s - 1.0) < 1e-3


def test_read_manifest_without_source(tmp_path) -> None:
    # Manifests written before the ``source`` field still read; the field is then empty.
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "a.wav", "language": "en", "duration_s": 1.0, "split": "train"}\n'
                 '{"path": "b.wav", "language": "en", "duration_s": 2.0, "split": "heldout",'
                 ' "source": "asterisk"}\n')
    a, b = corpus.read_manifest(m)
    assert (a.source, a.speaker, b.source) == ("", "", "asterisk")
    rows = corpus.summary_rows([a, b], default_source="asterisk")
    assert [(r["source"], r["split"], r["clips"]) for r in rows] == [
        ("asterisk", "heldout", 1), ("asterisk", "train", 1)]


def test_prepare_requires_fetch(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not fetched"):
        corpus.prepare(tmp_path, ["it"])


def test_read_manifest_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        corpus.read_manifest(tmp_path / "none.jsonl")
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"path": "a.wav"}\n')
    with pytest.raises(ConfigError, match="malformed"):
        corpus.read_manifest(bad)


def test_fetch_rejects_unknown_language(tmp_path) -> None:
    with pytest.raises(ConfigError, match="language"):
        corpus.fetch(tmp_path, ["xx"])
