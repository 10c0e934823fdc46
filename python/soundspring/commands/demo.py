"""``soundspring demo``: the transceiver on the shipped codec and SpringLM, end to end.

Speech (``--input``, else speaker-disjoint Tux Paint clips when prepared, else the Asterisk
held-out prompts of the training speakers, else speech synthesised with espeak-ng: a voice
the codec never heard) is sent once through the
transmitter; one loss pattern (``--channel``, ``--loss``, ``--burst``, ``--seed``) drops
packets; the receiver decodes the same received packets five ways: without loss, with LM
concealment (expected latents, and greedy tokens), and with the repeat-last-frame and
zero-token controls. Prints bitrate
against raw tokens and PESQ-WB / STOI per way, and writes the input, every output, a
report.json and a spectrogram figure to ``--out-dir`` (created if missing, inside an
existing folder; written only once everything is computed, each file via ``.part``;
on an error nothing is left behind). A metric that cannot be computed (audio shorter
than 0.25 s) is ``null`` with a ``<metric>_null_reason``; JSON output is strict.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE_HZ
from ..errors import ConfigError
from ..models.weights_io import load_models
from ..transceiver import TransceiverConfig, transmit
from ._common import (
    add_bitrate_argument,
    add_channel_arguments,
    add_model_arguments,
    add_threads_argument,
    apply_threads,
    atomic_output,
    check_output_path,
    int_arg,
    read_audio,
    wav_bytes,
    write_output_bytes,
)
from .simulate import make_channel, receive_lossy, strict_json

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
    add_bitrate_argument(parser)
    parser.add_argument("--channel", choices=["bernoulli", "gilbert", "wlan"], default="gilbert")
    add_channel_arguments(parser)
    parser.add_argument("--clips", type=int_arg(0, 1000), default=4,
                        help="held-out corpus clips to concatenate when there is no --input")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-plot", action="store_true", help="skip the spectrogram figure")
    add_threads_argument(parser)
    add_model_arguments(parser)


def _wants_more(pick: list, n_clips: int) -> bool:
    """n_clips clips, and (short clips) at least 20 s of speech, 100 clips at most."""
    return (len(pick) < n_clips or sum(c.duration_s for c in pick) < 20.0) and len(pick) < 100


def demo_input(path: str | None, n_clips: int) -> tuple[np.ndarray, str]:
    """float32 [T] speech at 16 kHz and a description of where it came from."""
    if path:
        return read_audio(path), path
    from ..data import speaker_disjoint_manifest
    from ..data.corpus import default_manifest, interleave_languages, read_manifest

    # voices no model trained on first (Tux Paint's held-out languages), else other
    # prompts of the Asterisk training speakers, else a synthetic voice
    sets = [(speaker_disjoint_manifest(), "speaker-disjoint clips (voices no model trained on)"),
            (default_manifest(), "same-speaker held-out corpus clips")]
    for manifest, what in sets:
        if not (manifest.exists() and n_clips > 0):
            continue
        from ..audio import read_wav

        pick: list = []
        for c in interleave_languages(c for c in read_manifest(manifest, split="heldout")
                                      if c.duration_s >= 1.0):
            if not _wants_more(pick, n_clips):
                break
            pick.append(c)
        if not pick:
            continue
        gap = np.zeros(SAMPLE_RATE_HZ // 5, dtype=np.float32)
        wav = np.concatenate([np.concatenate([read_wav(c.path), gap]) for c in pick])
        return wav, f"{len(pick)} {what} ({', '.join(c.path.name for c in pick)})"
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
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def check_out_dir(path: str) -> bool:
    """Checks ``--out-dir`` before any work; returns whether it must be created.

    The folder holding it must exist (it is created one level, like ``mkdir``, never
    ``mkdir -p``); an existing file of that name is refused.

    Raises:
        ConfigError: the parent folder is missing, or the path is not a folder.
    """
    p = Path(path)
    if p.is_dir():
        check_output_path(str(p / "report.json"), force=True)  # writable?
        return False
    if p.exists():
        raise ConfigError(f"--out-dir {path} exists and is not a folder")
    parent = p.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot create --out-dir {path}: folder {parent} does not exist "
                          "(create it first)")
    return True


class _Outputs:
    """The files one demo run writes into ``out_dir``; on failure they are all removed
    (and ``out_dir`` too when this run created it), so a failed run leaves nothing."""

    def __init__(self, out_dir: Path, create: bool) -> None:
        self.dir, self.create, self.written = out_dir, create, []

    def __enter__(self) -> _Outputs:  # noqa: PYI034
        if self.create:
            try:
                self.dir.mkdir()
            except OSError as exc:
                raise ConfigError(f"cannot create --out-dir {self.dir}: "
                                  f"{exc.strerror or exc}") from None
        return self

    def write(self, name: str, data: bytes) -> None:
        write_output_bytes(str(self.dir / name), data)
        self.written.append(self.dir / name)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        for p in self.written:
            p.unlink(missing_ok=True)
        if self.create:
            try:
                self.dir.rmdir()
            except OSError:
                pass


def _fmt_metric(value, width: int, places: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}.{places}f}"


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..evaluation.metrics import quality_report

    create_dir = check_out_dir(args.out_dir)
    channel = make_channel(args)  # a bad --loss fails here, before any audio is coded
    cfg = TransceiverConfig(bitrate_kbps=args.bitrate)
    pcm, source = demo_input(args.input, args.clips)
    codec, model = load_models(args.codec, args.lm, backend=args.lm_backend)
    out_dir = Path(args.out_dir)
    packets, tx = transmit(codec, model, pcm, cfg)
    lost = channel.losses(len(packets))
    report: dict = {"input": source, "seconds": round(len(pcm) / SAMPLE_RATE_HZ, 2),
                    "channel": args.channel, "loss": args.loss, "seed": args.seed,
                    "config": dataclasses.asdict(cfg), "lm": model.model_id, "ways": {}}
    signals = {"input": pcm}
    ways = WAYS
    if not (getattr(model, "can_conceal", True)
            and callable(getattr(model, "conceal_logits", None))):
        # no LM (--lm none): the LM ways are skipped; no_loss conceals nothing anyway
        ways = tuple((w, "repeat" if w == "no_loss" else c) for w, c in WAYS
                     if w == "no_loss" or c not in ("lm", "lm_greedy"))
        report["skipped_ways"] = {w: f"{model.model_id} does not predict lost tokens (--lm none)"
                                  for w, c in WAYS if c in ("lm", "lm_greedy") and w != "no_loss"}
    for way, conceal in ways:
        mask = np.zeros_like(lost) if way == "no_loss" else lost
        wcfg = dataclasses.replace(cfg, conceal=conceal)
        y, rep = receive_lossy(codec, model, wcfg, packets, tx, mask, len(pcm))
        rep.update(quality_report(pcm, y))
        report["ways"][way] = rep
        signals[way] = y
    report_text = strict_json(report, indent=1, default=float)
    with _Outputs(out_dir, create_dir) as outputs:
        for name, x in signals.items():
            outputs.write(f"{name}.wav", wav_bytes(x))
        if not args.no_plot:
            outputs.written.append(out_dir / "spectrograms.png")
            _plot(out_dir / "spectrograms.png", signals)
        outputs.write("report.json", report_text.encode())
    if args.json:
        print(strict_json(report, default=float))
        return 0
    first = report["ways"]["no_loss"]
    print(f"input: {source}, {report['seconds']} s")
    print(f"bitrate: {first['bitrate_bps'] / 1000:.2f} kbps in packets vs "
          f"{first['raw_bitrate_bps'] / 1000:.1f} kbps raw tokens "
          f"({100 * first['saving_vs_raw']:.1f}% saved), {first['packets_sent']} packets")
    print(f"channel: {args.channel}, {int(lost.sum())} of {len(lost)} packets lost")
    print(f"{'receiver':>10} {'PESQ-WB':>8} {'STOI':>6} {'concealed':>9} {'undecodable':>11}")
    for way, rep in report["ways"].items():
        print(f"{way:>10} {_fmt_metric(rep['pesq_wb'], 8, 3)} {_fmt_metric(rep['stoi'], 6, 3)} "
              f"{rep['packets_concealed']:9d} {rep['packets_undecodable']:11d}")
    reasons = sorted({f"{m}: {rep[m + '_null_reason']}" for rep in report["ways"].values()
                      for m in ("pesq_wb", "stoi") if rep.get(m + "_null_reason")})
    for r in reasons:
        print(f"n/a = {r}")
    for way, why in report.get("skipped_ways", {}).items():
        print(f"{way:>10} skipped: {why}")
    print(f"wrote {out_dir}/: input.wav, {', '.join(w + '.wav' for w, _ in ways)}, report.json"
          + ("" if args.no_plot else ", spectrograms.png"), file=sys.stderr)
    return 0
