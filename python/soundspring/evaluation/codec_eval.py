"""Codec evaluation: metrics per bitrate on held-out clips, beside Opus 1.3, and real-time
factors (``soundspring eval codec``)."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import torch

from ..config import SAMPLE_RATE_HZ
from ..data.corpus import load_clips
from ..errors import ConfigError, NativeFeatureError
from . import metrics


def _mean(xs: list[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate_codec_per_clip(codec, wavs: list[np.ndarray], bitrates_kbps,
                            progress: bool = False) -> list[dict]:
    """PESQ-WB, STOI, SI-SDR and log-mel distance of every clip at every bitrate.

    Args:
        codec: a ``Codec`` (any mode; evaluated under inference mode).
        wavs: float32 [T] clips at 16 kHz.
        bitrates_kbps: iterable of raw bitrates.

    Returns:
        One row per (bitrate, clip), bitrate-major: ``{"kbps": "<kbps>", "clip": index into
        wavs, "pesq_wb", "stoi", "si_sdr_db", "log_mel_dist"}`` (unrounded; PESQ may be NaN).
        A bitrate given twice is evaluated once.
    """
    from tqdm import tqdm

    was_training = codec.training
    codec.eval()
    out: list[dict] = []
    seen: set[str] = set()
    try:
        for br in bitrates_kbps:
            kbps = f"{float(br):g}"
            if kbps in seen:
                continue
            seen.add(kbps)
            for i, w in enumerate(tqdm(wavs, desc=f"eval {br} kbps", disable=not progress,
                                       leave=False)):
                x = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None, None]
                y = codec.decode(codec.encode(x, br))[0, 0, : w.size].numpy()
                out.append({"kbps": kbps, "clip": i} | metrics.all_metrics(w, y))
    finally:
        codec.train(was_training)
    return out


def aggregate_rows(rows: list[dict]) -> dict:
    """Means (NaN skipped) of per-clip rows per bitrate, in ``evaluate_codec``'s format.

    Args:
        rows: rows of ``evaluate_codec_per_clip``.

    Returns:
        {"<kbps>": {"pesq_wb", "stoi", "si_sdr_db", "log_mel_dist", "n"}}, metrics rounded to
        4 decimals, ``n`` the number of clips.
    """
    by_br: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        d = by_br.setdefault(r["kbps"], defaultdict(list))
        counts[r["kbps"]] += 1
        for k, v in r.items():
            if k not in ("kbps", "clip"):
                d[k].append(v)
    return {br: {k: round(_mean(v), 4) for k, v in d.items()} | {"n": counts[br]}
            for br, d in by_br.items()}


def breakdown_by_group(rows: list[dict], groups: list[str],
                       keys: tuple[str, ...] = ("pesq_wb", "stoi")) -> dict:
    """Per-group means of per-clip rows at each bitrate.

    Args:
        rows: rows of ``evaluate_codec_per_clip``.
        groups: group name of each clip (a source like ``"espeak-ng:de"`` or a language),
            indexed like the ``wavs`` the rows were computed on.
        keys: the metrics to average.

    Returns:
        {group: {"<kbps>": {key: mean, ..., "n": clips}}}, groups sorted by name.

    Raises:
        ConfigError: a row's clip index has no group.
    """
    picked: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        if not 0 <= r["clip"] < len(groups):
            raise ConfigError(f"clip index {r['clip']} has no group; expected < {len(groups)}")
        d = picked.setdefault(groups[r["clip"]], {}).setdefault(r["kbps"], defaultdict(list))
        for k in keys:
            d[k].append(r[k])
    return {g: {br: {k: round(_mean(d[k]), 4) for k in keys} | {"n": len(d[keys[0]])}
                for br, d in per_br.items()}
            for g, per_br in sorted(picked.items())}


def evaluate_codec(codec, wavs: list[np.ndarray], bitrates_kbps, progress: bool = False) -> dict:
    """Mean PESQ-WB, STOI, SI-SDR and log-mel distance per bitrate.

    Args:
        codec: a ``Codec`` (any mode; evaluated under inference mode).
        wavs: float32 [T] clips at 16 kHz.
        bitrates_kbps: iterable of raw bitrates.

    Returns:
        {"<kbps>": {"pesq_wb", "stoi", "si_sdr_db", "log_mel_dist", "n"}}.
    """
    bitrates = list(bitrates_kbps)
    agg = aggregate_rows(evaluate_codec_per_clip(codec, wavs, bitrates, progress))
    return {f"{float(br):g}": agg.get(f"{float(br):g}", {"n": 0}) for br in bitrates}


def opus_rows(wavs: list[np.ndarray], bitrates: list[float]) -> dict:
    """Opus 1.3 (VOIP, PLC mode, no loss) at each target bitrate: mean metrics and measured
    kbps per bitrate, or ``{"unavailable": reason}`` without libopus."""
    from ..baselines.opus import OpusConfig, run_opus

    out: dict = {}
    try:
        for br in bitrates:
            cfg = OpusConfig(bitrate_bps=round(br * 1000), mode="plc", version="1.3")
            rows: dict[str, list] = {}
            bps = []
            for w in wavs:
                res = run_opus(np.ascontiguousarray(w, np.float32), cfg, None)
                bps.append(res.bitrate_bps)
                for k, v in metrics.all_metrics(w, res.decoded).items():
                    rows.setdefault(k, []).append(v)
            out[f"{br:g}"] = {k: round(_mean(v), 4) for k, v in rows.items()} | {
                "measured_kbps": round(float(np.mean(bps)) / 1000, 2), "n": len(wavs)}
    except NativeFeatureError as exc:
        return {"unavailable": str(exc)}
    return out


def codec_report(codec, eval_set, bitrates_kbps: list[float], weights_label: str,
                 opus: bool = True, rtf: bool = True, progress: bool = True) -> dict:
    """``soundspring eval codec``'s numbers: metrics per bitrate on an evaluation set, per
    group, beside Opus 1.3, with the codec's real-time factors.

    Args:
        codec: the ``Codec`` evaluated.
        eval_set: a ``clips.EvalSet`` (its clips, in its fixed order).
        bitrates_kbps: raw bitrate classes.
        weights_label: what the report calls the weights (a path, or ``"default"``).
        opus: also measure Opus 1.3 at the same bitrates.
        rtf: also time encode + decode at 1 and 2 threads.
        progress: tqdm bars.

    Returns:
        The report dict (``codec``, ``by_source`` grouped by ``group_by``, ``opus_1.3``,
        ``rtf``, ``eval_set`` and provenance), as ``--json`` writes it.
    """
    clips = list(eval_set.clips)
    # per source when the set mixes sources (e.g. `soundspring data synth` voices), else per
    # language (one human source: its languages are its speakers)
    sources = {c.source for c in clips if c.source}
    group_by = "source" if len(sources) > 1 else "language"
    groups = [(c.source or c.language) if group_by == "source" else c.language for c in clips]
    wavs = load_clips(clips, progress=progress)
    t0 = time.time()
    result: dict = {
        "eval_set": eval_set.info(),
        "weights": weights_label,
        "meta": getattr(codec, "meta", {}),
        "params": codec.num_parameters(),
        "algorithmic_latency_ms": codec.algorithmic_latency_ms,
        "split": eval_set.split, "clips": len(wavs),
        "audio_minutes": round(sum(w.size for w in wavs) / SAMPLE_RATE_HZ / 60, 2),
    }
    rows = evaluate_codec_per_clip(codec, wavs, bitrates_kbps, progress=progress)
    result["codec"] = aggregate_rows(rows)
    result["group_by"] = group_by
    result["by_source"] = breakdown_by_group(rows, groups)
    result["opus_1.3"] = opus_rows(wavs, bitrates_kbps) if opus else {
        "unavailable": "--no-opus"}
    if rtf:
        result["rtf"] = [real_time_factor(codec, t) for t in (1, 2)]
    result["eval_seconds"] = round(time.time() - t0, 1)
    return result


def real_time_factor(codec, threads: int, seconds: float = 4.0, bitrate_kbps: float = 12.0,
                     repeats: int = 3) -> dict:
    """Encode and decode wall time divided by audio duration (best of ``repeats``)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        x = 0.1 * torch.randn(1, 1, int(seconds * SAMPLE_RATE_HZ), generator=g)
        codes = codec.encode(x, bitrate_kbps)
        codec.decode(codes)
        enc, dec = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            codes = codec.encode(x, bitrate_kbps)
            t1 = time.perf_counter()
            codec.decode(codes)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
        return {"threads": threads, "encode_rtf": round(min(enc) / seconds, 4),
                "decode_rtf": round(min(dec) / seconds, 4),
                "total_rtf": round((min(enc) + min(dec)) / seconds, 4)}
    finally:
        torch.set_num_threads(prev)


__all__ = [
    "aggregate_rows",
    "breakdown_by_group",
    "codec_report",
    "evaluate_codec",
    "evaluate_codec_per_clip",
    "opus_rows",
    "real_time_factor",
]
