"""``soundspring demo``: the transceiver on the shipped codec and SpringLM, end to end.

Speech (``--input``, else held-out corpus clips when the corpus is prepared, else speech
synthesised with espeak-ng: a voice the codec never heard) is sent once through the
transmitter; one loss pattern (``--channel``, ``--loss``, ``--burst``, ``--seed``) drops
packets; the receiver decodes the same received packets five ways: without loss, with LM
concealment (expected latents, and greedy tokens), and with the repeat-last-frame and
zero-token controls. Prints bitrate
against raw tokens and PESQ-WB / STOI per way, and writes the input, every output, a
report.json and a spectrogram figure to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError
from ..pipeline import TransceiverConfig, load_models, transmit
from ._common import add_model_arguments, apply_threads, read_audio, write_audio
from .simulate import make_channel, receive_lossy

ESPEAK_TEXT = (
    "Packets may be lost on the way, but the receiver fills the gaps. "
    "The quick brown fox jumps over the lazy dog."
)
WAYS = (("no_loss", "lm"), ("lm", "lm"), ("lm_greedy", "lm_greedy"), ("repeat", "repeat"),
        ("zero", "zero"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default=None, help="speech file (default: see below)")
    parser.add_argument("--out-dir", default="soundspring-demo",
                        help="where the WAVs, report.json and spectrograms.png go")
    parser.add_argument("-b", "--bitrate", type=float, default=6.0, help="raw kbps")
    parser.add_argument("--channel", choices=["bernoulli", "gilbert", "wlan"], default="gilbert")
    parser.add_argument("--loss", type=float, default=0.1, help="packet loss rate")
    parser.add_argument("--burst", type=float, default=2.0, help="mean burst (gilbert)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=int, default=4,
                        help="held-out corpus clips to concatenate when there is no --input")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-plot", action="store_true", help="skip the spectrogram figure")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_model_arguments(parser)


def demo_input(path: str | None, n_clips: int) -> tuple[np.ndarray, str]:
    """float32 [T] speech at 16 kHz and a description of where it came from."""
    if path:
        return read_audio(path), path
    from ..data.corpus import default_manifest, read_manifest

    if default_manifest().exists() and n_clips > 0:
        from ..audio import read_wav

        clips = read_manifest(None, split="heldout")
        by_lang: dict[str, list] = {}
        for c in clips:
            by_lang.setdefault(c.language, []).append(c)
        pick = []
        while len(pick) < n_clips and any(by_lang.values()):
            for lang in sorted(by_lang):
                if by_lang[lang] and len(pick) < n_clips:
                    pick.append(by_lang[lang].pop(0))
        gap = np.zeros(SAMPLE_RATE_HZ // 5, dtype=np.float32)
        wav = np.concatenate([np.concatenate([read_wav(c.path), gap]) for c in pick])
        return wav, f"{len(pick)} held-out corpus clips ({', '.join(c.path.name for c in pick)})"
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("no --input, no prepared corpus (soundspring data fetch && soundspring "
                          "data prepare) and no espeak-ng: nothing to send")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "espeak.wav"
        subprocess.run([exe, "-w", str(out), ESPEAK_TEXT], check=True, capture_output=True)
        return read_audio(str(out)), "espeak-ng synthetic speech (an unseen voice)"


def _plot(path: Path, signals: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.8 * len(signals)), sharex=True)
    dither = np.random.default_rng(0)  # -140 dB noise: digital silence has no log of zero
    for ax, (name, x) in zip(np.atleast_1d(axes), signals.items()):
        ax.specgram(x + 1e-7 * dither.standard_normal(x.size), NFFT=512, Fs=SAMPLE_RATE_HZ, noverlap=384, cmap="magma",
                    vmin=-130, vmax=-20)
        ax.set_ylabel(f"{name}\nHz")
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..evaluation.metrics import pesq_wb, stoi

    pcm, source = demo_input(args.input, args.clips)
    codec, model = load_models(args.codec, args.lm)
    cfg = TransceiverConfig(bitrate_kbps=args.bitrate)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    packets, tx = transmit(codec, model, pcm, cfg)
    lost = make_channel(args).losses(len(packets))
    report: dict = {"input": source, "seconds": round(len(pcm) / SAMPLE_RATE_HZ, 2),
                    "channel": args.channel, "loss": args.loss, "seed": args.seed,
                    "config": dataclasses.asdict(cfg), "lm": model.model_id, "ways": {}}
    signals = {"input": pcm}
    write_audio(str(out_dir / "input.wav"), pcm)
    for way, conceal in WAYS:
        mask = np.zeros_like(lost) if way == "no_loss" else lost
        wcfg = dataclasses.replace(cfg, conceal=conceal)
        y, rep = receive_lossy(codec, model, wcfg, packets, tx, mask, len(pcm))
        rep.update(pesq_wb=pesq_wb(pcm, y), stoi=stoi(pcm, y))
        report["ways"][way] = rep
        signals[way] = y
        write_audio(str(out_dir / f"{way}.wav"), y)
    if not args.no_plot:
        _plot(out_dir / "spectrograms.png", signals)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float))
    if args.json:
        print(json.dumps(report, default=float))
        return 0
    first = report["ways"]["no_loss"]
    print(f"input: {source}, {report['seconds']} s")
    print(f"bitrate: {first['bitrate_bps'] / 1000:.2f} kbps in packets vs "
          f"{first['raw_bitrate_bps'] / 1000:.1f} kbps raw tokens "
          f"({100 * first['saving_vs_raw']:.1f}% saved), {first['packets_sent']} packets")
    print(f"channel: {args.channel}, {int(lost.sum())} of {len(lost)} packets lost")
    print(f"{'receiver':>10} {'PESQ-WB':>8} {'STOI':>6} {'concealed':>9} {'undecodable':>11}")
    for way, rep in report["ways"].items():
        print(f"{way:>10} {rep['pesq_wb']:8.3f} {rep['stoi']:6.3f} "
              f"{rep['packets_concealed']:9d} {rep['packets_undecodable']:11d}")
    print(f"wrote {out_dir}/: input.wav, {', '.join(w + '.wav' for w, _ in WAYS)}, report.json"
          + ("" if args.no_plot else ", spectrograms.png"), file=sys.stderr)
    return 0
