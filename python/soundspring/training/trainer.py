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
import time
from pathlib import Path

import torch
from torch import nn

from ..config import CodecConfig, TrainConfig, from_json, to_json
from ..data.corpus import fixed_heldout_subset, load_clips, read_manifest
from ..errors import ConfigError
from ..evaluation.codec_eval import evaluate_codec
from ..models.codec import Codec
from ..models.weights_io import (
    DEFAULT_CODEC_WEIGHTS,
    atomic_save,
    codec_from_weights,
    codec_tokenizer_hash,
    load_checkpoint,
    save_codec_weights,
)
from .dataset import train_sampler
from .distributed import init_distributed, wrap
from .loop import Progress, Schedule, append_jsonl, cosine_lr, now_iso, run_loop
from .losses import MultiResolutionSTFTLoss, MultiScaleMelLoss


def _lr(cfg: TrainConfig, step: int) -> float:
    return cosine_lr(cfg.lr, cfg.warmup_steps, cfg.lr_decay_steps, cfg.min_lr_ratio, step)


class CodecLoss(nn.Module):
    """One training forward: crops x [B, 1, T] -> (loss, quantizer output), the loss parts
    kept in ``last_parts``. A module so that DistributedDataParallel can wrap it: with a
    frozen tokenizer only the decoder's parameters take gradients."""

    def __init__(self, model: Codec, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.mel = MultiScaleMelLoss()
        self.stft = MultiResolutionSTFTLoss()
        self.last_parts: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor):
        m, cfg = self.model, self.cfg
        if cfg.freeze_tokenizer:
            m.encoder.eval()
            m.quantizer.eval()  # eval: no EMA codebook updates
            with torch.no_grad():
                q = m.quantizer(m.encoder(x), m.quantizer.sample_n_q(x.shape[0]))
            y = m.decoder(q.quantized)
        else:
            y, q = m(x)
        l_mel, l_stft = self.mel(y, x), self.stft(y, x)
        l_l1 = torch.mean(torch.abs(y - x))
        loss = cfg.w_mel * l_mel + cfg.w_stft * l_stft + cfg.w_l1 * l_l1
        if not cfg.freeze_tokenizer:
            loss = loss + cfg.w_commit * q.commit_loss
        self.last_parts = {"mel": l_mel.detach(), "stft": l_stft.detach(), "l1": l_l1.detach()}
        return loss, q


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
        self.dist = init_distributed()
        resumed = None
        if self.ckpt_path.exists():
            resumed = load_checkpoint(self.ckpt_path)
            codec_cfg = from_json(CodecConfig, resumed["codec_config"])
            train_cfg = from_json(TrainConfig, resumed["train_config"]) if train_cfg is None \
                else train_cfg
        self.ccfg, self.cfg = codec_cfg, train_cfg
        torch.manual_seed(train_cfg.seed)
        if init_from and resumed is None:
            path = DEFAULT_CODEC_WEIGHTS if init_from == "default" else Path(init_from)
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
        self.loss_module = CodecLoss(self.model, train_cfg)
        self.loss = wrap(self.loss_module, self.dist)
        self.counters = Progress()
        self.last_eval: dict = {}
        self.tokenizer_hash = None
        if resumed is not None:
            self.model.load_state_dict(resumed["model"])
            self.opt.load_state_dict(resumed["optimizer"])
            self.last_eval = json.loads(resumed.get("last_eval", "{}"))
            self.counters = Progress.resume(resumed["step"], resumed["train_seconds"],
                                            self.last_eval)
            torch.set_rng_state(resumed["torch_rng"])
        if self.dist.rank:  # other ranks draw other quantizer dropouts (rank 0 resumes its own)
            torch.manual_seed(self.dist.seed(train_cfg.seed + self.step))
        old = self.run_dir / "config.json"
        old_cfg = json.loads(old.read_text()) if old.exists() and resumed else None
        init_meta = (old_cfg.get("init_meta") if old_cfg is not None
                     else getattr(self.model, "meta", None) if init_from else None)
        if old_cfg is not None and not extra_train_manifests:  # a resumed run keeps its data
            extra_train_manifests = tuple(old_cfg.get("extra_train_manifests", ()))
        if self.dist.main:
            (self.run_dir / "config.json").write_text(json.dumps(
                {"codec": json.loads(to_json(self.ccfg)), "train": json.loads(to_json(self.cfg)),
                 "init_from": init_from, "init_meta": init_meta,
                 "extra_train_manifests": [str(m) for m in extra_train_manifests]},
                indent=1, sort_keys=True))
        self.resumed = resumed is not None
        if train_cfg.freeze_tokenizer:
            self.tokenizer_hash = codec_tokenizer_hash(self.model)
        self.manifest = manifest
        # A resumed run continues with fresh crops; every rank draws its own.
        seed = self.dist.seed(train_cfg.seed + self.step)
        self.sampler, self.train_minutes = train_sampler(
            manifest, train_cfg.crop_s, train_cfg.gain_db_range, seed, train_cfg.speed_range,
            train_cfg.perturb_prob, tuple(extra_train_manifests), train_cfg.augment)
        held = (fixed_heldout_subset(read_manifest(manifest), train_cfg.eval_clips)
                if self.dist.main else [])  # rank 0 alone evaluates
        self.eval_names = [c.path.name for c in held]
        self.eval_wavs = load_clips(held, progress=False)

    @property
    def step(self) -> int:
        """Optimisation steps done (the loop advances ``counters``)."""
        return self.counters.step

    @property
    def train_seconds(self) -> float:
        """Training time so far, evaluation and checkpoints excluded."""
        return self.counters.train_seconds

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
        save_codec_weights(self.model, self.run_dir / "codec_latest.pt",
                     meta={"step": self.step, "train_minutes": round(self.train_seconds / 60, 1),
                           "heldout": self.last_eval})

    def evaluate(self) -> dict:
        t0 = time.time()
        res = evaluate_codec(self.model, self.eval_wavs, self.cfg.eval_bitrates_kbps)
        self.last_eval = {"step": self.step, "train_minutes": round(self.train_seconds / 60, 2),
                          "metrics": res, "clips": len(self.eval_wavs)}
        append_jsonl(self.run_dir / "eval.jsonl", self.last_eval | {
            "eval_seconds": round(time.time() - t0, 1), "time": now_iso()})
        return res

    # ---- loop ----------------------------------------------------------------------------
    def _train_step(self, step: int) -> dict:
        x = torch.from_numpy(self.sampler.batch(self.cfg.batch_size))
        for g in self.opt.param_groups:
            g["lr"] = _lr(self.cfg, step)
        loss, q = self.loss(x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], self.cfg.grad_clip)
        self.opt.step()
        parts = self.loss_module.last_parts
        return {"loss": loss.item()} | {k: v.item() for k, v in parts.items()} | {
            "commit": q.commit_loss.item(), "grad_norm": float(gn),
            "ppl": q.perplexity.tolist(), "usage": q.usage.tolist(),
            "residual_rel": q.residual_rel.tolist()}

    def _evaluate_line(self) -> str:
        return f"step {self.step}: heldout {json.dumps(self.evaluate())}"

    def run(self) -> dict:
        cfg = self.cfg
        run_loop(self.run_dir, self.counters, Schedule.of(cfg), train_step=self._train_step,
                 evaluate=self._evaluate_line, save=self.save, model=self.model,
                 dist=self.dist, lr_at=lambda step: _lr(cfg, step), postfix=("loss", "mel"),
                 start_row={"resumed": self.resumed, "params": self.model.num_parameters(),
                            "train_minutes_audio": round(self.train_minutes, 1),
                            "eval_clips": self.eval_names},
                 show_progress=self.progress)
        return {"step": self.step, "train_minutes": self.train_seconds / 60,
                "last_eval": self.last_eval}
