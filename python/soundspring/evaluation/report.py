"""Aggregates, markdown tables and plots of a loss sweep (see :mod:`.sweep`).

* :func:`summarize` turns per-item records into per (system, condition, bitrate) means,
  95 % confidence half-widths, the measured total bitrate (bytes-weighted) and the realised
  slot loss rate.
* :func:`matched_delta` compares a target system with a baseline *at the target's measured
  total bitrate*: the baseline's quality-vs-measured-bitrate curve for the same condition is
  interpolated linearly in log-bitrate between its measured points. Outside the baseline's
  range no extrapolation is done: the nearest point is used and the cell is flagged
  (``^`` the baseline spent more bits than the target, e.g. Opus at its ~4.9 kbps floor
  against a 3 kbps target, so a target win is conservative; ``v`` it spent fewer, so a
  target win is not conclusive).
* :func:`write_report` writes ``report.md``; :func:`write_plots` the PNG plots. Both name
  the evaluation set (``results["eval_set"]``, see :mod:`.clips`): the report's first line
  under its title, and every figure's title.

Example:
    >>> items = [{"system": "a", "condition": "bern10", "bitrate_kbps": 6.0, "clip": "c",
    ...           "bytes_sent": 750, "duration_s": 1.0, "n_slots": 50, "n_lost": 5,
    ...           "n_concealed": 5, "metrics": {"pesq_wb": 2.0}}]
    >>> s = summarize(items)
    >>> s[0]["measured_kbps"], s[0]["realised_loss_rate"], s[0]["pesq_wb"]
    (6.0, 0.1, 2.0)
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .conditions import parse_condition

METRIC_LABELS: dict[str, str] = {
    "pesq_wb": "PESQ-WB",
    "stoi": "STOI",
    "si_sdr_db": "SI-SDR dB",
    "log_mel_dist": "log-mel dist",
    "plcmos": "PLCMOS v2",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_p808": "DNSMOS P.808",
}
LOWER_IS_BETTER = {"log_mel_dist"}
OPUS_SYSTEMS = ("opus13_plc", "opus13_fec", "opus15_deep_plc", "opus15_fec", "opus15_dred")
TARGET_SYSTEMS = ("soundspring", "soundspring_fec")
REPORT_BITRATES = (3.0, 6.0, 12.0)
REPORT_LOSS_RATES = (0.10, 0.20, 0.30)
FAMILY_TITLES = {"bernoulli": "Bernoulli", "ge_b2": "Gilbert-Elliott, mean burst 2",
                 "ge_b4": "Gilbert-Elliott, mean burst 4", "wlan": "WLAN 3-state Markov"}


def _mean_ci(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(v.size))


def summarize(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (system, condition, bitrate) aggregates of item records.

    Returns:
        Rows with ``system``, ``condition``, ``bitrate_kbps`` (nominal), ``n`` (clips),
        ``measured_kbps`` (total bytes x 8 / total duration), ``realised_loss_rate`` (lost /
        sent slots), ``n_lost``, ``n_concealed``, ``<metric>`` means, ``<metric>_ci95``
        half-widths, and summed counts from ``info`` (``n_plc``, ``n_fec``, ``n_dred``).
    """
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        groups[(it["system"], it["condition"], float(it["bitrate_kbps"]))].append(it)
    rows = []
    for (sys_name, cond, br), its in sorted(groups.items()):
        dur = sum(float(i["duration_s"]) for i in its)
        slots = sum(int(i["n_slots"]) for i in its)
        row: dict[str, Any] = {
            "system": sys_name, "condition": cond, "bitrate_kbps": br, "n": len(its),
            "measured_kbps": round(sum(int(i["bytes_sent"]) for i in its) * 8 / dur / 1000, 4),
            "realised_loss_rate": round(sum(int(i["n_lost"]) for i in its) / max(slots, 1), 4),
            "n_lost": sum(int(i["n_lost"]) for i in its),
            "n_concealed": sum(int(i["n_concealed"]) for i in its),
        }
        keys = sorted({k for i in its for k in i.get("metrics", {})})
        for k in keys:
            m, ci = _mean_ci([i["metrics"].get(k, float("nan")) for i in its])
            row[k], row[f"{k}_ci95"] = round(m, 4), round(ci, 4)
        for k in ("n_plc", "n_fec", "n_dred", "n_muted_frames"):
            vals = [i.get("info", {}).get(k) for i in its]
            if any(v is not None for v in vals):
                row[k] = int(sum(v or 0 for v in vals))
        rows.append(row)
    return rows


def _index(summary: list[dict[str, Any]]) -> dict[tuple[str, str, float], dict[str, Any]]:
    return {(r["system"], r["condition"], float(r["bitrate_kbps"])): r for r in summary}


def matched_delta(summary: list[dict[str, Any]], target: str, baseline: str, condition: str,
                  bitrate_kbps: float, metric: str) -> dict[str, Any] | None:
    """Target minus baseline ``metric`` at the target's measured bitrate (see module doc).

    Returns:
        None when either side is missing, else ``{"target", "baseline", "delta",
        "target_kbps", "baseline_kbps", "flag"}``; ``delta`` > 0 means the target is better
        (for log-mel distance the sign is flipped so that > 0 still means better); ``flag``
        is ``""`` (interpolated), ``"^"`` or ``"v"`` (see module doc).
    """
    idx = _index(summary)
    t = idx.get((target, condition, float(bitrate_kbps)))
    if t is None or metric not in t or math.isnan(t[metric]):
        return None
    pts = sorted((r["measured_kbps"], r[metric]) for (s, c, _), r in idx.items()
                 if s == baseline and c == condition and metric in r and not math.isnan(r[metric]))
    if not pts:
        return None
    rt = t["measured_kbps"]
    rates = np.log([p[0] for p in pts])
    vals = np.asarray([p[1] for p in pts])
    if rt < pts[0][0]:
        bv, bk, flag = pts[0][1], pts[0][0], "^"
    elif rt > pts[-1][0]:
        bv, bk, flag = pts[-1][1], pts[-1][0], "v"
    else:
        bv, bk, flag = float(np.interp(math.log(rt), rates, vals)), rt, ""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    return {"target": t[metric], "baseline": float(bv), "delta": sign * (t[metric] - float(bv)),
            "target_kbps": rt, "baseline_kbps": bk, "flag": flag}


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{nd}f}"


def _family_conditions(conditions: list[str], family: str) -> list[str]:
    out = []
    for c in conditions:
        cond = parse_condition(c)
        if cond.family != family:
            continue
        if family == "wlan" or any(abs(cond.loss_rate - r) < 1e-9 for r in REPORT_LOSS_RATES):
            out.append(c)
    return out


def comparison_tables(summary: list[dict[str, Any]], conditions: list[str], target: str,
                      baselines: list[str], metric: str = "pesq_wb",
                      bitrates: tuple[float, ...] = REPORT_BITRATES) -> list[str]:
    """Markdown lines: one table per loss model comparing ``target`` with each baseline."""
    lines: list[str] = []
    label = METRIC_LABELS.get(metric, metric)
    for family, title in FAMILY_TITLES.items():
        conds = _family_conditions(conditions, family)
        if not conds:
            continue
        lines += [f"#### {title}: {target} vs each baseline, {label}", "",
                  (f"Cells: {target} minus baseline at {target}'s measured kbps (> 0: {target} "
                   "better); ^/v: outside the baseline's measured range (see notes)."), "",
                  "| kbps class | condition | " + f"{target} {label} (kbps) | "
                  + " | ".join(baselines) + " |",
                  "|---|---|---|" + "---|" * len(baselines)]
        wins: dict[str, list[float]] = defaultdict(list)
        for br in bitrates:
            for c in conds:
                row = _index(summary).get((target, c, br))
                if row is None or metric not in row:
                    continue
                cells = []
                for b in baselines:
                    d = matched_delta(summary, target, b, c, br, metric)
                    if d is None:
                        cells.append("-")
                        continue
                    wins[b].append(d["delta"])
                    cells.append(f"{d['delta']:+.2f}{d['flag']} ({_fmt(d['baseline'])} @ "
                                 f"{d['baseline_kbps']:.1f})")
                lines.append(f"| {br:g} | {c} | {_fmt(row[metric])} ({row['measured_kbps']:.1f}) | "
                             + " | ".join(cells) + " |")
        lines.append("")
        for b in baselines:
            if wins[b]:
                w = sum(1 for d in wins[b] if d > 0)
                lines.append(f"- vs {b}: {target} better in {w}/{len(wins[b])} cells; mean "
                             f"delta {np.mean(wins[b]):+.2f}, range {min(wins[b]):+.2f} .. "
                             f"{max(wins[b]):+.2f}")
        lines.append("")
    return lines


def condition_tables(summary: list[dict[str, Any]], conditions: list[str],
                     systems: list[str], metrics: list[str]) -> list[str]:
    """Markdown lines: for each condition, every system x bitrate with every metric."""
    lines: list[str] = []
    idx = _index(summary)
    bitrates = sorted({r["bitrate_kbps"] for r in summary})
    head = ["system", "kbps class", "measured kbps", "slot loss"] + \
        [METRIC_LABELS.get(m, m) for m in metrics] + ["n"]
    for c in conditions:
        rows = [idx[(s, c, b)] for s in systems for b in bitrates if (s, c, b) in idx]
        if not rows:
            continue
        lines += [f"#### {c}: {parse_condition(c).label}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in rows:
            vals = [r["system"], f"{r['bitrate_kbps']:g}", _fmt(r["measured_kbps"]),
                    f"{100 * r['realised_loss_rate']:.1f} %"]
            for m in metrics:
                v = r.get(m)
                ci = r.get(f"{m}_ci95")
                vals.append(_fmt(v) + (f" ±{_fmt(ci)}" if ci is not None and not math.isnan(ci)
                                       else ""))
            lines.append("| " + " | ".join(vals + [str(r["n"])]) + " |")
        lines.append("")
    return lines


PAIRED_BASELINE = "soundspring_repeat"
"""The concealment control every other codec system is paired against, clip by clip, on
the same loss masks (repeat-last-frame, ``config.DEFAULT_CONCEAL``)."""

PAIRED_METRICS = ("pesq_wb", "stoi", "plcmos")


def paired_deltas(items: list[dict[str, Any]], baseline: str = PAIRED_BASELINE,
                  metrics: tuple[str, ...] = PAIRED_METRICS) -> list[dict[str, Any]]:
    """Per-clip differences of every system against ``baseline`` on the same items.

    Items pair when they share condition, nominal bitrate and clip (so the same seeded loss
    mask and, for the codec systems, the same coded tokens). Only systems with a paired item
    for every one of the baseline's are compared.

    Returns:
        Rows ``{"system", "condition", "bitrate_kbps", "n", "<metric>", "<metric>_delta",
        "<metric>_ci95", "<metric>_wins"}`` (mean of the system, mean per-clip difference
        system - baseline with its 95 % half-width, clips where the system scored strictly
        better; for log-mel distance "better" is lower and the difference is negated), in
        (condition, bitrate, system) order.

    Example:
        >>> it = lambda s, c, v: {"system": s, "condition": "bern10", "bitrate_kbps": 6.0,
        ...                       "clip": c, "metrics": {"pesq_wb": v}}
        >>> rows = paired_deltas([it("soundspring_repeat", "a", 1.0), it("x", "a", 1.5),
        ...                       it("soundspring_repeat", "b", 2.0), it("x", "b", 1.9)],
        ...                      metrics=("pesq_wb",))
        >>> rows[0]["pesq_wb_delta"], rows[0]["pesq_wb_wins"], rows[0]["n"]
        (0.2, 1, 2)
    """
    by_key: dict[tuple[str, float, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for it in items:
        by_key[(it["condition"], float(it["bitrate_kbps"]), it["clip"])][it["system"]] = it
    groups: dict[tuple[str, float, str], list[tuple[dict, dict]]] = defaultdict(list)
    base_n: dict[tuple[str, float], int] = defaultdict(int)
    for (cond, br, _clip), per_sys in sorted(by_key.items()):
        if baseline not in per_sys:
            continue
        base_n[(cond, br)] += 1
        for name, it in per_sys.items():
            if name != baseline:
                groups[(cond, br, name)].append((it, per_sys[baseline]))
    rows = []
    for (cond, br, name), pairs in sorted(groups.items()):
        if len(pairs) != base_n[(cond, br)]:
            continue
        row: dict[str, Any] = {"system": name, "condition": cond, "bitrate_kbps": br,
                               "n": len(pairs)}
        for m in metrics:
            sign = -1.0 if m in LOWER_IS_BETTER else 1.0
            both = [(a["metrics"].get(m), b["metrics"].get(m)) for a, b in pairs]
            both = [(x, y) for x, y in both if x is not None and y is not None
                    and not math.isnan(x) and not math.isnan(y)]
            if not both:
                continue
            d, ci = _mean_ci([sign * (x - y) for x, y in both])
            row[m] = round(float(np.mean([x for x, _ in both])), 4)
            row[f"{m}_delta"], row[f"{m}_ci95"] = round(d, 4), round(ci, 4)
            row[f"{m}_wins"] = sum(1 for x, y in both if sign * (x - y) > 0)
        rows.append(row)
    return rows


def paired_tables(items: list[dict[str, Any]], baseline: str = PAIRED_BASELINE,
                  metrics: tuple[str, ...] = PAIRED_METRICS) -> list[str]:
    """Markdown lines of ``paired_deltas`` (empty when nothing pairs with ``baseline``)."""
    rows = paired_deltas(items, baseline, metrics)
    shown = [m for m in metrics if any(f"{m}_delta" in r for r in rows)]
    if not rows or not shown:
        return []
    head = "| condition | kbps class | system | n | " + " | ".join(
        f"{METRIC_LABELS[m]} | Δ vs {baseline} (95 % CI) | wins" for m in shown) + " |"
    lines = [f"## Paired per clip against {baseline}", "",
             (f"Same loss masks, same clips: each Δ is the mean per-clip difference against "
              f"`{baseline}` with its 95 % interval (> 0: better); wins count the clips where "
              "the system scored strictly higher."), "", head,
             "|---|---|---|---|" + "---|---|---|" * len(shown)]
    for r in rows:
        cells = []
        for m in shown:
            if f"{m}_delta" not in r:
                cells.append("- | - | -")
                continue
            cells.append(f"{r[m]:.3f} | {r[f'{m}_delta']:+.3f} ±{r[f'{m}_ci95']:.3f} | "
                         f"{r[f'{m}_wins']}/{r['n']}")
        lines.append(f"| {r['condition']} | {r['bitrate_kbps']:g} | {r['system']} | {r['n']} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def write_report(results: dict[str, Any], path: str | Path) -> Path:
    """Writes ``report.md`` from the ``results.json`` dict built by the sweep."""
    summary = results["summary"]
    systems = list(results["systems"])
    ran = [s for s in systems if results["systems"][s]["available"]]
    conditions = results["settings"]["conditions"]
    metrics = [m for m in METRIC_LABELS if any(m in r for r in summary)]
    from .clips import heading_line

    st = results["settings"]
    lines = [
        "# SoundSpring loss sweep", "",
        heading_line(results.get("eval_set") or {"name": st.get("eval_set", "unnamed"),
                                                  "clips": st["n_clips"]}), "",
        (f"{st['n_clips']} clips, {st['audio_seconds']:.1f} s of audio; conditions "
         f"{', '.join(conditions)}; nominal bitrates "
         f"{', '.join(f'{b:g}' for b in st['bitrates'])} kbps; loss mapping "
         f"`{st['loss_mapping']}` (see `soundspring.evaluation.conditions`); codec "
         f"`{st['codec_id']}`; {len(results['items'])} items."), "",
        "## Systems", "", "| system | description | slot | status |", "|---|---|---|---|",
    ]
    for s, meta in results["systems"].items():
        status = "ran" if meta["available"] else f"skipped: {meta['reason']}"
        fl = results.get("failures", {}).get(s)
        if fl:
            status = f"FAILED on {fl['items']} items: {fl['error']}"
        lines.append(f"| {s} | {meta['description']} | {meta['slot_ms']:g} ms | {status} |")
    lines += [""]
    if results.get("unsupported"):
        lines += ["Not run (no operating point): " + "; ".join(
            f"{u['system']} @ {u['bitrate_kbps']:g} kbps ({u['reason']})"
            for u in results["unsupported"]), ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in results.get("notes", [])] + [""]

    lines += ["## SoundSpring vs Opus at matched total bitrate", ""]
    opus = [s for s in OPUS_SYSTEMS if s in ran]
    targets = [t for t in TARGET_SYSTEMS if t in ran]
    for t in TARGET_SYSTEMS:
        if t in results["systems"] and t not in ran:
            lines.append(f"**{t}: pending** ({results['systems'][t]['reason']}); the tables "
                         "below show every other system.")
    lines.append("")
    cmp_metrics = [m for m in ("pesq_wb", "plcmos") if m in metrics]
    control = ["codec_nolm"] if "codec_nolm" in ran else []
    for t in targets:
        for m in cmp_metrics:
            lines += comparison_tables(summary, conditions, t, opus + control, m)
    if "codec_nolm" in ran:
        lines += ["### The control (codec without LM) vs Opus, same rule", ""]
        for m in cmp_metrics:
            lines += comparison_tables(summary, conditions, "codec_nolm", opus, m)
    if PAIRED_BASELINE in ran:
        lines += paired_tables(results["items"])
    lines += ["## Every number, per condition (mean ±95 % CI over clips)", ""]
    lines += condition_tables(summary, conditions, ran, metrics)
    lines += ["## Compute", "",
              ("Seconds per second of clip audio, per item (one system x condition x bitrate); "
               "wall time includes whatever else ran on the machine, CPU time is this "
               "process's (and its workers')."),
              "", "| system | system wall | system CPU | metrics wall | metrics CPU | items |",
              "|---|---|---|---|---|---|"]
    for s, tm in results.get("timing", {}).get("per_system", {}).items():
        lines.append(f"| {s} | {tm['system_s_per_clip_s']:.3f} | "
                     f"{tm.get('system_cpu_s_per_clip_s', float('nan')):.3f} | "
                     f"{tm['metrics_s_per_clip_s']:.3f} | "
                     f"{tm.get('metrics_cpu_s_per_clip_s', float('nan')):.3f} | {tm['items']} |")
    tt = results.get("timing", {})
    if tt.get("total_s_per_clip_s") is not None:
        lines += ["", (f"This sweep: {tt['total_s_per_clip_s']:.2f} s wall "
                       f"({tt.get('total_cpu_s_per_clip_s', float('nan')):.2f} s CPU) of compute "
                       "per second of clip audio over all its items.")]
        full = tt.get("full_protocol")
        if full:
            lines.append(
                f"Full protocol ({full['items_per_clip']} items per clip: {full['systems']} "
                f"systems x {full['conditions']} conditions x {full['bitrates']} bitrates): about "
                f"{full['cpu_s_per_clip_s']:.1f} s CPU per clip-second, so a 60-minute sweep on "
                f"one core covers about {full['clip_s_per_hour']:.0f} s of audio.")
    lines.append("")
    if results.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in results["plots"]]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_plots(results: dict[str, Any], out_dir: str | Path) -> list[str]:
    """Quality vs loss rate (per bitrate) and quality vs measured bitrate (per condition).

    Returns the PNG file names written in ``out_dir``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    from .clips import title_line

    set_title = title_line(results.get("eval_set") or {
        "name": results["settings"].get("eval_set", "unnamed"),
        "clips": results["settings"].get("n_clips", "?")})
    summary = results["summary"]
    idx = _index(summary)
    systems = [s for s, m in results["systems"].items() if m["available"]]
    conditions = results["settings"]["conditions"]
    bitrates = sorted({r["bitrate_kbps"] for r in summary})
    metrics = [m for m in ("pesq_wb", "stoi", "plcmos") if any(m in r for r in summary)]
    out_dir = Path(out_dir)
    written = []
    styles = {s: {"marker": "osv^D<>p"[i % 8], "linestyle": ("-", "--", ":", "-.")[i % 4],
                  "ms": 4, "alpha": 0.85} for i, s in enumerate(systems)}
    conds = [parse_condition(c) for c in conditions]
    families = [f for f in ("bernoulli", "ge_b2", "ge_b4")
                if sum(c.family == f for c in conds) >= 1]
    zero = [c for c in conds if c.loss_rate == 0]
    for m in metrics:
        label = METRIC_LABELS[m]
        if families and bitrates:
            fig, axes = plt.subplots(len(families), len(bitrates), squeeze=False,
                                     figsize=(3.2 * len(bitrates), 2.6 * len(families)))
            for i, fam in enumerate(families):
                fc = sorted(zero + [c for c in conds if c.family == fam and c.loss_rate > 0],
                            key=lambda c: c.loss_rate)
                for j, br in enumerate(bitrates):
                    ax = axes[i][j]
                    for s in systems:
                        pts = [(100 * c.loss_rate, idx[(s, c.id, br)][m]) for c in fc
                               if (s, c.id, br) in idx and m in idx[(s, c.id, br)]]
                        if pts:
                            ax.plot(*zip(*pts), label=s, **styles[s])
                    ax.set_title(f"{FAMILY_TITLES[fam]}, {br:g} kbps class", fontsize=7)
                    ax.set_xlabel("loss rate %", fontsize=7)
                    ax.set_ylabel(label, fontsize=7)
                    ax.tick_params(labelsize=6)
                    ax.grid(alpha=0.3)
            axes[0][0].legend(fontsize=5)
            fig.suptitle(f"{label} vs loss rate: {set_title}", fontsize=8)
            fig.tight_layout()
            name = f"quality_vs_loss_{m}.png"
            fig.savefig(out_dir / name, dpi=110)
            plt.close(fig)
            written.append(name)
        ncol = min(4, len(conditions))
        nrow = math.ceil(len(conditions) / ncol)
        fig, axes = plt.subplots(nrow, ncol, squeeze=False, figsize=(3.2 * ncol, 2.6 * nrow))
        for k, c in enumerate(conds):
            ax = axes[k // ncol][k % ncol]
            for s in systems:
                pts = sorted((idx[(s, c.id, b)]["measured_kbps"], idx[(s, c.id, b)][m])
                             for b in bitrates if (s, c.id, b) in idx and m in idx[(s, c.id, b)])
                if pts:
                    ax.plot(*zip(*pts), label=s, **styles[s])
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator([1.5, 2, 3, 4, 6, 8, 12, 16, 24]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(c.label, fontsize=7)
            ax.set_xlabel("measured total kbps", fontsize=7)
            ax.set_ylabel(label, fontsize=7)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
        for k in range(len(conds), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        axes[0][0].legend(fontsize=5)
        fig.suptitle(f"{label} vs measured bitrate: {set_title}", fontsize=8)
        fig.tight_layout()
        name = f"quality_vs_bitrate_{m}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


__all__ = [
    "METRIC_LABELS",
    "comparison_tables",
    "condition_tables",
    "matched_delta",
    "summarize",
    "write_plots",
    "write_report",
]
