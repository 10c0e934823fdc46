"""Codec evaluation: metrics per bitrate on held-out clips, and real-time factors."""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict

import numpy as np
import torch

from ..config import SAMPLE_RATE_HZ
from ..data.corpus import Clip
from . import metrics


def fixed_heldout_subset(clips: list[Clip], n: int, min_s: float = 1.0,
                         max_s: float = 6.0) -> list[Clip]:
    """A fixed, language-balanced subset of held-out clips (order by sha1 of the path)."""
    by_lang: dict[str, list[Clip]] = defaultdict(list)
    key = lambda c: hashlib.sha1(c.path.as_posix().split("/wav/")[-1].encode()).hexdigest()
    for c in sorted(clips, key=key):
        if c.split == "heldout" and min_s <= c.duration_s <= max_s:
            by_lang[c.language].append(c)
    out: list[Clip] = []
    langs = sorted(by_lang)
    i = 0
    while len(out) < n and any(i < len(by_lang[lang]) for lang in langs):
        out += [by_lang[lang][i] for lang in langs if i < len(by_lang[lang])]
        i += 1
    return out[:n]


def _mean(xs: list[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate_codec(codec, wavs: list[np.ndarray], bitrates_kbps, progress: bool = False) -> dict:
    """Mean PESQ-WB, STOI, SI-SDR and log-mel distance per bitrate.

    Args:
        codec: a ``Codec`` (any mode; evaluated under inference mode).
        wavs: float32 [T] clips at 16 kHz.
        bitrates_kbps: iterable of raw bitrates.

    Returns:
        {"<kbps>": {"pesq_wb", "stoi", "si_sdr_db", "log_mel_dist", "n"}}.
    """
    from tqdm import tqdm

    was_training = codec.training
    codec.eval()
    out = {}
    try:
        for br in bitrates_kbps:
            rows = defaultdict(list)
            for w in tqdm(wavs, desc=f"eval {br} kbps", disable=not progress, leave=False):
                x = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None, None]
                y = codec.decode(codec.encode(x, br))[0, 0, : w.size].numpy()
                for k, v in metrics.all_metrics(w, y).items():
                    rows[k].append(v)
            out[f"{float(br):g}"] = {k: round(_mean(v), 4) for k, v in rows.items()} | {
                "n": len(wavs)}
    finally:
        codec.train(was_training)
    return out


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
