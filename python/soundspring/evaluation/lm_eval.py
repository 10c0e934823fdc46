"""``soundspring eval lm``: what SpringLM saves, measured two ways on held-out data.

1. **Model bits** on held-out token windows (``training.lm.evaluate_lm``): bits/token per
   level for static PMFs and for the LM, at each entropy-context reach R (frames) and
   chunk C; concealment top-1 against repeat-last-frame.
2. **Packet bits** on held-out audio: the real transceiver (``pipeline.transmit``) at each
   bitrate, bytes of every packet (TOC, checks, range-coder termination included) per
   second, against raw tokens and against the same packets coded without the LM.

Both run on the evaluation set of :mod:`.clips` (default: the speaker-disjoint set;
``--set same-speakers`` or ``--manifest FILE``). The token windows of (1) are, by default,
encoded on the fly from that set's clips, in its fixed language-balanced order, by the
evaluated codec at full depth (12 kbps, 24 codebooks, as ``soundspring data tokens``
does), clip after clip until the stream holds ``--windows`` x 60 frames (256 windows:
about 5 minutes of audio); windows are evenly spaced over that stream (they may span clip
boundaries, as with a token file). ``--tokens-dir DIR`` reads ``DIR/heldout.npz`` instead
(``soundspring data tokens``; e.g. ``--heldout-manifest <cache>/tuxpaint/heldout.jsonl``
for the speaker-disjoint set): the report then says how many of its clips belong to the
evaluation set, and names the token file as the set when not all do.

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
                        help="read the model-bits windows from DIR/heldout.npz (soundspring "
                             "data tokens --codec W makes it; the cache's is "
                             "<cache>/tokens/<tokenizer hash[:16]>) instead of encoding the "
                             "evaluation set's clips (the default)")
    parser.add_argument("--reach", type=int, nargs="+", default=[0, 2, 4, 8, 15, 30],
                        help="entropy-context reaches R in frames to compare")
    parser.add_argument("--chunk-frames", type=int, default=2)
    parser.add_argument("--windows", type=int, default=256, help="held-out token windows")
    parser.add_argument("--bitrates", type=float, nargs="+", default=[6.0, 12.0])
    from .clips import add_set_arguments

    add_set_arguments(parser)
    parser.add_argument("--max-clips", type=int, default=40,
                        help="clips of the set for packet bits, the first N of its fixed "
                             "language-balanced order (0: skip packet bits)")
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


def encode_set_tokens(codec, clips, frames: int, progress: bool = True):
    """Tokens of ``clips`` (in order) at full depth, clip after clip until the stream holds
    ``frames`` frames (or the clips run out).

    Returns:
        A ``data.tokens.TokenSet`` named by the clips' paths, tagged with the codec's
        tokenizer hash.

    Raises:
        ConfigError: the codec has fewer than ``MAX_CODEBOOKS`` codebooks.
    """
    from tqdm import tqdm

    from ..audio import read_wav
    from ..config import MAX_CODEBOOKS
    from ..data.tokens import TokenSet, encode_clip
    from ..errors import ConfigError
    from ..models.codec import codec_tokenizer_hash

    if codec.n_codebooks < MAX_CODEBOOKS:
        raise ConfigError(f"the codec has {codec.n_codebooks} codebooks; the LM's token "
                          f"windows need {MAX_CODEBOOKS}")
    was_training = codec.training
    codec.eval()
    toks, names, have = [], [], 0
    bar = tqdm(total=frames, desc="tokens", unit="frame", leave=False, disable=not progress)
    try:
        for c in clips:
            if have >= frames:
                break
            t = encode_clip(codec, read_wav(c.path))
            toks.append(t)
            names.append(Path(c.path).as_posix())
            have += t.shape[1]
            bar.update(t.shape[1])
    finally:
        bar.close()
        codec.train(was_training)
    if not toks:
        raise ConfigError("no clips to encode for the token windows")
    offsets = np.zeros(len(toks) + 1, np.int64)
    offsets[1:] = np.cumsum([t.shape[1] for t in toks])
    return TokenSet(np.concatenate(toks, axis=1).astype(np.int16), offsets, tuple(names),
                    codec_tokenizer_hash(codec))


def clips_in_set(names, clips) -> int:
    """How many token-file clip names (absolute paths, or paths relative to a manifest's
    or the corpus's directory) are clips of the set."""
    paths = {Path(c.path).as_posix() for c in clips}
    tails = set()
    for p in paths:
        parts = p.split("/")
        tails.update("/".join(parts[i:]) for i in range(1, len(parts)))
    return sum(1 for n in names
               if (Path(n).as_posix() in paths if Path(n).is_absolute()
                   else Path(n).as_posix() in tails))


def run_lm_eval(args: argparse.Namespace) -> int:
    import torch

    from ..data.tokens import load_tokens
    from ..models.codec import codec_tokenizer_hash, load_codec
    from ..models.lm_adapter import load_coding_model
    from ..training.lm import eval_windows
    from .clips import eval_set_from_args, file_set_name

    if args.max_clips < 0:
        from ..errors import ConfigError

        raise ConfigError(f"--max-clips must be >= 0, got {args.max_clips}")
    torch.set_num_threads(1)
    eval_set = eval_set_from_args(args, max_clips=0)  # every clip: the token windows need them
    codec = load_codec(args.codec)
    coding_model = load_coding_model(args.lm, codec)
    lm = coding_model.lm
    frames = 60
    if args.tokens_dir:
        tfile = Path(args.tokens_dir) / "heldout.npz"
        held = load_tokens(tfile, codec_tokenizer_hash(codec))
        inside = clips_in_set(held.names, eval_set.clips)
        token_set = {"name": eval_set.name if inside == len(held) else file_set_name(tfile),
                     "source": str(tfile.absolute())}
    else:
        held = encode_set_tokens(codec, eval_set.clips, args.windows * frames)
        inside = len(held)
        token_set = {"name": eval_set.name, "source": "encoded from the evaluation set "
                     "(12 kbps, 24 codebooks)"}
    token_set |= {"clips": len(held), "frames": held.frames, "in_eval_set": inside}
    windows = eval_windows(held, args.windows, frames)
    # the clips the report counts: those of the packet measurement, else of the windows
    shown = eval_set.head(args.max_clips or (0 if args.tokens_dir else len(held)))
    result: dict = {"eval_set": shown.info(), "token_set": token_set,
                    "lm": coding_model.model_id, "windows": int(windows.shape[0]),
                    "model_bits": model_bits(lm, windows, args.reach, args.chunk_frames)}
    if args.max_clips:
        from ..audio import read_wav

        clips = eval_set.head(args.max_clips).clips
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
    from .clips import heading_line

    mb = result["model_bits"]
    ts = result.get("token_set", {})
    where = ""
    if ts:
        where = f" from {ts['clips']} clips of the {ts['name']} set"
        if not ts["source"].startswith("encoded"):
            where += f" ({ts['source']})"
        if ts["in_eval_set"] != ts["clips"]:
            where += (f"; only {ts['in_eval_set']} of them are clips of the "
                      f"{result['eval_set']['name']} set")
    lines = [heading_line(result["eval_set"]) if "eval_set" in result
             else "Evaluation set: unnamed", "",
             f"SpringLM {result['lm'][:16]}, {result['windows']} held-out windows of 60 frames"
             + where, "",
             ("| R (frames) | fine bits/token, all groups at once | progressive | static |"
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
        name = result.get("eval_set", {}).get("name", "unnamed")
        lines += ["", (f"Packets on {result['clips']} held-out clips of the {name} set (every "
                       "byte counted):"), "",
                  "| raw kbps | SpringLM kbps | saving | static kbps | saving |",
                  "|---|---|---|---|---|"]
        for br, row in result["packet_bits"].items():
            s, st = row["springlm"], row["static"]
            lines.append(f"| {br} | {s['bitrate_bps'] / 1000:.3f} | "
                         f"{100 * s['saving_vs_raw']:.1f}% | {st['bitrate_bps'] / 1000:.3f} | "
                         f"{100 * st['saving_vs_raw']:.1f}% |")
    return "\n".join(lines)
