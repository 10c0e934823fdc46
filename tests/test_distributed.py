"""Data-parallel training under torchrun: two CPU processes (gloo over loopback).

Both ranks must hold identical weights at every checkpoint (gradients averaged by
DistributedDataParallel, the codec's EMA codebooks averaged across ranks), rank 0 alone
writes the run directory, a resumed run continues at the saved step, and two ranks learn
from different data (their weights differ from a one-process run with the same seed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from soundspring.data.tokens import save_tokens
from soundspring.models.masked_lm import SpringLM, springlm_tiny
from soundspring.models.weights_io import read_lm_weights
from soundspring.training.distributed import state_digest

HASH = "34" * 32
TIMEOUT_S = 240


def _run(args: list[str], nproc: int, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "soundspring", *args]
    else:
        cmd = [sys.executable, "-m", "soundspring", *args]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT_S, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _events(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (run / "train.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == kind]


def _tokens(d: Path) -> Path:
    rng = np.random.default_rng(0)

    def clips(n: int, frames: int) -> list[np.ndarray]:
        out = []
        for _ in range(n):
            base = np.cumsum(rng.integers(0, 3, (24, frames)), axis=1) % 64
            out.append(((base + 7 * np.arange(24)[:, None]) % 1024).astype(np.int64))
        return out

    save_tokens(d / "train.npz", clips(8, 80), [f"t{i}" for i in range(8)], HASH)
    save_tokens(d / "heldout.npz", clips(2, 70), ["h0", "h1"], HASH)
    return d


LM_ARGS = ["--model-preset", "tiny", "--batch-size", "2", "--crop-frames", "20",
           "--warmup-steps", "2", "--eval-every-min", "0", "--checkpoint-every-min", "0",
           "--eval-windows", "2", "--threads", "1", "--no-progress"]


def test_torchrun_lm_replicas_agree_and_resume(tmp_path) -> None:
    tokens = _tokens(tmp_path / "tokens")
    run = tmp_path / "run"
    _run(["train", "lm", "--run-dir", str(run), "--tokens-dir", str(tokens),
          "--max-steps", "3", *LM_ARGS], 2, tmp_path)
    (start,) = _events(run, "start")
    assert start["world_size"] == 2 and not start["resumed"]
    ckpts = _events(run, "checkpoint")
    assert len(ckpts) >= 3 and all(len(c["replica_digests"]) == 2 for c in ckpts)
    assert all(c["replicas_identical"] for c in ckpts), ckpts
    assert len({c["replica_digests"][0] for c in ckpts}) > 1  # the weights moved
    assert [c["step"] for c in ckpts] == [0, 1, 2, 3]  # one writer: no doubles
    # resume under torchrun continues at the saved step, replicas still equal
    _run(["train", "lm", "--run-dir", str(run), "--tokens-dir", str(tokens),
          "--max-steps", "5", *LM_ARGS], 2, tmp_path)
    starts = _events(run, "start")
    assert starts[-1]["resumed"] and starts[-1]["step"] == 3
    last = _events(run, "checkpoint")[-1]
    assert last["step"] == 5 and last["replicas_identical"]
    assert read_lm_weights(run / "lm_latest.pt")[4]["step"] == 5
    # two ranks see different crops: not the weights of one process with the same seed
    solo = tmp_path / "solo"
    _run(["train", "lm", "--run-dir", str(solo), "--tokens-dir", str(tokens),
          "--max-steps", "3", *LM_ARGS], 1, tmp_path)
    assert not _events(solo, "checkpoint")  # one process records no replica digests
    lm = SpringLM(springlm_tiny())
    lm.load_state_dict(torch.load(solo / "checkpoint.pt", weights_only=True)["model"])
    at3 = {c["step"]: c["replica_digests"][0] for c in ckpts}[3]
    assert state_digest(lm) != at3


def test_torchrun_codec_ema_codebooks_agree(tmp_path) -> None:
    t = np.arange(24000) / 16000
    rows = []
    (tmp_path / "wav/en").mkdir(parents=True)
    for i in range(6):
        f0 = 110 + 15 * i
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        sf.write(tmp_path / f"wav/en/c{i}.wav", (0.1 * x).astype(np.float32), 16000)
        rows.append({"path": f"wav/en/c{i}.wav", "language": "en", "duration_s": 1.5,
                     "split": "heldout" if i < 2 else "train"})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    _run(["train", "codec", "--run-dir", str(run), "--manifest", str(manifest),
          "--preset", "smoke", "--codec-preset", "tiny", "--max-steps", "3",
          "--augment", "real-mics", "--threads", "1", "--no-progress"], 2, tmp_path)
    ckpts = _events(run, "checkpoint")
    assert ckpts and all(c["replicas_identical"] for c in ckpts), ckpts
    assert _events(run, "start")[0]["world_size"] == 2
    assert len((run / "eval.jsonl").read_text().splitlines()) == 1  # rank 0 alone evaluates
