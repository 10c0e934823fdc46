"""The loss sweep of DESIGN.md section 9: every system x condition x bitrate x clip.

The clips are the speaker-disjoint set by default (``--set``, ``--manifest``, ``--clips``
and ``--set-name``: :mod:`.clips` and :func:`load_sweep_set`); ``results.json`` holds it as
``eval_set``, and ``report.md`` and every plot title name it.

For each item the system encodes the clip, loses the transmission slots the condition's
pattern says (:mod:`.conditions`: one seeded pattern per condition and clip on the 20 ms
grid, mapped to each system's slots by the ``"packet"`` rule by default), decodes, and the
decoded audio is scored against the clean clip: PESQ-WB, STOI, SI-SDR, log-mel distance
(:mod:`.metrics`) and, when ``speechmos`` is usable, PLCMOS v2 and DNSMOS (:mod:`.mos`).
The measured total bitrate (every packet byte, redundancy included) and the realised slot
loss rate are recorded next to the nominal values.

Files in ``out_dir``:

``items.jsonl``
    one JSON object per finished item, appended as it finishes; a rerun reads it and skips
    those items (resume), so an interrupted sweep loses at most the item in flight.
``sweep.json``
    the settings the items were computed with; a rerun with different settings (codec,
    loss mapping, metrics, evaluation set, a clip whose audio changed) is refused instead
    of mixing results.
``results.json``
    settings, systems (with the reason for any skipped one), every item, the summary per
    (system, condition, bitrate), notes and timings.
``report.md``, ``quality_vs_loss_<metric>.png``, ``quality_vs_bitrate_<metric>.png``.

Example:
    >>> import numpy as np, tempfile
    >>> wav = (0.2 * np.sin(np.arange(16000) * 0.07)).astype(np.float32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     r = run_sweep([SweepClip("tone", wav)], d, systems=["opus13_plc"],
    ...                   conditions=["bern0", "bern20"], bitrates=[12.0], mos=False,
    ...                   plots=False, progress=False)
    >>> len(r["items"]) in (0, 2)   # 0 when libopus 1.3 is not installed
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    BITRATES_KBPS,
    DEFAULT_CHUNK_FRAMES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE_HZ,
)
from ..errors import ConfigError
from . import metrics as _metrics
from .conditions import DEFAULT_CONDITIONS, LOSS_MAPPINGS, parse_condition, slot_losses
from .systems import (
    System,
    build_systems,
)

SETTINGS_VERSION = 1
_REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class SweepClip:
    """One evaluation clip: a stable id (seeds the loss patterns) and float32 [T] 16 kHz audio."""

    id: str
    wav: np.ndarray

    @property
    def seconds(self) -> float:
        return self.wav.size / SAMPLE_RATE_HZ

    @property
    def sha1(self) -> str:
        return hashlib.sha1(np.ascontiguousarray(self.wav, np.float32).tobytes()).hexdigest()


# ---- inputs ---------------------------------------------------------------------------------


def load_sweep_set(source: str | Path | None = None, max_clips: int | None = None,
                   seconds_per_clip: float | None = None, *, eval_set: str | None = None,
                   set_name: str | None = None) -> tuple[list[SweepClip], dict[str, Any]]:
    """Clips for a sweep, and the ``eval_set`` record the reports name them by.

    Args:
        source: a directory (every ``*.wav`` below it, sorted; id = relative path without
            suffix; the set is named after the directory), a manifest (``.jsonl``; its
            held-out split, in the fixed language-balanced order of ``fixed_heldout_subset``,
            1-6 s clips; id = path under ``wav/``), or None for the named ``eval_set``.
        max_clips: keep the first N (None/0 = all).
        seconds_per_clip: keep the first S seconds of each clip (None = whole clips).
        eval_set: ``"speaker-disjoint"`` (the default when ``source`` is None) or
            ``"same-speakers"`` (see :mod:`.clips`); not with ``source``.
        set_name: what reports call the set (default: from the set, manifest or folder).

    Returns:
        (clips, ``EvalSet.info()``-style dict: name, set, manifest, split, clips,
        total_clips, minutes of the audio kept, languages, description).

    Raises:
        ConfigError: nothing found, a missing set (naming the command that prepares it), or
            a bad argument.
    """
    from ..audio import read_wav
    from .clips import file_set_name, resolve_eval_set

    if seconds_per_clip is not None and not seconds_per_clip > 0.25:
        raise ConfigError(f"seconds_per_clip must be > 0.25 s, got {seconds_per_clip!r}")
    if max_clips is not None and max_clips < 0:
        raise ConfigError(f"max_clips must be >= 0, got {max_clips!r}")
    src = Path(source) if source is not None else None
    pairs: list[tuple[str, Path]]
    if src is not None and src.is_dir():
        if eval_set is not None:
            raise ConfigError("give --set or a folder of clips, not both")
        files = sorted(src.rglob("*.wav"))
        pairs = [(f.relative_to(src).with_suffix("").as_posix(), f) for f in files]
        info: dict[str, Any] = {"name": set_name or file_set_name(src.absolute()),
                                "set": "directory", "manifest": str(src.absolute()),
                                "split": None, "total_clips": len(pairs), "languages": [],
                                "description": "every .wav under a folder"}
        if max_clips:
            pairs = pairs[:max_clips]
        if not pairs:
            raise ConfigError(f"no clips found in {str(source)!r}")
    else:
        es = resolve_eval_set(eval_set, src, set_name, max_clips or 0, min_s=1.0, max_s=6.0)
        pairs = [(c.path.as_posix().split("/wav/")[-1].rsplit(".", 1)[0], c.path)
                 for c in es.clips]
        info = es.info()
    out = []
    for cid, path in pairs:
        wav = read_wav(path)
        if seconds_per_clip is not None:
            wav = wav[: round(seconds_per_clip * SAMPLE_RATE_HZ)]
        out.append(SweepClip(cid, np.ascontiguousarray(wav, dtype=np.float32)))
    info |= {"clips": len(out), "minutes": round(sum(c.seconds for c in out) / 60, 2)}
    return out, info


def load_sweep_clips(source: str | Path | None = None, max_clips: int | None = None,
                     seconds_per_clip: float | None = None, *, eval_set: str | None = None,
                     ) -> list[SweepClip]:
    """The clips of :func:`load_sweep_set` (default: the speaker-disjoint set)."""
    return load_sweep_set(source, max_clips, seconds_per_clip, eval_set=eval_set)[0]


def resolve_codec(path: str | Path | None = None) -> tuple[Any, str, str | None]:
    """The codec for ``codec_nolm`` and SoundSpring: (codec or None, id, reason if None).

    ``path`` (weights file, ``checkpoint.pt`` or run dir) wins; else the shipped default
    weights; else the newest ``runs/*/codec_latest.pt`` of this checkout (read only).
    The id is the file name plus the first 12 hex digits of its SHA-256.
    """
    from ..models.codec_engine import CodecEngine
    from ..models.weights_io import DEFAULT_CODEC_WEIGHTS, load_codec

    if path is None:
        if DEFAULT_CODEC_WEIGHTS.is_file():
            path = DEFAULT_CODEC_WEIGHTS
        else:
            found = sorted((_REPO_ROOT / "runs").glob("*/codec_latest.pt"),
                           key=lambda p: p.stat().st_mtime)
            if not found:
                return None, "none", ("no codec weights: no shipped default and no "
                                      "runs/*/codec_latest.pt; pass --codec")
            path = found[-1]
    p = Path(path)
    f = p / "checkpoint.pt" if p.is_dir() else p
    codec = CodecEngine(load_codec(p))  # streaming steps in C++ (the transceiver's default)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()[:12] if f.is_file() else "?"
    try:
        shown = f.resolve().relative_to(_REPO_ROOT).as_posix()
    except ValueError:
        shown = str(f)
    return codec, f"{shown}:{digest}", None


# ---- the sweep ------------------------------------------------------------------------------


def _item_key(system: str, condition: str, bitrate: float, clip: str) -> str:
    return f"{system}|{condition}|{bitrate:g}|{clip}"


def _read_items(path: Path) -> dict[str, dict[str, Any]]:
    """Finished items by key; a torn last line (interrupted write) is cut off the file."""
    items: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return items
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    for line in data.decode().splitlines():
        if line.strip():
            rec = json.loads(line)
            items[rec["key"]] = rec
    return items


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    fixed = ("version", "loss_mapping", "codec_id", "mos", "dnsmos", "chunk_frames",
             "token_coding")
    if path.exists():
        old = json.loads(path.read_text())
        diff = [k for k in fixed if old.get(k) != settings.get(k)]
        if "eval_set_source" in old and old["eval_set_source"] != settings.get("eval_set_source"):
            diff.append(f"evaluation set {old.get('eval_set')!r} from {old['eval_set_source']}")
        clash = [c for c, h in settings["clip_sha1"].items()
                 if old.get("clip_sha1", {}).get(c, h) != h]
        if diff or clash:
            raise ConfigError(
                f"{path.parent} holds a sweep with other settings ({', '.join(diff)}"
                f"{'; changed clips ' + ', '.join(clash[:3]) if clash else ''}); use a new "
                "--out directory or delete it")
        settings = {**settings, "clip_sha1": {**old.get("clip_sha1", {}),
                                              **settings["clip_sha1"]}}
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(settings, indent=1, sort_keys=True))
    tmp.replace(path)


def _score(ref: np.ndarray, deg: np.ndarray, mos: bool, dnsmos: bool) -> dict[str, float]:
    out = _metrics.all_metrics(ref, deg)
    if mos:
        from . import mos as _mos

        out.update(_mos.mos_scores(deg) if dnsmos else {"plcmos": _mos.plcmos(deg)})
    return {k: (round(float(v), 5) if v is not None and not math.isnan(v) else float("nan"))
            for k, v in out.items()}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


class _ItemContext:
    """What computing one item needs; shared with forked workers."""

    def __init__(self, systems: dict[str, System], loss_mapping: str, use_mos: bool,
                 use_dnsmos: bool) -> None:
        self.systems, self.loss_mapping = systems, loss_mapping
        self.use_mos, self.use_dnsmos = use_mos, use_dnsmos
        self.memo: dict[tuple[str, str], dict[str, float]] = {}  # (clip, sha1 of output)


def _compute_item(ctx: _ItemContext, clip: SweepClip, br: float, name: str,
                  cond: Any) -> dict[str, Any]:
    s = ctx.systems[name]
    n_slots = s.n_slots(clip.wav.size)
    need = n_slots * (s.slot_frames if ctx.loss_mapping == "time" else 1)
    lost = slot_losses(cond.flags(clip.id, need), n_slots, s.slot_frames, ctx.loss_mapping)
    t0, c0 = time.perf_counter(), time.process_time()
    res = s.run(clip.wav, br, lost, cond.expected_loss_pct)
    t1, c1 = time.perf_counter(), time.process_time()
    # identical output (e.g. a FEC mode that carried no redundancy) gets the same scores
    memo_key = (clip.id, hashlib.sha1(np.ascontiguousarray(res.decoded).tobytes()).hexdigest())
    reused = memo_key in ctx.memo
    if not reused:
        ctx.memo[memo_key] = _score(clip.wav, res.decoded, ctx.use_mos, ctx.use_dnsmos)
    scores = ctx.memo[memo_key]
    t2, c2 = time.perf_counter(), time.process_time()
    grid = cond.flags(clip.id, math.ceil(clip.wav.size / FRAME_SAMPLES))
    return {
        "key": _item_key(name, cond.id, br, clip.id), "system": name, "condition": cond.id,
        "bitrate_kbps": br, "clip": clip.id, "clip_seconds": round(clip.seconds, 4),
        "n_slots": res.n_slots, "slot_ms": float(FRAME_MS * res.slot_frames),
        "duration_s": round(res.duration_s, 4), "n_lost": res.n_lost,
        "n_concealed": res.n_concealed, "realised_loss_rate": round(res.realised_loss_rate, 5),
        "grid_loss_rate": round(float(grid.mean()), 5) if grid.size else 0.0,
        "bytes_sent": res.bytes_sent, "measured_kbps": round(res.measured_kbps, 4),
        "metrics": dict(scores), "metrics_reused": reused, "info": res.info,
        "system_s": round(t1 - t0, 4), "metrics_s": round(t2 - t1, 4),
        "system_cpu_s": round(c1 - c0, 4), "metrics_cpu_s": round(c2 - c1, 4),
    }


_WORKER: dict[str, Any] = {}


def _worker_init(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _safe_item(ctx: _ItemContext, clip: SweepClip, br: float, name: str,
               cond: Any) -> dict[str, Any]:
    """The item's record, or ``{"failed": ...}`` when the system raised (never written to
    ``items.jsonl``, so a rerun retries it)."""
    try:
        return _compute_item(ctx, clip, br, name, cond)
    except Exception as exc:  # noqa: BLE001 -- one broken system must not stop the sweep
        return {"failed": True, "system": name, "key": _item_key(name, cond.id, br, clip.id),
                "error": f"{type(exc).__name__}: {exc}"}


def _worker_item(task: tuple[SweepClip, float, str, Any]) -> dict[str, Any]:
    return _safe_item(_WORKER["ctx"], *task)


def _compute_all(ctx: _ItemContext, pending: list[tuple[SweepClip, float, str, Any]],
                 jobs: int, threads: int | None) -> Any:
    """Yields item records: in this process (jobs == 1) or in ``jobs`` forked workers.

    Workers are forked so they inherit the loaded codec and clips; each item's record comes
    back to this process, which alone writes ``items.jsonl``.
    """
    if jobs <= 1 or len(pending) <= 1:
        failed: set[str] = set()
        for clip, br, name, cond in pending:
            if name in failed:  # a system that raised once is not retried in this run
                yield {"failed": True, "system": name, "skipped": True,
                       "key": _item_key(name, cond.id, br, clip.id), "error": ""}
                continue
            rec = _safe_item(ctx, clip, br, name, cond)
            if rec.get("failed"):
                failed.add(name)
            yield rec
        return
    import multiprocessing as mp

    _WORKER["ctx"] = ctx
    try:
        with mp.get_context("fork").Pool(jobs, initializer=_worker_init,
                                         initargs=(threads,)) as pool:
            # tasks grouped by clip and bitrate keep each worker's encode cache useful
            yield from pool.imap_unordered(_worker_item, pending, chunksize=4)
    finally:
        _WORKER.pop("ctx", None)


def run_sweep(clips: list[SweepClip], out_dir: str | Path,
              systems: list[str] | dict[str, System] | None = None,
              conditions: list[str] | None = None, bitrates: list[float] | None = None, *,
              codec: Any = None, codec_id: str | None = None,
              codec_missing_reason: str = "no codec weights given",
              chunk_frames: int = DEFAULT_CHUNK_FRAMES, loss_mapping: str = "packet",
              mos: bool = True, dnsmos: bool = True, plots: bool = True,
              progress: bool = True,
              max_new_items: int | None = None, torch_threads: int | None = 1,
              jobs: int = 1, lm_path: str | None = None,
              eval_set: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs (or resumes) a sweep and writes ``results.json``, ``report.md`` and the plots.

    Args:
        clips: the clips (ids must be unique).
        out_dir: created if missing; holds ``items.jsonl`` for resuming.
        systems: names from ``SYSTEM_NAMES`` (default ``DEFAULT_SYSTEM_NAMES``) or ready
            ``System`` objects by name.
        conditions: condition ids (default :data:`DEFAULT_CONDITIONS`).
        bitrates: nominal kbps classes (default 1.5 / 3 / 6 / 12).
        codec: the codec for ``codec_nolm``/SoundSpring (None: those are skipped with
            ``codec_missing_reason``); ``codec_id`` names it in the settings.
        chunk_frames: C for the codec systems (20 ms frames per chunk/slot).
        loss_mapping: ``"packet"`` or ``"time"`` (see :mod:`.conditions`).
        mos: also score PLCMOS v2 and DNSMOS (skipped with a recorded reason if unavailable).
        dnsmos: with ``mos``, also DNSMOS (about 60 % of the metric time on 3 s clips).
        plots: write the PNG plots.
        progress: show a tqdm bar.
        max_new_items: stop after computing this many new items (then write the outputs
            from what is done); for tests of resuming and for time-boxed runs.
        torch_threads: ``torch.set_num_threads`` during the sweep (None leaves it).
        jobs: worker processes (forked; 1 = compute in this process). Results do not
            depend on it.
        lm_path: SpringLM weights for the SoundSpring systems.
        eval_set: what the clips are (``load_sweep_set``'s record: at least ``"name"``);
            written as ``results["eval_set"]``, the report's first line and the plot
            titles (default ``{"name": "unnamed"}``). A rerun into ``out_dir`` with a set
            from another manifest or folder (``"manifest"``) is refused; a new name is not.

    Returns:
        The ``results.json`` content, plus ``"n_computed"`` and ``"n_skipped"`` (items this
        call computed / found done). A system that raises is not fatal: its items are left
        out, ``"failures"`` names it with the error, and a rerun retries them.

    Raises:
        ConfigError: bad arguments, or ``out_dir`` holding a sweep with other settings.
    """
    from tqdm import tqdm

    from .mos import speechmos_unavailable_reason
    from .report import summarize, write_plots, write_report

    t_start = time.perf_counter()
    if not clips:
        raise ConfigError("clips must be a non-empty list of SweepClip")
    if len({c.id for c in clips}) != len(clips):
        raise ConfigError("clip ids must be unique")
    if loss_mapping not in LOSS_MAPPINGS:
        raise ConfigError(f"loss_mapping must be one of {LOSS_MAPPINGS}, got {loss_mapping!r}")
    conds = [parse_condition(c) for c in (conditions or DEFAULT_CONDITIONS)]
    brs = [float(b) for b in (bitrates or BITRATES_KBPS)]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an int >= 1, got {jobs!r}")
    if any(not b > 0 for b in brs):
        raise ConfigError(f"bitrates must be positive kbps, got {brs}")
    if isinstance(systems, dict):
        sys_map = dict(systems)
    else:
        sys_map = build_systems(systems, codec=codec, codec_missing_reason=codec_missing_reason,
                                chunk_frames=chunk_frames, lm_path=lm_path)
    set_info = {"name": "unnamed", **(eval_set or {}), "clips": len(clips),
                "minutes": round(sum(c.seconds for c in clips) / 60, 2)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    sys_meta: dict[str, dict[str, Any]] = {}
    for name, s in sys_map.items():
        reason = s.unavailable_reason()
        sys_meta[name] = {"available": reason is None, "reason": reason,
                          "description": s.description, "slot_ms": float(FRAME_MS * s.slot_frames)}
    runnable = {n: s for n, s in sys_map.items() if sys_meta[n]["available"]}
    unsupported = [{"system": n, "bitrate_kbps": b, "reason": r}
                   for n, s in runnable.items() for b in brs
                   if (r := s.unsupported_reason(b)) is not None]
    skip_pairs = {(u["system"], u["bitrate_kbps"]) for u in unsupported}
    mos_reason = speechmos_unavailable_reason() if mos else "disabled (--no-mos)"
    use_mos = mos and mos_reason is None
    use_dnsmos = use_mos and dnsmos
    nolm = sys_map.get("codec_nolm")
    settings = {
        "version": SETTINGS_VERSION, "loss_mapping": loss_mapping,
        "codec_id": codec_id or ("none" if codec is None else "unnamed"),
        "mos": use_mos, "dnsmos": use_dnsmos, "chunk_frames": chunk_frames,
        "token_coding": getattr(nolm, "token_coding", None),
        "eval_set": set_info["name"], "eval_set_source": set_info.get("manifest"),
        "clip_sha1": {c.id: c.sha1 for c in clips},
    }
    _check_settings(out / "sweep.json", settings)

    items_path = out / "items.jsonl"
    done = _read_items(items_path)
    todo = [(c, b, n, k) for c in clips for b in brs for n in runnable for k in conds
            if (n, b) not in skip_pairs]
    keys = {_item_key(n, k.id, b, c.id) for c, b, n, k in todo}
    n_skipped = sum(1 for key in keys if key in done)
    pending = [t for t in todo if _item_key(t[2], t[3].id, t[1], t[0].id) not in done]
    if max_new_items is not None:
        pending = pending[: max(0, int(max_new_items))]
    n_computed = 0
    prev_threads = None
    if torch_threads is not None:
        import torch

        prev_threads = torch.get_num_threads()
        torch.set_num_threads(torch_threads)
    bar = tqdm(total=len(todo), initial=n_skipped, disable=not progress, unit="item",
               desc="sweep", dynamic_ncols=True)
    ctx = _ItemContext(runnable, loss_mapping, use_mos, use_dnsmos)
    failures: dict[str, dict[str, Any]] = {}
    try:
        with open(items_path, "a") as f:
            for rec in _compute_all(ctx, pending, jobs, torch_threads):
                if rec.get("failed"):
                    fl = failures.setdefault(rec["system"], {"error": rec["error"], "items": 0})
                    fl["items"] += 1
                    fl["error"] = fl["error"] or rec["error"]
                    bar.update(1)
                    continue
                f.write(json.dumps(_json_safe(rec), sort_keys=True) + "\n")
                f.flush()
                done[rec["key"]] = rec
                n_computed += 1
                bar.update(1)
    finally:
        bar.close()
        if prev_threads is not None:
            import torch

            torch.set_num_threads(prev_threads)

    items = [done[k] for k in sorted(keys) if k in done]
    for it in items:  # JSON null -> NaN for aggregation
        it["metrics"] = {k: (float("nan") if v is None else v) for k, v in it["metrics"].items()}
    results: dict[str, Any] = {
        "eval_set": set_info,
        "settings": {
            **{k: v for k, v in settings.items() if k != "clip_sha1"},
            "conditions": [c.id for c in conds], "bitrates": brs,
            "n_clips": len(clips), "clips": [c.id for c in clips],
            "audio_seconds": round(sum(c.seconds for c in clips), 3),
            "complete": len(items) == len(keys),
        },
        "systems": sys_meta,
        "failures": failures,
        "unsupported": unsupported,
        "metrics_unavailable": ({} if use_dnsmos else {"dnsmos": mos_reason or "disabled (--no-dnsmos)"})
        | ({} if use_mos else {"plcmos": mos_reason}),
        "conditions": {c.id: {"model": c.model, "loss_rate": c.loss_rate,
                              "mean_burst": c.mean_burst, "label": c.label} for c in conds},
        "items": items,
        "summary": summarize(items),
        "notes": _notes(items, sys_meta, mos_reason, nolm) + [
            f"{n} FAILED on {fl['items']} items this run (not recorded; a rerun retries them): "
            f"{fl['error']}" for n, fl in failures.items()],
        "timing": _timing(items, len(runnable)),
    }
    results["plots"] = []
    if plots and items:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            results["notes"].append("Plots skipped: matplotlib is not installed.")
        else:
            results["plots"] = write_plots(results, out)
    write_report(results, out / "report.md")
    tmp = out / "results.json.part"
    tmp.write_text(json.dumps(_json_safe(results), indent=1, sort_keys=True))
    tmp.replace(out / "results.json")
    results["n_computed"], results["n_skipped"] = n_computed, n_skipped
    results["wall_s"] = round(time.perf_counter() - t_start, 2)
    return results


def _notes(items: list[dict[str, Any]], sys_meta: dict[str, Any], mos_reason: str | None,
           nolm: Any) -> list[str]:
    notes = []
    if mos_reason is not None:
        notes.append(f"PLCMOS/DNSMOS left out: {mos_reason}.")
    else:
        notes.append("PLCMOS v2 uses 15 fixed rater embeddings (seed 0), so scores are "
                     "reproducible; DNSMOS scores clips shorter than 9.01 s repeated to 9.01 s "
                     "(soundspring.evaluation.mos).")
    reused = sum(1 for i in items if i.get("metrics_reused"))
    if reused:
        notes.append(f"{reused} of {len(items)} items decoded to exactly the same audio as an "
                     "item scored before (e.g. Opus at its floor for 1.5 and 3 kbps, or a FEC "
                     "mode that carried no redundancy) and reuse its scores.")
    if nolm is not None and sys_meta.get("codec_nolm", {}).get("available"):
        notes.append(f"codec_nolm token coding: {nolm.token_coding}; lost chunks repeat the last "
                     "received frame's tokens (silence before the first received chunk).")
    opus_items = [i for i in items if i["system"].startswith("opus")]
    if opus_items:
        low = [i["measured_kbps"] for i in opus_items if i["bitrate_kbps"] <= 3.0]
        if low:
            notes.append(f"Opus VBR floor: 1.5 and 3 kbps targets come out at "
                         f"{min(low):.1f}-{max(low):.1f} kbps measured; compare measured rates.")
    for name, key, what in (("opus15_dred", "n_dred", "DRED"), ("opus13_fec", "n_fec", "LBRR"),
                            ("opus15_fec", "n_fec", "LBRR")):
        its = [i for i in items if i["system"] == name and i["n_lost"] > 0]
        for br in sorted({i["bitrate_kbps"] for i in its}):
            sel = [i for i in its if i["bitrate_kbps"] == br]
            used = sum(i["info"].get(key, 0) for i in sel)
            lost = sum(i["n_lost"] for i in sel)
            if used == 0:
                notes.append(f"{name} @ {br:g} kbps: {what} recovered none of {lost} lost "
                             f"packets (libopus emits no {what} at this rate); it behaves as "
                             "its PLC counterpart here.")
            else:
                notes.append(f"{name} @ {br:g} kbps: {what} recovered {used} of {lost} lost "
                             "packets.")
    unavailable = [f"{n} ({m['reason']})" for n, m in sys_meta.items() if not m["available"]]
    if unavailable:
        notes.append("Skipped systems: " + "; ".join(unavailable) + ".")
    return notes


def _timing(items: list[dict[str, Any]], n_systems: int) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    for it in items:
        d = per.setdefault(it["system"], {"system_s": 0.0, "metrics_s": 0.0, "clip_s": 0.0,
                                          "system_cpu_s": 0.0, "metrics_cpu_s": 0.0, "items": 0})
        for k in ("system_s", "metrics_s", "system_cpu_s", "metrics_cpu_s"):
            d[k] += it.get(k, 0.0)
        d["clip_s"] += it["clip_seconds"]
        d["items"] += 1
    out: dict[str, Any] = {"per_system": {}}
    for name, d in per.items():
        out["per_system"][name] = {
            "system_s_per_clip_s": round(d["system_s"] / d["clip_s"], 4),
            "metrics_s_per_clip_s": round(d["metrics_s"] / d["clip_s"], 4),
            "system_cpu_s_per_clip_s": round(d["system_cpu_s"] / d["clip_s"], 4),
            "metrics_cpu_s_per_clip_s": round(d["metrics_cpu_s"] / d["clip_s"], 4),
            "items": d["items"]}
    clip_s = {}
    for it in items:
        clip_s[it["clip"]] = it["clip_seconds"]
    total = sum(it["system_s"] + it["metrics_s"] for it in items)
    cpu = sum(it.get("system_cpu_s", 0.0) + it.get("metrics_cpu_s", 0.0) for it in items)
    audio = sum(clip_s.values())
    out["total_compute_s"] = round(total, 2)
    out["total_cpu_s"] = round(cpu, 2)
    out["total_s_per_clip_s"] = round(total / audio, 3) if clip_s else None
    out["total_cpu_s_per_clip_s"] = round(cpu / audio, 3) if clip_s else None
    if items:
        per_item = float(np.mean([(it.get("system_cpu_s", 0.0) + it.get("metrics_cpu_s", 0.0))
                                  / it["clip_seconds"] for it in items]))
        n_items = n_systems * len(DEFAULT_CONDITIONS) * len(BITRATES_KBPS)
        out["full_protocol"] = {
            "systems": n_systems, "conditions": len(DEFAULT_CONDITIONS),
            "bitrates": len(BITRATES_KBPS), "items_per_clip": n_items,
            "cpu_s_per_clip_s": round(per_item * n_items, 2),
            "clip_s_per_hour": round(3600 / (per_item * n_items), 1),
        }
    return out


__all__ = [
    "SweepClip",
    "load_sweep_clips",
    "load_sweep_set",
    "resolve_codec",
    "run_sweep",
]
