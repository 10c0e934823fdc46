"""``soundspring train codec|lm|export``: start or resume a codec or SpringLM training run
(``soundspring.training``), or export a codec run's shipped-format weights."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..config import (
    CODEC_PRESETS,
    LM_TRAIN_PRESETS,
    SPRINGLM_PRESETS,
    TRAIN_PRESETS,
    Augmentation,
    TrainConfig,
    augmentation_real_mics,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    _add_lm_arguments(sub.add_parser("lm", help="train SpringLM on precomputed codec tokens"))
    p = sub.add_parser("codec", help="train the streaming codec (resumes if RUN_DIR has a checkpoint)")
    p.add_argument("--run-dir", default="runs/codec", help="run directory (default runs/codec)")
    p.add_argument("--manifest", default=None, help="corpus manifest (default: the cache's)")
    p.add_argument("--extra-train-manifest", nargs="+", default=[], metavar="MANIFEST",
                   help="more training clips: the train split of each manifest (e.g. "
                        "`soundspring data synth --role train`); evaluation stays on "
                        "--manifest's held-out split")
    p.add_argument("--preset", default="cpu_long", choices=sorted(TRAIN_PRESETS))
    p.add_argument("--codec-preset", default="default", choices=sorted(CODEC_PRESETS))
    p.add_argument("--init-from", default=None,
                   help="'default' (shipped fp16 weights) or a weights file; ignored when "
                        "RUN_DIR already holds a checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch threads (preset: 2)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-hours", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--eval-every-min", type=float, default=None)
    p.add_argument("--checkpoint-every-min", type=float, default=None)
    p.add_argument("--eval-clips", type=int, default=None)
    p.add_argument("--freeze-tokenizer", action="store_true", default=None,
                   help="train the decoder only (encoder, quantizer and so the tokens and any "
                        "SpringLM trained on them stay unchanged); needs --init-from")
    p.add_argument("--perturb", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="speed-perturb crops by a factor in [MIN, MAX] (e.g. 0.8 1.25)")
    p.add_argument("--perturb-prob", type=float, default=None,
                   help="fraction of crops perturbed when --perturb is given (default 0.5)")
    p.add_argument("--augment", choices=("none", "real-mics"), default=None,
                   help="real-mics: level -45..-5 dBFS, a third band-limited, a quarter with "
                        "noise at 15-40 dB SNR (config.augmentation_real_mics)")
    p.add_argument("--noise-prob", type=float, default=None, help="fraction of crops with noise")
    p.add_argument("--bandlimit-prob", type=float, default=None,
                   help="fraction of crops band-limited")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    e = sub.add_parser("export", help="write shipped-format fp16 weights from a run's checkpoint")
    e.add_argument("--run-dir", default="runs/codec")
    e.add_argument("--out", default=None,
                   help="output weights file (default: the package's weights/codec_default.pt)")


def _export(args: argparse.Namespace) -> int:
    """``soundspring train export``: a run's checkpoint as shipped-format fp16 weights."""
    from ..models.weights_io import (
        DEFAULT_CODEC_WEIGHTS,
        load_checkpoint,
        load_checkpoint_codec,
        read_codec_weights,
        save_codec_weights,
    )

    ckpt_path = Path(args.run_dir) / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path)
    codec = load_checkpoint_codec(ckpt_path)
    meta = {"step": int(ckpt["step"]), "train_minutes": round(float(ckpt["train_seconds"]) / 60, 1),
            "heldout": json.loads(ckpt.get("last_eval", "{}"))}
    run_cfg = Path(args.run_dir) / "config.json"
    if run_cfg.exists():  # provenance: what the run started from, what it trained
        rc = json.loads(run_cfg.read_text())
        meta["init_from_meta"] = rc.get("init_meta")
        meta["freeze_tokenizer"] = bool(rc.get("train", {}).get("freeze_tokenizer", False))
    out = save_codec_weights(codec, Path(args.out) if args.out else DEFAULT_CODEC_WEIGHTS, meta=meta)
    _, _, meta_back = read_codec_weights(out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB), step {meta_back['step']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.what == "export":
        return _export(args)
    if args.what == "lm":
        return _run_lm(args)
    from ..training.trainer import Trainer

    cfg: TrainConfig = TRAIN_PRESETS[args.preset]()
    overrides = {k: getattr(args, k) for k in ("threads", "max_steps", "max_hours", "batch_size",
                                               "lr", "eval_every_min", "checkpoint_every_min",
                                               "eval_clips", "freeze_tokenizer")
                 if getattr(args, k) is not None}
    if args.perturb is not None:
        overrides["speed_range"] = tuple(args.perturb)
        overrides.setdefault("perturb_prob", 0.5)
    if args.perturb_prob is not None:
        overrides["perturb_prob"] = args.perturb_prob
    augment = cfg.augment
    if args.augment is not None:
        augment = augmentation_real_mics() if args.augment == "real-mics" else Augmentation()
    for k in ("noise_prob", "bandlimit_prob"):
        if getattr(args, k) is not None:
            augment = dataclasses.replace(augment, **{k: getattr(args, k)})
    overrides["augment"] = augment
    cfg = dataclasses.replace(cfg, **overrides)
    trainer = Trainer(Path(args.run_dir), CODEC_PRESETS[args.codec_preset](), cfg,
                      manifest=args.manifest, init_from=args.init_from,
                      progress=not args.no_progress,
                      extra_train_manifests=tuple(args.extra_train_manifest))
    print(f"run dir {trainer.run_dir} ({'resumed at step ' + str(trainer.step) if trainer.resumed else 'new'}), "
          f"{trainer.model.num_parameters() / 1e6:.2f} M params, "
          f"{trainer.train_minutes:.1f} min of training audio", flush=True)
    out = trainer.run()
    print(json.dumps(out, indent=1, default=str))
    return 0


def _add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``soundspring train lm``."""
    parser.add_argument("--run-dir", default="runs/lm", help="run directory (default runs/lm)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens-dir", default=None,
                     help="directory with train.npz / heldout.npz (soundspring.data.tokens)")
    src.add_argument("--codec", default=None,
                     help="codec weights / checkpoint whose cached tokens to use "
                          "(<cache>/tokens/<tokenizer hash[:16]>)")
    parser.add_argument("--preset", default="default", choices=sorted(LM_TRAIN_PRESETS))
    parser.add_argument("--model-preset", default="default", choices=sorted(SPRINGLM_PRESETS))
    parser.add_argument("--init-from", default=None,
                        help="shipped SpringLM weights to start a new run from")
    parser.add_argument("--init-other-tokenizer", action="store_true",
                        help="allow --init-from weights trained on another codec tokenizer "
                             "(warm start after fine-tuning the codec they were trained on)")
    for name, typ in (("threads", int), ("max-steps", int), ("max-hours", float),
                      ("batch-size", int), ("crop-frames", int), ("lr", float),
                      ("warmup-steps", int), ("eval-every-min", float),
                      ("checkpoint-every-min", float), ("eval-windows", int), ("seed", int)):
        parser.add_argument(f"--{name}", type=typ, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def _run_lm(args: argparse.Namespace) -> int:
    """``soundspring train lm``: starts or resumes a SpringLM run; prints its summary."""
    cfg = LM_TRAIN_PRESETS[args.preset]()
    keys = ("threads", "max_steps", "max_hours", "batch_size", "crop_frames", "lr",
            "warmup_steps", "eval_every_min", "checkpoint_every_min", "eval_windows", "seed")
    cfg = dataclasses.replace(cfg, **{k: getattr(args, k) for k in keys
                                      if getattr(args, k) is not None})
    if args.tokens_dir:
        tdir = Path(args.tokens_dir)
    else:
        from ..data.tokens import token_dir
        from ..models.weights_io import codec_tokenizer_hash, load_codec

        tdir = token_dir(codec_tokenizer_hash(load_codec(args.codec, as_exported=True)))
    from ..training.lm import train_lm

    out = train_lm(args.run_dir, tdir, SPRINGLM_PRESETS[args.model_preset](), cfg,
                   init_from=args.init_from, progress=not args.no_progress,
                   init_other_tokenizer=args.init_other_tokenizer)
    print(json.dumps(out, indent=1, default=str))
    return 0
