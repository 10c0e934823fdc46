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
from soundspring.models.codec import Codec
from soundspring.models.weights_io import save_codec_weights
from soundspring.transceiver import SentPacket, TransceiverConfig, receive, transmit
from soundspring.transceiver.stream import MAX_N_SAMPLES, config_from_header, stream_header
from soundspring.transport import read_container, write_container
from soundspring.transport.container import encode_header
from test_transceiver import _speechlike


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    a = save_codec_weights(Codec(codec_tiny()).eval(), d / "a.pt")
    torch.manual_seed(1)
    b = save_codec_weights(Codec(codec_tiny()).eval(), d / "b.pt")
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
    from soundspring.transceiver import Receiver

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


def _encoded(tmp_path, wav_path, weights) -> tuple[bytes, list[str]]:
    a, _ = weights
    spring = tmp_path / "enc.spring"
    common = ["--codec", str(a), "--lm", "none", "-q"]
    assert main(["encode", str(wav_path), str(spring), *common]) == 0
    return spring.read_bytes(), common


def _rewrite(tmp_path, data: bytes, keep=lambda r: True, header=None, extra=()) -> str:
    """The container with only the records ``keep`` accepts (and optionally another header
    or extra (seq, chunk, packet) records), written as a new file."""
    contents = read_container(data)
    packets = [(r.seq, r.chunk, r.packet) for r in contents.records if keep(r)]
    path = tmp_path / f"rewritten{len(list(tmp_path.iterdir()))}.spring"
    write_container(path, header if header is not None else contents.header,
                    packets + list(extra))
    return str(path)


def test_decode_reports_concealed_share_and_writes_a_report(tmp_path, wav_path, weights,
                                                            capsys):
    data, common = _encoded(tmp_path, wav_path, weights)
    capsys.readouterr()
    # 10 of the 25 chunks removed cleanly (no damaged bytes), chunk 20 made corrupt
    path = _rewrite(tmp_path, data, keep=lambda r: not 5 <= r.chunk < 15 and r.chunk != 20,
                    extra=[(999, 20, b"\x47")])
    out, report = tmp_path / "o.wav", tmp_path / "r.json"
    assert main(["decode", path, str(out), "--report", str(report), *common]) == 0
    err = capsys.readouterr().err
    line = ("soundspring decode: concealed 11 of 25 chunks (44.0 % of the audio): "
            "10 missing, 1 corrupt")
    assert line in err.splitlines()
    assert len(sf.read(out)[0]) == 16000
    rep = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert len(rep["chunks"]) == 25 and [c["chunk"] for c in rep["chunks"]] == list(range(25))
    status = [c["status"] for c in rep["chunks"]]
    assert status[5:15] == ["concealed"] * 10 and status[20] == "corrupt"
    assert all(s in ("received", "partial", "base_only") for i, s in enumerate(status)
               if not 5 <= i < 15 and i != 20)
    assert all(c["n_levels"] == 0 for c in rep["chunks"][5:15])
    assert all(c["n_levels"] > 0 for c in rep["chunks"][:5])
    totals = rep["totals"]
    assert totals["concealed_chunks"] == 11 and totals["by_status"]["corrupt"] == 1
    assert totals["concealed_share"] == pytest.approx(0.44)
    assert rep["container"]["damage"] == [] and rep["plan"]["records_dropped"] == 0
    # the report is an output like any other: refused when it exists, unless --force
    assert main(["decode", path, str(tmp_path / "o2.wav"), "--report", str(report),
                 *common]) == 1
    assert "--force" in capsys.readouterr().err
    # nothing concealed: nothing said
    assert main(["decode", _rewrite(tmp_path, data), str(tmp_path / "o3.wav"), *common]) == 0
    assert "concealed" not in capsys.readouterr().err


def test_decode_report_to_stdout(tmp_path, wav_path, weights, capsys):
    data, common = _encoded(tmp_path, wav_path, weights)
    path = _rewrite(tmp_path, data, keep=lambda r: r.chunk != 3)
    capsys.readouterr()
    assert main(["decode", path, str(tmp_path / "o.wav"), "--report", "-", *common]) == 0
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert rep["chunks"][3]["status"] == "concealed" and len(rep["chunks"]) == 25
    assert "concealed 1 of 25 chunks (4.0 % of the audio): 1 missing, 0 corrupt" in cap.err
    assert main(["decode", path, "-", "--report", "-", *common]) == 1
    assert "stdout" in capsys.readouterr().err


def test_decode_recovers_a_damaged_header(tmp_path, wav_path, weights, capsys):
    data, common = _encoded(tmp_path, wav_path, weights)
    head = len(encode_header(read_container(data).header))
    rng = np.random.default_rng(0)
    for bit in [0, 33, 8 * head - 1, *rng.integers(0, 8 * head, 3).tolist()]:
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        path = tmp_path / f"bad{bit}.spring"
        path.write_bytes(bytes(bad))
        out = tmp_path / f"bad{bit}.wav"
        assert main(["decode", str(path), str(out), *common]) == 0
        err = capsys.readouterr().err
        assert "recovered the header from its copy at byte" in err
        assert "concealed" not in err  # every record is intact
        assert len(sf.read(out)[0]) == 16000


@pytest.mark.parametrize("field,value", [
    ("n_samples", 10**12), ("n_samples", 1e300), ("n_samples", "abc"), ("layered", "false"),
    ("chunk_frames", 1.9), ("bitrate_kbps", 7), ("check_bits", -1),
])
def test_decode_refuses_hostile_header_fields(tmp_path, wav_path, weights, capsys, field,
                                              value):
    data, common = _encoded(tmp_path, wav_path, weights)
    header = dict(read_container(data).header, **{field: value})
    path = _rewrite(tmp_path, data, header=header)
    capsys.readouterr()
    assert main(["decode", path, str(tmp_path / "o.wav"), *common]) == 1
    err = capsys.readouterr().err
    assert field in err and "must be" in err and "Traceback" not in err
    assert not (tmp_path / "o.wav").exists()


def test_decode_length_is_capped_by_the_records(tmp_path, wav_path, weights, capsys):
    data, common = _encoded(tmp_path, wav_path, weights)
    contents = read_container(data)
    # a record at chunk 4e9 is dropped; the output keeps the header's length
    path = _rewrite(tmp_path, data, extra=[(5, 4_000_000_000, b"\x40")])
    capsys.readouterr()
    assert main(["decode", path, str(tmp_path / "a.wav"), *common]) == 0
    err = capsys.readouterr().err
    assert "dropped 1 record(s) of chunk 25 or later" in err
    assert len(sf.read(tmp_path / "a.wav")[0]) == 16000
    # a header announcing 24 h over 1 s of records: 1 s + 10 s of concealment at most
    header = dict(contents.header, n_samples=MAX_N_SAMPLES)
    path = _rewrite(tmp_path, data, header=header)
    out, report = tmp_path / "b.wav", tmp_path / "b.json"
    assert main(["decode", path, str(out), "--report", str(report), "--conceal", "zero",
                 *common]) == 0
    err = capsys.readouterr().err
    assert "of the 86400.00 s the header announces" in err
    assert "concealed 250 of 275 chunks" in err
    assert len(sf.read(out)[0]) == 275 * 640
    rep = json.loads(report.read_text())
    assert rep["plan"]["n_chunks"] == 275 and rep["stream"]["header_n_samples"] == MAX_N_SAMPLES


def test_decode_empty_stream(tmp_path, wav_path, weights, capsys):
    data, common = _encoded(tmp_path, wav_path, weights)
    header = dict(read_container(data).header, n_samples=0)
    path = _rewrite(tmp_path, data, header=header)
    report = tmp_path / "e.json"
    assert main(["decode", path, str(tmp_path / "e.wav"), "--report", str(report), *common]) == 0
    assert len(sf.read(tmp_path / "e.wav")[0]) == 0
    rep = json.loads(report.read_text())
    assert rep["chunks"] == [] and rep["plan"]["records_dropped"] == 25
    assert "dropped 25 record(s)" in capsys.readouterr().err


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
    from soundspring.models.masked_lm import SpringLM, springlm_tiny
    from soundspring.models.weights_io import (
        codec_from_weights,
        codec_tokenizer_hash,
        save_lm_weights,
    )

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


def test_streamed_wav_is_the_whole_file_wav(tmp_path):
    """decode streams its WAV block by block; the bytes equal a WAV written at once."""
    from soundspring.commands._common import wav_bytes, write_audio_stream

    rng = np.random.default_rng(0)
    x = (rng.normal(size=20_000) * 0.6).astype(np.float32)
    x[:4] = [1.0, -1.0, 1.5, -2.0]  # clipped the same way
    blocks = np.array_split(x, [7, 640, 641, 9000])
    write_audio_stream(str(tmp_path / "s.wav"), len(x), iter(blocks))
    assert (tmp_path / "s.wav").read_bytes() == wav_bytes(x)
    with pytest.raises(Exception, match="of 20001 samples"):
        write_audio_stream(str(tmp_path / "t.wav"), len(x) + 1, iter(blocks))
    assert not (tmp_path / "t.wav").exists() and not (tmp_path / "t.wav.part").exists()


def test_receive_blocks_equal_receive():
    from soundspring.transceiver import receive_blocks

    torch.manual_seed(0)
    codec = Codec(codec_tiny()).eval()
    cfg = TransceiverConfig(bitrate_kbps=6, conceal="repeat")
    pcm = _speechlike(0.9)
    packets, tx = transmit(codec, StaticModel(), pcm, cfg)
    kept = [p for p in packets if p.chunk != 5]
    whole, _ = receive(codec, StaticModel(), cfg, kept, tx.chunks_sent, len(pcm))
    rx, blocks = receive_blocks(codec, StaticModel(), cfg, kept, tx.chunks_sent, len(pcm))
    parts = list(blocks)
    assert len(parts) > 10 and max(len(b) for b in parts) <= 2 * cfg.chunk_samples
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert rx.stats.chunks_concealed == 1
