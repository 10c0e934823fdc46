"""The Asterisk prompt corpus: fetch (apt-get download + dpkg-deb -x), prepare (G.722 ->
16 kHz float WAV, held-out split, manifest) and read back.

Layout of the cache directory (``$SOUNDSPRING_CACHE`` or ``~/.cache/soundspring``)::

    debs/asterisk-core-sounds-<lang>-g722_*.deb     downloaded packages
    extracted/<lang>/usr/share/...                   dpkg-deb -x output (+ .done marker)
    corpus/wav/<lang>/<relative path>.wav            decoded float32 WAV, 16 kHz mono
    corpus/manifest.jsonl                            one JSON object per clip

Each manifest line is ``{"path", "language", "duration_s", "split", "source"}`` with ``path``
relative to ``corpus/`` and ``source`` ``"asterisk"`` (manifests written before it existed
have no ``source``; ``read_manifest`` still reads them). Every step skips work already done,
so both commands are idempotent and resumable.

The held-out split holds other prompts of the *same* five speakers as the train split:
reports name it "same speakers" (``EVAL_SET``). The speaker-disjoint set is Tux Paint's
held-out languages (``tuxpaint.heldout_manifest``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError

LANGUAGES = ("en", "es", "fr", "it", "ru")
PACKAGE_TEMPLATE = "asterisk-core-sounds-{lang}-g722"
HELDOUT_FRACTION = 0.10
MIN_DURATION_S = 0.5
G722_BITRATE_BPS = 64_000
SOURCE = "asterisk"
EVAL_SET = "same speakers"
"""What reports call the Asterisk held-out split: other prompts of the training speakers."""


def default_cache_dir() -> Path:
    """``$SOUNDSPRING_CACHE`` if set, else ``~/.cache/soundspring``."""
    env = os.environ.get("SOUNDSPRING_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "soundspring"


def corpus_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "corpus"


def default_manifest(cache_dir: str | Path | None = None) -> Path:
    return corpus_dir(cache_dir) / "manifest.jsonl"


def split_for(name: str, heldout_fraction: float = HELDOUT_FRACTION) -> str:
    """Split (``"train"`` or ``"heldout"``) of a clip, fixed by the sha1 of its name.

    The name is the language plus the path inside the package (``"en/digits/1"``), so the
    split of a file never depends on which other files exist.

    Example:
        >>> split_for("en/digits/1") in ("train", "heldout")
        True
    """
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "heldout" if u < heldout_fraction else "train"


@dataclass(frozen=True)
class Clip:
    """One manifest entry; ``path`` is absolute once read through ``read_manifest``."""

    path: Path
    language: str
    duration_s: float
    split: str
    source: str = ""
    """``"asterisk"``, ``"tuxpaint"``, ``"<engine>:<voice>"`` for synthetic speech; empty
    when the manifest row has none (Asterisk manifests written before the field)."""
    speaker: str = ""
    """Speaker id where the manifest names one (``"tuxpaint-<lang>"``), else empty."""


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ConfigError(f"{cmd[0]} not found: fetching needs a Debian system with apt") from exc
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"{' '.join(cmd)} failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def fetch_package(pkg: str, debs: Path, dest: Path, update: bool | None = None) -> Path:
    """``apt-get download pkg`` into ``debs`` (unless a ``pkg_*.deb`` is there) and
    ``dpkg-deb -x`` it into ``dest``; skipped when ``dest/.done`` exists. Returns ``dest``.

    Args:
        update: run ``apt-get update`` first; None = only when a download fails.

    Raises:
        ConfigError: apt or dpkg failing.
    """
    debs, dest = Path(debs), Path(dest)
    done = dest / ".done"
    if done.exists():
        return dest
    debs.mkdir(parents=True, exist_ok=True)
    if update:
        _run(["apt-get", "update"])
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        try:
            _run(["apt-get", "download", pkg], cwd=debs)
        except ConfigError:
            if update is not None:
                raise
            _run(["apt-get", "update"])
            _run(["apt-get", "download", pkg], cwd=debs)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            raise ConfigError(f"apt-get download {pkg} produced no .deb in {debs}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(found[-1]), str(dest)])
    done.write_text(found[-1].name + "\n")
    return dest


def fetch(
    cache_dir: str | Path | None = None,
    languages: Iterable[str] = LANGUAGES,
    update: bool | None = None,
) -> Path:
    """Downloads and extracts the G.722 prompt packages; returns the extraction root.

    Args:
        cache_dir: cache root (default ``default_cache_dir()``).
        languages: subset of ``LANGUAGES``.
        update: run ``apt-get update`` first; None = only when a download fails.

    Raises:
        ConfigError: unknown language, or apt/dpkg failing.
    """
    from tqdm import tqdm

    root = Path(cache_dir or default_cache_dir())
    debs, extracted = root / "debs", root / "extracted"
    langs = list(languages)
    for lang in langs:
        if lang not in LANGUAGES:
            raise ConfigError(f"language must be one of {LANGUAGES}, got {lang!r}")
    if update:
        _run(["apt-get", "update"])
    for lang in tqdm(langs, desc="fetch", unit="pkg"):
        fetch_package(PACKAGE_TEMPLATE.format(lang=lang), debs, extracted / lang,
                      update=None if update is None else False)
    return extracted


def _g722_files(lang_root: Path) -> list[tuple[str, Path]]:
    """(name, file) pairs, name = '<lang>/<path inside the voice directory, no suffix>'."""
    sounds = lang_root / "usr" / "share" / "asterisk" / "sounds"
    out = []
    for f in sorted(sounds.rglob("*.g722")):
        rel = f.relative_to(sounds).with_suffix("")
        parts = rel.parts[1:] if len(rel.parts) > 1 else rel.parts  # drop voice directory
        out.append(("/".join((lang_root.name, *parts)), f))
    return out


def decode_g722(data: bytes) -> np.ndarray:
    """Decodes G.722 (64 kbit/s) bytes to float32 [T] at 16 kHz with a fresh codec object."""
    import G722

    codec = G722.G722(SAMPLE_RATE_HZ, G722_BITRATE_BPS)
    pcm = np.frombuffer(codec.decode(data), dtype=np.int16) if data else np.zeros(0, np.int16)
    return pcm.astype(np.float32) / 32768.0


def prepare(cache_dir: str | Path | None = None, languages: Iterable[str] = LANGUAGES) -> Path:
    """Decodes every fetched clip to WAV, splits it, and writes the manifest; returns its path.

    Clips shorter than ``MIN_DURATION_S`` are dropped. Existing WAVs are reused.

    Raises:
        ConfigError: a language has not been fetched.
    """
    import soundfile as sf
    from tqdm import tqdm

    root = Path(cache_dir or default_cache_dir())
    out_root = corpus_dir(root)
    files: list[tuple[str, str, Path]] = []
    for lang in languages:
        lang_root = root / "extracted" / lang
        if not (lang_root / ".done").exists():
            raise ConfigError(f"language {lang!r} not fetched: run `soundspring data fetch` first")
        files += [(lang, name, f) for name, f in _g722_files(lang_root)]
    rows = []
    for lang, name, src in tqdm(files, desc="prepare", unit="clip"):
        rel = Path("wav") / f"{name}.wav"
        dst = out_root / rel
        if dst.exists():
            n = sf.info(str(dst)).frames
        else:
            wav = decode_g722(src.read_bytes())
            n = wav.shape[0]
            if n >= MIN_DURATION_S * SAMPLE_RATE_HZ:
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".part")
                sf.write(str(tmp), wav, SAMPLE_RATE_HZ, subtype="FLOAT", format="WAV")
                tmp.replace(dst)
        if n < MIN_DURATION_S * SAMPLE_RATE_HZ:
            continue
        rows.append(
            {"path": rel.as_posix(), "language": lang, "duration_s": round(n / SAMPLE_RATE_HZ, 4),
             "split": split_for(name), "source": SOURCE}
        )
    manifest = out_root / "manifest.jsonl"
    tmp = manifest.with_name(manifest.name + ".part")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    tmp.replace(manifest)
    return manifest


def read_manifest(path: str | Path | None = None, split: str | None = None) -> list[Clip]:
    """Reads a manifest; relative paths resolve against its directory.

    Raises:
        ConfigError: missing file or malformed line.
    """
    path = Path(path) if path else default_manifest()
    if not path.exists():
        raise ConfigError(f"manifest {str(path)!r} not found: run `soundspring data prepare`")
    clips = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            clip = Clip(path.parent / r["path"], r["language"], float(r["duration_s"]), r["split"],
                        str(r.get("source", "")), str(r.get("speaker", "")))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{path}:{i}: malformed manifest line: {exc}") from exc
        if split is None or clip.split == split:
            clips.append(clip)
    return clips


# ---- clip selection and loading: the one fixed held-out order, shared by training and evaluation


def interleave_languages(clips: Iterable[Clip]) -> list[Clip]:
    """``clips`` taken one per language in turn (languages in sorted order, each language's
    clips in the given order) until every language runs out: any prefix is as
    language-balanced as it can be."""
    by_lang: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        by_lang[c.language].append(c)
    out: list[Clip] = []
    for i in range(max((len(v) for v in by_lang.values()), default=0)):
        out += [by_lang[lang][i] for lang in sorted(by_lang) if i < len(by_lang[lang])]
    return out


def fixed_heldout_subset(clips: list[Clip], n: int, min_s: float = 1.0,
                         max_s: float = 6.0) -> list[Clip]:
    """A fixed, language-balanced subset of held-out clips (order by sha1 of the path).

    The first ``n`` held-out clips of ``min_s``..``max_s`` seconds in the order of
    :func:`interleave_languages` over the sha1 order, so N clips are always the same N and
    a smaller N is a prefix of a larger one. Training evaluates its checkpoints on it and
    every evaluation set is ordered by it.
    """
    key = lambda c: hashlib.sha1(c.path.as_posix().split("/wav/")[-1].encode()).hexdigest()
    held = [c for c in sorted(clips, key=key)
            if c.split == "heldout" and min_s <= c.duration_s <= max_s]
    return interleave_languages(held)[:n]


def load_clips(clips: list[Clip], progress: bool = True) -> list[np.ndarray]:
    """Reads every clip as float32 [T] at 16 kHz, in order."""
    from tqdm import tqdm

    from ..audio import read_wav

    return [read_wav(c.path) for c in tqdm(clips, desc="load audio", unit="clip",
                                           disable=not progress)]


def summary(clips: list[Clip]) -> dict:
    """Counts and minutes per language and split."""
    out: dict = {}
    for c in clips:
        d = out.setdefault(c.language, {}).setdefault(c.split, {"clips": 0, "minutes": 0.0})
        d["clips"] += 1
        d["minutes"] = round(d["minutes"] + c.duration_s / 60, 2)
    return out


def summary_rows(clips: list[Clip], default_source: str = "") -> list[dict]:
    """One row per (source, language, split), sorted, with ``clips`` and ``minutes``;
    clips without a ``source`` count under ``default_source``."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    for c in clips:
        d = acc.setdefault((c.source or default_source, c.language, c.split), [0, 0.0])
        d[0] += 1
        d[1] += c.duration_s / 60
    return [{"source": k[0], "language": k[1], "split": k[2], "clips": int(v[0]),
             "minutes": round(v[1], 2)} for k, v in sorted(acc.items())]
