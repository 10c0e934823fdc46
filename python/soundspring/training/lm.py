"""SpringLM training on precomputed codec tokens (``soundspring train lm``).

Two summed cross-entropy losses per step (DESIGN.md section 4, "causal-order mask
learning": a lower level is never hidden while a higher one is shown):

1. *concealment* (bidirectional mode): whole frames of the base layer are ``MASK`` (a
   random ratio with a cosine schedule, or Gilbert-Elliott bursts over packets of a
   random chunk size), every fine level ``MASK_UPPER``; loss on the masked base tokens.
2. *entropy model* (coding mode, random reach R in [0, max] and chunk C in 1..5): base
   visible; per chunk, the fine levels up to the batch's bitrate are ``MASK`` either all
   at once or above a random revealed prefix of fine groups (progressive), levels above
   the bitrate ``MASK_UPPER``; loss on the masked fine tokens.

The bitrate is drawn per batch from 6 / 12 / 24 levels for the entropy loss (at 3
levels there is no fine token to model; the concealment loss never sees fine levels).

Run directory layout::

    config.json      model + train configs, codec tokenizer hash, token files
    checkpoint.pt    full state (model, optimizer, step, clock, RNGs), atomic
    lm_latest.pt     shipped-format fp16 weights of the latest checkpoint
    train.jsonl      losses every ``log_every_steps`` steps
    eval.jsonl       held-out bits/token per level (coding mode, R=15, C=2; all-at-once
                     and progressive) vs the static unigram PMFs, concealment top-1
                     accuracy at 10% Bernoulli packet loss vs repeating the last frame
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from ..config import (
    LAYER_BOUNDS,
    LM_TRAIN_PRESETS,
    LMTrainConfig,
    from_json,
    layers_for_codebooks,
    to_json,
)
from ..data.tokens import TokenSet, eval_windows, load_tokens
from ..errors import ConfigError, ModelMismatchError
from ..evaluation.lm_eval import evaluate_lm
from ..models.masked_lm import (
    MASK,
    MASK_UPPER,
    SpringLM,
    SpringLMConfig,
)
from ..models.weights_io import atomic_save, read_lm_weights, save_lm_weights
from ..transport import GilbertElliott
from .distributed import init_distributed, wrap
from .loop import Progress, Schedule, append_jsonl, cosine_lr, now_iso, run_loop

_LN2 = math.log(2.0)




# --------------------------------------------------------------------------------------
# Data: crops of the concatenated token stream of a split
# --------------------------------------------------------------------------------------


class TokenCropSampler:
    """Random crops int64 [B, K, F] of a split's concatenated token stream."""

    def __init__(self, tokens: TokenSet, seed: int = 0) -> None:
        self.stream = torch.from_numpy(tokens.tokens.astype(np.int64))  # [K, N]
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int, frames: int) -> torch.Tensor:
        n = self.stream.shape[1]
        if n < frames:
            raise ConfigError(f"the split holds {n} frames, fewer than a crop of {frames}")
        starts = self.rng.integers(0, n - frames + 1, batch_size)
        return torch.stack([self.stream[:, s:s + frames] for s in starts])


def unigram_counts(tokens: TokenSet, n_levels: int, vocab: int) -> torch.Tensor:
    """int64 [n_levels, V] token counts per level."""
    t = tokens.tokens.astype(np.int64)
    out = np.zeros((n_levels, vocab), np.int64)
    for k in range(min(n_levels, t.shape[0])):
        out[k] = np.bincount(t[k], minlength=vocab)[:vocab]
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------
# Masks (causal-order: a lower level is never hidden while a higher one is shown)
# --------------------------------------------------------------------------------------


def conceal_mask(batch: int, frames: int, cfg: LMTrainConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    """bool [B, F]: frames whose base tokens are lost (at least one per item)."""
    out = np.zeros((batch, frames), bool)
    for b in range(batch):
        if rng.random() < cfg.burst_prob:
            c = int(rng.integers(1, 6))  # packet size in frames
            rate = float(rng.uniform(0.05, 0.5))
            burst = float(rng.uniform(1.0, 4.0))
            ge = GilbertElliott(rate, burst, int(rng.integers(0, 2**63)))
            lost = ge.losses(-(-frames // c))
            out[b] = np.repeat(lost, c)[:frames]
        else:
            ratio = cfg.max_mask_ratio * (1.0 - math.cos(0.5 * math.pi * rng.random()))
            out[b] = rng.random(frames) < ratio
        if not out[b].any():
            out[b, int(rng.integers(0, frames))] = True
    return torch.from_numpy(out)


def coding_view(codes: torch.Tensor, n_levels: int, chunk_frames: int,
                progressive_prob: float, rng: np.random.Generator) -> torch.Tensor:
    """The coding-mode input of a training batch.

    Args:
        codes: int64 [B, K_max, F] true tokens.
        n_levels: bitrate in levels (6, 12 or 24): levels >= n_levels are MASK_UPPER.
        chunk_frames: C; every chunk draws its own revealed prefix of fine groups.

    Returns:
        int64 [B, K_max, F]; the positions to predict are those equal to MASK.
    """
    b, k, f = codes.shape
    n_groups = layers_for_codebooks(n_levels) - 1
    n_chunks = f // chunk_frames
    g = np.zeros((b, n_chunks), np.int64)
    prog = rng.random((b, n_chunks)) < progressive_prob
    g[prog] = rng.integers(0, n_groups, int(prog.sum()))
    revealed = torch.from_numpy(np.asarray(LAYER_BOUNDS)[1 + g])  # [B, n_chunks]
    revealed = revealed.repeat_interleave(chunk_frames, dim=1)  # [B, F]
    level = torch.arange(k)[None, :, None]
    view = codes.clone()
    view[(level >= revealed[:, None, :]) & (level < n_levels)] = MASK
    view[:, n_levels:] = MASK_UPPER
    return view


def _masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean CE over mask; logits [B, k, F, V], target/mask [B, k, F]."""
    lp = logits[mask]  # [N, V]
    return F_.cross_entropy(lp, target[mask])


def _lr(cfg: LMTrainConfig, step: int) -> float:
    return cosine_lr(cfg.lr, cfg.warmup_steps, cfg.lr_decay_steps, cfg.min_lr_ratio, step)


def training_losses(model: SpringLM, codes: torch.Tensor, cfg: LMTrainConfig,
                    rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """The two losses on one batch of true tokens int64 [B, K_max, F]."""
    nb = model.cfg.base_codebooks
    b, _, f = codes.shape
    # (1) concealment, bidirectional
    lost = conceal_mask(b, f, cfg, rng)  # [B, F]
    cv = codes.clone()
    cv[:, :nb] = torch.where(lost[:, None, :], MASK, cv[:, :nb])
    logits_c = model.forward_conceal(cv, levels=(0, nb))
    l_conceal = _masked_ce(logits_c, codes[:, :nb], lost[:, None, :].expand(b, nb, f))
    # (2) entropy model, coding mode
    n_levels = int(rng.choice(cfg.coding_levels))
    c = int(rng.choice(cfg.chunk_frames_choices))
    r = int(rng.integers(0, model.cfg.max_context_frames + 1))
    fc = f - f % c
    x = codes[..., :fc]
    view = coding_view(x, n_levels, c, cfg.progressive_prob, rng)
    logits_e = model.forward_coding(view, r, c, levels=(nb, n_levels))
    l_entropy = _masked_ce(logits_e, x[:, nb:n_levels], view[:, nb:n_levels] == MASK)
    return {"conceal": l_conceal, "entropy": l_entropy, "n_levels": torch.tensor(n_levels),
            "chunk": torch.tensor(c), "reach": torch.tensor(r)}


# --------------------------------------------------------------------------------------
# Held-out evaluation
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------


def train_lm(run_dir: str | Path, tokens_dir: str | Path, model_cfg: SpringLMConfig | None = None,
             train_cfg: LMTrainConfig | None = None, init_from: str | Path | None = None,
             progress: bool = True, init_other_tokenizer: bool = False) -> dict:
    """Starts or resumes a SpringLM training run.

    Args:
        run_dir: run directory; a ``checkpoint.pt`` there is resumed (full state; its
            configs win over the arguments, except the stopping criteria of
            ``train_cfg`` when given).
        tokens_dir: directory with ``train.npz`` and ``heldout.npz`` (``data.tokens``).
        model_cfg: model shape of a new run (default ``springlm_default()``).
        train_cfg: hyperparameters (default ``LMTrainConfig()``).
        init_from: shipped SpringLM weights to start a new run from (fresh optimizer).
        progress: tqdm bar.
        init_other_tokenizer: let ``init_from`` be an LM of another codec tokenizer (a warm
            start for a codec fine-tuned from that LM's codec, whose code indices keep
            roughly their meaning; the run records both hashes and trains on ``tokens_dir``).

    Returns:
        {"step", "train_minutes", "last_eval"}.

    Raises:
        ConfigError: missing tokens, bad configs.
        ModelMismatchError: tokens, checkpoint or init weights from different codecs.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    tokens_dir = Path(tokens_dir)
    train_tokens = load_tokens(tokens_dir / "train.npz")
    codec_h = train_tokens.tokenizer_sha256
    held_tokens = load_tokens(tokens_dir / "heldout.npz", codec_h)

    resumed = None
    if ckpt_path.exists():
        resumed = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if not isinstance(resumed, dict) or "lm_config" not in resumed:
            raise ConfigError(f"{ckpt_path} is not a SpringLM training checkpoint")
        if resumed["tokenizer_sha256"] != codec_h:
            raise ModelMismatchError(f"{ckpt_path} was trained on codec "
                                     f"{resumed['tokenizer_sha256'][:16]}, tokens are from "
                                     f"{codec_h[:16]}")
        model_cfg = from_json(SpringLMConfig, resumed["lm_config"])
        saved = from_json(LMTrainConfig, resumed["train_config"])
        train_cfg = saved if train_cfg is None else dataclasses.replace(
            saved, max_steps=train_cfg.max_steps, max_hours=train_cfg.max_hours,
            threads=train_cfg.threads)
    train_cfg = train_cfg or LMTrainConfig()
    torch.set_num_threads(max(1, train_cfg.threads))
    dist = init_distributed()
    torch.manual_seed(train_cfg.seed)  # the same initial weights on every rank
    init_meta = None
    state_w: dict[str, torch.Tensor] = {}
    if resumed is None and init_from is not None:
        cfg_w, state_w, codec_w, sha_w, _ = read_lm_weights(init_from)
        if codec_w != codec_h and not init_other_tokenizer:
            raise ModelMismatchError(f"{init_from} was trained on codec {codec_w[:16]}, "
                                     f"tokens are from {codec_h[:16]}")
        model_cfg = cfg_w
        init_meta = sha_w
    model_cfg = model_cfg or SpringLMConfig()  # the shipped size
    model = SpringLM(model_cfg)
    if resumed is None and init_from is not None:
        model.load_state_dict({k: v.float() for k, v in state_w.items()})
    model.set_unigram(unigram_counts(train_tokens, model_cfg.n_codebooks,
                                     model_cfg.codebook_size))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "rel_bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and
                                                               "rel_bias" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=train_cfg.lr, betas=train_cfg.betas)
    counters, last_eval = Progress(), {}
    rng = np.random.default_rng(train_cfg.seed)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        last_eval = json.loads(resumed.get("last_eval", "{}"))
        counters = Progress.resume(resumed["step"], resumed["train_seconds"], last_eval)
        torch.set_rng_state(resumed["torch_rng"])
        rng.bit_generator.state = json.loads(resumed["np_rng"])
    step = counters.step
    if dist.rank:  # other ranks mask their own way (rank 0 resumes its own stream)
        rng = np.random.default_rng(dist.seed(train_cfg.seed + step))
        torch.manual_seed(dist.seed(train_cfg.seed + step))
    sampler = TokenCropSampler(train_tokens, seed=dist.seed(train_cfg.seed + step))
    windows = eval_windows(held_tokens, train_cfg.eval_windows, train_cfg.eval_frames)
    if dist.main:
        (run_dir / "config.json").write_text(json.dumps(
            {"lm": json.loads(to_json(model_cfg)), "train": json.loads(to_json(train_cfg)),
             "tokenizer_sha256": codec_h, "tokens_dir": str(tokens_dir), "init_from":
             str(init_from) if init_from else None, "init_sha256": init_meta},
            indent=1, sort_keys=True))

    def save() -> None:
        atomic_save({"lm_config": to_json(model_cfg), "train_config": to_json(train_cfg),
                     "tokenizer_sha256": codec_h, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "step": counters.step,
                     "train_seconds": counters.train_seconds,
                     "last_eval": json.dumps(last_eval), "torch_rng": torch.get_rng_state(),
                     "np_rng": json.dumps(rng.bit_generator.state)}, ckpt_path)
        save_lm_weights(model, run_dir / "lm_latest.pt", codec_h,
                        meta={"step": counters.step,
                              "train_minutes": round(counters.train_seconds / 60, 1),
                              "heldout": last_eval})

    def evaluate() -> str:
        nonlocal last_eval
        t0 = time.time()
        last_eval = {"step": counters.step,
                     "train_minutes": round(counters.train_seconds / 60, 2)} | evaluate_lm(
                         model, windows)
        append_jsonl(run_dir / "eval.jsonl", last_eval | {
            "eval_seconds": round(time.time() - t0, 1), "time": now_iso()})
        return (f"step {counters.step}: fine bits/token {last_eval['fine_mean_bits_lm']} "
                f"(unigram {last_eval['fine_mean_bits_unigram']}), conceal top-1 "
                f"{last_eval['conceal_top1']}")

    def train_step(at: int) -> dict:
        codes = sampler.batch(cfg.batch_size, cfg.crop_frames)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, at)
        out = lm_loss(codes, rng)
        loss = cfg.w_conceal * out["conceal"] + cfg.w_entropy * out["entropy"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        return {"loss": loss.item(), "conceal": out["conceal"].item(),
                "entropy": out["entropy"].item(), "grad_norm": gn}

    lm_loss = wrap(LMLoss(model, train_cfg), dist)
    cfg = train_cfg
    model.train()
    run_loop(run_dir, counters, Schedule.of(cfg),
             train_step=train_step, evaluate=evaluate, save=save, model=model, dist=dist,
             lr_at=lambda at: _lr(cfg, at), postfix=("conceal", "entropy"),
             start_row={"resumed": resumed is not None, "params": model.num_parameters(),
                        "train_frames": train_tokens.frames, "tokenizer_sha256": codec_h},
             show_progress=progress)
    return {"step": counters.step, "train_minutes": counters.train_seconds / 60,
            "last_eval": last_eval}


class LMLoss(nn.Module):
    """``training_losses`` as a module, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: SpringLM, cfg: LMTrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, codes: torch.Tensor, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return training_losses(self.model, codes, self.cfg, rng)


__all__ = [
    "LM_TRAIN_PRESETS",
    "LMTrainConfig",
    "TokenCropSampler",
    "coding_view",
    "conceal_mask",
    "train_lm",
    "training_losses",
    "unigram_counts",
]
