"""Every CLI error is one line, without a traceback, and leaves nothing behind.

A table of (command, bad input) cases runs ``soundspring.cli.main`` in-process and checks
the exit code (2 = usage, 1 = runtime), that stderr is exactly one line
``soundspring CMD: error: ...`` naming the problem, that there is no traceback, and that
no output or ``.part`` file was created. Usage errors are one line as well (argparse's
usage block is only in ``--help``). Everything runs on a tiny random codec, short audio
and ``--lm none``; the real stdin pipe is exercised once through a subprocess.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from soundspring.cli import main
from soundspring.config import codec_tiny
from soundspring.models.codec import Codec
from soundspring.models.weights_io import save_codec_weights
from test_transceiver import _speechlike


def _wav_header_bytes(rate: int, n: int = 1600, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV whose header declares ``rate`` (any uint32), with n silent frames."""
    data = np.zeros(n * channels, "<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, (rate * 2 * channels) & 0xFFFFFFFF,
                      2 * channels, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + fmt + b"data"
            + struct.pack("<I", len(data)) + data)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace: inputs in in/, an empty out/ for outputs."""
    root = tmp_path_factory.mktemp("cli_errors")
    d = root / "in"
    d.mkdir()
    (root / "out").mkdir()
    torch.manual_seed(0)
    save_codec_weights(Codec(codec_tiny()).eval(), d / "tiny.pt")
    sf.write(d / "in.wav", _speechlike(0.5), 16000)
    sf.write(d / "short.wav", _speechlike(0.1), 16000)
    (d / "huge_rate.wav").write_bytes(_wav_header_bytes(2**31 - 1))
    (d / "rate1.wav").write_bytes(_wav_header_bytes(1))
    (d / "empty.wav").write_bytes(_wav_header_bytes(16000, n=0))
    (d / "junk.bin").write_bytes(np.random.default_rng(0).bytes(700))
    (d / "notes.txt").write_text("not audio\n")
    (d / "trace_empty.txt").write_bytes(b"")
    (d / "trace_bad.txt").write_text("0\n1\n2\n")
    (d / "folder").mkdir()
    assert main(["encode", str(d / "in.wav"), str(d / "good.spring"), "--codec",
                 str(d / "tiny.pt"), "--lm", "none", "-q"]) == 0
    good = (d / "good.spring").read_bytes()
    (d / "random.spring").write_bytes(np.random.default_rng(1).bytes(len(good)))
    (d / "truncated.spring").write_bytes(good[:30])
    return root


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_one_error_line(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one stderr line, got {err!r}"
    assert lines[0].startswith(f"soundspring {command}: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


CODEC = ["--codec", "{in}/tiny.pt", "--lm", "none", "-q"]
DEMO_CODEC = ["--codec", "{in}/tiny.pt", "--lm", "none", "--no-plot"]
ENC = ["encode", "{in}/in.wav", "{out}/x.spring", *CODEC]
SIM = ["simulate", "{in}/in.wav", "{out}/x.wav", *CODEC]
DEC = ["decode", "{in}/good.spring", "{out}/x.wav", *CODEC]
DEMO = ["demo", "--input", "{in}/in.wav", "--out-dir", "{out}/demo", *DEMO_CODEC]

# (id, argv, exit code, text the error line must contain)
CASES = [
    # ---- usage errors (exit 2): numeric options out of range -----------------------------
    ("encode-b-nan", [*ENC, "-b", "nan"], 2, "choose from 1.5, 3, 6, 12"),
    ("encode-b-inf", [*ENC, "-b", "inf"], 2, "choose from 1.5, 3, 6, 12"),
    ("encode-b-7", [*ENC, "-b", "7"], 2, "invalid bitrate '7'"),
    ("encode-b-word", [*ENC, "-b", "fast"], 2, "--bitrate"),
    ("encode-chunk-0", [*ENC, "--chunk-frames", "0"], 2, "[1, 5]"),
    ("encode-chunk-6", [*ENC, "--chunk-frames", "6"], 2, "[1, 5]"),
    ("encode-context-neg", [*ENC, "--context-frames", "-1"], 2, "[0, 50]"),
    ("encode-check-bits", [*ENC, "--check-bits", "17"], 2, "[0, 16]"),
    ("encode-rd-nan", [*ENC, "--rd-lambda", "nan"], 2, "--rd-lambda"),
    ("encode-rd-neg", [*ENC, "--rd-lambda", "-1"], 2, "--rd-lambda"),
    ("encode-threads-0", [*ENC, "--threads", "0"], 2, "--threads"),
    ("encode-missing-arg", ["encode", "{in}/in.wav"], 2, "required: output"),
    ("decode-threads", [*DEC, "--threads", "-3"], 2, "--threads"),
    ("decode-conceal", [*DEC, "--conceal", "magic"], 2, "--conceal"),
    ("simulate-b-7", [*SIM, "-b", "7"], 2, "choose from"),
    ("simulate-loss-big", [*SIM, "--loss", "1.5"], 2, "[0, 1]"),
    ("simulate-loss-nan", [*SIM, "--loss", "nan"], 2, "[0, 1]"),
    ("simulate-burst", [*SIM, "--burst", "0.5"], 2, "--burst"),
    ("simulate-seed-neg", [*SIM, "--seed", "-1"], 2, "2**64-1"),
    ("simulate-seed-big", [*SIM, "--seed", str(2**64)], 2, "--seed"),
    ("simulate-channel", [*SIM, "--channel", "carrier-pigeon"], 2, "--channel"),
    ("demo-b-inf", [*DEMO, "-b", "inf"], 2, "choose from"),
    ("demo-loss-neg", [*DEMO, "--loss", "-0.1"], 2, "--loss"),
    ("demo-seed-neg", [*DEMO, "--seed", "-1"], 2, "--seed"),
    ("demo-clips-neg", [*DEMO, "--clips", "-1"], 2, "--clips"),
    ("linktest-seed-neg", ["linktest", "--seed", "-1"], 2, "--seed"),
    ("linktest-b-7", ["linktest", "-b", "7"], 2, "choose from"),
    ("linktest-seconds-0", ["linktest", "--seconds", "0"], 2, "(0, 3600]"),
    ("linktest-jitter-neg", ["linktest", "--jitter-ms", "-1"], 2, "--jitter-ms"),
    ("linktest-loss-nan", ["linktest", "--loss", "nan"], 2, "--loss"),
    ("linktest-unknown-option", ["linktest", "--no-such-option"], 2, "unrecognized"),
    ("bench-no-target", ["bench"], 2, "required"),
    ("bench-symbols-0", ["bench", "coder", "--symbols", "0"], 2, "--symbols"),
    ("bench-precision", ["bench", "coder", "--precision-bits", "17"], 2, "[1, 16]"),
    ("bench-seed-neg", ["bench", "coder", "--seed", "-1"], 2, "--seed"),
    # ---- runtime errors (exit 1): inputs ------------------------------------------------
    ("encode-missing-input", ["encode", "{in}/nope.wav", "{out}/x.spring", *CODEC], 1,
     "cannot read {in}/nope.wav: no such file"),
    ("encode-folder-input", ["encode", "{in}/folder", "{out}/x.spring", *CODEC], 1, "folder"),
    ("encode-junk-input", ["encode", "{in}/junk.bin", "{out}/x.spring", *CODEC], 1,
     "not an audio file"),
    ("encode-text-input", ["encode", "{in}/notes.txt", "{out}/x.spring", *CODEC], 1,
     "not an audio file"),
    ("encode-spring-input", ["encode", "{in}/good.spring", "{out}/x.spring", *CODEC], 1,
     "not an audio file"),
    ("encode-huge-rate", ["encode", "{in}/huge_rate.wav", "{out}/x.spring", *CODEC], 1,
     "2147483647 Hz"),
    ("encode-rate-1hz", ["encode", "{in}/rate1.wav", "{out}/x.spring", *CODEC], 1,
     "1000..384000 Hz"),
    ("encode-empty-wav", ["encode", "{in}/empty.wav", "{out}/x.spring", *CODEC], 1, "empty"),
    ("encode-missing-codec", [*ENC[:3], "--codec", "{in}/nope.pt", "--lm", "none"], 1,
     "nope.pt"),
    ("decode-missing-input", ["decode", "{in}/nope.spring", "{out}/x.wav", *CODEC], 1,
     "no such file"),
    ("decode-folder-input", ["decode", "{in}/folder", "{out}/x.wav", *CODEC], 1, "folder"),
    ("decode-random-bytes", ["decode", "{in}/random.spring", "{out}/x.wav", *CODEC], 1, ""),
    ("decode-truncated", ["decode", "{in}/truncated.spring", "{out}/x.wav", *CODEC], 1, ""),
    ("decode-wav-input", ["decode", "{in}/in.wav", "{out}/x.wav", *CODEC], 1, ""),
    ("simulate-missing-input", ["simulate", "{in}/nope.wav", "{out}/x.wav", *CODEC], 1,
     "no such file"),
    ("simulate-huge-rate", ["simulate", "{in}/huge_rate.wav", "{out}/x.wav", *CODEC], 1,
     "sample rate"),
    ("simulate-trace-none", [*SIM, "--channel", "trace"], 1, "--trace"),
    ("simulate-trace-missing", [*SIM, "--channel", "trace", "--trace", "{in}/nope.txt"], 1,
     "nope.txt: no such file"),
    ("simulate-trace-folder", [*SIM, "--channel", "trace", "--trace", "{in}/folder"], 1,
     "folder"),
    ("simulate-trace-empty", [*SIM, "--channel", "trace", "--trace", "{in}/trace_empty.txt"],
     1, "is empty"),
    ("simulate-trace-bad", [*SIM, "--channel", "trace", "--trace", "{in}/trace_bad.txt"], 1,
     "line 3"),
    ("simulate-gilbert-loss-1", [*SIM, "--channel", "gilbert", "--loss", "1"], 1, "below 1"),
    ("demo-missing-input", ["demo", "--input", "{in}/nope.wav", "--out-dir", "{out}/demo",
                            *DEMO_CODEC], 1, "no such file"),
    ("linktest-gilbert-loss-1", ["linktest", "--channel", "gilbert", "--loss", "1"], 1,
     "below 1"),
    ("bench-vocab-precision", ["bench", "coder", "--vocab", "4096", "--precision-bits", "10"],
     1, "--vocab"),
    # ---- runtime errors (exit 1): outputs ----------------------------------------------
    ("encode-out-missing-folder", ["encode", "{in}/in.wav", "{out}/nodir/x.spring", *CODEC],
     1, "folder {out}/nodir does not exist"),
    ("decode-out-missing-folder", ["decode", "{in}/good.spring", "{out}/nodir/x.wav", *CODEC],
     1, "folder {out}/nodir does not exist"),
    ("simulate-out-missing-folder", ["simulate", "{in}/in.wav", "{out}/nodir/x.wav", *CODEC],
     1, "does not exist"),
    ("encode-out-folder", ["encode", "{in}/in.wav", "{out}", *CODEC], 1, "is a folder"),
    ("decode-out-folder", ["decode", "{in}/good.spring", "{in}/folder", *CODEC, "-f"], 1,
     "is a folder"),
    ("simulate-out-folder-slash", ["simulate", "{in}/in.wav", "{out}/new/", *CODEC], 1,
     "folder"),
    ("encode-out-proc", ["encode", "{in}/in.wav", "/proc/soundspring-x.spring", *CODEC], 1,
     "cannot write /proc/soundspring-x.spring"),
    ("decode-out-proc", ["decode", "{in}/good.spring", "/proc/soundspring-x.wav", *CODEC], 1,
     "cannot write"),
    ("encode-out-exists", ["encode", "{in}/in.wav", "{in}/good.spring", *CODEC], 1, "--force"),
    ("demo-out-dir-missing-parent", [*DEMO[:3], "--out-dir", "{out}/nodir/demo",
                                     *DEMO_CODEC], 1, "does not exist"),
    ("demo-out-dir-is-file", [*DEMO[:3], "--out-dir", "{in}/in.wav", *DEMO_CODEC], 1,
     "not a folder"),
]


def _argv(template: list[str], root: Path) -> list[str]:
    return [a.format(**{"in": root / "in", "out": root / "out"}) for a in template]


@pytest.mark.parametrize(("argv", "code", "text"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(ws, capsys, argv, code, text):
    before = _files(ws)
    rc = main(_argv(argv, ws))
    err = capsys.readouterr().err
    assert rc == code, err
    line = _assert_one_error_line(err, argv[0])
    assert text.format(**{"in": ws / "in", "out": ws / "out"}) in line
    assert _files(ws) == before, "an error left files behind"
    assert not Path("/proc/soundspring-x.spring.part").exists()


# ---- stdin ----------------------------------------------------------------------------------


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(data)))


def test_encode_and_simulate_read_audio_on_stdin(ws, monkeypatch, capsys, tmp_path):
    wav = (ws / "in" / "in.wav").read_bytes()
    codec = _argv(CODEC, ws)
    _stdin(monkeypatch, wav)
    assert main(["encode", "-", str(tmp_path / "a.spring"), *codec]) == 0
    assert main(["encode", str(ws / "in" / "in.wav"), str(tmp_path / "b.spring"), *codec]) == 0
    assert (tmp_path / "a.spring").read_bytes() == (tmp_path / "b.spring").read_bytes()
    flac = io.BytesIO()
    sf.write(flac, _speechlike(0.5), 16000, format="FLAC")
    _stdin(monkeypatch, flac.getvalue())
    assert main(["simulate", "-", str(tmp_path / "s.wav"), *codec, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["packets_sent"] > 0
    assert len(sf.read(tmp_path / "s.wav")[0]) == 8000


@pytest.mark.parametrize(("data", "text"), [(b"", "stdin is empty"),
                                           (b"\x00\x01junk" * 50, "not an audio file")])
def test_bad_audio_on_stdin(ws, monkeypatch, capsys, tmp_path, data, text):
    for cmd in ("encode", "simulate"):
        _stdin(monkeypatch, data)
        assert main([cmd, "-", str(tmp_path / "o"), *_argv(CODEC, ws)]) == 1
        assert text in _assert_one_error_line(capsys.readouterr().err, cmd)
    assert list(tmp_path.iterdir()) == []


def test_stdin_pipe_through_the_real_command(ws, tmp_path):
    """A real pipe into ``python -m soundspring encode -``; a bad one fails in one line."""
    cmd = [sys.executable, "-m", "soundspring", "encode", "-", str(tmp_path / "p.spring"),
           *_argv(CODEC, ws)]
    ok = subprocess.run(cmd, input=(ws / "in" / "in.wav").read_bytes(), capture_output=True,
                        timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr.decode()
    assert (tmp_path / "p.spring").read_bytes() == (ws / "in" / "good.spring").read_bytes()
    cmd[5] = str(tmp_path / "q.spring")
    bad = subprocess.run(cmd, input=b"garbage" * 10, capture_output=True, timeout=120,
                         check=False)
    assert bad.returncode == 1
    _assert_one_error_line(bad.stderr.decode(), "encode")
    assert not (tmp_path / "q.spring").exists() and not (tmp_path / "q.spring.part").exists()


# ---- full device, interrupted writes, unexpected errors ------------------------------------


def _full_device(monkeypatch, exc: BaseException) -> None:
    from soundspring.commands import _common

    def write_half_then_fail(f, data):
        f.write(data[: len(data) // 2])
        raise exc

    monkeypatch.setattr(_common, "_write_all", write_half_then_fail)


@pytest.mark.parametrize("command", ["encode", "decode", "simulate"])
def test_full_device_removes_the_part_file(ws, monkeypatch, capsys, tmp_path, command):
    _full_device(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    src = {"encode": "in.wav", "decode": "good.spring", "simulate": "in.wav"}[command]
    out = tmp_path / "o"
    assert main([command, str(ws / "in" / src), str(out), *_argv(CODEC, ws)]) == 1
    line = _assert_one_error_line(capsys.readouterr().err, command)
    assert f"cannot write {out}" in line and "No space left on device" in line
    assert list(tmp_path.iterdir()) == []


def test_full_device_in_demo_removes_everything(ws, monkeypatch, capsys, tmp_path):
    _full_device(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    out = tmp_path / "demo"
    assert main(_argv(DEMO[:3], ws) + ["--out-dir", str(out), *_argv(DEMO_CODEC, ws)]) == 1
    assert "No space left" in _assert_one_error_line(capsys.readouterr().err, "demo")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_removes_the_part_file(ws, monkeypatch, capsys, tmp_path):
    _full_device(monkeypatch, KeyboardInterrupt())
    assert main(["encode", str(ws / "in" / "in.wav"), str(tmp_path / "o"),
                 *_argv(CODEC, ws)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("exc", "text"), [
    (RuntimeError("boom\nsecond line"), ("internal error: RuntimeError: boom | second line "
                                         "(set SOUNDSPRING_DEBUG=1 for a traceback)")),
    (MemoryError(), "out of memory"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"),
     "cannot access /x/y: Permission denied (EACCES)"),
])
def test_unexpected_errors_are_one_line(monkeypatch, capsys, exc, text):
    from soundspring.commands import linktest

    def boom(_args):
        raise exc

    monkeypatch.setattr(linktest, "run", boom)
    monkeypatch.delenv("SOUNDSPRING_DEBUG", raising=False)
    assert main(["linktest"]) == 1
    assert _assert_one_error_line(capsys.readouterr().err, "linktest").endswith(text)
    monkeypatch.setenv("SOUNDSPRING_DEBUG", "1")
    assert main(["linktest"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("soundspring linktest: error:")


def test_unknown_command_is_one_line(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("soundspring: error: unknown command")


# ---- short and empty audio: null metrics, strict JSON; empty streams ---------------------


def _strict(text: str) -> dict:
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_short_audio_reports_null_metrics_as_strict_json(ws, capsys, tmp_path):
    codec = _argv(CODEC, ws)
    assert main(["simulate", str(ws / "in" / "short.wav"), str(tmp_path / "s.wav"), *codec,
                 "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert report["pesq_wb"] is None and "0.25 s" in report["pesq_wb_null_reason"]
    assert report["stoi"] is None and report["stoi_null_reason"]
    assert main(["simulate", str(ws / "in" / "short.wav"), str(tmp_path / "t.wav"),
                 *codec]) == 0
    assert "n/a (audio shorter than 0.25 s)" in capsys.readouterr().out
    out = tmp_path / "demo"
    assert main(["demo", "--input", str(ws / "in" / "short.wav"), "--out-dir", str(out),
                 *_argv(DEMO_CODEC, ws), "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert set(report["skipped_ways"]) == {"lm", "lm_greedy"}  # --lm none: no LM to conceal
    for rep in report["ways"].values():
        assert rep["pesq_wb"] is None and rep["pesq_wb_null_reason"]
    assert _strict((out / "report.json").read_text())["ways"].keys() == report["ways"].keys()
    assert not any(p.name.endswith(".part") for p in out.iterdir())


def test_a_stream_of_no_samples_decodes_to_an_empty_wav(ws, tmp_path):
    from soundspring.models.weights_io import load_models
    from soundspring.transceiver import TransceiverConfig
    from soundspring.transceiver.stream import stream_header
    from soundspring.transport import write_container

    codec, model = load_models(str(ws / "in" / "tiny.pt"), "none")
    buf = io.BytesIO()
    write_container(buf, stream_header(codec, model, TransceiverConfig(), 0), [])
    (tmp_path / "zero.spring").write_bytes(buf.getvalue())
    rc = main(["decode", str(tmp_path / "zero.spring"), str(tmp_path / "z.wav"),
               *_argv(CODEC, ws)])
    if rc == 0:  # decode may also refuse an empty stream, but never with a traceback
        y, sr = sf.read(tmp_path / "z.wav")
        assert sr == 16000 and len(y) == 0


def test_codec_decodes_zero_frames():
    codec = Codec(codec_tiny()).eval()
    codes = torch.zeros(2, 3, 0, dtype=torch.int64)
    y = codec.decode(codes)
    assert y.shape == (2, 1, 0) and y.dtype == torch.float32
    state = codec.init_decoder_state(2)
    y, state2 = codec.decode_step(codes, state)
    assert y.shape == (2, 1, 0) and state2.frames == 0
    assert codec.decode_flush(state2).shape == (2, 1, codec.lookahead_samples)


def test_output_rules_agree_across_commands(ws, tmp_path):
    """A missing output folder is refused by every command (nothing creates it); an
    existing device such as /dev/null is written in place."""
    codec = _argv(CODEC, ws)
    for cmd, src in (("encode", "in.wav"), ("decode", "good.spring"), ("simulate", "in.wav")):
        assert main([cmd, str(ws / "in" / src), str(tmp_path / "a" / "b" / "o"), *codec]) == 1
        assert main([cmd, str(ws / "in" / src), os.devnull, *codec]) == 0
    assert list(tmp_path.iterdir()) == []
    assert Path(os.devnull).is_char_device()


def test_nan_is_never_printed(ws, capsys, tmp_path):
    """Silence: PESQ finds no utterance, reported as null with a reason."""
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    assert main(["simulate", str(tmp_path / "silence.wav"), str(tmp_path / "o.wav"),
                 *_argv(CODEC, ws), "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in report.values())
    if report["pesq_wb"] is None:
        assert report["pesq_wb_null_reason"]
