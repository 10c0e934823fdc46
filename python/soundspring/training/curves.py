"""Learning curves of a training run as a plot: held-out metrics against training time.

Reads a run directory's ``eval.jsonl`` (codec runs: PESQ-WB and STOI per bitrate; SpringLM
runs: fine bits/token and concealment top-1) and ``train.jsonl`` (the training loss),
and writes one PNG with a panel per metric.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def learning_curves(run_dir: str | Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{panel: {series: [(train minutes, value)]}} from a run directory.

    Raises:
        ConfigError: the directory has no evaluations.
    """
    run_dir = Path(run_dir)
    evals = _rows(run_dir / "eval.jsonl")
    if not evals:
        raise ConfigError(f"{run_dir} has no eval.jsonl rows: nothing to plot")
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in evals:
        t = float(r.get("train_minutes", 0.0))
        if isinstance(r.get("metrics"), dict):  # codec run: metrics per bitrate
            for kbps, m in sorted(r["metrics"].items(), key=lambda kv: float(kv[0])):
                for name in ("pesq_wb", "stoi"):
                    if name in m:
                        panels.setdefault(name, {}).setdefault(f"{kbps} kbps", []).append(
                            (t, float(m[name])))
        for name in ("fine_mean_bits_lm", "conceal_top1"):  # SpringLM run
            v = r.get(name)
            if isinstance(v, list) and v:
                v = sum(v) / len(v)
            if isinstance(v, (int, float)):
                panels.setdefault(name, {}).setdefault("held-out", []).append((t, float(v)))
    loss = [(float(r["train_minutes"]), float(r["loss"])) for r in _rows(run_dir / "train.jsonl")
            if "loss" in r and "train_minutes" in r]
    if loss:
        panels["training loss"] = {"train": loss}
    return panels


def plot_learning_curves(run_dir: str | Path, out_png: str | Path) -> Path:
    """Writes the learning curves of ``run_dir`` to ``out_png``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = learning_curves(run_dir)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (panel, series) in zip(axes[0], panels.items(), strict=True):
        for label, pts in series.items():
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o" if len(pts) < 50 else None, ms=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
