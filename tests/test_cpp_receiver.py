"""The Python-free, torch-free C++ receiver (examples/cpp_receiver): it decodes .spring
files to the same tokens as the Python receiver with the default engine backend (every
chunk's outcome and tokens, concealment included) and to the same audio within AUDIO_TOL,
refuses mismatched models, modified exports and corrupt or hostile flat weights files with
one line on stderr, and its per-chunk receive time is measured beside the Python
receiver's.

The binary comes from ``SOUNDSPRING_CPP_RECEIVER`` (a path, e.g. a CI build) or is built
here into a temporary directory (about a minute on two cores) when CMake and a C++
compiler are present; otherwise every test skips with the reason. A build that fails with
both present fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from soundspring.config import TransceiverConfig
from soundspring.models.export import (
    CODEC_FLAT_NAME,
    LM_FLAT_NAME,
    MANIFEST_NAME,
    export_models,
    write_codec_flat,
)
from soundspring.models.weights_io import (
    DEFAULT_LM_WEIGHTS,
    codec_tokenizer_hash,
    load_codec,
    load_coding_model,
    load_lm,
    load_models,
)
from soundspring.transceiver import SentPacket, receive, transmit
from soundspring.transceiver.stream import stream_header
from soundspring.transport import ContainerWriter, Packet, parse_packet

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "cpp_receiver"
C = 2
AUDIO_TOL = 1e-6
"""Audio agreement of the C++ and Python receivers (max abs sample difference). Both run
the same C++ codec decoder (csrc/core/codec_engine.h: the Python receiver through
``CodecEngine``, the program on the export's flat weights, which widen to the same float32
values) on latents summed in the same order, so the audio is expected equal bit for bit
(measured: max difference 0.0). 1e-6 leaves room only for a receiver built from a
different revision of codec_engine.cc than the installed extension."""


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def _build(tmp: Path) -> tuple[Path | None, str]:
    """(the built program, "") or (None, why it cannot be built here); a configure or
    compile error with every tool present fails the tests instead."""
    cmake = shutil.which("cmake")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    if cmake is None or not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        return None, "no cmake or C++ compiler"
    build = tmp / "build"
    cfg = subprocess.run([cmake, "-S", str(SOURCE), "-B", str(build), *gen,
                          "-DCMAKE_BUILD_TYPE=Release"],
                         check=False, capture_output=True, text=True, timeout=600)
    if cfg.returncode != 0:
        pytest.fail("cmake configure of examples/cpp_receiver failed: " + cfg.stderr[-2000:])
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    run = subprocess.run([cmake, "--build", str(build), "-j", jobs, "--target",
                          "soundspring_receiver"], check=False,
                         capture_output=True, text=True, timeout=1800)
    exe = build / "soundspring_receiver"
    if run.returncode != 0 or not exe.exists():
        pytest.fail("build of examples/cpp_receiver failed: " + (run.stdout + run.stderr)[-2000:])
    return exe, ""


@pytest.fixture(scope="module")
def receiver_bin(tmp_path_factory) -> Path:
    given = os.environ.get("SOUNDSPRING_CPP_RECEIVER")
    if given:
        if not Path(given).is_file():
            pytest.fail(f"SOUNDSPRING_CPP_RECEIVER={given} is not a file")
        return Path(given)
    exe, why = _build(tmp_path_factory.mktemp("cpp_receiver"))
    if exe is None:
        pytest.skip(f"C++ receiver not built: {why}")
    return exe


@pytest.fixture(scope="module")
def models():
    # the default backend, as `soundspring decode` runs it: the LM engine (fused CDFs) and
    # CodecEngine (the C++ codec decoder the program runs)
    return load_models()


@pytest.fixture(scope="module")
def export_dir(models, tmp_path_factory):
    codec = models[0].reference
    lm = load_lm(DEFAULT_LM_WEIGHTS, tokenizer_sha256=codec_tokenizer_hash(codec))
    out = tmp_path_factory.mktemp("export")
    export_models(codec, lm, out, chunk_frames=C, formats=("torchscript",))
    return out


def _spring(codec, model, cfg, pcm, drop_chunks=(), damage_chunks=()):
    """(.spring bytes, the packets kept) for pcm, records of ``drop_chunks`` left out and the
    base packet payloads of ``damage_chunks`` damaged (a byte flipped: the packet still
    parses, its payload fails its integrity check, its FEC copy in the next packet is whole)."""
    packets, _tx = transmit(codec, model, pcm, cfg)
    kept = []
    for p in packets:
        if p.chunk in set(drop_chunks):
            continue
        if p.chunk in set(damage_chunks) and p.layer == 0:
            pkt = parse_packet(p.data)
            payload = bytearray(pkt.payload)
            payload[len(payload) // 2] ^= 0x5A
            p = SentPacket(p.seq, p.chunk, p.layer,
                           Packet(pkt.layer, bytes(payload), pkt.fec).to_bytes())
        kept.append(p)
    buf = io.BytesIO()
    with ContainerWriter(buf, stream_header(codec, model, cfg, len(pcm))) as w:
        for p in kept:
            w.write(p.seq, p.chunk, p.data)
    return buf.getvalue(), kept


def _run(exe, export_dir, spring: Path, out: Path, extra=()):
    return subprocess.run([str(exe), "--export", str(export_dir), "--in", str(spring), "--out",
                           str(out), *extra], check=False, capture_output=True, text=True,
                          timeout=600)


def _read_float_wav(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert int.from_bytes(data[20:22], "little") == 3  # IEEE float
    return np.frombuffer(data[44:], dtype="<f4")


def _dump(path: Path) -> list[tuple[int, str, int, np.ndarray]]:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        n_played = int(f[3])
        toks = np.array([int(x) for x in f[4:]], dtype=np.int64).reshape(n_played, -1)
        rows.append((int(f[0]), f[1], int(f[2]), toks))
    return rows


CASES = {
    "default": ({"bitrate_kbps": 6.0}, ()),
    "losses": ({"bitrate_kbps": 6.0}, (0, 5, 6, 13, 21)),
    "3_frame_chunks": ({"bitrate_kbps": 6.0, "chunk_frames": 3}, (4,)),  # not the export's C
    "12k_layered_fec_memory": (
        {"bitrate_kbps": 12.0, "layered": True, "fec": True, "context_frames": 4}, (3, 9, 10)),
    "3k_progressive": ({"bitrate_kbps": 3.0, "progressive": True, "check_bits": 12}, (7,)),
}
DAMAGED = {  # case -> chunks whose base packet fails its checks (played from FEC)
    "6k_fec_damaged": ({"bitrate_kbps": 6.0, "fec": True}, (4, 11)),
    "12k_layered_fec_damaged": ({"bitrate_kbps": 12.0, "layered": True, "fec": True}, (6,)),
}


@pytest.mark.parametrize("case", sorted(CASES) + sorted(DAMAGED))
def test_same_tokens_and_audio_as_python(receiver_bin, export_dir, models, tmp_path, case):
    codec, model = models
    fields, drop = CASES.get(case, (None, ()))
    damage: tuple[int, ...] = ()
    if case in DAMAGED:
        fields, damage = DAMAGED[case]
    cfg = TransceiverConfig(**{"chunk_frames": C, **fields})
    pcm = _speechlike(1.0, seed=len(case))
    data, kept = _spring(codec, model, cfg, pcm, drop, damage)
    spring = tmp_path / "in.spring"
    spring.write_bytes(data)
    out, dump = tmp_path / "out.wav", tmp_path / "tokens.txt"
    threads = ["--threads", "2"] if case == "losses" else []  # LM threads never change bits
    res = _run(receiver_bin, export_dir, spring, out,
               ["--float", "--dump-tokens", str(dump), *threads])
    assert res.returncode == 0, res.stderr
    timing = json.loads(res.stdout)
    n_chunks = -(-len(pcm) // cfg.chunk_samples)
    want, rx = receive(codec, model, cfg, kept, n_chunks, len(pcm), keep_history=True)
    got = _dump(dump)
    assert len(got) == n_chunks == timing["chunks"]
    for (chunk, status, n_levels, toks), o in zip(got, rx.history):
        assert (chunk, status, n_levels) == (o.chunk, o.status, o.n_levels), chunk
        assert np.array_equal(toks, o.tokens), chunk
    statuses = {o.status for o in rx.history}
    assert ("concealed" in statuses) == bool(drop)
    assert all(rx.history[c].status == "fec" for c in damage)  # the fallback really ran
    audio = _read_float_wav(out)
    assert audio.shape == want.shape and audio.dtype == np.float32
    assert float(np.abs(audio - want).max()) <= AUDIO_TOL
    assert float(np.abs(want).max()) > 0.05  # real audio came out


def test_pcm16_output_matches_soundspring_decode_rule(receiver_bin, export_dir, models, tmp_path):
    codec, model = models
    cfg = TransceiverConfig(chunk_frames=C)
    pcm = _speechlike(0.5, seed=9)
    data, kept = _spring(codec, model, cfg, pcm)
    spring = tmp_path / "in.spring"
    spring.write_bytes(data)
    res = _run(receiver_bin, export_dir, spring, tmp_path / "o.wav")
    assert res.returncode == 0, res.stderr
    with wave.open(str(tmp_path / "o.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    want, _ = receive(codec, model, cfg, kept, -(-len(pcm) // cfg.chunk_samples), len(pcm))
    ref = np.clip(np.floor(np.clip(want.astype(np.float64), -1, 1) * 32768), -32768, 32767)
    assert got.shape == ref.shape
    assert int(np.abs(got.astype(np.int64) - ref.astype(np.int64)).max()) <= 1


def test_receive_time_beside_python(receiver_bin, export_dir, models, tmp_path):
    """Per-chunk receive time on the same 4 s stream (6 kbps, 40 ms chunks, one thread):
    C++ (chunk decoding + the C++ codec decoder step, timed inside the program) against
    the Python receiver (the same LM engine and codec decoder through CodecEngine; each
    chunk timed from its packets' delivery to its audio). Printed; the C++ one must be
    faster than real time."""
    from soundspring.transceiver import receive_blocks

    codec, model = models
    cfg = TransceiverConfig(chunk_frames=C)
    pcm = _speechlike(4.0, seed=11)
    data, kept = _spring(codec, model, cfg, pcm)
    spring = tmp_path / "in.spring"
    spring.write_bytes(data)
    res = _run(receiver_bin, export_dir, spring, tmp_path / "o.wav", ["--threads", "1"])
    assert res.returncode == 0, res.stderr
    cpp = json.loads(res.stdout)
    n_chunks = -(-len(pcm) // cfg.chunk_samples)
    receive(codec, model, cfg, kept[:4], 2, 2 * cfg.chunk_samples)  # warm-up
    _, blocks = receive_blocks(codec, model, cfg, kept, n_chunks, len(pcm))
    py_ms = []
    for _ in range(n_chunks):  # one block per chunk (the flush tail comes after)
        t0 = time.perf_counter()
        next(blocks)
        py_ms.append(1e3 * (time.perf_counter() - t0))
    py = np.array(py_ms)
    print(f"\nper-chunk receive time ({n_chunks} chunks of {cpp['chunk_ms']} ms): C++ mean "
          f"{cpp['receive_ms']['mean']:.3f} ms, median {cpp['receive_ms']['median']:.3f} (p95 "
          f"{cpp['receive_ms']['p95']:.3f}; tokens {cpp['tokens_ms_median']:.3f}, codec "
          f"{cpp['codec_ms_median']:.3f}); Python mean {py.mean():.3f} ms, median "
          f"{np.median(py):.3f} (p95 {np.percentile(py, 95):.3f})")
    assert 0 < cpp["receive_ms"]["median"] < cpp["chunk_ms"]
    assert float(np.median(py)) > 0


def test_torch_coded_stream_never_plays_garbage(receiver_bin, export_dir, models, tmp_path):
    """A stream coded through the PyTorch reference (model_id without the engine suffix):
    the C++ receiver rebuilds its fine CDFs from the engine's logits; every chunk it
    reports received carries exactly the transmitted tokens."""
    codec = models[0]
    model = load_coding_model(None, codec.reference, backend="torch")
    cfg = TransceiverConfig(chunk_frames=C)
    pcm = _speechlike(1.0, seed=5)
    packets, tx = transmit(codec, model, pcm, cfg)
    buf = io.BytesIO()
    with ContainerWriter(buf, stream_header(codec, model, cfg, len(pcm))) as w:
        for p in packets:
            w.write(p.seq, p.chunk, p.data)
    spring = tmp_path / "t.spring"
    spring.write_bytes(buf.getvalue())
    dump = tmp_path / "t.txt"
    res = _run(receiver_bin, export_dir, spring, tmp_path / "o.wav", ["--dump-tokens", str(dump)])
    assert res.returncode == 0, res.stderr
    assert "coded through PyTorch" in res.stderr
    rows = _dump(dump)
    received = [r for r in rows if r[1] == "received"]
    for chunk, _, _, toks in received:
        assert np.array_equal(toks, tx.sent_tokens[chunk]), chunk
    print(f"\ntorch-coded stream: {len(received)} of {len(rows)} chunks decoded in full by the "
          "engine-based C++ receiver")
    assert len(received) >= 0.8 * len(rows)


def test_mismatches_refused(receiver_bin, export_dir, models, tmp_path):
    codec, model = models
    cfg = TransceiverConfig(chunk_frames=C)
    pcm = _speechlike(0.3)
    spring = tmp_path / "in.spring"
    spring.write_bytes(_spring(codec, model, cfg, pcm)[0])
    # a stream of another model (the static no-LM control)
    from soundspring.entropy.static import StaticModel

    other = tmp_path / "other.spring"
    other.write_bytes(_spring(codec, StaticModel(), cfg, pcm)[0])
    res = _run(receiver_bin, export_dir, other, tmp_path / "o.wav")
    assert res.returncode == 1 and "coded with model" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # not a .spring file; bad usage
    junk = tmp_path / "junk.spring"
    junk.write_bytes(b"\x00" * 64)
    res = _run(receiver_bin, export_dir, junk, tmp_path / "o.wav")
    assert res.returncode == 1 and res.stderr.startswith("soundspring_receiver: error:")
    res = subprocess.run([str(receiver_bin), "--export", str(export_dir)], check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2


def _export_copy(src: Path, dst: Path, replace: dict[str, bytes] | None = None,
                 record_hashes: bool = False, edit=None) -> Path:
    """dst: symlinks to src's files, the files of ``replace`` (name -> bytes) written there
    instead, and src's manifest, with the replaced files' SHA-256 and size recorded anew
    when ``record_hashes`` (so that only the program's own reader can refuse them) and
    ``edit`` applied to it."""
    replace = replace or {}
    dst.mkdir()
    for p in src.iterdir():
        if p.name != MANIFEST_NAME and p.name not in replace:
            (dst / p.name).symlink_to(p)
    m = json.loads((src / MANIFEST_NAME).read_text())
    for name, data in replace.items():
        (dst / name).write_bytes(data)
        if record_hashes:
            m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if edit is not None:
        edit(m)
    (dst / MANIFEST_NAME).write_text(json.dumps(m))
    return dst


def _refused(res, words: str) -> None:
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soundspring_receiver: error:"), res.stderr
    assert words in lines[0], lines[0]


@pytest.fixture(scope="module")
def short_spring(models, tmp_path_factory) -> Path:
    codec, model = models
    p = tmp_path_factory.mktemp("short") / "in.spring"
    p.write_bytes(_spring(codec, model, TransceiverConfig(chunk_frames=C), _speechlike(0.3))[0])
    return p


def test_tampered_flat_codec_file_refused(receiver_bin, export_dir, short_spring, tmp_path):
    """A flat codec decoder file whose bytes are not the ones the manifest records."""
    blob = bytearray((export_dir / CODEC_FLAT_NAME).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    bad = _export_copy(export_dir, tmp_path / "x", {CODEC_FLAT_NAME: bytes(blob)})
    _refused(_run(receiver_bin, bad, short_spring, tmp_path / "o.wav"), "SHA-256")
    # the manifest's record changed instead
    bad = _export_copy(export_dir, tmp_path / "y",
                       edit=lambda m: m["files"][CODEC_FLAT_NAME].update(sha256="0" * 64))
    _refused(_run(receiver_bin, bad, short_spring, tmp_path / "o.wav"), "SHA-256")
    assert not (tmp_path / "o.wav").exists()


def _other_codec_flat(tmp: Path) -> bytes:
    other = load_codec()
    with torch.no_grad():
        other.decoder.head.bias.add_(0.5)  # a retrained decoder: another content hash
    return write_codec_flat(other, tmp / "other.bin").read_bytes()


HOSTILE_FLAT = {  # the codec decoder file's bytes, its hash recorded -> words of the refusal
    "truncated": (lambda blob, tmp: blob[:len(blob) // 2], "truncated"),
    "header cut": (lambda blob, tmp: blob[:40], "truncated header"),
    "empty": (lambda blob, tmp: b"", "not a flat codec decoder weights file"),
    "data bit flip": (lambda blob, tmp: blob[:-9] + bytes([blob[-9] ^ 4]) + blob[-8:],
                      "data CRC mismatch"),
    "header bit flip": (lambda blob, tmp: blob[:30] + bytes([blob[30] ^ 4]) + blob[31:],
                        "header CRC mismatch"),
    "another kind": (lambda blob, tmp: (tmp / "lm.bin").read_bytes(),
                     "not a flat codec decoder weights file"),
    "another codec": (lambda blob, tmp: _other_codec_flat(tmp), "codec decoder weights of codec"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FLAT))
def test_hostile_flat_codec_file_refused(receiver_bin, export_dir, short_spring, tmp_path, case):
    """Flat codec decoder files whose hashes the manifest records (a consistent but bad
    export): the program's reader refuses each with one line, never a crash."""
    make, words = HOSTILE_FLAT[case]
    (tmp_path / "lm.bin").symlink_to(export_dir / LM_FLAT_NAME)
    data = make((export_dir / CODEC_FLAT_NAME).read_bytes(), tmp_path)
    bad = _export_copy(export_dir, tmp_path / "x", {CODEC_FLAT_NAME: data}, record_hashes=True)
    _refused(_run(receiver_bin, bad, short_spring, tmp_path / "o.wav"), words)


def test_export_without_flat_codec_refused(receiver_bin, export_dir, short_spring, tmp_path):
    bad = _export_copy(export_dir, tmp_path / "x", edit=lambda m: m["codec"].pop("decoder_weights"))
    _refused(_run(receiver_bin, bad, short_spring, tmp_path / "o.wav"),
             "no flat codec decoder weights")


def _bound_elsewhere(port: int) -> bool:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def _free_udp_port() -> int:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_udp_loopback_same_tokens(receiver_bin, export_dir, models, tmp_path):
    """RTP over loopback UDP from the Python sender (net.sender.RtpSender, paced at the
    chunk rate): the C++ receiver decodes the same tokens and audio as the Python
    receiver given the same packets."""
    from soundspring.net.sender import RtpSender, open_udp
    from soundspring.net.session import make_session

    codec, model = models
    cfg = TransceiverConfig(chunk_frames=C)
    pcm = _speechlike(1.0, seed=21)
    packets, _ = transmit(codec, model, pcm, cfg)
    n_chunks = -(-len(pcm) // cfg.chunk_samples)
    port = _free_udp_port()
    out, dump = tmp_path / "udp.wav", tmp_path / "udp.txt"
    proc = subprocess.Popen(
        [str(receiver_bin), "--export", str(export_dir), "--udp", str(port), "--out", str(out),
         "--float", "--dump-tokens", str(dump), "--timeout-s", "20",
         "--playout-delay-ms", "400"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # the receiver binds before it loads its models
            if _bound_elsewhere(port) or proc.poll() is not None:
                break
            time.sleep(0.05)
        sender = RtpSender(open_udp("127.0.0.1", port, bind=False),
                           make_session(stream_header(codec, model, cfg, len(pcm)), 0x5EED,
                                        4242))
        sender.send_session(3)
        by_chunk: dict[int, list] = {}
        for p in packets:
            by_chunk.setdefault(p.chunk, []).append(p)
        for c in range(n_chunks):  # paced at the chunk rate, as a live source
            sender.send_packets(by_chunk.get(c, []))
            time.sleep(cfg.chunk_samples / 16000)
        sender.send_end(n_chunks, len(pcm))
        sender.close()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    info = json.loads(stdout)
    assert info["jitter"]["late"] == 0 and info["chunks"] == n_chunks
    want, rx = receive(codec, model, cfg, packets, n_chunks, len(pcm), keep_history=True)
    got = _dump(dump)
    assert [r[1] for r in got] == [o.status for o in rx.history]
    for (_, _, _, toks), o in zip(got, rx.history):
        assert np.array_equal(toks, o.tokens)
    audio = _read_float_wav(out)
    assert audio.shape == want.shape
    assert float(np.abs(audio - want).max()) <= AUDIO_TOL


def test_soundspring_encode_file_decodes_as_soundspring_decode(receiver_bin, export_dir,
                                                               tmp_path):
    """A .spring file written by `soundspring encode`: the C++ receiver's 16-bit WAV is the
    one `soundspring decode` writes, sample for sample."""
    from soundspring.audio import write_wav
    from soundspring.cli import main

    write_wav(tmp_path / "in.wav", _speechlike(1.0, seed=8))
    spring, py_wav, cpp_wav = tmp_path / "in.spring", tmp_path / "py.wav", tmp_path / "cpp.wav"
    assert main(["encode", str(tmp_path / "in.wav"), str(spring), "--quiet"]) == 0
    assert main(["decode", str(spring), str(py_wav), "--quiet"]) == 0
    res = _run(receiver_bin, export_dir, spring, cpp_wav)
    assert res.returncode == 0, res.stderr
    with wave.open(str(py_wav)) as a, wave.open(str(cpp_wav)) as b:
        want = np.frombuffer(a.readframes(a.getnframes()), dtype="<i2")
        got = np.frombuffer(b.readframes(b.getnframes()), dtype="<i2")
    assert got.shape == want.shape == (16000,)
    assert np.array_equal(got, want)
