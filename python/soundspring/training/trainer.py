"""The codec training loop: resumable, time-based checkpoints and held-out evaluation.

Run directory layout::

    config.json        codec + train configs of the run
    checkpoint.pt      full state (model incl. EMA codebooks, optimizer, step, RNG, clock)
    codec_latest.pt    shipped-format fp16 weights of the latest checkpoint
    train.jsonl        one line per ``log_every_steps`` steps (losses, lr, codebook usage)
    eval.jsonl         one line per evaluation (PESQ-WB/STOI/SI-SDR/log-mel per bitrate)
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch

from ..config import CodecConfig, TrainConfig, from_json, to_json
from ..data.corpus import read_manifest
from ..errors import ConfigError
from ..evaluation.codec_eval import evaluate_codec, fixed_heldout_subset
from ..models.codec import (
    DEFAULT_WEIGHTS,
    Codec,
    codec_from_weights,
    codec_tokenizer_hash,
    save_weights,
)
from .checkpoint import atomic_save, load_checkpoint
from .dataset import load_clips, train_sampler
from .losses import MultiResolutionSTFTLoss, MultiScaleMelLoss


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.lr_decay_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


class Trainer:
    def __init__(self, run_dir: str | Path, codec_cfg: CodecConfig, train_cfg: TrainConfig,
                 manifest: str | Path | None = None, init_from: str | None = None,
                 progress: bool = True,
                 extra_train_manifests: tuple[str | Path, ...] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.run_dir / "checkpoint.pt"
        self.progress = progress
        torch.set_num_threads(train_cfg.threads)
        resumed = None
        if self.ckpt_path.exists():
            resumed = load_checkpoint(self.ckpt_path)
            codec_cfg = from_json(CodecConfig, resumed["codec_config"])
            train_cfg = from_json(TrainConfig, resumed["train_config"]) if train_cfg is None \
                else train_cfg
        self.ccfg, self.cfg = codec_cfg, train_cfg
        torch.manual_seed(train_cfg.seed)
        if init_from and resumed is None:
            path = DEFAULT_WEIGHTS if init_from == "default" else Path(init_from)
            self.model = codec_from_weights(path)
            self.ccfg = self.model.cfg
        else:
            self.model = Codec(self.ccfg)
        self.model.train()
        if train_cfg.freeze_tokenizer:
            if not (init_from or resumed is not None):
                raise ConfigError("freeze_tokenizer needs a trained codec: pass --init-from")
            for mod in (self.model.encoder, self.model.quantizer):
                mod.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=train_cfg.lr,
                                     betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
        self.mel = MultiScaleMelLoss()
        self.stft = MultiResolutionSTFTLoss()
        self.step = 0
        self.train_seconds = 0.0
        self.last_eval: dict = {}
        self.tokenizer_hash = None
        if resumed is not None:
            self.model.load_state_dict(resumed["model"])
            self.opt.load_state_dict(resumed["optimizer"])
            self.step = int(resumed["step"])
            self.train_seconds = float(resumed["train_seconds"])
            self.last_eval = json.loads(resumed.get("last_eval", "{}"))
            torch.set_rng_state(resumed["torch_rng"])
        old = self.run_dir / "config.json"
        old_cfg = json.loads(old.read_text()) if old.exists() and resumed else None
        init_meta = (old_cfg.get("init_meta") if old_cfg is not None
                     else getattr(self.model, "meta", None) if init_from else None)
        if old_cfg is not None and not extra_train_manifests:  # a resumed run keeps its data
            extra_train_manifests = tuple(old_cfg.get("extra_train_manifests", ()))
        (self.run_dir / "config.json").write_text(json.dumps(
            {"codec": json.loads(to_json(self.ccfg)), "train": json.loads(to_json(self.cfg)),
             "init_from": init_from, "init_meta": init_meta,
             "extra_train_manifests": [str(m) for m in extra_train_manifests]},
            indent=1, sort_keys=True))
        self.resumed = resumed is not None
        if train_cfg.freeze_tokenizer:
            self.tokenizer_hash = codec_tokenizer_hash(self.model)
        self.manifest = manifest
        seed = train_cfg.seed + self.step  # a resumed run continues with fresh crops
        self.sampler, self.train_minutes = train_sampler(
            manifest, train_cfg.crop_s, train_cfg.gain_db_range, seed, train_cfg.speed_range,
            train_cfg.perturb_prob, tuple(extra_train_manifests))
        held = fixed_heldout_subset(read_manifest(manifest), train_cfg.eval_clips)
        self.eval_names = [c.path.name for c in held]
        self.eval_wavs = load_clips(held, progress=False)
        self._stop = False

    # ---- persistence -------------------------------------------------------------------
    def save(self) -> None:
        if self.tokenizer_hash is not None and codec_tokenizer_hash(self.model) != self.tokenizer_hash:
            raise RuntimeError("freeze_tokenizer run changed the encoder or quantizer")
        atomic_save({
            "codec_config": to_json(self.ccfg), "train_config": to_json(self.cfg),
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "step": self.step, "train_seconds": self.train_seconds,
            "last_eval": json.dumps(self.last_eval), "torch_rng": torch.get_rng_state(),
        }, self.ckpt_path)
        save_weights(self.model, self.run_dir / "codec_latest.pt",
                     meta={"step": self.step, "train_minutes": round(self.train_seconds / 60, 1),
                           "heldout": self.last_eval})

    def evaluate(self) -> dict:
        t0 = time.time()
        res = evaluate_codec(self.model, self.eval_wavs, self.cfg.eval_bitrates_kbps)
        self.last_eval = {"step": self.step, "train_minutes": round(self.train_seconds / 60, 2),
                          "metrics": res, "clips": len(self.eval_wavs)}
        _append(self.run_dir / "eval.jsonl", self.last_eval | {"eval_seconds": round(
            time.time() - t0, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return res

    # ---- loop ----------------------------------------------------------------------------
    def _train_step(self) -> dict:
        x = torch.from_numpy(self.sampler.batch(self.cfg.batch_size))
        for g in self.opt.param_groups:
            g["lr"] = _lr(self.cfg, self.step)
        if self.cfg.freeze_tokenizer:
            m = self.model
            m.encoder.eval()
            m.quantizer.eval()  # eval: no EMA codebook updates
            with torch.no_grad():
                q = m.quantizer(m.encoder(x), m.quantizer.sample_n_q(x.shape[0]))
            y = m.decoder(q.quantized)
        else:
            y, q = self.model(x)
        l_mel = self.mel(y, x)
        l_stft = self.stft(y, x)
        l_l1 = torch.mean(torch.abs(y - x))
        loss = self.cfg.w_mel * l_mel + self.cfg.w_stft * l_stft + self.cfg.w_l1 * l_l1
        if not self.cfg.freeze_tokenizer:
            loss = loss + self.cfg.w_commit * q.commit_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], self.cfg.grad_clip)
        self.opt.step()
        return {"loss": loss.item(), "mel": l_mel.item(), "stft": l_stft.item(),
                "l1": l_l1.item(), "commit": q.commit_loss.item(), "grad_norm": float(gn),
                "ppl": q.perplexity.tolist(), "usage": q.usage.tolist(),
                "residual_rel": q.residual_rel.tolist()}

    def _handle_signal(self, signum, frame) -> None:
        self._stop = True

    def run(self) -> dict:
        from tqdm import tqdm

        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        cfg = self.cfg
        log_path = self.run_dir / "train.jsonl"
        _append(log_path, {"event": "start", "step": self.step, "resumed": self.resumed,
                           "params": self.model.num_parameters(),
                           "train_minutes_audio": round(self.train_minutes, 1),
                           "eval_clips": self.eval_names,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        last_ckpt = last_eval_t = self.train_seconds
        if self.last_eval:
            last_eval_t = self.last_eval.get("train_minutes", 0.0) * 60
        acc: dict[str, list] = {}
        t_prev = t_log = time.time()
        bar = tqdm(initial=self.step, total=cfg.max_steps or None, unit="step",
                   disable=not self.progress, mininterval=10.0, dynamic_ncols=False)
        try:
            while not self._stop:
                if (cfg.max_steps and self.step >= cfg.max_steps) or (
                        cfg.max_hours and self.train_seconds >= cfg.max_hours * 3600):
                    if self.last_eval.get("step") != self.step:
                        self.evaluate()  # a run that finishes ends with a held-out evaluation
                    break
                stats = self._train_step()
                self.step += 1
                now = time.time()
                self.train_seconds += now - t_prev
                t_prev = now
                for k, v in stats.items():
                    acc.setdefault(k, []).append(v)
                if not all(math.isfinite(stats[k]) for k in ("loss", "grad_norm")):
                    raise FloatingPointError(f"non-finite loss at step {self.step}: {stats}")
                bar.update(1)
                if self.step % cfg.log_every_steps == 0:
                    row = {"step": self.step, "train_minutes": round(self.train_seconds / 60, 2),
                           "lr": _lr(cfg, self.step)}
                    for k, v in acc.items():
                        arr = np.mean(np.asarray(v), axis=0)
                        row[k] = [round(float(a), 3) for a in arr] if np.ndim(arr) else round(
                            float(arr), 5)
                    row["steps_per_s"] = round(len(acc["loss"]) / max(1e-9, now - t_log), 3)
                    t_log = now
                    _append(log_path, row)
                    bar.set_postfix(loss=row["loss"], mel=row["mel"])
                    acc = {}
                if cfg.eval_every_min and self.train_seconds - last_eval_t >= cfg.eval_every_min * 60:
                    res = self.evaluate()
                    bar.write(f"step {self.step}: heldout {json.dumps(res)}")
                    last_eval_t = self.train_seconds
                    self.save()
                    last_ckpt = self.train_seconds
                    t_prev = t_log = time.time()  # evaluation time is not training time
                elif self.train_seconds - last_ckpt >= cfg.checkpoint_every_min * 60:
                    self.save()
                    last_ckpt = self.train_seconds
                    t_prev = t_log = time.time()
        finally:
            bar.close()
            self.save()
            _append(log_path, {"event": "stop", "step": self.step,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
            for s, h in old.items():
                signal.signal(s, h)
        return {"step": self.step, "train_minutes": self.train_seconds / 60,
                "last_eval": self.last_eval}
