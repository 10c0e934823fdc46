"""net: RTP framing and its strict parser (round trips, fuzzing), the session description
(in-band JSON and SDP-like text), addresses and sockets, the sender's injected loss and
delay, and the receiver's rules driven datagram by datagram on a simulated clock (hostile
datagrams, lossy and late starts, idle timeout, end of stream). Loopback only."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from soundspring.config import codec_tiny
from soundspring.entropy.static import StaticModel
from soundspring.errors import BitstreamError, ConfigError, ModelMismatchError, TruncatedError
from soundspring.models.codec import Codec
from soundspring.net import (
    NetReceiver,
    RtpSender,
    from_sdp,
    make_session,
    open_udp,
    parse_address,
    to_sdp,
)
from soundspring.net.rtp import (
    MAX_CONTROL_JSON_BYTES,
    SUBTYPE_END,
    SUBTYPE_SESSION,
    ControlMessage,
    RtpPacket,
    TimestampUnwrapper,
    pack_control,
    pack_rtp,
    parse_datagram,
)
from soundspring.net.sender import monotonic_ms, new_session
from soundspring.net.session import parse_end, parse_session
from soundspring.transceiver import TransceiverConfig, receive, transmit
from soundspring.transceiver.stream import stream_header
from soundspring.transport import LossSpec, make_loss_model
from test_transceiver import _speechlike

PARSE_ERRORS = (BitstreamError, TruncatedError)


# ----------------------------------------------------------------------------- RTP


@given(seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 2**32 - 1),
       payload=st.binary(min_size=1, max_size=2048), marker=st.booleans(),
       pt=st.integers(96, 127))
def test_rtp_round_trip(seq, ts, ssrc, payload, marker, pt):
    pkt = RtpPacket(seq, ts, ssrc, payload, pt, marker)
    data = pack_rtp(pkt)
    assert len(data) == 12 + len(payload)
    assert data[0] == 0x80 and data[1] == (0x80 if marker else 0) | pt
    assert int.from_bytes(data[2:4], "big") == seq  # network byte order, RFC 3550
    assert int.from_bytes(data[4:8], "big") == ts
    assert parse_datagram(data) == pkt


def test_rtp_optional_header_parts_are_skipped_with_bounds():
    payload = b"\x80\x01\x02"
    base = bytearray(pack_rtp(RtpPacket(1, 2, 3, payload)))
    # two CSRCs
    csrc = bytearray(base)
    csrc[0] |= 2
    csrc[12:12] = b"\0\0\0\x07\0\0\0\x08"
    assert parse_datagram(bytes(csrc)).payload == payload
    # a header extension of one word
    ext = bytearray(base)
    ext[0] |= 0x10
    ext[12:12] = b"\xbe\xde\x00\x01\x11\x22\x33\x44"
    assert parse_datagram(bytes(ext)).payload == payload
    # padding of 3 bytes
    pad = bytearray(base) + b"\0\0\x03"
    pad[0] |= 0x20
    assert parse_datagram(bytes(pad)).payload == payload
    pad0 = bytearray(base)
    pad0[0] |= 0x20
    pad0[-1] = 0
    with pytest.raises(BitstreamError):
        parse_datagram(bytes(pad0))
    big_pad = bytearray(base)
    big_pad[0] |= 0x20
    big_pad[-1] = 200
    with pytest.raises(TruncatedError):
        parse_datagram(bytes(big_pad))
    many_csrc = bytearray(base)
    many_csrc[0] |= 0x0F
    with pytest.raises(TruncatedError):
        parse_datagram(bytes(many_csrc))


def test_rtp_parser_refuses_what_breaks_the_layout():
    good = pack_rtp(RtpPacket(1, 2, 3, b"\x80"))
    with pytest.raises(BitstreamError, match="version"):
        parse_datagram(bytes([0x40]) + good[1:])
    with pytest.raises(TruncatedError):
        parse_datagram(good[:12])  # no payload
    with pytest.raises(TruncatedError):
        parse_datagram(good[:5])
    with pytest.raises(BitstreamError):
        parse_datagram(good[:12] + bytes(2049))  # payload over MAX_PACKET_BYTES
    with pytest.raises(TypeError):
        parse_datagram("text")
    for bad in (RtpPacket(70000, 0, 0, b"x"), RtpPacket(0, -1, 0, b"x"),
                RtpPacket(0, 0, 0, b""), RtpPacket(0, 0, 0, b"x", payload_type=72),
                RtpPacket(0, 0, 0, bytes(2049))):
        with pytest.raises(ConfigError):
            pack_rtp(bad)


def test_control_round_trip_and_strictness():
    msg = ControlMessage(SUBTYPE_END, 99, {"n_chunks": 3, "n_samples": 1900, "sender": {}})
    data = pack_control(msg)
    assert len(data) % 4 == 0 and data[1] == 204 and data[8:12] == b"SSPR"
    assert parse_datagram(data) == msg
    assert parse_end(parse_datagram(data).body).n_samples == 1900
    with pytest.raises(TruncatedError):
        parse_datagram(data[:-4])
    with pytest.raises(BitstreamError):
        parse_datagram(data + b"    ")  # trailing bytes after the length
    with pytest.raises(BitstreamError):
        parse_datagram(data[:8] + b"XXXX" + data[12:])  # another APP name
    with pytest.raises(BitstreamError):
        parse_datagram(bytes([data[0] | 5]) + data[1:])  # unknown subtype
    with pytest.raises(BitstreamError):
        parse_datagram(data[:12] + b"[1] ".ljust(len(data) - 12))  # not an object
    with pytest.raises(ConfigError):
        pack_control(ControlMessage(SUBTYPE_SESSION, 1, {"x": "y" * MAX_CONTROL_JSON_BYTES}))
    with pytest.raises(ConfigError):
        pack_control(ControlMessage(7, 1, {}))


@given(st.binary(max_size=3000))
def test_parser_fuzz_random_bytes_never_crash(data):
    try:
        parse_datagram(data)
    except PARSE_ERRORS:
        pass


def _valid_datagrams():
    hdr = {"format": "soundspring", "codec_id": "c0de", "model_id": "static-0",
           "sample_rate_hz": 16000, "n_samples": 16000, "bitrate_kbps": 6.0,
           "chunk_frames": 2, "context_frames": 0, "progressive": False, "check_bits": 8,
           "precision_bits": 16, "fec": False, "layered": False}
    session = make_session(hdr, 5, 6, 1.5)
    return [
        pack_rtp(RtpPacket(1, 640, 5, b"\x80\x01\x02\x03")),
        pack_control(ControlMessage(SUBTYPE_SESSION, 5, session.to_json())),
        pack_control(ControlMessage(SUBTYPE_END, 5, {"n_chunks": 1, "n_samples": 2})),
    ]


@given(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255))
def test_parser_fuzz_truncated_and_flipped_never_crash(which, pos, byte):
    data = _valid_datagrams()[which]
    cut = data[: pos % (len(data) + 1)]
    flipped = bytearray(data)
    flipped[pos % len(data)] = byte
    for d in (cut, bytes(flipped)):
        try:
            msg = parse_datagram(d)
        except PARSE_ERRORS:
            continue
        if isinstance(msg, ControlMessage) and msg.subtype == SUBTYPE_SESSION:
            try:
                parse_session(msg.body)
            except BitstreamError:
                pass


def test_timestamp_unwrapper_survives_the_wrap():
    u = TimestampUnwrapper(0xFFFFFF00)
    assert u.position(0xFFFFFF00) == 0
    assert u.position(0x100) == 0x200  # past the 2^32 wrap
    u.commit(0x200)
    assert u.position(0x50) == 0x150  # slightly behind the reference
    assert u.position(0xFFFFFE00) == -0x100  # before the stream start
    far = (0xFFFFFF00 + (1 << 31) + 0x200) & 0xFFFFFFFF
    assert u.position(far) < 0  # the nearest reading of a hostile far timestamp


# ----------------------------------------------------------------------------- session


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return Codec(codec_tiny()).eval(), StaticModel()


def _session(models, cfg=None, n_samples=16000, epoch=None, ssrc=0x1234, base=0xFFFFF000):
    codec, model = models
    return make_session(stream_header(codec, model, cfg or TransceiverConfig(), n_samples),
                        ssrc, base, epoch)


def test_session_round_trip_and_validation(models):
    s = _session(models, TransceiverConfig(bitrate_kbps=3, fec=True), epoch=123.25)
    again = parse_session(s.to_json())
    assert again == s and again.same_stream(s)
    assert again.config("repeat") == TransceiverConfig(bitrate_kbps=3, fec=True, conceal="repeat")
    body = s.to_json()
    for path, value in [(("format",), "x"), (("version",), 2), (("rtp", "ssrc"), -1),
                        (("rtp", "payload_type"), 8), (("rtp", "clock_rate_hz"), 8000),
                        (("rtp", "timestamp_base"), True), (("stream", "bitrate_kbps"), 7),
                        (("stream", "sample_rate_hz"), 8000), (("capture_epoch_ms",), "now")]:
        bad = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(BitstreamError):
            parse_session(bad)
    with pytest.raises(BitstreamError):
        parse_session([])
    with pytest.raises(BitstreamError, match="capture_epoch_ms"):  # not coerced to 1.0
        make_session(s.header, 1, 2, True)
    fresh = new_session(s.header, 7.5)  # a new stream: random SSRC and timestamp base
    assert parse_session(fresh.to_json()) == fresh and fresh.header == s.header
    assert fresh.capture_epoch_ms == 7.5 and fresh.to_json()["rtp"] == {
        "payload_type": 96, "ssrc": fresh.ssrc, "timestamp_base": fresh.timestamp_base,
        "clock_rate_hz": 16000}


def test_sdp_round_trip_and_contradictions(models):
    s = _session(models, epoch=5.0)
    text = to_sdp(s, "127.0.0.1", 5004)
    assert "m=audio 5004 RTP/AVP 96" in text and "a=rtpmap:96 soundspring/16000" in text
    assert from_sdp(text) == s
    assert from_sdp(text.encode()) == s
    with pytest.raises(BitstreamError, match="exactly one"):
        from_sdp("v=0\r\n")
    with pytest.raises(BitstreamError, match="contradicts"):
        from_sdp(text.replace("RTP/AVP 96", "RTP/AVP 97"))
    with pytest.raises(BitstreamError, match="contradicts"):
        from_sdp(text.replace(f"a=ssrc:{s.ssrc}", "a=ssrc:1"))
    with pytest.raises(BitstreamError):
        from_sdp(b"\xff\xfe")


# ----------------------------------------------------------------------------- sockets


def test_parse_address():
    assert parse_address("127.0.0.1:5004") == ("127.0.0.1", 5004)
    assert parse_address("[::1]:9") == ("::1", 9)
    assert parse_address("localhost:65535") == ("localhost", 65535)
    for bad in ("127.0.0.1", ":5004", "h:0", "h:65536", "h:x", "[::1]5", "", "[::1"):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_open_udp_errors_are_one_line_config_errors():
    a = open_udp("127.0.0.1", 0, bind=True)
    try:
        port = a.getsockname()[1]
        with pytest.raises(ConfigError, match="address already in use"):
            open_udp("127.0.0.1", port, bind=True)
    finally:
        a.close()
    with pytest.raises(ConfigError, match="unknown host"):
        open_udp("no-such-host.invalid", 5004, bind=False)


def _recv_all(sock, limit=100000):
    out = []
    for _ in range(limit):
        try:
            out.append(sock.recv(8192))
        except BlockingIOError:
            break
    return out


def test_sender_injects_the_channels_losses_and_bounded_delay(models):
    codec, model = models
    cfg = TransceiverConfig(layered=True, bitrate_kbps=12)
    packets, _ = transmit(codec, model, _speechlike(1.0), cfg)
    rx_sock = open_udp("127.0.0.1", 0, bind=True)
    sock = open_udp(*rx_sock.getsockname()[:2], bind=False)
    spec = LossSpec("gilbert", 0.2, 3.0)
    sender = RtpSender(sock, _session(models, cfg), loss_model=make_loss_model(spec, 9),
                       jitter_ms=15.0, seed=4)
    try:
        t0 = time.monotonic()
        by_chunk = {}
        for p in packets:
            by_chunk.setdefault(p.chunk, []).append(p)
        for c in sorted(by_chunk):
            sender.send_packets(by_chunk[c])
        sender.drain()
        elapsed = time.monotonic() - t0
        time.sleep(0.05)
        got = [parse_datagram(d) for d in _recv_all(rx_sock)]
    finally:
        sender.close()
        rx_sock.close()
    expected = make_loss_model(spec, 9).losses(len(packets))  # simulate's draw, in send order
    sent = [p for p, gone in zip(packets, expected) if not gone]
    assert sender.stats.packets_dropped_loss == int(expected.sum()) > 0
    assert sorted(g.seq for g in got) == sorted(p.seq for p in sent)
    assert {(g.seq, g.payload) for g in got} == {(p.seq, p.data) for p in sent}
    for g in got:  # timestamps in samples from the base
        seq_chunk = {p.seq: p.chunk for p in sent}[g.seq]
        assert g.timestamp == (0xFFFFF000 + seq_chunk * cfg.chunk_samples) & 0xFFFFFFFF
    assert sum(g.marker for g in got) == 1
    assert elapsed < 1.0  # delays are at most 15 ms, sent concurrently: no blocking


def test_sender_never_blocks_on_a_full_socket(models):
    """A peer that never reads: a local datagram socket pair fills up and the kernel
    refuses more (EAGAIN), which a UDP socket over loopback never does (it drops at the
    receiver). The sender drops and counts, and the loop never waits."""
    from soundspring.transceiver import SentPacket

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender = RtpSender(a, _session(models))
    try:
        t0 = time.monotonic()
        for k in range(4000):  # bounded
            sender.send_packets([SentPacket(k & 0xFFFF, k, 0, b"\x80" + bytes(1000))])
        assert time.monotonic() - t0 < 10.0
        st_ = sender.stats
        assert st_.packets_sent + st_.packets_dropped_kernel == 4000
        assert st_.packets_dropped_kernel > 0 and st_.packets_sent > 0
        assert parse_datagram(b.recv(4096)).seq == 0
    finally:
        sender.close()
        b.close()


# ----------------------------------------------------------------------------- receiver rules


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _stream(models, seconds=1.0, cfg=None):
    codec, model = models
    cfg = cfg or TransceiverConfig()
    pcm = _speechlike(seconds)
    packets, tx = transmit(codec, model, pcm, cfg)
    return cfg, pcm, packets, tx


def _rx(models, clock, **kw):
    sock = open_udp("127.0.0.1", 0, bind=True)
    codec, model = models
    blocks = []
    rx = NetReceiver(sock, codec, model, clock=clock, on_audio=blocks.append, **kw)
    return rx, blocks


def _datagram(session, p, cfg):
    ts = (session.timestamp_base + p.chunk * cfg.chunk_samples) & 0xFFFFFFFF
    return pack_rtp(RtpPacket(p.seq, ts, session.ssrc, p.data))


def _play_through(rx, clock, until_ms):
    for _ in range(100000):  # bounded
        nd = rx.playout.next_deadline_ms
        if rx.done or nd is None or nd > until_ms:
            break
        clock.t = max(clock.t, nd)
        rx.play(clock.t)


LOOPBACK = ("127.0.0.1", 5004)


def test_receiver_rules_on_a_simulated_clock(models):
    """A stream at 40 ms per chunk with hostile datagrams mixed in: garbage, truncated,
    other SSRCs, off-grid and far-future timestamps, duplicates, replays and late packets.
    The audio equals the file path's with exactly the lost and late packets missing."""
    cfg, pcm, packets, tx = _stream(models, 1.2)
    clock = _Clock()
    session = _session(models, cfg, len(pcm), epoch=clock.t)
    rx, blocks = _rx(models, clock, idle_timeout_s=5.0)
    try:
        ctrl = pack_control(ControlMessage(SUBTYPE_SESSION, session.ssrc, session.to_json()))
        rx.handle(b"\x00garbage", LOOPBACK, clock.t)
        rx.handle(_datagram(session, packets[0], cfg), LOOPBACK, clock.t)  # before the session
        rx.handle(ctrl, LOOPBACK, clock.t)
        rx.handle(ctrl, LOOPBACK, clock.t)
        assert rx.session == session and rx.stats.session_copies == 1
        future = type(packets[5])(packets[5].seq, packets[5].chunk + 5000, 0, packets[5].data)
        rx.handle(_datagram(session, future, cfg), LOOPBACK, clock.t)  # cannot anchor the clock
        assert rx.stats.implausible == 1 and rx.playout.anchor_chunk is None
        lost = {3, 7}
        late = {11}
        rng = np.random.default_rng(0)
        for p in packets:
            arrival = session.capture_epoch_ms + (p.chunk + 1) * 40.0 + 5.0
            _play_through(rx, clock, arrival)
            clock.t = max(clock.t, arrival)
            if p.chunk in lost:
                continue
            d = _datagram(session, p, cfg)
            if p.chunk in late:  # arrives after its deadline
                clock.t += rx.playout_delay_ms + 30.0
                _play_through(rx, clock, clock.t)
            rx.handle(d, LOOPBACK, clock.t)
            # hostile copies after the real one
            rx.handle(d, LOOPBACK, clock.t)  # duplicate
            rx.handle(d[: rng.integers(0, len(d))], LOOPBACK, clock.t)  # truncated
            rx.handle(bytes(rng.integers(0, 256, 40, dtype=np.uint8)), LOOPBACK, clock.t)
            far = RtpPacket(p.seq, (session.timestamp_base + (p.chunk + 10**6) * 640)
                            & 0xFFFFFFFF, session.ssrc, p.data)
            rx.handle(pack_rtp(far), LOOPBACK, clock.t)  # far future
            rx.handle(pack_rtp(RtpPacket(p.seq, 7, session.ssrc, p.data)), LOOPBACK,
                      clock.t)  # off the chunk grid
            rx.handle(pack_rtp(RtpPacket(p.seq, 0, 999, p.data)), LOOPBACK, clock.t)  # foreign
            if p.chunk > 2:  # a replay of an old packet
                rx.handle(_datagram(session, packets[p.chunk - 2], cfg), LOOPBACK, clock.t)
        end = pack_control(ControlMessage(SUBTYPE_END, session.ssrc,
                                          {"n_chunks": tx.chunks_sent, "n_samples": len(pcm)}))
        _play_through(rx, clock, clock.t + 40.0)
        rx.handle(end, LOOPBACK, clock.t)
        assert rx.done and rx.finish_reason == "end_of_stream"
        st_ = rx.stats
        assert st_.chunks_played == tx.chunks_sent
        assert st_.accepted == len(packets) - len(lost) - len(late)
        assert st_.late >= len(late) and st_.duplicate >= 1 and st_.malformed > 0
        assert st_.foreign > 0 and st_.too_early > 0 and st_.before_session == 1
        out = np.concatenate(blocks)[codec_lookahead(models):][: len(pcm)]
        gone = {c for c in lost | late}
        kept = [p for p in packets if p.chunk not in gone]
        ref, _ = receive(*models, cfg, kept, tx.chunks_sent, len(pcm))
        np.testing.assert_array_equal(out, ref)
        lat = rx.latency_report()
        assert lat["shared_clock"] and lat["chunks_measured"] > 0
        parts = lat["parts_ms"]
        assert parts["chunk"] == 40.0 and parts["codec_lookahead"] == 15.0
        assert lat["transit_ms"] >= 5.0 - 1e-9
        total = (parts["chunk"] + parts["codec_lookahead"] + lat["transit_ms"]
                 + parts["jitter_buffer"] + parts["receiver_compute"])
        assert abs(total - lat["total_ms"]) < 1e-6
    finally:
        rx.close()


@pytest.mark.parametrize("cfg", [TransceiverConfig(bitrate_kbps=12, layered=True, fec=True),
                                 TransceiverConfig(bitrate_kbps=3, fec=True, chunk_frames=1)],
                         ids=["layered_fec_12k", "fec_3k_20ms"])
def test_layered_and_fec_streams_match_the_file_path(models, cfg):
    """Several packets per chunk, FEC copies, one-frame chunks: packets lost on the way
    (some recovered by FEC) give the file path's audio for the same lost set."""
    _, pcm, packets, tx = _stream(models, 1.0, cfg)
    clock = _Clock()
    chunk_ms = 1000.0 * cfg.chunk_samples / 16000
    session = _session(models, cfg, len(pcm), epoch=clock.t)
    rx, blocks = _rx(models, clock, session=session)
    lost = make_loss_model(LossSpec("bernoulli", 0.2, 2.0), 3).losses(len(packets))
    lost[0] = False
    try:
        for p, gone in zip(packets, lost):
            arrival = session.capture_epoch_ms + (p.chunk + 1) * chunk_ms + 2.0
            rx.play(arrival)
            clock.t = max(clock.t, arrival)
            if not gone:
                rx.handle(_datagram(session, p, cfg), LOOPBACK, clock.t)
        rx.finish("end_of_stream", tx.chunks_sent)
        assert rx.stats.accepted == int((~lost).sum()) and rx.stats.late == 0
        out = np.concatenate(blocks)[codec_lookahead(models):][: len(pcm)]
        kept = [p for p, gone in zip(packets, lost) if not gone]
        ref, ref_rx = receive(*models, cfg, kept, tx.chunks_sent, len(pcm))
        np.testing.assert_array_equal(out, ref)
        assert rx.playout.rx.stats.chunks_from_fec == ref_rx.stats.chunks_from_fec > 0
    finally:
        rx.close()


def codec_lookahead(models) -> int:
    return models[0].lookahead_samples


def test_lossy_start_and_late_join(models):
    cfg, pcm, packets, tx = _stream(models, 1.0)
    # lossy start: chunks 0-2 lost; the output stays aligned (they are concealed)
    clock = _Clock()
    session = _session(models, cfg, len(pcm), epoch=clock.t)
    rx, blocks = _rx(models, clock, session=session)
    try:
        for p in packets[3:]:
            clock.t = session.capture_epoch_ms + (p.chunk + 1) * 40.0
            _play_through(rx, clock, clock.t)
            rx.handle(_datagram(session, p, cfg), LOOPBACK, clock.t)
        rx.finish("end_of_stream", tx.chunks_sent)
        out = np.concatenate(blocks)[codec_lookahead(models):][: len(pcm)]
        ref, _ = receive(*models, cfg, packets[3:], tx.chunks_sent, len(pcm))
        np.testing.assert_array_equal(out, ref)
    finally:
        rx.close()
    # late join: the first packet heard is chunk 200 of a running stream
    clock = _Clock()
    rx, blocks = _rx(models, clock)
    try:
        body = session.to_json()
        body["next_chunk"] = 200
        rx.handle(pack_control(ControlMessage(SUBTYPE_SESSION, session.ssrc, body)), LOOPBACK,
                  clock.t)
        for i, p in enumerate(packets[:10]):
            q = type(p)((p.seq + 200) & 0xFFFF, p.chunk + 200, p.layer, p.data)
            clock.t = 1000.0 + 40.0 * i
            _play_through(rx, clock, clock.t)
            rx.handle(_datagram(session, q, cfg), LOOPBACK, clock.t)
        assert rx.stats.accepted == 10 and rx.playout.anchor_chunk == 200
        _play_through(rx, clock, clock.t + 100.0)
        assert rx.stats.chunks_played >= 10 and rx.rows[0].chunk == 200
    finally:
        rx.close()


def test_session_for_other_models_is_ignored_and_sdp_mismatch_refused(models):
    codec, model = models
    torch.manual_seed(5)
    other = Codec(codec_tiny()).eval()
    s_other = make_session(stream_header(other, model, TransceiverConfig(), 100), 1, 2)
    clock = _Clock()
    rx, _ = _rx(models, clock, idle_timeout_s=0.5)
    try:
        rx.handle(pack_control(ControlMessage(SUBTYPE_SESSION, 1, s_other.to_json())),
                  LOOPBACK, clock.t)
        assert rx.session is None and rx.stats.session_mismatch == 1
        assert "codec" in rx.mismatch_reason
    finally:
        rx.close()
    sock = open_udp("127.0.0.1", 0, bind=True)
    try:
        with pytest.raises(ModelMismatchError):
            NetReceiver(sock, codec, model, session=s_other)
        with pytest.raises(ConfigError, match="conceal"):
            NetReceiver(sock, codec, model, conceal="lm")  # the static model cannot
        with pytest.raises(ConfigError):
            NetReceiver(sock, codec, model, conceal="nope")
    finally:
        sock.close()


def test_idle_timeout_real_clock(models):
    """No datagram: done by idle timeout after about idle_timeout_s; a stream that stops
    without its end message: done after the timeout with what arrived played."""
    rx, _ = _rx(models, monotonic_ms, idle_timeout_s=0.3)
    try:
        t0 = time.monotonic()
        assert rx.run(max_seconds=5.0) == "idle_timeout"
        assert 0.25 < time.monotonic() - t0 < 2.0
    finally:
        rx.close()
    cfg, pcm, packets, _ = _stream(models, 0.5)
    clock = _Clock()
    session = _session(models, cfg, len(pcm), epoch=clock.t)
    rx, _ = _rx(models, clock, session=session, idle_timeout_s=0.2)
    try:
        for p in packets[:6]:
            clock.t = session.capture_epoch_ms + (p.chunk + 1) * 40.0
            _play_through(rx, clock, clock.t)
            rx.handle(_datagram(session, p, cfg), LOOPBACK, clock.t)
        clock.t += 500.0
        rx.step(0.0)
        assert rx.finish_reason == "idle_timeout" and rx.stats.accepted == 6
        assert rx.stats.chunks_played >= 6  # playout went on (concealing) until the timeout
        assert [r.arrival_ms is not None for r in rx.rows][:6] == [True] * 6
    finally:
        rx.close()


def test_run_calls_on_step_after_each_step_and_stops_on_a_true_return(models):
    """``NetReceiver.run`` is the one receiving loop: ``on_step`` sees the receiver after
    each step; a true return stops the loop with the stream unfinished; the time limit
    finishes it as "time_limit"; a bad limit is a ConfigError."""
    clock = _Clock()
    rx, _ = _rx(models, clock, idle_timeout_s=60.0)
    try:
        seen = []

        def hook(r):
            assert r is rx
            seen.append(clock.t)
            clock.t += 1000.0
            return len(seen) == 3

        assert rx.run(max_wait_s=0.0, on_step=hook) is None
        assert seen == [1000.0, 2000.0, 3000.0] and not rx.done
        seen.clear()
        assert rx.run(2.5, max_wait_s=0.0, on_step=lambda r: hook(r) and False) == "time_limit"
        assert seen == [4000.0, 5000.0, 6000.0] and rx.done
        for bad in ({"max_seconds": float("nan")}, {"max_seconds": -1.0},
                    {"max_wait_s": True}, {"max_wait_s": "0.1"}):
            with pytest.raises(ConfigError, match="must be a number >= 0"):
                rx.run(**bad)
    finally:
        rx.close()


@pytest.mark.parametrize("quiet", [False, True])
def test_receive_command_status_lines_and_ctrl_c(models, monkeypatch, capsys, quiet):
    """``soundspring receive``'s loop is ``NetReceiver.run`` with its status line as the
    hook (every STATUS_INTERVAL_LOG_S off a terminal; none with -q); Ctrl-C finishes the
    stream as "interrupted"."""
    from soundspring.commands.receive import STATUS_INTERVAL_LOG_S, _receive

    clock = _Clock()
    rx, _ = _rx(models, clock, session=_session(models, epoch=clock.t), idle_timeout_s=86400.0)
    steps = []

    def step(max_wait_s):
        steps.append(max_wait_s)
        clock.t += 500.0 * STATUS_INTERVAL_LOG_S  # half an interval a step
        if len(steps) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(rx, "step", step)
    try:
        _receive(rx, quiet)
    finally:
        rx.close()
    assert rx.finish_reason == "interrupted" and len(steps) == 5
    lines = capsys.readouterr().err.splitlines()
    if quiet:
        assert lines == []
    else:  # after steps 2 and 4
        assert len(lines) == 2 and all(ln.startswith("soundspring receive: packets 0")
                                       for ln in lines)


def test_rtp_docstring_example_runs():
    import doctest

    import soundspring.net.rtp

    result = doctest.testmod(soundspring.net.rtp, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
