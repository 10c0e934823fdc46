"""soundspring send / receive in real time over loopback UDP (127.0.0.1, ephemeral ports):
30 s with injected loss and jitter against ``simulate``'s decoding of the same loss
pattern, the lossless stream against encode + decode, a hostile sender flooding the
receiver, the command-line errors, and the application API (``LiveSender`` /
``LiveReceiver``). Every wait is bounded in time; every loop in count."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from soundspring.cli import main
from soundspring.config import codec_tiny
from soundspring.errors import ConfigError
from soundspring.models.codec import Codec
from soundspring.models.weights_io import load_models, save_codec_weights
from soundspring.net import (
    LiveReceiver,
    LiveSender,
    RtpSender,
    from_sdp,
    make_session,
    open_udp,
    send_pcm,
    to_sdp,
)
from soundspring.net.rtp import (
    RTP_HEADER_BYTES,
    SUBTYPE_SESSION,
    ControlMessage,
    RtpPacket,
    pack_control,
    pack_rtp,
)
from soundspring.net.sender import new_stream_ids
from soundspring.transceiver import TransceiverConfig, Transmitter, receive, transmit
from soundspring.transceiver.stream import stream_header
from soundspring.transport import LossSpec, make_loss_model
from test_transceiver import _speechlike

START_TIMEOUT_S = 120.0  # a receiver's start (imports, models) on a loaded 2-core machine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    torch.manual_seed(0)
    path = save_codec_weights(Codec(codec_tiny()).eval(), d / "tiny.pt")
    codec, model = load_models(str(path), "none")
    return str(path), codec, model


def _wav(tmp_path, name, seconds, seed=0):
    p = tmp_path / name
    sf.write(p, _speechlike(seconds, seed), 16000)
    return p, sf.read(p, dtype="float32")[0]


class _Receiver:
    """``soundspring receive --port 0`` as a subprocess; its stderr is drained by a thread."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "soundspring", "receive", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "SOUNDSPRING_DEBUG": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "listening on" in line:
                self.port = int(line.rsplit(":", 1)[1])
        if self.port is None:
            self.proc.kill()
            raise AssertionError(f"receive did not start: {''.join(self.err)}")

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait(self, timeout_s: float) -> tuple[int, dict]:
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._t.join(5.0)
        assert self.proc.returncode == 0, "".join(self.err)
        return self.proc.returncode, json.loads(out)


def _send(*args: str, timeout_s: float) -> dict:
    cmd = [sys.executable, "-m", "soundspring", "send", *args, "--json"]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout_s)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.clip(x, -1, 1).astype(np.float64) * 32768), -32768,
                   32767).astype(np.int16)


def test_live_30s_with_loss_and_jitter_equals_simulate(tmp_path, tiny):
    """30 s in real time, 10 % Bernoulli loss and up to 20 ms of delay injected at the
    sender: the sender's losses are simulate's draw (same seed, same order), and the
    received audio is, sample for sample, what the transceiver decodes from the packets
    that arrived in time (the same tokens: the same per-chunk outcomes)."""
    weights, codec, model = tiny
    wav, pcm = _wav(tmp_path, "in30.wav", 30.0, seed=3)
    out, report_path = tmp_path / "out.wav", tmp_path / "report.json"
    common = ["--codec", weights, "--lm", "none", "-q"]
    rx = _Receiver(str(out), "--report", str(report_path), "--json",
                   "--playout-delay-ms", "250", "--idle-timeout-s", "30", *common)
    sent = _send(str(wav), "--to", f"127.0.0.1:{rx.port}", "--loss", "0.1", "--seed", "7",
                 "--jitter-ms", "20", *common, timeout_s=200)
    _, rep = rx.wait(60)
    full = json.loads(report_path.read_text())
    cfg = TransceiverConfig(conceal="repeat")
    n_chunks = -(-len(pcm) // cfg.chunk_samples)
    # paced by the audio clock: 30 s of audio took about 30 s
    assert 30000.0 <= sent["wall_ms"] <= 31500.0, sent["wall_ms"]
    # the injected losses are the channel model's, drawn per packet in send order
    injected = make_loss_model(LossSpec("bernoulli", 0.1, 2.0), 7).losses(n_chunks)
    assert sent["packets_dropped_loss"] == int(injected.sum()) > 50
    assert rep["finish_reason"] == "end_of_stream"
    rows = full["chunks"]
    assert [r["chunk"] for r in rows] == list(range(n_chunks))
    lost_live = np.array([r["received_layers"] == 0 for r in rows])
    assert not (injected & ~lost_live).any()  # nothing the channel dropped was played
    late = rep["net"]["late"]
    assert int((lost_live & ~injected).sum()) <= late <= 0.05 * n_chunks  # CPU hiccups only
    # simulate's decoding of the same received set: same tokens, same audio
    packets, tx = transmit(codec, model, pcm, cfg)
    assert sum(len(p.data) for p, g in zip(packets, injected) if not g) == sent["payload_bytes"]
    kept = [p for p, gone in zip(packets, lost_live) if not gone]
    ref, ref_rx = receive(codec, model, cfg, kept, tx.chunks_sent, len(pcm), keep_history=True)
    got, sr = sf.read(out, dtype="int16")
    assert sr == 16000 and len(got) == len(pcm)
    np.testing.assert_array_equal(got, _int16(ref))
    live = [o["status"] for o in full["outcomes"]]  # "late": concealed, a packet came after
    assert ["concealed" if x == "late" else x for x in live] == [o.status for o in ref_rx.history]
    # latency measured (loopback shares the monotonic clock) and split into parts
    lat = rep["latency"]
    assert lat["shared_clock"] and lat["chunks_measured"] > 0.8 * n_chunks
    parts = lat["parts_ms"]
    assert parts["chunk"] == 40.0 and parts["codec_lookahead"] == 15.0
    assert 200.0 <= parts["jitter_buffer"] <= 300.0  # the delay, +- the spread of transits
    assert abs(sum(parts.values()) - lat["total_ms"]) < 1e-6
    assert "latency" in "".join(rx.err)


def test_live_without_loss_equals_encode_decode(tmp_path, tiny):
    """No loss: ``receive`` writes the same file as ``encode`` + ``decode``; a 2.5 s file
    takes about 2.5 s to send."""
    weights, _, _ = tiny
    wav, _ = _wav(tmp_path, "in.wav", 2.5, seed=1)
    common = ["--codec", weights, "--lm", "none", "-q"]
    spring, ref = tmp_path / "x.spring", tmp_path / "ref.wav"
    assert main(["encode", str(wav), str(spring), *common]) == 0
    assert main(["decode", str(spring), str(ref), *common]) == 0
    out = tmp_path / "live.wav"
    rx = _Receiver(str(out), "--json", "--playout-delay-ms", "1000", *common)  # a loaded CI
    sdp = tmp_path / "s.sdp"
    sent = _send(str(wav), "--to", f"127.0.0.1:{rx.port}", "--sdp", str(sdp), *common,
                 timeout_s=120)
    _, rep = rx.wait(60)
    assert from_sdp(sdp.read_bytes()).ssrc == sent["ssrc"]
    assert 2500.0 <= sent["wall_ms"] <= 3300.0, sent["wall_ms"]
    assert sent["packets_dropped_loss"] == 0 and rep["loss_rate"] == 0.0, json.dumps([rep, sent])
    assert rep["receiver"]["chunks_concealed"] == 0
    assert out.read_bytes() == ref.read_bytes()


class _Tapped(RtpSender):
    """An RtpSender whose datagrams are also handed to a hostile thread."""

    tap: queue.Queue

    def _send(self, data, payload=0, control=False):
        super()._send(data, payload, control)
        if not control:
            self.tap.put(data)


def _hostile(tap: queue.Queue, port: int, stop: threading.Event, session, counts: dict):
    """Ten hostile datagrams per legit one (a 10x flood): duplicates, truncated copies,
    garbage, bit flips, held-back (reordered) copies, replays of old packets, far-future
    and off-grid timestamps, another SSRC, a session for other models."""
    rng = np.random.default_rng(11)
    sock = open_udp("127.0.0.1", port, bind=False)
    held: list[bytes] = []
    try:
        for _ in range(100000):  # bounded; ends with the legit stream
            if stop.is_set():
                break
            try:
                d = tap.get(timeout=0.05)
            except queue.Empty:
                continue
            held.append(d)
            seq = int.from_bytes(d[2:4], "big")
            ts = int.from_bytes(d[4:8], "big")
            payload = d[RTP_HEADER_BYTES:]
            flipped = bytearray(d)
            flipped[int(rng.integers(RTP_HEADER_BYTES, len(d)))] ^= 0xFF  # in the payload
            burst = [
                d,  # duplicate
                d[: int(rng.integers(0, len(d)))],  # truncated
                bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8)),
                bytes(flipped),
                held[max(0, len(held) - 3)],  # reordered: an older packet, late
                held[0],  # replay of the first packet
                pack_rtp(RtpPacket(seq, (ts + 640 * 10**6) & 0xFFFFFFFF, session.ssrc,
                                   payload)),  # far future
                pack_rtp(RtpPacket(seq, (ts + 1) & 0xFFFFFFFF, session.ssrc, payload)),
                pack_rtp(RtpPacket(seq, ts, session.ssrc ^ 1, payload)),  # another SSRC
                pack_control(ControlMessage(SUBTYPE_SESSION, 77, {"format": "x"})),
            ]
            for b in burst:
                try:
                    sock.send(b)
                    counts["sent"] += 1
                except OSError:
                    counts["errors"] += 1
            held = held[-8:]
    finally:
        sock.close()


def test_hostile_sender_never_crashes_stalls_or_grows_the_receiver(tmp_path, tiny):
    weights, codec, model = tiny
    seconds = 5.0
    pcm = _speechlike(seconds, 2)
    out = tmp_path / "out.wav"
    cfg = TransceiverConfig()
    ssrc, base = new_stream_ids()
    header = stream_header(codec, model, cfg, len(pcm))
    sdp = tmp_path / "s.sdp"  # the receiver knows the stream out of band
    sdp.write_text(to_sdp(make_session(header, ssrc, base), "127.0.0.1", 9))
    rx = _Receiver(str(out), "--json", "--sdp", str(sdp), "--playout-delay-ms", "300",
                   "--codec", weights, "--lm", "none", "-q")
    session = make_session(header, ssrc, base, time.monotonic() * 1000.0 + 50.0)
    sender = _Tapped(open_udp("127.0.0.1", rx.port, bind=False), session)
    sender.tap = queue.Queue(maxsize=10000)
    stop = threading.Event()
    counts = {"sent": 0, "errors": 0}
    hostile = threading.Thread(target=_hostile, args=(sender.tap, rx.port, stop, session, counts),
                               daemon=True)
    rss: list[int] = []
    sampler_stop = threading.Event()

    def sample():
        for _ in range(10000):  # bounded
            if sampler_stop.wait(0.1):
                break
            try:
                kib = rx.rss_kib()
                if kib:
                    rss.append(kib)
            except OSError:
                break

    sampler = threading.Thread(target=sample, daemon=True)
    hostile.start()
    sampler.start()
    try:
        stats = send_pcm(Transmitter(codec, model, cfg), pcm, sender)
    finally:
        sender.close()
        time.sleep(0.3)
        stop.set()
        hostile.join(10)
    _, rep = rx.wait(60)
    sampler_stop.set()
    sampler.join(5)
    n_chunks = stats.chunks
    net = rep["net"]
    print(f"hostile datagrams {counts}, receiver {net}, rss KiB {rss[::10]}")
    assert counts["sent"] >= 9 * n_chunks  # the flood went out
    assert rep["finish_reason"] == "end_of_stream"
    assert net["chunks_played"] == n_chunks
    assert net["malformed"] > n_chunks and net["foreign"] > n_chunks
    assert net["duplicate"] + net["late"] > n_chunks and net["too_early"] > 0.5 * n_chunks
    assert net["max_playout_lag_ms"] < 250.0  # playout kept its clock
    assert len(rss) > 10
    grow_kib = max(rss) - rss[len(rss) // 5]
    assert grow_kib < 40 * 1024, rss  # bounded (steady state after the first second)
    got, _ = sf.read(out, dtype="int16")
    assert len(got) == len(pcm)
    if net["accepted"] == n_chunks:  # every legit packet in time: hostile traffic changed nothing
        packets, tx = transmit(codec, model, pcm, cfg)
        ref, _ = receive(codec, model, cfg, packets, tx.chunks_sent, len(pcm))
        np.testing.assert_array_equal(got, _int16(ref))
    else:
        assert net["accepted"] >= 0.95 * n_chunks


def test_command_errors_are_one_line(tmp_path, tiny, capsys):
    weights, _, _ = tiny
    wav, _ = _wav(tmp_path, "in.wav", 0.2)
    common = ["--codec", weights, "--lm", "none", "-q"]
    for to in ("127.0.0.1", "127.0.0.1:0", "no-such-host.invalid:5004"):
        assert main(["send", str(wav), "--to", to, *common]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "soundspring send: error:" in err and "Traceback" not in err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert main(["send", str(bad), "--to", "127.0.0.1:9", *common]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.wav" in err
    busy = open_udp("127.0.0.1", 0, bind=True)
    try:
        port = busy.getsockname()[1]
        assert main(["receive", "--port", str(port), str(tmp_path / "o.wav"), *common]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "address already in use" in err
    finally:
        busy.close()
    t0 = time.monotonic()
    assert main(["receive", "--port", "0", str(tmp_path / "o.wav"), "--idle-timeout-s", "0.5",
                 *common]) == 1
    err = capsys.readouterr().err
    assert "no stream arrived within 0.5 s" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 30.0
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "o.wav.part").exists()
    assert main(["receive", "--port", "0", "-", *common]) == 1
    assert main(["receive", "--port", "99999", str(tmp_path / "o.wav"), *common]) == 2
    capsys.readouterr()


def test_application_api_frames_in_frames_out(tiny):
    """20 ms microphone frames in (paced like a microphone), 10 ms playout frames out:
    the frames read are, sample for sample, the transceiver's decoding of the packets that
    arrived in time (all of them, unless the machine stalls for over half a second)."""
    _, codec, model = tiny
    cfg = TransceiverConfig()
    pcm = _speechlike(1.5, 4)
    got: list[np.ndarray] = []
    with LiveReceiver(codec, model, port=0, frame_ms=10, idle_timeout_s=10.0,
                      playout_delay_ms=500.0) as rx:
        assert rx.address[0] == "127.0.0.1" and rx.address[1] > 0
        tx = LiveSender(codec, model, cfg, to=rx.address, frame_ms=20)
        t0 = time.monotonic()
        n = tx.frame_samples
        for i in range(len(pcm) // n):
            due = t0 + (i + 1) * 0.020
            time.sleep(max(0.0, due - time.monotonic()))
            assert tx.feed(pcm[i * n:(i + 1) * n])
            # Drain what is ready: playout makes two 10 ms frames per 20 ms fed, and a
            # reader that falls a queue (1 s) behind loses the oldest (frames_dropped).
            while (frame := rx.read(timeout_s=0.0)) is not None:
                got.append(frame)
        tx.close()
        assert tx.frames_dropped == 0 and tx.stats.packets_sent == tx.stats.packets
        for _ in range(2000):  # bounded: until the end of stream is played and read
            frame = rx.read(timeout_s=0.1)
            if frame is not None:
                got.append(frame)
            elif rx.done:
                break
        assert rx.receiver.finish_reason == "end_of_stream"
        assert rx.frames_dropped == 0
        received = {r.chunk for r in rx.receiver.rows if r.received_layers}
    assert all(len(f) == 160 for f in got)
    out = np.concatenate(got)
    packets, t = transmit(codec, model, pcm, cfg)
    assert len(received) >= 0.8 * t.chunks_sent, sorted(received)
    kept = [p for p in packets if p.chunk in received]
    ref, _ = receive(codec, model, cfg, kept, t.chunks_sent, len(pcm))
    assert len(out) >= len(pcm)
    np.testing.assert_array_equal(out[: len(pcm)], ref)
    with LiveSender(codec, model, cfg, to=("127.0.0.1", 9)) as bad, \
            pytest.raises(ConfigError, match="frame must hold 320"):
        bad.feed(np.zeros(100, np.float32))
