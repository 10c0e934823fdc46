"""Which clips an evaluation runs on, and what its reports call them (DESIGN.md section 9).

Every ``soundspring eval`` command (``codec``, ``lm``, ``rd``, ``sweep``) resolves its
clips here and writes the set's name, manifest and clip count into every report:

``--set speaker-disjoint`` (the default)
    Tux Paint's held-out languages (``config.TUXPAINT_HELDOUT_LANGUAGES``: be, bg, el),
    voices no model ever trained on: ``<cache>/tuxpaint/heldout.jsonl``
    (``soundspring.data.speaker_disjoint_manifest``). Reports call it ``speaker-disjoint``
    (``data.tuxpaint.EVAL_SET``).
``--set same-speakers``
    The Asterisk held-out split, other prompts of the *same* five speakers the models
    trained on: ``<cache>/corpus/manifest.jsonl``. Reports call it ``same speakers``
    (``data.corpus.EVAL_SET``).
``--manifest FILE``
    Any manifest (e.g. ``soundspring data synth`` output). The set is named after the file
    (``<folder>/<file>``), unless the file is one of the two above, or ``--set-name NAME``
    names it.

``--max-clips N`` keeps the first N of the fixed, language-balanced order of
``data.corpus.fixed_heldout_subset`` (so N clips are always the same N, and a smaller N is
a prefix of a larger one); 0 keeps all.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = Path(d) / "ood" / "manifest.jsonl"
    ...     m.parent.mkdir()
    ...     _ = m.write_text("".join(json.dumps({"path": f"{i}.wav", "language": lang,
    ...         "duration_s": 2.0, "split": "heldout"}) + "\\n"
    ...         for i, lang in enumerate(["de", "de", "fr"])))
    ...     s = resolve_eval_set(manifest=m, max_clips=2)
    ...     print(s.name, len(s.clips), s.total_clips, sorted({c.language for c in s.clips}))
    ood/manifest.jsonl 2 3 ['de', 'fr']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TUXPAINT_HELDOUT_LANGUAGES
from ..data import corpus, tuxpaint
from ..data.corpus import Clip, fixed_heldout_subset
from ..errors import ConfigError

SPEAKER_DISJOINT = "speaker-disjoint"
SAME_SPEAKERS = "same-speakers"
SET_CHOICES = (SPEAKER_DISJOINT, SAME_SPEAKERS)
DEFAULT_SET = SPEAKER_DISJOINT

SET_NAMES = {SPEAKER_DISJOINT: tuxpaint.EVAL_SET, SAME_SPEAKERS: corpus.EVAL_SET}
"""``--set`` value -> what reports call the set."""

SET_DESCRIPTIONS = {
    SPEAKER_DISJOINT: ("Tux Paint held-out languages " + ", ".join(TUXPAINT_HELDOUT_LANGUAGES)
                       + ": speakers no model trained on"),
    SAME_SPEAKERS: "Asterisk held-out prompts of the five speakers the models trained on",
}

FETCH_HINT = {
    SPEAKER_DISJOINT: ("soundspring data fetch --source tuxpaint && "
                       "soundspring data prepare --source tuxpaint"),
    SAME_SPEAKERS: ("soundspring data fetch --source asterisk && "
                    "soundspring data prepare --source asterisk"),
}


@dataclass(frozen=True)
class EvalSet:
    """The clips of an evaluation and what reports call them.

    Attributes:
        name: the set's name in reports (``"speaker-disjoint"``, ``"same speakers"``, a
            manifest's ``<folder>/<file>``, or ``--set-name``).
        key: ``"speaker-disjoint"``, ``"same-speakers"``, ``"manifest"`` or ``"directory"``.
        source: the manifest (or WAV directory) the clips come from, absolute.
        split: the manifest split the clips come from.
        clips: the chosen clips, in the fixed order, after ``max_clips``.
        total_clips: clips the set holds before ``max_clips`` (after the duration filter).
        description: one phrase on who speaks in it.
        clip_seconds: the (min, max) duration filter applied, or None.
    """

    name: str
    key: str
    source: Path
    split: str
    clips: tuple[Clip, ...]
    total_clips: int
    description: str = ""
    clip_seconds: tuple[float, float] | None = None

    @property
    def minutes(self) -> float:
        return round(sum(c.duration_s for c in self.clips) / 60, 2)

    @property
    def languages(self) -> list[str]:
        return sorted({c.language for c in self.clips})

    def head(self, n: int | None) -> EvalSet:
        """The same set restricted to its first ``n`` clips (None/0: all)."""
        if not n:
            return self
        return EvalSet(self.name, self.key, self.source, self.split, self.clips[:n],
                       self.total_clips, self.description, self.clip_seconds)

    def info(self) -> dict[str, Any]:
        """The JSON field ``eval_set`` of every report."""
        return {"name": self.name, "set": self.key, "manifest": str(self.source),
                "split": self.split, "clips": len(self.clips),
                "total_clips": self.total_clips, "minutes": self.minutes,
                "languages": self.languages, "description": self.description,
                "clip_seconds": list(self.clip_seconds) if self.clip_seconds else None}

    def heading(self) -> str:
        """The markdown line every report starts with."""
        return heading_line(self.info())


def heading_line(info: dict[str, Any]) -> str:
    """``Evaluation set: **name** (description; N of M clips, X min, languages ...;
    manifest PATH)`` from an ``EvalSet.info()`` dict."""
    parts = [info["description"]] if info.get("description") else []
    n, total = info.get("clips"), info.get("total_clips")
    count = (f"{n} clip{'' if n == 1 else 's'}" if total in (None, n)
             else f"{n} of {total} clips")
    if info.get("clip_seconds"):
        lo, hi = info["clip_seconds"]
        count += f" of {lo:g}-{hi:g} s"
    if info.get("minutes") is not None:
        count += f", {info['minutes']:g} min"
    if info.get("languages"):
        count += f", languages {' '.join(info['languages'])}"
    parts.append(count)
    if info.get("manifest"):
        parts.append(f"{'folder' if info.get('set') == 'directory' else 'manifest'} "
                     f"{info['manifest']}")
    return f"Evaluation set: **{info.get('name', 'unnamed')}** ({'; '.join(parts)})"


def title_line(info: dict[str, Any]) -> str:
    """Short form for plot titles: ``speaker-disjoint set, 40 clips``."""
    n = info.get("clips", "?")
    return f"{info.get('name', 'unnamed')} set, {n} clip{'' if n == 1 else 's'}"


def set_manifest(key: str, cache_dir: str | Path | None = None) -> Path:
    """The manifest of a named set (it may not exist yet)."""
    if key == SPEAKER_DISJOINT:
        return tuxpaint.heldout_manifest(cache_dir)
    if key == SAME_SPEAKERS:
        return corpus.default_manifest(cache_dir)
    raise ConfigError(f"--set must be one of {', '.join(SET_CHOICES)}, got {key!r}")


def _known_set(path: Path, split: str, cache_dir: str | Path | None) -> str | None:
    """The named set a manifest path is (same file, heldout split), else None."""
    if split != "heldout":
        return None
    try:
        p = path.resolve()
        if p in (tuxpaint.heldout_manifest(cache_dir).resolve(),
                 tuxpaint.default_manifest(cache_dir).resolve()):
            return SPEAKER_DISJOINT
        if p == corpus.default_manifest(cache_dir).resolve():
            return SAME_SPEAKERS
    except OSError:
        return None
    return None


def file_set_name(path: str | Path) -> str:
    """``<folder>/<file>`` of a manifest or a directory's own name."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def resolve_eval_set(eval_set: str | None = None, manifest: str | Path | None = None,
                     set_name: str | None = None, max_clips: int | None = 0,
                     split: str = "heldout", min_s: float = 0.0, max_s: float = 1e9,
                     cache_dir: str | Path | None = None) -> EvalSet:
    """Resolves the evaluation clips.

    Args:
        eval_set: ``"speaker-disjoint"`` or ``"same-speakers"``; None = ``DEFAULT_SET``
            unless ``manifest`` is given.
        manifest: a manifest file instead of a named set (not both).
        set_name: overrides the name reports give the set.
        max_clips: keep the first N of the fixed order (None/0: all).
        split: the manifest split (``"heldout"``; ``"train"`` takes manifest order).
        min_s, max_s: keep held-out clips of this duration (``fixed_heldout_subset``).
        cache_dir: the cache holding the named sets (default ``$SOUNDSPRING_CACHE`` or
            ``~/.cache/soundspring``).

    Raises:
        ConfigError: both a set and a manifest; the set's manifest missing (one line naming
            the command that makes it); no clip left.
    """
    if max_clips is not None and max_clips < 0:
        raise ConfigError(f"max_clips must be >= 0, got {max_clips!r}")
    if split not in ("heldout", "train"):
        raise ConfigError(f"split must be 'heldout' or 'train', got {split!r}")
    if eval_set is not None and manifest is not None:
        raise ConfigError("give --set or --manifest, not both (--set-name names a manifest's "
                          "set)")
    if manifest is None:
        key = eval_set or DEFAULT_SET
        path = set_manifest(key, cache_dir)
        if not path.is_file():
            raise ConfigError(f"the {SET_NAMES[key]} evaluation set is not prepared ({path} "
                              f"missing): run `{FETCH_HINT[key]}`")
    else:
        path = Path(manifest)
        if not path.is_file():
            raise ConfigError(f"manifest {str(path)!r} not found")
        key = _known_set(path, split, cache_dir) or "manifest"
    if key in SET_NAMES:
        name, description = SET_NAMES[key], SET_DESCRIPTIONS[key]
    else:
        name, description = file_set_name(path), ""
    if split != "heldout":
        name = f"{name}, {split} split"
    clips = corpus.read_manifest(path, split=split)
    if split == "heldout":
        clips = fixed_heldout_subset(clips, len(clips), min_s=min_s, max_s=max_s)
    total = len(clips)
    if max_clips:
        clips = clips[:max_clips]
    if not clips:
        raise ConfigError(f"{path} has no {split!r} clips" + (
            f" of {min_s:g}-{max_s:g} s" if max_s < 1e9 or min_s > 0 else "")
            + "; expected at least one")
    filtered = split == "heldout" and (min_s > 0 or max_s < 1e9)
    return EvalSet(set_name or name, key, path.absolute(), split, tuple(clips), total,
                   description, (min_s, max_s) if filtered else None)


__all__ = [
    "DEFAULT_SET",
    "SET_CHOICES",
    "SET_NAMES",
    "EvalSet",
    "file_set_name",
    "heading_line",
    "resolve_eval_set",
    "set_manifest",
    "title_line",
]
