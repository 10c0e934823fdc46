"""The receiver on the C++ jitter buffer: the clocked (live) mode against the unclocked one,
late = lost = concealed, damaged packets, a late start, snapshot/restore (speculative
concealment undone), and ``open_stream`` (the model check the API and the CLI share)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from soundspring.config import SAMPLE_RATE_HZ, codec_tiny
from soundspring.entropy.static import StaticModel
from soundspring.errors import BitstreamError, ConfigError, ModelMismatchError
from soundspring.models.codec import Codec
from soundspring.transceiver import (
    Receiver,
    TokenReceiver,
    TokenTransmitter,
    TransceiverConfig,
    Transmitter,
    open_stream,
    receive,
)
from soundspring.transceiver.stream import stream_header
from soundspring.transport import PushOutcome, write_container
from synthetic_lm import SyntheticLM


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return Codec(codec_tiny()).eval()


def _send(codec, cfg, seconds=0.6, model=None):
    tx = Transmitter(codec, model or SyntheticLM(), cfg)
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)
    packets = tx.push(pcm) + tx.flush()
    return tx, packets


def _chunk_ms(cfg) -> float:
    return 1000.0 * cfg.chunk_samples / SAMPLE_RATE_HZ


def _live(rx, packets, arrival, tick_ms=20.0):
    """Pushes packets at their arrival times (ms) and plays on a tick clock until the last
    arrival (a live receiver keeps playing, concealing, after the stream's last chunk:
    end_of_stream stops it); returns the audio played."""
    order = np.argsort(arrival, kind="stable")
    out, i, t = [], 0, 0.0
    end = float(np.max(arrival))
    while i < len(order) or t <= end:
        while i < len(order) and arrival[order[i]] <= t:
            p = packets[order[i]]
            rx.push(p.data, p.seq, p.chunk, arrival_ms=float(arrival[order[i]]))
            i += 1
        out.append(rx.play(t))
        t += tick_ms
    out.append(rx.end_of_stream())
    return np.concatenate(out)


@pytest.mark.parametrize("layered", [False, True])
def test_clocked_receiver_plays_what_the_unclocked_one_decodes(codec, layered):
    cfg = TransceiverConfig(bitrate_kbps=6, layered=layered)
    tx, packets = _send(codec, cfg)
    ref = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        ref.push(p.data, p.seq, p.chunk)
    want = np.concatenate([ref.pull(tx.chunks_sent * cfg.chunk_samples), ref.flush()])

    rx = Receiver(codec, SyntheticLM(), cfg, playout_delay_ms=60.0)
    assert rx.clocked and rx.next_deadline_ms is None
    assert rx.play(1e6).size == 0  # nothing is due before the first packet
    rng = np.random.default_rng(0)
    arrival = np.array([p.chunk * _chunk_ms(cfg) + 5.0 + rng.uniform(0, 50) for p in packets])
    got = _live(rx, packets, arrival)
    np.testing.assert_array_equal(got, want)
    assert rx.stats.chunks_concealed == 0 and rx.stats.packets_late == 0
    assert [h.status for h in rx.history] == ["received"] * tx.chunks_sent
    assert rx.finished and rx.end_of_stream().size == 0 and rx.play(1e9).size == 0


def test_next_deadline_follows_the_first_packet(codec):
    cfg = TransceiverConfig(bitrate_kbps=3)
    _, packets = _send(codec, cfg, seconds=0.3)
    rx = TokenReceiver(SyntheticLM(), cfg, playout_delay_ms=100.0)
    assert rx.push(packets[2].data, packets[2].seq, packets[2].chunk, 1000.0) == \
        PushOutcome.ACCEPTED
    # chunk 2 arrived at 1000 ms: chunk 2 is due at 1100, chunk 3 one chunk later
    assert rx.next_chunk == 2 and rx.next_deadline_ms == 1100.0
    assert rx.play_tokens(1099.9) == []
    (d,) = rx.play_tokens(1100.0)
    assert d.outcome.chunk == 2 and d.outcome.status == "received"
    assert rx.next_deadline_ms == 1100.0 + _chunk_ms(cfg)
    # the earlier chunks are behind the playout point: late
    assert rx.push(packets[0].data, packets[0].seq, packets[0].chunk, 1100.0) == PushOutcome.LATE


def test_a_packet_after_its_deadline_is_lost_and_concealed(codec):
    cfg = TransceiverConfig(bitrate_kbps=6, conceal="repeat")
    tx, packets = _send(codec, cfg)
    delay, cms = 60.0, _chunk_ms(cfg)
    arrival = np.array([p.chunk * cms + 5.0 for p in packets])
    late = next(i for i, p in enumerate(packets) if p.chunk == 4)
    arrival[late] = 4 * cms + 5.0 + delay + 1.0  # 1 ms after chunk 4's deadline
    rx = TokenReceiver(SyntheticLM(), cfg, playout_delay_ms=delay)
    order = np.argsort(arrival, kind="stable")
    played = []
    for i in order:
        played += rx.play_tokens(float(arrival[i]))
        rx.push(packets[i].data, packets[i].seq, packets[i].chunk, float(arrival[i]))
    played += rx.end_of_stream_tokens()
    hist = rx.history
    assert [h.chunk for h in hist] == list(range(tx.chunks_sent))
    assert hist[4].status == "late" and hist[4].late_packets == 1 and hist[4].n_levels == 0
    assert rx.stats.packets_late == 1 and rx.stats.chunks_concealed == 1
    # the same as an unclocked receiver that never got the packet (but for the status)
    ref = TokenReceiver(SyntheticLM(), cfg)
    for i, p in enumerate(packets):
        if i != late:
            ref.push(p.data, p.seq, p.chunk)
    want = [ref.next_chunk_tokens() for _ in range(tx.chunks_sent)]
    for d, w in zip(played, want):
        np.testing.assert_array_equal(d.tokens, w.tokens)
    assert want[4].outcome.status == "concealed"


def test_a_damaged_packet_marks_its_chunk_corrupt(codec, rng):
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.3)
    rx = TokenReceiver(SyntheticLM(), cfg)
    for p in packets:
        if p.chunk == 2:  # unparsable bytes, and a TOC naming a layer the stream lacks
            assert rx.push(b"\x00\x01", p.seq, p.chunk) == PushOutcome.DAMAGED
            assert rx.push(bytes([0xB0]) + p.data[1:], p.seq, p.chunk) == PushOutcome.DAMAGED
        else:
            rx.push(p.data, p.seq, p.chunk)
    assert rx.push(packets[0].data, packets[0].seq, packets[0].chunk) == PushOutcome.DUPLICATE
    outcomes = [rx.next_chunk_tokens().outcome for _ in range(tx.chunks_sent)]
    assert outcomes[2].status == "corrupt" and outcomes[1].status == "received"
    assert rx.stats.packets_corrupt == 2 and rx.stats.chunks_corrupt == 1
    assert rx.stats.packets_duplicate == 1


def test_clocked_mode_arguments_are_checked(codec):
    cfg = TransceiverConfig(bitrate_kbps=3)
    _, packets = _send(codec, cfg, seconds=0.2)
    p = packets[0]
    rx = Receiver(codec, SyntheticLM(), cfg, playout_delay_ms=40.0)
    with pytest.raises(ConfigError, match="arrival_ms"):
        rx.push(p.data, p.seq, p.chunk)
    for bad in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigError, match="arrival_ms must be a finite number of millis"):
            rx.push(p.data, p.seq, p.chunk, arrival_ms=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="now_ms must be a finite number of milliseconds"):
            rx.play(bad)  # type: ignore[arg-type]
    assert rx.stats.packets_received == 0
    for bad in (-1.0, 60001.0, float("nan"), "60"):
        with pytest.raises(ConfigError, match="playout_delay_ms"):
            Receiver(codec, SyntheticLM(), cfg, playout_delay_ms=bad)  # type: ignore[arg-type]
    unclocked = Receiver(codec, SyntheticLM(), cfg)
    with pytest.raises(ConfigError, match="clocked"):
        unclocked.play(0.0)
    assert unclocked.next_deadline_ms is None
    unclocked.push(p.data, p.seq, p.chunk, arrival_ms=123.0)  # ignored when unclocked
    with pytest.raises(ConfigError, match="window_chunks"):
        TokenReceiver(SyntheticLM(), cfg, window_chunks=65537)
    with pytest.raises(ConfigError, match="next_chunk"):
        unclocked.next_chunk = -1


def test_a_late_start_taints_the_memory_for_the_reach(codec):
    # layered, reach 2 chunks: a receiver joining at chunk 3 lacks chunks 0-2 in its
    # memory, so the fine packets of chunks 3 and 4 cannot be verified; the bases can
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=4, layered=True)
    tx, packets = _send(codec, cfg)
    rx = TokenReceiver(SyntheticLM(), cfg, playout_delay_ms=0.0)
    later = [p for p in packets if p.chunk >= 3]
    for p in later:
        rx.push(p.data, p.seq, p.chunk, arrival_ms=0.0)
    played = rx.end_of_stream_tokens()
    assert [d.outcome.chunk for d in played] == list(range(3, tx.chunks_sent))
    assert [d.outcome.status for d in played[:3]] == ["base_only", "base_only", "received"]
    for d in played:
        np.testing.assert_array_equal(d.tokens, tx.sent_tokens[d.outcome.chunk][:d.tokens.shape[0]])


@pytest.mark.parametrize("layered", [False, True])
@pytest.mark.parametrize("clocked", [False, True])
def test_restore_then_continue_equals_never_having_speculated(codec, layered, clocked):
    """Speculative concealment from a snapshot: conceal chunks 5 and 6 before chunk 5's
    packets arrive, then restore and decode with them: the same tokens, audio and counters
    as a receiver that waited."""
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=4, layered=layered, conceal="lm")
    tx, packets = _send(codec, cfg, seconds=0.8)
    delay = 0.0 if clocked else None
    held = [p for p in packets if p.chunk == 5]

    def arrive(rx, ps):
        for p in ps:
            rx.push(p.data, p.seq, p.chunk, arrival_ms=0.0)

    ref = Receiver(codec, SyntheticLM(), cfg, playout_delay_ms=delay)
    arrive(ref, packets)
    ref_pcm = np.concatenate([ref.pull(tx.chunks_sent * cfg.chunk_samples), ref.flush()])

    rx = Receiver(codec, SyntheticLM(), cfg, playout_delay_ms=delay)
    arrive(rx, [p for p in packets if p.chunk != 5])
    first = rx.pull(5 * cfg.chunk_samples)
    snap = rx.snapshot()
    assert snap.next_chunk == rx.next_chunk
    for _ in range(2):  # speculate twice from the same snapshot
        spec = rx.pull(2 * cfg.chunk_samples)
        assert rx.history[-2].status == "concealed" and rx.stats.chunks_concealed == 1
        rx.push(held[0].data, held[0].seq, held[0].chunk, arrival_ms=0.0)  # late now
        rx.restore(snap)
    assert rx.stats.chunks_concealed == 0 and rx.stats.packets_late == 0
    arrive(rx, held)
    rest = np.concatenate([rx.pull((tx.chunks_sent - 5) * cfg.chunk_samples), rx.flush()])
    np.testing.assert_array_equal(np.concatenate([first, rest]), ref_pcm)
    assert not np.array_equal(spec, ref_pcm[5 * cfg.chunk_samples: 7 * cfg.chunk_samples])
    assert [h.status for h in rx.history] == [h.status for h in ref.history]
    for a, b in zip(rx.history, ref.history):
        np.testing.assert_array_equal(a.tokens, b.tokens)
    assert rx.stats == ref.stats


@pytest.mark.parametrize("backend", ["torch", "engine"])
def test_snapshot_restores_a_springlm_memory(codec, backend):
    """The model memory is copied (SpringLMState.snapshot, the engine's StreamState
    snapshot: the engine commits in place)."""
    from soundspring.models.lm_adapter import SpringLMCodingModel
    from soundspring.models.lm_engine import SpringLMEngine
    from soundspring.models.masked_lm import SpringLM, springlm_tiny

    torch.manual_seed(0)
    net = SpringLM(springlm_tiny()).eval()
    lm = SpringLMCodingModel(net) if backend == "torch" else SpringLMEngine.from_model(net)
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=4)
    tx = TokenTransmitter(lm, cfg)
    rng = np.random.default_rng(0)
    packets = []
    for _ in range(8):
        packets += tx.send_tokens(rng.integers(0, 1024, size=(cfg.layout.n_codebooks, 2)))
    rx = TokenReceiver(lm, cfg)
    for p in packets:
        if p.chunk != 3:
            rx.push(p.data, p.seq, p.chunk)
    for _ in range(3):
        rx.next_chunk_tokens()
    snap = rx.snapshot()
    spec = [rx.next_chunk_tokens().outcome.status for _ in range(3)]
    assert spec[0] == "concealed"
    rx.restore(snap)
    p3 = next(p for p in packets if p.chunk == 3)
    rx.push(p3.data, p3.seq, p3.chunk)
    got = [rx.next_chunk_tokens() for _ in range(5)]
    assert [d.outcome.status for d in got] == ["received"] * 5
    for d in got:
        np.testing.assert_array_equal(d.tokens, tx.sent_tokens[d.outcome.chunk])


def test_snapshots_belong_to_their_receiver():
    cfg = TransceiverConfig(bitrate_kbps=3)
    a, b = TokenReceiver(SyntheticLM(), cfg), TokenReceiver(SyntheticLM(), cfg)
    with pytest.raises(ConfigError, match="another receiver"):
        b.restore(a.snapshot())
    with pytest.raises(TypeError):
        a.restore("snapshot")  # type: ignore[arg-type]


def _spring_file(tmp_path, codec, model, cfg, seconds=0.4):
    tx, packets = _send(codec, cfg, seconds=seconds, model=model)
    n_samples = int(seconds * SAMPLE_RATE_HZ)
    path = tmp_path / "s.spring"
    write_container(path, stream_header(codec, model, cfg, n_samples),
                    [(p.seq, p.chunk, p.data) for p in packets if p.chunk != 2])
    return path, packets, n_samples, tx


def test_open_stream_decodes_what_receive_decodes(codec, tmp_path):
    cfg = TransceiverConfig(bitrate_kbps=6)
    model = StaticModel()
    path, packets, n_samples, tx = _spring_file(tmp_path, codec, model, cfg)
    stream = open_stream(path, (codec, model))
    assert stream.header.n_samples == n_samples and stream.config.bitrate_kbps == 6
    assert stream.plan.n_chunks == tx.chunks_sent
    assert len(stream.packets) == sum(p.chunk != 2 for p in packets)
    rx, blocks = stream.blocks()
    got = np.concatenate(list(blocks))
    want, _ = receive(codec, model, cfg, [p for p in packets if p.chunk != 2], tx.chunks_sent,
                      n_samples)
    np.testing.assert_array_equal(got, want)
    assert rx.history[2].status == "concealed"
    assert open_stream(path.read_bytes(), lambda: (codec, model)).plan == stream.plan


def test_open_stream_refuses_other_models_and_loads_none_for_a_bad_file(codec, tmp_path):
    cfg = TransceiverConfig(bitrate_kbps=6)
    path, *_ = _spring_file(tmp_path, codec, StaticModel(), cfg)
    with pytest.raises(ModelMismatchError, match="model"):
        open_stream(path, (codec, SyntheticLM()))
    torch.manual_seed(1)
    other = Codec(codec_tiny()).eval()
    with pytest.raises(ModelMismatchError, match="codec"):
        open_stream(path, (other, StaticModel()))
    with pytest.raises(ConfigError, match="conceal"):
        open_stream(path, (codec, StaticModel()), conceal="magic")
    calls = []

    def load():
        calls.append(1)
        return codec, StaticModel()

    bad = tmp_path / "bad.spring"
    bad.write_bytes(b"not a spring file at all")
    with pytest.raises(BitstreamError):
        open_stream(bad, load)
    assert calls == []
