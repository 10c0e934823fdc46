"""Tux Paint's spoken stamp descriptions: a second human-speech source, many voices.

Debian's ``tuxpaint-stamps-default`` (GPL-2) holds, next to each stamp image, spoken
descriptions recorded by volunteers, one voice (or a few) per language::

    usr/share/tuxpaint/stamps/<category>/.../<stamp>_desc_<lang>.ogg   e.g. koala_desc_ro.ogg
    usr/share/tuxpaint/stamps/<category>/.../<stamp>_desc.ogg          untagged: English

The language tag follows ``_desc_`` (two or three letters, optionally ``_XX`` for a region;
one file ends in ``.ogg.ogg``); an untagged ``_desc.ogg`` is Tux Paint's default-locale
(English) description. Other ``.ogg`` files are sound effects, or spoken digits and letters
(``7_en_GB.ogg``) that are not descriptions: they are never used. Many stamps share one
recording (the same audio copied under several names), so clips are deduplicated by the
sha1 of their decoded samples; the first path in sorted order names the recording.

Preparation per recording: decode (libsndfile reads Ogg Vorbis), mix to mono (averaging
only the channels within 20 dB of the loudest, because some French files carry one silent
channel), resample to 16 kHz (44.1 kHz files, and a few at 8 kHz), trim leading and
trailing silence (``trim_silence``), scale down to a peak of 1.0 if Vorbis overshoot put it
above, and drop it if under ``MIN_DURATION_S`` remains.

Layout of the cache directory (``$SOUNDSPRING_CACHE`` or ``~/.cache/soundspring``)::

    debs/tuxpaint-stamps-default_*.deb          downloaded package
    extracted/tuxpaint/usr/share/...            dpkg-deb -x output (+ .done marker)
    tuxpaint/wav/<lang>/<path in stamps/>.wav   float32 WAV, 16 kHz mono, trimmed
    tuxpaint/manifest.jsonl                     every recording, split train/heldout
    tuxpaint/heldout.jsonl                      the held-out rows only (speaker-disjoint set)
    tuxpaint/content_hashes.json                file sha1 -> decoded-sample sha1 (resume)
    tuxpaint/prepare_info.json                  per-language counts before/after dedup, trim

Manifest rows have the corpus keys (``path`` relative to ``tuxpaint/``, ``language``,
``duration_s``, ``split``) plus ``source`` ``"tuxpaint"``, ``speaker`` ``"tuxpaint-<lang>"``
(the package credits voices per language in its changelog, not per file: see
``VOICE_CREDITS``), ``sha1`` (of the decoded samples), ``files`` (package files sharing the
recording) and ``orig_rate_hz``.

Split: whole languages. ``config.TUXPAINT_HELDOUT_LANGUAGES`` (fixed before training) are
``"heldout"``, the speaker-disjoint evaluation set (``heldout_manifest``); every other
language is ``"train"``. Both commands are idempotent and resumable.

Example::

    soundspring data fetch --source tuxpaint && soundspring data prepare --source tuxpaint
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ, TUXPAINT_HELDOUT_LANGUAGES
from ..errors import ConfigError
from .corpus import MIN_DURATION_S, default_cache_dir, fetch_package

PACKAGE = "tuxpaint-stamps-default"
SOURCE = "tuxpaint"
EVAL_SET = "speaker-disjoint"
"""What reports call the held-out split: speakers (and languages) no training split has."""
EXTRACT_NAME = "tuxpaint"
STAMPS_SUBDIR = Path("usr/share/tuxpaint/stamps")
DEFAULT_LANGUAGE = "en"
"""Language of an untagged ``<stamp>_desc.ogg`` (Tux Paint's default locale)."""

TRIM_THRESHOLD_DB = -35.0
"""Silence threshold of ``trim_silence``: a 10 ms frame is speech when its RMS is within
35 dB of the clip's loudest frame. The contributors cut most files tightly already and many
have a noise floor 20-35 dB under the peak: at -40 dB almost nothing is trimmed (0-3 % per
language), at -30 dB the decaying ends of words start to go; -35 dB trims 0-6 %."""

TRIM_FRAME_S = 0.010
TRIM_MARGIN_S = 0.050
"""Margin kept before the first and after the last frame above the threshold."""

CHANNEL_FLOOR_DB = -20.0
"""Channels more than 20 dB below the loudest are left out of the mono mix."""

VOICE_CREDITS: dict[str, str] = {
    "be": "Kseniya (Ksenya) Buraya (Google Code-In)",
    "bg": "Krasimir Petkov (Google Code-In)",
    "ca": "Pere Pujal i Carabantes",
    "da": "Joe Hansen (Joe Dalton)",
    "el": "Kiriaki Serafeim",
    "es": "Estefanía Ortiz",
    "fr": "Jacques Chion; PaulK (Google Code-In)",
    "ro": "Tabbytha (Google Code-In)",
    "ru": "Edwin Veber (Google Code-In)",
    "en": "not credited (animal stamps imported from Childsplay, Stas Zytkiewicz)",
    "nl": "not credited (animal stamps imported from Childsplay, Stas Zytkiewicz)",
    "lt": "not credited (alphabet sounds from Schoolsplay, prepared by Caroline Ford)",
    "ml": "not credited (Malayalam stamps; translators Haris Ibrahim K. V., Sharan Narayan)",
}
"""Who recorded the descriptions of each language, as the package's changelog
(``/usr/share/doc/tuxpaint-stamps-default/changelog.gz``) credits them. It names voices per
language, never per file, so ``speaker`` is ``"tuxpaint-<lang>"``: one voice per language
where one is credited (two in French)."""

PROCESSING = {"version": 1, "rate_hz": SAMPLE_RATE_HZ, "trim_threshold_db": TRIM_THRESHOLD_DB,
              "trim_frame_s": TRIM_FRAME_S, "trim_margin_s": TRIM_MARGIN_S,
              "channel_floor_db": CHANNEL_FLOOR_DB, "peak_max": 1.0}
"""What the WAVs were made with; ``prepare`` rebuilds ``wav/`` when it changes."""

_NAME_RE = re.compile(r"^(?P<stem>.+)_desc(?:_(?P<lang>[a-z]{2,3}(?:_[A-Z]{2})?))?(?:\.ogg)+$")


def extracted_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "extracted" / EXTRACT_NAME


def tuxpaint_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "tuxpaint"


def default_manifest(cache_dir: str | Path | None = None) -> Path:
    """Every prepared Tux Paint recording (splits ``train`` and ``heldout``)."""
    return tuxpaint_dir(cache_dir) / "manifest.jsonl"


def heldout_manifest(cache_dir: str | Path | None = None) -> Path:
    """The default evaluation set: the held-out languages' rows only, speakers that no
    training split contains (``config.TUXPAINT_HELDOUT_LANGUAGES``)."""
    return tuxpaint_dir(cache_dir) / "heldout.jsonl"


def language_of(name: str) -> str | None:
    """Language of a description file from its name; None if it is not a description.

    Example:
        >>> [language_of(n) for n in ("koala_desc_ro.ogg", "koala_desc.ogg", "koala.ogg")]
        ['ro', 'en', None]
    """
    m = _NAME_RE.match(name)
    if m is None:
        return None
    return m.group("lang") or DEFAULT_LANGUAGE


def split_for_language(language: str,
                       heldout: tuple[str, ...] = TUXPAINT_HELDOUT_LANGUAGES) -> str:
    """``"heldout"`` for the held-out languages (whole speakers), else ``"train"``."""
    return "heldout" if language in heldout else "train"


def description_files(root: str | Path) -> list[tuple[str, str, Path]]:
    """(language, path relative to the stamps folder, file) of every spoken description
    under an extraction root, sorted by relative path; sound effects are left out."""
    stamps = Path(root) / STAMPS_SUBDIR
    out = []
    for f in sorted(stamps.rglob("*_desc*.ogg")):
        lang = language_of(f.name)
        if lang is not None and f.is_file():
            out.append((lang, f.relative_to(stamps).as_posix(), f))
    return out


def fetch(cache_dir: str | Path | None = None, update: bool | None = None) -> Path:
    """Downloads and extracts ``tuxpaint-stamps-default``; returns the extraction root.

    Raises:
        ConfigError: apt or dpkg failing.
    """
    root = Path(cache_dir or default_cache_dir())
    return fetch_package(PACKAGE, root / "debs", extracted_dir(root), update=update)


def to_mono(x: np.ndarray, floor_db: float = CHANNEL_FLOOR_DB) -> np.ndarray:
    """Mono float32 [T] from [T, C]: the mean of the channels within ``floor_db`` of the
    loudest (a silent channel would otherwise halve the level)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    energy = (x.astype(np.float64) ** 2).mean(axis=0)
    keep = energy >= energy.max() * 10.0 ** (floor_db / 10.0)
    return x[:, keep].mean(axis=1).astype(np.float32)


def trim_silence(wav: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ,
                 threshold_db: float = TRIM_THRESHOLD_DB, frame_s: float = TRIM_FRAME_S,
                 margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """Cuts leading and trailing silence: keeps from ``margin_s`` before the first to
    ``margin_s`` after the last ``frame_s`` frame whose RMS is within ``threshold_db`` of
    the loudest frame's. An all-zero clip comes back empty.

    Example:
        >>> x = np.zeros(16000, np.float32); x[8000:8800] = 0.5
        >>> trim_silence(x).shape   # 800 samples + 50 ms (800 samples) each side
        (2400,)
    """
    x = np.asarray(wav, dtype=np.float32)
    n = max(1, round(frame_s * sample_rate_hz))
    n_frames = -(-x.size // n)
    if n_frames == 0:
        return x[:0]
    padded = np.zeros(n_frames * n, np.float64)
    padded[:x.size] = x
    rms = np.sqrt((padded.reshape(n_frames, n) ** 2).mean(axis=1))
    peak = rms.max()
    if peak <= 0.0:
        return x[:0]
    loud = np.flatnonzero(rms >= peak * 10.0 ** (threshold_db / 20.0))
    margin = round(margin_s * sample_rate_hz)
    start = max(0, loud[0] * n - margin)
    stop = min(x.size, (loud[-1] + 1) * n + margin)
    return x[start:stop]


def decode(data: bytes | Path | str) -> tuple[np.ndarray, int]:
    """Decodes an audio file (Ogg Vorbis) to float32 [T, C] and its sample rate."""
    import io

    import soundfile as sf

    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
    x, sr = sf.read(src, dtype="float32", always_2d=True)
    return x, int(sr)


def process(x: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Decoded [T, C] at any rate -> trimmed mono float32 [T'] at 16 kHz, peak <= 1."""
    from ..audio import resample

    y = trim_silence(resample(to_mono(x), sample_rate_hz, SAMPLE_RATE_HZ))
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 1.0:
        y = y / peak
    return np.ascontiguousarray(y, dtype=np.float32)


@dataclass
class _Recording:
    language: str
    rel: str
    src: Path
    sha1: str
    files: int = 1


def _content_hashes(files: list[tuple[str, str, Path]], cache_path: Path,
                    progress: bool) -> dict[str, str]:
    """Maps each file's byte sha1 to the sha1 of its decoded samples (cached on disk)."""
    from tqdm import tqdm

    known: dict[str, str] = {}
    if cache_path.exists():
        try:
            known = dict(json.loads(cache_path.read_text()))
        except ValueError:
            known = {}
    out: dict[str, str] = {}
    for _lang, _rel, f in tqdm(files, desc="hash", unit="file", disable=not progress):
        data = f.read_bytes()
        b = hashlib.sha1(data).hexdigest()
        if b not in known:
            x, _sr = decode(data)
            known[b] = hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()
        out[str(f)] = known[b]
    tmp = cache_path.with_name(cache_path.name + ".part")
    tmp.write_text(json.dumps(known, sort_keys=True))
    tmp.replace(cache_path)
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)


def prepare(cache_dir: str | Path | None = None,
            heldout_languages: tuple[str, ...] = TUXPAINT_HELDOUT_LANGUAGES,
            progress: bool = True) -> Path:
    """Deduplicates, decodes, trims and splits every description; writes the manifests.

    Existing WAVs are reused (resumable). Returns the path of ``manifest.jsonl``; the
    held-out rows are also written to ``heldout.jsonl`` and per-language counts to
    ``prepare_info.json``.

    Raises:
        ConfigError: the package has not been fetched, or holds no description.
    """
    import soundfile as sf
    from tqdm import tqdm

    root = Path(cache_dir or default_cache_dir())
    ext = extracted_dir(root)
    if not (ext / ".done").exists():
        raise ConfigError(f"{PACKAGE} not fetched: run `soundspring data fetch --source tuxpaint`")
    files = description_files(ext)
    if not files:
        raise ConfigError(f"no *_desc*.ogg under {ext / STAMPS_SUBDIR}")
    out_root = tuxpaint_dir(root)
    out_root.mkdir(parents=True, exist_ok=True)
    hashes = _content_hashes(files, out_root / "content_hashes.json", progress)

    info: dict[str, dict] = {}
    recordings: dict[str, _Recording] = {}
    for lang, rel, f in files:
        d = info.setdefault(lang, {"files": 0, "minutes_files": 0.0, "recordings": 0,
                                   "minutes_before_trim": 0.0, "kept": 0, "dropped_short": 0,
                                   "minutes": 0.0})
        d["files"] += 1
        d["minutes_files"] += sf.info(str(f)).duration / 60
        h = hashes[str(f)]
        rec = recordings.get(h)
        if rec is None:
            recordings[h] = _Recording(lang, rel, f, h)
            d["recordings"] += 1
        else:
            rec.files += 1
            if rec.language != lang:  # never seen in the package; keep the first name
                d.setdefault("cross_language_duplicates", 0)
                d["cross_language_duplicates"] += 1

    wav_root = out_root / "wav"
    stamp = wav_root / ".processing.json"
    if wav_root.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != PROCESSING):
        shutil.rmtree(wav_root)  # made with other settings: rebuild rather than mix
    wav_root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(PROCESSING, sort_keys=True) + "\n")

    rows = []
    min_samples = MIN_DURATION_S * SAMPLE_RATE_HZ
    for rec in tqdm(list(recordings.values()), desc="prepare tuxpaint", unit="clip",
                    disable=not progress):
        d = info[rec.language]
        rel = Path("wav") / rec.language / Path(rec.rel).with_suffix(".wav")
        if rel.name.endswith(".ogg.wav"):
            rel = rel.with_name(rel.name[: -len(".ogg.wav")] + ".wav")
        dst = out_root / rel
        src_info = sf.info(str(rec.src))
        orig_s = src_info.frames / src_info.samplerate
        d["minutes_before_trim"] += orig_s / 60
        if dst.exists():
            n = sf.info(str(dst)).frames
        else:
            x, sr = decode(rec.src)
            y = process(x, sr)
            n = y.shape[0]
            if n >= min_samples:
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".part")
                sf.write(str(tmp), y, SAMPLE_RATE_HZ, subtype="FLOAT", format="WAV")
                tmp.replace(dst)
        if n < min_samples:
            d["dropped_short"] += 1
            continue
        d["kept"] += 1
        d["minutes"] += n / SAMPLE_RATE_HZ / 60
        rows.append({"path": rel.as_posix(), "language": rec.language,
                     "duration_s": round(n / SAMPLE_RATE_HZ, 4),
                     "split": split_for_language(rec.language, heldout_languages),
                     "source": SOURCE, "speaker": f"{SOURCE}-{rec.language}",
                     "sha1": rec.sha1, "files": rec.files,
                     "orig_rate_hz": int(src_info.samplerate)})
    rows.sort(key=lambda r: r["path"])
    manifest = default_manifest(root)
    _write_jsonl(manifest, rows)
    _write_jsonl(heldout_manifest(root), [r for r in rows if r["split"] == "heldout"])
    for lang, d in info.items():
        for key in ("minutes_files", "minutes_before_trim"):
            d[key] = round(d[key], 2)
        d["minutes"] = round(d["minutes"], 2)
        d["split"] = split_for_language(lang, heldout_languages)
    summary = {"package": PACKAGE, "heldout_languages": list(heldout_languages),
               "processing": PROCESSING, "min_duration_s": MIN_DURATION_S,
               "languages": dict(sorted(info.items()))}
    (out_root / "prepare_info.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False)
                                                + "\n")
    return manifest
