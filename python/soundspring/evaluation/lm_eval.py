"""``soundspring eval lm``: what SpringLM saves, measured two ways on held-out data.

1. **Model bits** on held-out token windows (``training.lm.evaluate_lm``): bits/token per
   level for static PMFs and for the LM, at each entropy-context reach R (frames) and
   chunk C; concealment top-1 against repeat-last-frame.
2. **Packet bits** on held-out audio: the real transceiver (``pipeline.transmit``) at each
   bitrate, bytes of every packet (TOC, checks, range-coder termination included) per
   second, against raw tokens and against the same packets coded without the LM.

Example::

    soundspring eval lm --reach 0 2 4 8 15 30 --max-clips 40 --json runs/eval/lm.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ


def add_lm_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lm", default=None, help="SpringLM weights (default: shipped)")
    parser.add_argument("--codec", default=None, help="codec weights (default: shipped)")
    parser.add_argument("--tokens-dir", default=None,
                        help="held-out tokens (default: the cache's for this codec; "
                             "soundspring data tokens --codec W makes them)")
    parser.add_argument("--reach", type=int, nargs="+", default=[0, 2, 4, 8, 15, 30],
                        help="entropy-context reaches R in frames to compare")
    parser.add_argument("--chunk-frames", type=int, default=2)
    parser.add_argument("--windows", type=int, default=256, help="held-out token windows")
    parser.add_argument("--bitrates", type=float, nargs="+", default=[6.0, 12.0])
    parser.add_argument("--manifest", default=None, help="corpus manifest (default: the cache's)")
    parser.add_argument("--max-clips", type=int, default=40,
                        help="held-out audio clips for packet bits (0: skip)")
    parser.add_argument("--context-frames", type=int, default=None,
                        help="R for the packet measurement (default: the transceiver's)")
    parser.add_argument("--rd-lambda", type=float, default=0.0,
                        help="transmitter rate-distortion weight for the packet measurement "
                             "(default 0: the nearest codewords, so both codings code the "
                             "same tokens; `eval rd` measures the token choice)")
    parser.add_argument("--json", default=None, help="also write every number here")


def model_bits(lm, windows, reaches: list[int], chunk_frames: int) -> dict:
    from ..training.lm import evaluate_lm

    out = {}
    for r in reaches:
        res = evaluate_lm(lm, windows, context_frames=r, chunk_frames=chunk_frames)
        out[str(r)] = res
    return out


def transmit_clips(codec, model, wavs: list[np.ndarray], cfg, desc: str | None = None) -> tuple:
    """Sends every clip through the real transmitter; returns (measured bitrate in bps over
    all packet bytes, the transmitters, whose ``sent_tokens`` hold what was sent)."""
    from tqdm import tqdm

    from ..pipeline import transmit

    n_bytes, n_chunks, txs = 0, 0, []
    for w in tqdm(wavs, desc=desc, leave=False, disable=desc is None):
        packets, tx = transmit(codec, model, w, cfg)
        n_bytes += sum(len(p.data) for p in packets)
        n_chunks += tx.chunks_sent
        txs.append(tx)
    return n_bytes * 8 / (n_chunks * cfg.chunk_samples / SAMPLE_RATE_HZ), txs


def packet_bits(codec, coding_model, wavs: list[np.ndarray], bitrates: list[float],
                context_frames: int | None, chunk_frames: int, rd_lambda: float = 0.0) -> dict:
    """Measured packet bitrate per raw bitrate for the LM and for static PMFs."""
    from ..entropy.static import StaticModel
    from ..pipeline import TransceiverConfig

    static = StaticModel(coding_model.base_logits())  # the LM's own static PMFs, every level
    out = {}
    for br in bitrates:
        base = TransceiverConfig(bitrate_kbps=br, chunk_frames=chunk_frames,
                                 rd_lambda=rd_lambda)
        if context_frames is not None:
            base = dataclasses.replace(base, context_frames=context_frames)
        row = {}
        for name, model, cfg in (("springlm", coding_model, base),
                                 ("static", static, dataclasses.replace(base, conceal="repeat"))):
            bps, _ = transmit_clips(codec, model, wavs, cfg, desc=f"{name} {br:g} kbps")
            raw = cfg.raw_bitrate_bps
            row[name] = {"bitrate_bps": round(bps, 1), "saving_vs_raw": round(1 - bps / raw, 4)}
        row["raw_bps"] = raw
        row["config"] = dataclasses.asdict(base)
        out[f"{br:g}"] = row
    return out


def run_lm_eval(args: argparse.Namespace) -> int:
    import torch

    from ..data.corpus import read_manifest
    from ..data.tokens import load_tokens, token_dir
    from ..models.codec import codec_tokenizer_hash, load_codec
    from ..models.lm_adapter import load_coding_model
    from ..training.lm import eval_windows
    from .codec_eval import fixed_heldout_subset

    torch.set_num_threads(1)
    codec = load_codec(args.codec)
    coding_model = load_coding_model(args.lm, codec)
    lm = coding_model.lm
    tdir = Path(args.tokens_dir) if args.tokens_dir else token_dir(codec_tokenizer_hash(codec))
    held = load_tokens(tdir / "heldout.npz", codec_tokenizer_hash(codec))
    windows = eval_windows(held, args.windows, 60)
    result: dict = {"lm": coding_model.model_id, "windows": int(windows.shape[0]),
                    "model_bits": model_bits(lm, windows, args.reach, args.chunk_frames)}
    if args.max_clips:
        from ..audio import read_wav

        clips = fixed_heldout_subset(read_manifest(args.manifest), args.max_clips, min_s=0.0,
                                     max_s=1e9)
        wavs = [read_wav(c.path) for c in clips]
        result["clips"] = len(wavs)
        result["packet_bits"] = packet_bits(codec, coding_model, wavs, args.bitrates,
                                            args.context_frames, args.chunk_frames,
                                            args.rd_lambda)
    print(report_markdown(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def report_markdown(result: dict) -> str:
    mb = result["model_bits"]
    lines = [f"SpringLM {result['lm'][:16]}, {result['windows']} held-out windows of 60 frames",
             "", ("| R (frames) | fine bits/token, all groups at once | progressive | static |"
             " conceal top-1 (L0) | repeat top-1 (L0) |"), "|---|---|---|---|---|---|"]
    for r, res in mb.items():
        lines.append(f"| {r} | {res['fine_mean_bits_lm']:.3f} | "
                     f"{res['fine_mean_bits_lm_progressive']:.3f} | "
                     f"{res['fine_mean_bits_unigram']:.3f} | {res['conceal_top1'][0]:.3f} | "
                     f"{res['repeat_top1'][0]:.3f} |")
    first = next(iter(mb.values()))
    lines += ["", "bits/token per level (static / LM at R=" + next(iter(mb)) + "):", "",
              "| level | " + " | ".join(str(k) for k in range(len(first["bits_lm"]))) + " |",
              "|---|" + "---|" * len(first["bits_lm"]),
              "| static | " + " | ".join(f"{v:.2f}" for v in first["bits_unigram"]) + " |",
              "| LM | " + " | ".join(f"{v:.2f}" for v in first["bits_lm"]) + " |"]
    if "packet_bits" in result:
        lines += ["", f"Packets on {result['clips']} held-out clips (every byte counted):", "",
                  "| raw kbps | SpringLM kbps | saving | static kbps | saving |",
                  "|---|---|---|---|---|"]
        for br, row in result["packet_bits"].items():
            s, st = row["springlm"], row["static"]
            lines.append(f"| {br} | {s['bitrate_bps'] / 1000:.3f} | "
                         f"{100 * s['saving_vs_raw']:.1f}% | {st['bitrate_bps'] / 1000:.3f} | "
                         f"{100 * st['saving_vs_raw']:.1f}% |")
    return "\n".join(lines)
