"""encode / decode / simulate commands and the .spring round trip, on a tiny random codec."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from soundspring.cli import main
from soundspring.config import codec_tiny
from soundspring.entropy.static import StaticModel
from soundspring.models.codec import Codec, save_weights
from soundspring.pipeline import (
    SentPacket,
    TransceiverConfig,
    config_from_header,
    receive,
    stream_header,
    transmit,
)
from soundspring.transport import read_container, write_container
from test_pipeline import _speechlike


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    a = save_weights(Codec(codec_tiny()).eval(), d / "a.pt")
    torch.manual_seed(1)
    b = save_weights(Codec(codec_tiny()).eval(), d / "b.pt")
    return a, b


@pytest.fixture
def wav_path(tmp_path):
    p = tmp_path / "in.wav"
    sf.write(p, _speechlike(1.0), 16000)
    return p


def test_spring_round_trip_tokens_exact():
    torch.manual_seed(0)
    codec = Codec(codec_tiny()).eval()
    model = StaticModel()
    cfg = TransceiverConfig(bitrate_kbps=12, conceal="repeat")
    pcm = _speechlike(0.7)
    packets, tx = transmit(codec, model, pcm, cfg)
    buf = io.BytesIO()
    write_container(
        buf, stream_header(codec, model, cfg, len(pcm)), [(p.seq, p.chunk, p.data) for p in packets]
    )
    contents = read_container(buf.getvalue())
    cfg2 = config_from_header(contents.header, "repeat")
    assert cfg2 == cfg
    got = [SentPacket(r.seq, r.chunk, -1, r.packet) for r in contents.records]
    from soundspring.pipeline import Receiver

    rx = Receiver(codec, model, cfg2)
    for p in got:
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    for sent, outcome in zip(tx.sent_tokens, rx.history):
        np.testing.assert_array_equal(outcome.tokens, sent)
    wav, _ = receive(codec, model, cfg2, got, tx.chunks_sent, len(pcm))
    assert wav.shape == pcm.shape and np.isfinite(wav).all()


def test_encode_decode_cli(tmp_path, wav_path, weights, capsys):
    a, b = weights
    spring = tmp_path / "x.spring"
    out = tmp_path / "out.wav"
    common = ["--codec", str(a), "--lm", "none", "-q"]
    assert main(["encode", str(wav_path), str(spring), "-b", "3", *common]) == 0
    assert main(["decode", str(spring), str(out), *common]) == 0
    y, sr = sf.read(out)
    assert sr == 16000 and len(y) == 16000
    # overwrite guard
    assert main(["decode", str(spring), str(out), *common]) == 1
    assert "--force" in capsys.readouterr().err
    # a file from another model is refused
    assert main(["decode", str(spring), str(out), "-f", "--codec", str(b), "--lm", "none"]) == 1
    assert "codec" in capsys.readouterr().err


def test_damaged_spring_still_decodes(tmp_path, wav_path, weights):
    a, _ = weights
    spring = tmp_path / "x.spring"
    common = ["--codec", str(a), "--lm", "none", "-q"]
    assert main(["encode", str(wav_path), str(spring), *common]) == 0
    data = bytearray(spring.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)  # damage in the middle
    damaged = tmp_path / "damaged.spring"
    damaged.write_bytes(bytes(data[: len(data) - 25]))  # and a truncated tail
    out = tmp_path / "out.wav"
    assert main(["decode", str(damaged), str(out), *common]) == 0
    assert len(sf.read(out)[0]) == 16000


def test_other_sample_rate_is_resampled(tmp_path, weights):
    a, _ = weights
    p = tmp_path / "in48.wav"
    sf.write(p, np.repeat(_speechlike(0.5), 3), 48000)
    out = tmp_path / "o.wav"
    assert (
        main(
            [
                "simulate",
                str(p),
                str(out),
                "--codec",
                str(a),
                "--lm",
                "none",
                "--channel",
                "none",
                "-q",
            ]
        )
        == 0
    )
    assert len(sf.read(out)[0]) == 8000


@pytest.mark.parametrize("channel,layered", [("bernoulli", False), ("gilbert", True),
                                             ("wlan", False)])
def test_simulate_json(tmp_path, wav_path, weights, capsys, channel, layered):
    a, _ = weights
    out = tmp_path / "o.wav"
    assert (
        main(
            [
                "simulate",
                str(wav_path),
                str(out),
                "--codec",
                str(a),
                "--lm",
                "none",
                "--channel",
                channel,
                "--loss",
                "0.3",
                "--json",
                "-q",
                "--fec",
            ] + (["--layered"] if layered else [])
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    for key in (
        "bitrate_bps",
        "raw_bitrate_bps",
        "packets_sent",
        "packets_lost",
        "packets_concealed",
        "packets_undecodable",
        "pesq_wb",
        "stoi",
    ):
        assert key in report
    # one packet per chunk, or base + 2 fine groups per chunk at 6 kbps when layered
    assert report["packets_sent"] == 25 * (3 if layered else 1) and report["packets_lost"] > 0
    assert report["raw_bitrate_bps"] == 6000


def test_simulate_trace_needs_file(tmp_path, wav_path, weights, capsys):
    a, _ = weights
    assert (
        main(
            [
                "simulate",
                str(wav_path),
                str(tmp_path / "o.wav"),
                "--codec",
                str(a),
                "--lm",
                "none",
                "--channel",
                "trace",
            ]
        )
        == 1
    )
    assert "--trace" in capsys.readouterr().err


def test_demo_compares_lm_concealment_with_the_controls(tmp_path, wav_path, weights, capsys):
    from soundspring.models.codec import codec_from_weights, codec_tokenizer_hash
    from soundspring.models.lm_weights import save_lm_weights
    from soundspring.models.masked_lm import SpringLM, springlm_tiny

    a, _ = weights
    torch.manual_seed(0)
    lm = save_lm_weights(SpringLM(springlm_tiny()), tmp_path / "lm.pt",
                         tokenizer_sha256=codec_tokenizer_hash(codec_from_weights(a)))
    out = tmp_path / "demo"
    args = ["demo", "--input", str(wav_path), "--out-dir", str(out), "--codec", str(a),
            "--lm", str(lm), "--channel", "bernoulli", "--loss", "0.3", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    ways = report["ways"]
    assert set(ways) == {"no_loss", "lm", "lm_greedy", "repeat", "zero"}
    assert ways["no_loss"]["packets_lost"] == 0 and ways["no_loss"]["packets_concealed"] == 0
    lost = {ways[w]["packets_lost"] for w in ("lm", "lm_greedy", "repeat", "zero")}
    assert len(lost) == 1 and lost.pop() > 0  # one loss pattern for every receiver
    for w in ways:
        assert (out / f"{w}.wav").exists() and -0.5 <= ways[w]["pesq_wb"] <= 4.7
    assert (out / "spectrograms.png").stat().st_size > 1000
    assert json.loads((out / "report.json").read_text())["ways"].keys() == ways.keys()
    # an LM trained on another codec's tokens is refused with a typed error (exit 1)
    b_args = [x if x != str(a) else str(weights[1]) for x in args]
    assert main(b_args) == 1
    assert "tokenizer" in capsys.readouterr().err.lower()
