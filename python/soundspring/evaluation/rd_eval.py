"""``soundspring eval rd``: the transceiver's rate-distortion curve on held-out audio.

The clips are the evaluation set of :mod:`.clips` (default: the speaker-disjoint set;
``--set same-speakers`` or ``--manifest FILE``), the first ``--max-clips`` of its fixed
order, the same clips ``eval lm`` measures packets on; the report, the JSON (``eval_set``)
and the plot title name the set.

For each raw bitrate class and each rate-distortion weight ``rd_lambda`` (see
``TransceiverConfig``), every clip goes through the real transmitter (packets counted to
the byte) and its sent tokens through the codec decoder (what a lossless receiver plays);
PESQ-WB and STOI are measured against the input. Optionally the same for static PMFs
(no LM) and Opus 1.3 at a few bitrates, so the curves show quality per measured kbps.

Example::

    soundspring eval rd --bitrates 6 12 --rd-lambdas 0 0.1 0.3 1 --max-clips 40 \\
        --json runs/eval/rd.json --plot runs/eval/rd.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.corpus import load_clips
from ..entropy.static import StaticModel
from ..transceiver import TransceiverConfig
from . import metrics
from .clips import heading_line, title_line
from .codec_eval import opus_rows
from .lm_eval import transmit_clips


def rd_point(codec, model, wavs: list[np.ndarray], cfg) -> dict:
    """Mean measured bitrate and quality of lossless transmission of ``wavs`` under ``cfg``."""
    bps, txs = transmit_clips(codec, model, wavs, cfg)
    pesq, stoi = [], []
    for w, tx in zip(wavs, txs):
        tokens = torch.from_numpy(np.concatenate(tx.sent_tokens, axis=1))[None]
        y = codec.decode(tokens)[0, 0, : w.size].numpy()
        pesq.append(metrics.pesq_wb(w, y))
        stoi.append(metrics.stoi(w, y))
    return {"bitrate_bps": round(bps, 1), "saving_vs_raw": round(1 - bps / cfg.raw_bitrate_bps, 4),
            "pesq_wb": round(float(np.mean(pesq)), 4), "stoi": round(float(np.mean(stoi)), 4),
            "n": len(wavs)}


def rd_curves(codec, coding_model, wavs: list[np.ndarray], bitrates: list[float],
              lambdas: list[float], static: bool) -> dict:
    """{model name: {bitrate: {lambda: rd_point}}} for the LM (and static PMFs)."""
    from tqdm import tqdm

    models = {"springlm": coding_model}
    if static:
        models["static"] = StaticModel(coding_model.base_logits())
    out: dict = {}
    todo = [(n, br, lam) for n in models for br in bitrates for lam in lambdas]
    for name, br, lam in tqdm(todo, desc="rd points", unit="point"):
        cfg = TransceiverConfig(bitrate_kbps=br, rd_lambda=lam,
                                conceal="lm" if name == "springlm" else "repeat")
        point = rd_point(codec, models[name], wavs, cfg)
        out.setdefault(name, {}).setdefault(f"{br:g}", {})[f"{lam:g}"] = point | {
            "raw_bps": cfg.raw_bitrate_bps}
    return out


def opus_curve(wavs: list[np.ndarray], bitrates: list[float]) -> dict:
    """Opus 1.3 (VOIP, no loss) at each target: measured kbps, PESQ-WB, STOI."""
    rows = opus_rows(wavs, bitrates)
    if "unavailable" in rows:
        return rows
    return {br: {"bitrate_bps": round(r["measured_kbps"] * 1000, 1), "pesq_wb": r["pesq_wb"],
                 "stoi": r["stoi"], "n": r["n"]} for br, r in rows.items()}


def report_markdown(result: dict) -> str:
    """The report as markdown, headed by the evaluation set's line."""

    set_name = result.get("eval_set", {}).get("name", "unnamed")
    lines = [heading_line(result["eval_set"]) if "eval_set" in result
             else "Evaluation set: unnamed", "",
             (f"Rate-distortion on {result['clips']} held-out clips of the {set_name} set "
              "(lossless transmission; kbps = every packet byte):"), "",
             "| PMFs | raw kbps | rd_lambda | kbps | saving vs raw | PESQ-WB | STOI |",
             "|---|---|---|---|---|---|---|"]
    for name, per_br in result["curves"].items():
        for br, per_lam in per_br.items():
            for lam, p in per_lam.items():
                lines.append(f"| {name} | {br} | {lam} | {p['bitrate_bps'] / 1000:.3f} | "
                             f"{100 * p['saving_vs_raw']:.1f}% | {p['pesq_wb']:.3f} | "
                             f"{p['stoi']:.3f} |")
    opus = result.get("opus", {})
    if opus and "unavailable" not in opus:
        lines += ["", "| Opus 1.3 target kbps | kbps | PESQ-WB | STOI |", "|---|---|---|---|"]
        for br, p in opus.items():
            lines.append(f"| {br} | {p['bitrate_bps'] / 1000:.3f} | {p['pesq_wb']:.3f} | "
                         f"{p['stoi']:.3f} |")
    elif opus:
        lines += ["", f"Opus: {opus['unavailable']}"]
    return "\n".join(lines)


def write_plot(result: dict, path: str | Path) -> Path:
    """PESQ-WB against measured kbps: one line per (PMFs, raw bitrate) over rd_lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, per_br in result["curves"].items():
        for br, per_lam in per_br.items():
            pts = sorted((p["bitrate_bps"] / 1000, p["pesq_wb"]) for p in per_lam.values())
            ax.plot(*zip(*pts), marker="o", linestyle="-" if name == "springlm" else "--",
                    label=f"SoundSpring {br} kbps class ({name})")
    opus = result.get("opus", {})
    if opus and "unavailable" not in opus:
        pts = sorted((p["bitrate_bps"] / 1000, p["pesq_wb"]) for p in opus.values())
        ax.plot(*zip(*pts), marker="s", color="k", label="Opus 1.3")
    ax.set_xlabel("measured bitrate (kbps)")
    ax.set_ylabel("PESQ-WB")
    title = "Lossless rate-distortion (points: rd_lambda)"
    if "eval_set" in result:
        title += "\n" + title_line(result["eval_set"])
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rd_report(codec, coding_model, eval_set, bitrates: Sequence[float] = (6.0, 12.0),
              rd_lambdas: Sequence[float] = (0.0, 0.1, 0.3, 1.0), static: bool = False,
              opus_bitrates: Sequence[float] = (6.0, 9.0, 12.0, 16.0)) -> dict:
    """``soundspring eval rd``'s numbers: the rate-distortion curves on ``eval_set``.

    Args:
        codec: the ``Codec``.
        coding_model: the ``SpringLMCodingModel``.
        eval_set: a ``clips.EvalSet``; every clip of it is measured.
        bitrates: raw bitrate classes in kbps.
        rd_lambdas: the transmitter's rate-distortion weights.
        static: also code with static PMFs (no LM) at every weight.
        opus_bitrates: Opus 1.3 target kbps of the comparison curve (empty: none).

    Returns:
        The report dict, as ``--json`` writes it.
    """
    wavs = load_clips(eval_set.clips, progress=False)
    result: dict = {"eval_set": eval_set.info(), "lm": coding_model.model_id,
                    "clips": len(wavs),
                    "curves": rd_curves(codec, coding_model, wavs, list(bitrates),
                                        list(rd_lambdas), static)}
    if opus_bitrates:
        result["opus"] = opus_curve(wavs, list(opus_bitrates))
    return result


__all__ = ["opus_curve", "rd_curves", "rd_point", "rd_report", "report_markdown", "write_plot"]
