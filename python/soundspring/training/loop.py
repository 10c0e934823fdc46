"""The resumable training loop shared by the codec and SpringLM trainers.

It owns what both runs do the same way: the stopping rules (``max_steps``, ``max_hours``
of training time, SIGINT/SIGTERM), time-based held-out evaluation and checkpoints
(evaluation time is not training time), the ``train.jsonl`` log (start, one averaged row
per ``log_every_steps``, stop), the tqdm bar, and under torchrun the agreement between
ranks: rank 0 decides, every rank steps, rank 0 alone evaluates and writes, and each
checkpoint records every replica's digest (``replicas_identical``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from .distributed import DistInfo, replica_digests, sync_decisions


def append_jsonl(path: Path, row: dict) -> None:
    """Appends one JSON line (sorted keys)."""
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def cosine_lr(peak: float, warmup_steps: int, decay_steps: int, min_ratio: float,
              step: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps``, then a cosine down to
    ``peak * min_ratio`` at ``decay_steps`` (and flat after)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, decay_steps - warmup_steps))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a run stops, logs, evaluates and checkpoints (0 disables a limit/cadence)."""

    max_steps: int = 0
    max_hours: float = 0.0
    log_every_steps: int = 25
    eval_every_min: float = 30.0
    checkpoint_every_min: float = 5.0

    @classmethod
    def of(cls, cfg: object) -> Schedule:
        """The schedule fields of a training config (``TrainConfig``, ``LMTrainConfig``)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Progress:
    """The counters a checkpoint stores and a resumed run continues from."""

    step: int = 0
    train_seconds: float = 0.0
    last_eval_step: int | None = None
    last_eval_seconds: float | None = None

    @classmethod
    def resume(cls, step: int, train_seconds: float, last_eval: dict) -> Progress:
        """The counters of a checkpoint whose last evaluation row is ``last_eval`` ({} if
        none: the next evaluation is a whole interval away)."""
        minutes = last_eval.get("train_minutes")
        return cls(int(step), float(train_seconds), last_eval.get("step"),
                   None if minutes is None else float(minutes) * 60)


def _mean_row(acc: dict[str, list]) -> dict:
    row: dict = {}
    for k, v in acc.items():
        arr = np.mean(np.asarray(v, dtype=np.float64), axis=0)
        row[k] = ([round(float(a), 3) for a in arr] if np.ndim(arr) else round(float(arr), 5))
    return row


def run_loop(run_dir: Path, progress: Progress, schedule: Schedule, *,
             train_step: Callable[[int], dict], evaluate: Callable[[], str | None],
             save: Callable[[], None], model: nn.Module, dist: DistInfo,
             start_row: dict, lr_at: Callable[[int], float],
             postfix: tuple[str, ...] = ("loss",), show_progress: bool = True) -> Progress:
    """Trains until a stopping rule fires; returns the final counters.

    Args:
        run_dir: where ``train.jsonl`` is appended (rank 0).
        progress: counters of a new (zeros) or resumed run; updated in place.
        schedule: stopping rules and cadences.
        train_step: runs one optimisation step at the given step index and returns its
            statistics (floats, or lists of floats averaged element-wise in the log);
            ``loss`` and ``grad_norm`` must be finite.
        evaluate: held-out evaluation (rank 0 only); records its own results and
            returns a line for the progress bar (or None).
        save: writes the checkpoint (rank 0 only).
        model: the replica whose digest each rank reports at every checkpoint.
        dist: this process's rank (``distributed.init_distributed``).
        start_row: fields of the log's start event (params, data size...).
        lr_at: the learning rate of a step (logged).
        postfix: statistics shown on the bar.
        show_progress: tqdm bar on rank 0.

    Raises:
        FloatingPointError: a non-finite loss or gradient norm.
    """
    from tqdm import tqdm

    stop = {"flag": False}

    def handler(signum, frame) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    log_path = run_dir / "train.jsonl"
    if dist.main:
        append_jsonl(log_path, {"event": "start", "step": progress.step,
                                "world_size": dist.world, "time": now_iso()} | start_row)
    p, sch = progress, schedule
    last_ckpt = p.train_seconds
    last_eval_t = p.last_eval_seconds if p.last_eval_seconds is not None else p.train_seconds
    acc: dict[str, list] = {}
    t_prev = t_log = time.time()
    bar = tqdm(initial=p.step, total=sch.max_steps or None, unit="step",
               disable=not (show_progress and dist.main), mininterval=10.0)

    def checkpoint() -> None:
        digests = replica_digests(model, dist)  # every rank, together
        if dist.main:
            save()
            if dist.active:
                append_jsonl(log_path, {"event": "checkpoint", "step": p.step,
                                        "replica_digests": digests,
                                        "replicas_identical": len(set(digests)) == 1})

    clean = False
    try:
        while True:
            mine = [float(stop["flag"]), 0.0, 0.0, 0.0]
            if dist.main:
                finished = bool((sch.max_steps and p.step >= sch.max_steps) or (
                    sch.max_hours and p.train_seconds >= sch.max_hours * 3600))
                eval_due = bool(sch.eval_every_min
                                and p.train_seconds - last_eval_t >= sch.eval_every_min * 60)
                ckpt_due = p.train_seconds - last_ckpt >= sch.checkpoint_every_min * 60
                mine[1:] = [float(finished), float(eval_due), float(ckpt_due)]
            stopped, finished, eval_due, ckpt_due = (v > 0 for v in sync_decisions(mine, dist))
            if stopped or finished:
                # a run that finishes ends with a held-out evaluation of its last step
                if finished and dist.main and p.last_eval_step != p.step:
                    evaluate()
                    p.last_eval_step, p.last_eval_seconds = p.step, p.train_seconds
                break
            if eval_due or ckpt_due:
                if eval_due and dist.main:
                    line = evaluate()
                    p.last_eval_step, p.last_eval_seconds = p.step, p.train_seconds
                    if line:
                        bar.write(line)
                if eval_due:
                    last_eval_t = p.train_seconds
                checkpoint()
                last_ckpt = p.train_seconds
                t_prev = t_log = time.time()  # evaluation and saving are not training time
            stats = train_step(p.step)
            p.step += 1
            now = time.time()
            p.train_seconds += now - t_prev
            t_prev = now
            for k, v in stats.items():
                acc.setdefault(k, []).append(v)
            if not all(math.isfinite(stats[k]) for k in ("loss", "grad_norm") if k in stats):
                raise FloatingPointError(f"non-finite loss at step {p.step}: {stats}")
            bar.update(1)
            if p.step % sch.log_every_steps == 0:
                row = {"step": p.step, "train_minutes": round(p.train_seconds / 60, 2),
                       "lr": lr_at(p.step)} | _mean_row(acc)
                row["steps_per_s"] = round(len(acc["loss"]) / max(1e-9, now - t_log), 3)
                t_log = now
                acc = {}
                if dist.main:
                    append_jsonl(log_path, row)
                bar.set_postfix({k: row[k] for k in postfix if k in row})
        clean = True
    finally:
        bar.close()
        try:
            if clean:
                checkpoint()
            elif dist.main:  # after an error no collective: another rank may be gone
                save()
        finally:
            if dist.main:
                append_jsonl(log_path, {"event": "stop", "step": p.step, "time": now_iso()})
            for s, h in old.items():
                signal.signal(s, h)
    return p
