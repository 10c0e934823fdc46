"""Evaluation sets (soundspring.evaluation.clips): resolution, and every report naming its set.

Tiny generated data only: a private cache (``$SOUNDSPRING_CACHE``) with a speaker-disjoint
manifest (Tux Paint layout: ``tuxpaint/heldout.jsonl``, languages be/bg/el) and an Asterisk
manifest (``corpus/manifest.jsonl``), WAVs of synthetic speech, the tiny random codec and an
untrained tiny SpringLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from soundspring.config import codec_tiny
from soundspring.errors import ConfigError
from soundspring.evaluation.clips import (
    DEFAULT_SET,
    heading_line,
    resolve_eval_set,
    title_line,
)
from soundspring.models.weights_io import (
    codec_tokenizer_hash,
    load_codec,
    save_codec_weights,
    save_lm_weights,
)

SR = 16000
FETCH_TUXPAINT = ("soundspring data fetch --source tuxpaint && "
                  "soundspring data prepare --source tuxpaint")


def _wav(seconds: float, seed: int) -> np.ndarray:
    """float32 [T]: a gliding harmonic tone with a syllable envelope (PESQ finds speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.8 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    y = y * env + 0.003 * rng.standard_normal(t.size)
    return (0.25 * y / np.abs(y).max()).astype(np.float32)


def _write_set(root: Path, name: str, rows: list[dict], seconds: float = 1.5,
               seed: int = 0) -> Path:
    from soundspring.audio import write_wav

    for i, r in enumerate(rows):
        write_wav(root / r["path"], _wav(seconds, seed + i))
        r.setdefault("duration_s", seconds)
    path = root / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache with both prepared sets: 6 speaker-disjoint clips (2 each of be, bg, el) and
    an Asterisk manifest of 2 train + 3 heldout clips (en, es)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SOUNDSPRING_CACHE", str(root))
    tux = [{"path": f"wav/{lang}/animals/s{i}_desc_{lang}.wav", "language": lang,
            "split": "heldout", "source": "tuxpaint", "speaker": f"tuxpaint-{lang}"}
           for lang in ("be", "bg", "el") for i in range(2)]
    _write_set(root / "tuxpaint", "heldout.jsonl", tux)
    ast = [{"path": f"wav/{lang}/p{i}.wav", "language": lang, "split": split,
            "source": "asterisk"}
           for i, (lang, split) in enumerate([("en", "train"), ("en", "heldout"),
                                              ("es", "heldout"), ("es", "train"),
                                              ("en", "heldout")])]
    _write_set(root / "corpus", "manifest.jsonl", ast, seed=100)
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny random codec weights, untrained tiny SpringLM weights on its tokens)."""
    from soundspring.models.codec import Codec
    from soundspring.models.masked_lm import SpringLM, springlm_tiny

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    wpath = save_codec_weights(Codec(codec_tiny()).eval(), d / "codec.pt")
    h = codec_tokenizer_hash(load_codec(wpath, as_exported=True))
    lm = save_lm_weights(SpringLM(springlm_tiny()), d / "lm.pt", tokenizer_sha256=h)
    return Path(wpath), Path(lm)


@pytest.fixture
def titles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every title (axes and figure) of every figure saved while the test runs."""
    from matplotlib.figure import Figure

    seen: list[str] = []
    original = Figure.savefig

    def savefig(fig, *a, **kw):  # type: ignore[no-untyped-def]
        seen.extend(ax.get_title() for ax in fig.axes)
        if fig._suptitle is not None:
            seen.append(fig._suptitle.get_text())
        return original(fig, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


# ---- resolution ---------------------------------------------------------------------------


def test_default_set_is_speaker_disjoint_in_a_fixed_language_balanced_order(cache: Path) -> None:
    s = resolve_eval_set()
    assert DEFAULT_SET == "speaker-disjoint" and s.key == "speaker-disjoint"
    assert s.name == "speaker-disjoint" and s.split == "heldout"
    assert s.source == cache / "tuxpaint" / "heldout.jsonl"
    assert len(s.clips) == s.total_clips == 6
    assert [c.language for c in s.clips[:3]] == ["be", "bg", "el"]
    few = resolve_eval_set(max_clips=4)
    assert few.clips == s.clips[:4] and few.total_clips == 6  # a prefix, always the same
    info = few.info()
    assert info["name"] == "speaker-disjoint" and info["clips"] == 4
    assert info["manifest"] == str(cache / "tuxpaint" / "heldout.jsonl")
    assert info["languages"] == ["be", "bg", "el"] and info["minutes"] == 0.1
    assert info["clip_seconds"] is None  # no duration filter by default
    line = few.heading()
    assert line.startswith("Evaluation set: **speaker-disjoint**") and "4 of 6 clips" in line
    assert str(cache / "tuxpaint" / "heldout.jsonl") in line and "\n" not in line
    assert title_line(info) == "speaker-disjoint set, 4 clips"


def test_same_speakers_set_is_the_asterisk_heldout_split(cache: Path) -> None:
    s = resolve_eval_set("same-speakers")
    assert s.name == "same speakers" and s.source == cache / "corpus" / "manifest.jsonl"
    assert len(s.clips) == 3 and {c.split for c in s.clips} == {"heldout"}
    assert {c.source for c in s.clips} == {"asterisk"}
    train = resolve_eval_set("same-speakers", split="train", max_clips=1)
    assert train.name == "same speakers, train split" and train.total_clips == 2
    assert train.clips[0].path.name == "p0.wav"  # manifest order for the train split
    named = resolve_eval_set("same-speakers", set_name="studio prompts")
    assert named.name == "studio prompts"


def test_a_manifest_is_named_after_its_file_unless_named(cache: Path, tmp_path: Path) -> None:
    m = _write_set(tmp_path / "ood", "manifest.jsonl",
                   [{"path": f"v{i}.wav", "language": "de", "split": "heldout",
                     "source": "espeak-ng:de"} for i in range(2)])
    s = resolve_eval_set(manifest=m)
    assert s.name == "ood/manifest.jsonl" and s.key == "manifest" and len(s.clips) == 2
    assert s.info()["manifest"] == str(m) and s.description == ""
    assert resolve_eval_set(manifest=m, set_name="espeak").name == "espeak"
    # the cache's own manifests keep their set names
    assert resolve_eval_set(manifest=cache / "tuxpaint" / "heldout.jsonl").name == \
        "speaker-disjoint"
    assert resolve_eval_set(manifest=cache / "corpus" / "manifest.jsonl").name == \
        "same speakers"
    with pytest.raises(ConfigError, match="not both"):
        resolve_eval_set("same-speakers", manifest=m)
    with pytest.raises(ConfigError, match="not found"):
        resolve_eval_set(manifest=tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="no 'train' clips"):
        resolve_eval_set(manifest=m, split="train")
    with pytest.raises(ConfigError, match="no 'heldout' clips of 3-6 s"):
        resolve_eval_set(manifest=m, min_s=3.0, max_s=6.0)
    with pytest.raises(ConfigError, match="max_clips"):
        resolve_eval_set(manifest=m, max_clips=-1)


def test_missing_speaker_disjoint_set_says_how_to_make_it(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    from soundspring.cli import main

    monkeypatch.setenv("SOUNDSPRING_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as err:
        resolve_eval_set()
    msg = str(err.value)
    assert FETCH_TUXPAINT in msg and "speaker-disjoint" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="--source asterisk"):
        resolve_eval_set("same-speakers")
    for argv in (["eval", "codec", "--no-opus", "--no-rtf"], ["eval", "rd"], ["eval", "lm"],
                 ["eval", "sweep", "--out", str(tmp_path / "sw")]):
        assert main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and FETCH_TUXPAINT in lines[0], argv


def test_load_sweep_set_names_named_sets_manifests_and_folders(cache: Path,
                                                               tmp_path: Path) -> None:
    from soundspring.audio import write_wav
    from soundspring.evaluation.sweep import load_sweep_clips, load_sweep_set

    clips, info = load_sweep_set(max_clips=2, seconds_per_clip=1.0)
    assert info["name"] == "speaker-disjoint" and info["clips"] == 2
    want = [c.path.relative_to(cache / "tuxpaint" / "wav").with_suffix("").as_posix()
            for c in resolve_eval_set(max_clips=2).clips]
    assert [c.id for c in clips] == want and want[0].startswith("be/animals/s")
    assert info["minutes"] == round(2.0 / 60, 2)  # the audio kept, after --seconds-per-clip
    assert [c.id for c in load_sweep_clips(max_clips=2)] == [c.id for c in clips]
    _, info = load_sweep_set(eval_set="same-speakers")
    assert info["name"] == "same speakers" and info["clips"] == 3
    for i in range(2):
        write_wav(tmp_path / "mine" / f"a{i}.wav", _wav(1.0, i))
    clips, info = load_sweep_set(tmp_path / "mine")
    assert info["name"] == f"{tmp_path.name}/mine" and info["set"] == "directory"
    assert len(clips) == 2 and "folder" in heading_line(info)
    assert load_sweep_set(tmp_path / "mine", set_name="lab")[1]["name"] == "lab"
    with pytest.raises(ConfigError, match="not both"):
        load_sweep_set(tmp_path / "mine", eval_set="same-speakers")


# ---- every report names its set --------------------------------------------------------


def test_eval_codec_names_its_set(cache: Path, models: tuple[Path, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    from soundspring.cli import main

    out = tmp_path / "codec.json"
    assert main(["eval", "codec", "--weights", str(models[0]), "--bitrates", "3",
                 "--max-clips", "2", "--no-opus", "--no-rtf", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["eval_set"]["name"] == "speaker-disjoint" and res["eval_set"]["clips"] == 2
    assert res["eval_set"]["manifest"] == str(cache / "tuxpaint" / "heldout.jsonl")
    assert res["clips"] == 2 and res["group_by"] == "language"  # one source: per language
    assert set(res["by_source"]) == {"be", "bg"}
    text = capsys.readouterr().out
    assert text.startswith("Evaluation set: **speaker-disjoint**")
    assert main(["eval", "codec", "--weights", str(models[0]), "--set", "same-speakers",
                 "--bitrates", "3", "--max-clips", "1", "--no-opus", "--no-rtf", "--json",
                 str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["eval_set"]["name"] == "same speakers" and res["clips"] == 1
    assert capsys.readouterr().out.startswith("Evaluation set: **same speakers**")


def test_eval_lm_names_its_set_and_its_token_windows(cache: Path, models: tuple[Path, Path],
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    from soundspring.cli import main
    from soundspring.data.tokens import load_tokens, precompute_tokens

    codec, lm = models
    out = tmp_path / "lm.json"
    base = ["eval", "lm", "--codec", str(codec), "--lm", str(lm), "--reach", "0",
            "--windows", "2", "--bitrates", "3", "--json", str(out)]
    # default: the speaker-disjoint clips, encoded on the fly until 2 x 60 frames
    assert main(base + ["--max-clips", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["eval_set"]["name"] == "speaker-disjoint" and res["eval_set"]["clips"] == 1
    ts = res["token_set"]
    assert ts["name"] == "speaker-disjoint" and ts["source"].startswith("encoded")
    assert ts["clips"] == 2 and ts["in_eval_set"] == 2 and ts["frames"] >= 120  # 1.5 s each
    assert res["windows"] == 2 and res["clips"] == 1
    text = capsys.readouterr().out
    assert text.startswith("Evaluation set: **speaker-disjoint**")
    assert "from 2 clips of the speaker-disjoint set" in text
    assert "Packets on 1 held-out clips of the speaker-disjoint set" in text
    # --tokens-dir: a token file of another set is named as such, and the overlap reported
    tok = tmp_path / "tok"
    precompute_tokens(codec, cache / "corpus" / "manifest.jsonl", tok, splits=("heldout",),
                      progress=False)
    assert main(base + ["--max-clips", "0", "--tokens-dir", str(tok)]) == 0
    res = json.loads(out.read_text())
    assert "packet_bits" not in res and res["eval_set"]["name"] == "speaker-disjoint"
    assert res["token_set"]["in_eval_set"] == 0 and res["token_set"]["name"] == "tok/heldout.npz"
    assert "only 0 of them are clips of the speaker-disjoint set" in capsys.readouterr().out
    # ... and one of the evaluated set under the set's name
    assert main(base + ["--max-clips", "0", "--tokens-dir", str(tok), "--set",
                        "same-speakers"]) == 0
    res = json.loads(out.read_text())
    held = load_tokens(tok / "heldout.npz")
    assert res["token_set"] | {"source": ""} == {"name": "same speakers", "source": "",
                                                  "clips": 3, "frames": held.frames,
                                                  "in_eval_set": 3}
    assert res["eval_set"]["name"] == "same speakers"
    assert "only" not in capsys.readouterr().out


def test_eval_rd_names_its_set_in_report_json_and_plot(cache: Path, models: tuple[Path, Path],
                                                       tmp_path: Path, titles: list[str],
                                                       capsys: pytest.CaptureFixture) -> None:
    from soundspring.cli import main

    out, png = tmp_path / "rd.json", tmp_path / "rd.png"
    assert main(["eval", "rd", "--codec", str(models[0]), "--lm", str(models[1]),
                 "--max-clips", "1", "--bitrates", "6", "--rd-lambdas", "0",
                 "--opus-bitrates", "--json", str(out), "--plot", str(png)]) == 0
    res = json.loads(out.read_text())
    assert res["eval_set"]["name"] == "speaker-disjoint" and res["clips"] == 1
    text = capsys.readouterr().out
    assert text.startswith("Evaluation set: **speaker-disjoint**")
    assert "held-out clips of the speaker-disjoint set" in text
    assert png.stat().st_size > 0 and any("speaker-disjoint set, 1 clip" in t for t in titles)


def test_eval_sweep_names_its_set_and_refuses_another_set_in_the_same_dir(
        cache: Path, models: tuple[Path, Path], tmp_path: Path, titles: list[str]) -> None:
    from soundspring.cli import main

    out = tmp_path / "sweep"
    argv = ["eval", "sweep", "--out", str(out), "--systems", "codec_nolm", "--codec",
            str(models[0]), "--conditions", "bern0", "bern20", "--bitrates", "6",
            "--max-clips", "1", "--no-mos"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["eval_set"]["name"] == "speaker-disjoint" and res["eval_set"]["clips"] == 1
    assert res["eval_set"]["clip_seconds"] == [1.0, 6.0]  # the sweep's 1-6 s clips
    assert res["settings"]["eval_set"] == "speaker-disjoint"
    report = (out / "report.md").read_text().splitlines()
    assert report[0] == "# SoundSpring loss sweep"
    assert report[2].startswith("Evaluation set: **speaker-disjoint**")
    assert res["plots"] and len([t for t in titles if "speaker-disjoint set, 1 clip" in t]) \
        == len(res["plots"])
    assert main(argv + ["--set", "same-speakers"]) == 1  # refused: would mix sets
    assert main(argv + ["--set-name", "renamed"]) == 0  # the same clips resume, renamed
    res = json.loads((out / "results.json").read_text())
    assert res["eval_set"]["name"] == "renamed" and len(res["items"]) == 2
    assert (out / "report.md").read_text().splitlines()[2].startswith(
        "Evaluation set: **renamed**")
