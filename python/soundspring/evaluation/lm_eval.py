"""``soundspring eval lm``: what SpringLM saves, measured two ways on held-out data.

1. **Model bits** on held-out token windows (:func:`evaluate_lm`, which training also
   runs on its held-out windows): bits/token per
   level for static PMFs and for the LM, at each entropy-context reach R (frames) and
   chunk C; concealment top-1 against repeat-last-frame.
2. **Packet bits** on held-out audio: the real transceiver (``transceiver.transmit``) at each
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

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F_

from ..audio import read_wav
from ..config import LAYER_BOUNDS, MAX_CODEBOOKS, SAMPLE_RATE_HZ
from ..data.corpus import load_clips
from ..data.tokens import TokenSet, encode_clip, eval_windows, load_tokens
from ..entropy.static import StaticModel
from ..errors import ConfigError
from ..models.masked_lm import MASK, SpringLM
from ..models.weights_io import codec_tokenizer_hash
from ..transceiver import TransceiverConfig, transmit
from ..transport import Bernoulli
from .clips import file_set_name, heading_line

_LN2 = math.log(2.0)


@torch.no_grad()
def evaluate_lm(model: SpringLM, windows: torch.Tensor, context_frames: int = 15,
                chunk_frames: int = 2, loss_rate: float = 0.1, seed: int = 0,
                batch_size: int = 16) -> dict:
    """Held-out metrics on fixed windows int64 [N, K_max, F].

    Returns a dict with per-level lists (index = level):
        ``bits_unigram``: static per-level PMFs (the no-LM control and base coding);
        ``bits_lm``: coding mode, every fine level MASK at once (12 kbps), R and C given;
        ``bits_lm_progressive``: fine group g coded with groups < g revealed;
    plus means over the fine levels and, at ``loss_rate`` Bernoulli packet loss
    (packets of C frames), concealment top-1 accuracy per base level vs repeating the last
    received frame (``conceal_top1`` / ``repeat_top1``).
    """
    was_training = model.training
    model.eval()
    nb, kmax = model.cfg.base_codebooks, model.cfg.n_codebooks
    n, _, f = windows.shape
    uni = model.unigram_logprobs  # [K, V]
    bits_uni = torch.stack([-uni[k][windows[:, k]].mean() for k in range(kmax)]) / _LN2
    ce_all = torch.zeros(kmax)
    ce_prog = torch.zeros(kmax)
    correct = torch.zeros(nb)
    rep_correct = torch.zeros(nb)
    n_lost = 0
    channel = Bernoulli(loss_rate, seed)
    for s in range(0, n, batch_size):
        x = windows[s:s + batch_size]
        b = x.shape[0]
        view = x.clone()
        view[:, nb:] = MASK
        lg = model.forward_coding(view, context_frames, chunk_frames, levels=(nb, kmax))
        ce_all[nb:] += F_.cross_entropy(lg.permute(0, 3, 1, 2), x[:, nb:],
                                        reduction="none").mean(dim=(0, 2)) * b
        for gi in range(1, len(LAYER_BOUNDS) - 1):
            lo, hi = LAYER_BOUNDS[gi], LAYER_BOUNDS[gi + 1]
            view = x.clone()
            view[:, lo:] = MASK
            lg = model.forward_coding(view, context_frames, chunk_frames, levels=(lo, hi))
            ce_prog[lo:hi] += F_.cross_entropy(lg.permute(0, 3, 1, 2), x[:, lo:hi],
                                               reduction="none").mean(dim=(0, 2)) * b
        lost = torch.from_numpy(np.repeat(channel.losses(b * (-(-f // chunk_frames))),
                                          chunk_frames).reshape(b, -1)[:, :f])
        cv = x.clone()
        cv[:, :nb] = torch.where(lost[:, None, :], MASK, cv[:, :nb])
        pred = model.forward_conceal(cv).argmax(-1)  # [b, nb, F]
        # repeat-last-frame baseline: the last received frame before each lost one
        idx = torch.where(lost, torch.full_like(lost, -1, dtype=torch.int64),
                          torch.arange(f).expand(b, f))
        idx = torch.cummax(idx, dim=1).values.clamp(min=0)
        rep = torch.gather(x[:, :nb], 2, idx[:, None, :].expand(b, nb, f))
        m = lost[:, None, :].expand(b, nb, f)
        correct += ((pred == x[:, :nb]) & m).sum(dim=(0, 2))
        rep_correct += ((rep == x[:, :nb]) & m).sum(dim=(0, 2))
        n_lost += int(lost.sum())
    bits_lm = ce_all / n / _LN2
    bits_prog = ce_prog / n / _LN2
    bits_lm[:nb] = bits_uni[:nb]
    bits_prog[:nb] = bits_uni[:nb]
    model.train(was_training)

    def r(t: torch.Tensor) -> list[float]:
        return [round(float(v), 4) for v in t]

    return {
        "context_frames": context_frames, "chunk_frames": chunk_frames, "windows": n,
        "frames": f, "bits_unigram": r(bits_uni), "bits_lm": r(bits_lm),
        "bits_lm_progressive": r(bits_prog),
        "fine_mean_bits_unigram": round(float(bits_uni[nb:].mean()), 4),
        "fine_mean_bits_lm": round(float(bits_lm[nb:].mean()), 4),
        "fine_mean_bits_lm_progressive": round(float(bits_prog[nb:].mean()), 4),
        "conceal_loss_rate": loss_rate, "conceal_lost_frames": n_lost,
        "conceal_top1": r(correct / max(1, n_lost)),
        "repeat_top1": r(rep_correct / max(1, n_lost)),
    }


def model_bits(lm, windows, reaches: list[int], chunk_frames: int) -> dict:
    """``evaluate_lm`` at each context reach R: {"<R>": its dict}."""
    out = {}
    for r in reaches:
        res = evaluate_lm(lm, windows, context_frames=r, chunk_frames=chunk_frames)
        out[str(r)] = res
    return out


def transmit_clips(codec, model, wavs: list[np.ndarray], cfg, desc: str | None = None) -> tuple:
    """Sends every clip through the real transmitter; returns (measured bitrate in bps over
    all packet bytes, the transmitters, whose ``sent_tokens`` hold what was sent)."""
    from tqdm import tqdm

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


def lm_report(codec, coding_model, eval_set, tokens_dir: str | Path | None = None,
              n_windows: int = 256, reaches: Sequence[int] = (0, 2, 4, 8, 15, 30),
              chunk_frames: int = 2, max_clips: int = 40,
              bitrates: Sequence[float] = (6.0, 12.0), context_frames: int | None = None,
              rd_lambda: float = 0.0) -> dict:
    """``soundspring eval lm``'s numbers: model bits per context reach and packet bits.

    Args:
        codec: the ``Codec`` whose tokens the LM models.
        coding_model: the ``SpringLMCodingModel`` evaluated.
        eval_set: a ``clips.EvalSet``, every clip of it (the token windows may need them).
        tokens_dir: read the windows from ``tokens_dir/heldout.npz`` instead of encoding
            the set's clips.
        n_windows: held-out token windows of 60 frames.
        reaches: entropy-context reaches R (frames) to compare.
        chunk_frames: frames per chunk C of the model-bits measurement.
        max_clips: clips of the set for the packet bits (0: skip them).
        bitrates: raw bitrate classes of the packet bits.
        context_frames: R of the packet measurement (None: the transceiver's default).
        rd_lambda: the transmitter's rate-distortion weight for the packet measurement.

    Returns:
        The report dict, as ``--json`` writes it.

    Raises:
        ConfigError: ``max_clips`` < 0, a token file of another codec, too few frames.
    """
    if max_clips < 0:
        raise ConfigError(f"max_clips must be >= 0, got {max_clips}")
    lm = coding_model.lm
    frames = 60
    if tokens_dir:
        tfile = Path(tokens_dir) / "heldout.npz"
        held = load_tokens(tfile, codec_tokenizer_hash(codec))
        inside = clips_in_set(held.names, eval_set.clips)
        token_set = {"name": eval_set.name if inside == len(held) else file_set_name(tfile),
                     "source": str(tfile.absolute())}
    else:
        held = encode_set_tokens(codec, eval_set.clips, n_windows * frames)
        inside = len(held)
        token_set = {"name": eval_set.name, "source": "encoded from the evaluation set "
                     "(12 kbps, 24 codebooks)"}
    token_set |= {"clips": len(held), "frames": held.frames, "in_eval_set": inside}
    windows = eval_windows(held, n_windows, frames)
    # the clips the report counts: those of the packet measurement, else of the windows
    shown = eval_set.head(max_clips or (0 if tokens_dir else len(held)))
    result: dict = {"eval_set": shown.info(), "token_set": token_set,
                    "lm": coding_model.model_id, "windows": int(windows.shape[0]),
                    "model_bits": model_bits(lm, windows, list(reaches), chunk_frames)}
    if max_clips:
        wavs = load_clips(eval_set.head(max_clips).clips, progress=False)
        result["clips"] = len(wavs)
        result["packet_bits"] = packet_bits(codec, coding_model, wavs, list(bitrates),
                                            context_frames, chunk_frames, rd_lambda)
    return result


def report_markdown(result: dict) -> str:
    """The report as markdown, headed by the evaluation set's line."""

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


__all__ = [
    "clips_in_set",
    "encode_set_tokens",
    "evaluate_lm",
    "lm_report",
    "model_bits",
    "packet_bits",
    "report_markdown",
    "transmit_clips",
]
