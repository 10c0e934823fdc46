"""Jitter buffer: reordering, duplicates, late packets, window, wrap-around, FEC."""

from __future__ import annotations

import numpy as np
import pytest
from soundspring.errors import BitstreamError, ConfigError, TruncatedError
from soundspring.transport import FecCopy, JitterBuffer, Packet, PushOutcome


def pkt(layer: int, payload: bytes, fec: FecCopy | None = None) -> bytes:
    return Packet(layer, payload, fec).to_bytes()


def make(**kw) -> JitterBuffer:  # type: ignore[no-untyped-def]
    args = {"num_layers": 2, "chunk_ms": 40.0, "playout_delay_ms": 100.0}
    args.update(kw)
    return JitterBuffer(**args)


def test_in_order_stream_is_released_on_deadlines() -> None:
    jb = make()
    for k in range(5):
        for layer in range(2):
            assert (
                jb.push(2 * k + layer, k, 40.0 * k, pkt(layer, bytes([k, layer])))
                == PushOutcome.ACCEPTED
            )
    assert jb.deadline_ms(0) == 100.0 and jb.deadline_ms(3) == 220.0
    assert jb.pop(99.9) == []
    out = jb.pop(180.0)
    assert [c.chunk for c in out] == [0, 1, 2]
    assert all(c.received.tolist() == [True, True] for c in out)
    assert out[2].payloads == (b"\x02\x00", b"\x02\x01")
    assert [c.chunk for c in jb.flush()] == [3, 4]
    assert jb.stats.released == 5 and jb.stats.reordered == 0


def test_reordering_within_deadline_is_repaired() -> None:
    jb = make(num_layers=1)
    order = [0, 2, 1, 4, 3, 5]
    for i, k in enumerate(order):
        jb.push(k, k, 10.0 * i, pkt(0, bytes([k])))
    out = jb.flush()
    assert [c.chunk for c in out] == list(range(6))
    assert [c.payloads[0] for c in out] == [bytes([k]) for k in range(6)]
    assert jb.stats.reordered == 2


def test_duplicates_dropped() -> None:
    jb = make()
    assert jb.push(0, 0, 0.0, pkt(0, b"a")) == PushOutcome.ACCEPTED
    assert jb.push(0, 0, 1.0, pkt(0, b"a")) == PushOutcome.DUPLICATE
    assert jb.push(5, 0, 2.0, pkt(0, b"b")) == PushOutcome.DUPLICATE
    (c,) = jb.flush()
    assert c.payloads == (b"a", None) and c.received.tolist() == [True, False]
    assert jb.stats.duplicates == 2


def test_late_packets_are_losses() -> None:
    jb = make(num_layers=2)
    jb.push(0, 0, 0.0, pkt(0, b"a"))
    # chunk 0 deadline = 100: the fine packet at 100.0 is on time, at 100.5 it is late
    assert jb.push(1, 0, 100.0, pkt(1, b"b")) == PushOutcome.ACCEPTED
    assert jb.push(2, 1, 140.5, pkt(0, b"c")) == PushOutcome.LATE
    out = jb.pop(140.0)
    assert [c.chunk for c in out] == [0, 1]
    assert out[1].received.tolist() == [False, False] and out[1].payloads == (None, None)
    # after release, even a packet "on time" by the clock is late
    assert jb.push(3, 1, 0.0, pkt(1, b"d")) == PushOutcome.LATE
    assert jb.stats.late == 2


def test_lost_chunks_are_emitted_in_order() -> None:
    jb = make(num_layers=1, playout_delay_ms=0.0)
    jb.push(0, 0, 0.0, pkt(0, b"a"))
    jb.push(1, 3, 120.0, pkt(0, b"d"))
    out = jb.pop(120.0)
    assert [(c.chunk, bool(c.received[0])) for c in out] == [
        (0, True),
        (1, False),
        (2, False),
        (3, True),
    ]


def test_window_bounds_memory() -> None:
    jb = make(num_layers=1, window_chunks=4)
    jb.push(0, 0, 0.0, pkt(0, b"a"))
    assert jb.push(1, 3, 1.0, pkt(0, b"b")) == PushOutcome.ACCEPTED
    assert jb.push(2, 4, 2.0, pkt(0, b"c")) == PushOutcome.TOO_EARLY
    jb.pop(100.0)  # releases chunk 0: the window moves
    assert jb.push(3, 4, 101.0, pkt(0, b"c")) == PushOutcome.ACCEPTED
    assert jb.stats.too_early == 1


def test_unused_layer_and_malformed_packet() -> None:
    jb = make(num_layers=1)
    assert jb.push(0, 0, 0.0, pkt(2, b"x")) == PushOutcome.UNUSED_LAYER
    with pytest.raises(TruncatedError):
        jb.push(1, 0, 0.0, b"")
    with pytest.raises(BitstreamError):
        jb.push(1, 0, 0.0, b"\x41")
    assert jb.stats.pushed == 1 and jb.next_chunk is None  # malformed ones left no trace


def test_sequence_and_chunk_wrap_around() -> None:
    jb = make(num_layers=1, chunk_ms=20.0, playout_delay_ms=60.0)
    start = 2**32 - 3
    for i in range(6):
        seq = (65533 + i) % 65536
        chunk = (start + i) % 2**32
        jb.push(seq, chunk, 20.0 * i, pkt(0, bytes([i])))
    out = jb.flush()
    assert [c.chunk for c in out] == [start + i for i in range(6)]
    assert [c.payloads[0] for c in out] == [bytes([i]) for i in range(6)]
    assert jb.stats.reordered == 0 and jb.stats.late == 0
    # a seq just before the wrap arriving after it is reordered, not "new"
    jb2 = make(num_layers=1)
    jb2.push(1, 0, 0.0, pkt(0, b"a"))
    jb2.push(65535, 1, 1.0, pkt(0, b"b"))
    assert jb2.stats.reordered == 1


def test_explicit_anchor_keeps_early_chunks() -> None:
    jb = make(num_layers=1, anchor_chunk=0, anchor_time_ms=0.0)
    jb.push(1, 1, 5.0, pkt(0, b"b"))
    jb.push(0, 0, 30.0, pkt(0, b"a"))  # first packet was chunk 1; chunk 0 still plays
    assert [c.payloads[0] for c in jb.flush()] == [b"a", b"b"]
    auto = make(num_layers=1)
    auto.push(1, 1, 5.0, pkt(0, b"b"))
    assert auto.push(0, 0, 30.0, pkt(0, b"a")) == PushOutcome.LATE


def test_fec_copy_recovers_lost_base() -> None:
    jb = make(num_layers=2)
    jb.push(0, 0, 0.0, pkt(1, b"f0"))  # base of chunk 0 lost
    jb.push(1, 1, 40.0, pkt(0, b"b1", FecCopy(1, b"b0")))
    jb.push(2, 2, 80.0, pkt(1, b"f2", FecCopy(0, b"b2")))  # same-chunk copy in a fine packet
    out = jb.flush()
    assert out[0].payloads == (b"b0", b"f0") and out[0].base_from_fec
    assert out[1].payloads == (b"b1", None) and not out[1].base_from_fec
    assert out[2].payloads == (b"b2", b"f2") and out[2].base_from_fec
    assert jb.stats.fec_applied == 2


def test_fec_original_replaces_copy_and_late_copy_ignored() -> None:
    jb = make(num_layers=1)
    jb.push(0, 1, 0.0, pkt(0, b"b1", FecCopy(1, b"copy0")))
    assert jb.push(1, 0, 1.0, pkt(0, b"orig0")) == PushOutcome.LATE  # anchored at chunk 1
    jb = make(num_layers=1, anchor_chunk=0, anchor_time_ms=0.0)
    jb.push(1, 1, 10.0, pkt(0, b"b1", FecCopy(1, b"copy0")))
    assert jb.push(0, 0, 20.0, pkt(0, b"orig0")) == PushOutcome.ACCEPTED
    out = jb.flush()
    assert out[0].payloads == (b"orig0",) and not out[0].base_from_fec
    jb = make(num_layers=1, anchor_chunk=0, anchor_time_ms=0.0)
    jb.push(0, 1, 120.0, pkt(0, b"b1", FecCopy(1, b"copy0")))  # chunk 0 deadline 100 passed
    assert jb.pop(1000.0)[0].received.tolist() == [False]


def test_simulated_channel_matches_mask() -> None:
    """Random delays + a loss mask: the released masks equal (not lost) & (on time)."""
    rng = np.random.default_rng(3)
    n_chunks, layers, delay = 200, 3, 80.0
    lost = rng.random((n_chunks, layers)) < 0.2
    jitter = rng.exponential(20.0, (n_chunks, layers))
    events = []
    for k in range(n_chunks):
        for layer in range(layers):
            if not lost[k, layer]:
                events.append((40.0 * k + jitter[k, layer], k * layers + layer, k, layer))
                if rng.random() < 0.05:
                    events.append((40.0 * k + jitter[k, layer] + 5.0, k * layers + layer, k, layer))
    events.sort()
    jb = JitterBuffer(
        num_layers=layers, chunk_ms=40.0, playout_delay_ms=delay, anchor_chunk=0, anchor_time_ms=0.0
    )
    out = []
    for t, seq, k, layer in events:
        out += jb.pop(t)
        jb.push(seq % 65536, k, t, pkt(layer, bytes([k % 256, layer])))
    out += jb.flush()
    on_time = jitter <= delay
    expected = ~lost & on_time
    got = np.stack([c.received for c in out])
    assert [c.chunk for c in out] == list(range(len(out)))
    np.testing.assert_array_equal(got, expected[: len(out)])
    assert not expected[len(out) :].any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_layers": 0}, "num_layers"),
        ({"num_layers": 5}, "num_layers"),
        ({"chunk_ms": 0.0}, "chunk_ms"),
        ({"chunk_ms": float("nan")}, "chunk_ms"),
        ({"playout_delay_ms": -1.0}, "playout_delay_ms"),
        ({"window_chunks": 0}, "window_chunks"),
        ({"anchor_chunk": 0}, "together"),
        ({"anchor_chunk": -1, "anchor_time_ms": 0.0}, "anchor_chunk"),
    ],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make(**kwargs)


def test_push_argument_errors() -> None:
    jb = make()
    with pytest.raises(ConfigError, match="seq"):
        jb.push(65536, 0, 0.0, pkt(0, b""))
    with pytest.raises(ConfigError, match="chunk"):
        jb.push(0, -1, 0.0, pkt(0, b""))
    with pytest.raises(ConfigError, match="arrival_ms"):
        jb.push(0, 0, float("inf"), pkt(0, b""))
    with pytest.raises(TypeError, match="packet must be bytes-like"):
        jb.push(0, 0, 0.0, "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="now_ms"):
        jb.pop(float("nan"))
    with pytest.raises(ConfigError, match="now_ms"):
        jb.pop(float("inf"))
    with pytest.raises(ConfigError, match="max_chunks"):
        jb.pop(0.0, max_chunks=2**40)
    jb.push(0, 0, 0.0, pkt(0, b""))
    jb.reset()
    assert jb.next_chunk is None and jb.stats.pushed == 0


def test_a_clock_jump_releases_a_bounded_run() -> None:
    """A far-future clock releases at most max_chunks lost chunks per call, in order."""
    jb = make()
    jb.push(0, 0, 0.0, pkt(0, b""))
    first = jb.pop(1e15, max_chunks=100)
    assert [c.chunk for c in first] == list(range(100))
    assert [c.chunk for c in jb.pop(1e15, max_chunks=3)] == [100, 101, 102]


def test_unclocked_buffer_releases_on_demand() -> None:
    """Files and simulations: no deadlines, chunks released when asked, late only once
    released; pop is refused."""
    jb = make(clocked=False, window_chunks=4)
    assert jb.next_chunk == 0 and jb.deadline_ms(0) is None and not jb.clock_anchored
    assert jb.push(1, 1, 1e12, pkt(0, b"b")) == PushOutcome.ACCEPTED  # arrival ignored
    assert jb.push(0, 0, -1e12, pkt(0, b"a")) == PushOutcome.ACCEPTED
    assert jb.push(9, 4, 0.0, pkt(0, b"x")) == PushOutcome.TOO_EARLY
    with pytest.raises(ConfigError, match="clocked"):
        jb.pop(0.0)
    a = jb.release_next()
    assert a.chunk == 0 and a.payloads == (b"a", None) and jb.next_chunk == 1
    assert jb.push(0, 0, 0.0, pkt(1, b"f")) == PushOutcome.LATE
    assert [c.chunk for c in (jb.release_next(), jb.release_next())] == [1, 2]
    assert jb.stats.released == 3 and jb.held_chunks == 0


def test_offer_counts_damaged_packets_on_their_chunk() -> None:
    jb = make(clocked=False, num_layers=2)
    assert jb.offer(0, 0, 0.0, b"") == (PushOutcome.DAMAGED, 0)
    assert jb.offer(1, 0, 0.0, b"\x41") == (PushOutcome.DAMAGED, 0)
    assert jb.offer(2, 1, 0.0, pkt(3, b"z")) == (PushOutcome.DAMAGED, 1)  # layer 3 of 2
    assert jb.offer(3, 1, 0.0, pkt(1, b"f")) == (PushOutcome.ACCEPTED, 1)
    c0, c1 = jb.release_next(), jb.release_next()
    assert c0.damaged_packets == 2 and not c0.received.any()
    assert c1.damaged_packets == 1 and c1.payloads == (None, b"f")
    assert jb.offer(4, 0, 0.0, b"") == (PushOutcome.LATE, 0)  # released: late, not damaged
    assert jb.stats.damaged == 3
    with pytest.raises(ConfigError, match="arrival_ms"):
        jb.offer(0, 0, float("nan"), b"")


def test_fec_copy_is_kept_beside_the_primary_and_peek_does_not_release() -> None:
    jb = make(clocked=False, num_layers=2)
    jb.push(0, 0, 0.0, pkt(0, b"orig0"))
    jb.push(2, 1, 0.0, pkt(0, b"b1", FecCopy(1, b"copy0")))
    jb.push(4, 2, 0.0, pkt(0, b"b2", FecCopy(1, b"copy1")))
    peek = jb.peek(0)
    assert peek is not None and peek.payloads[0] == b"orig0" and peek.fec_copy == b"copy0"
    assert not peek.base_from_fec and peek.primary_base == b"orig0"
    v = jb.peek_version(1)
    jb.push(3, 1, 0.0, pkt(1, b"f1"))
    assert jb.peek_version(1) != v and jb.peek(1).payloads == (b"b1", b"f1")
    assert jb.peek(3) is None and jb.peek_version(3) is None and jb.next_chunk == 0
    assert [c.fec_copy for c in jb.flush()] == [b"copy0", b"copy1", None]


def test_mark_lost_discards_and_makes_a_copy_late() -> None:
    jb = make(clocked=False, num_layers=2, window_chunks=8)
    jb.push(1, 0, 0.0, pkt(1, b"f0"))
    assert jb.mark_lost(1)  # seq = chunk * 2 + layer: chunk 0's fine layer, held: discarded
    assert jb.mark_lost(4)  # chunk 2's base, not yet arrived
    assert jb.push(4, 2, 0.0, pkt(0, b"b2")) == PushOutcome.LATE
    assert not jb.mark_lost(16)  # chunk 8: beyond the window
    c0 = jb.release_next()
    assert c0.received.tolist() == [False, False] and c0.lost.tolist() == [False, True]
    assert c0.late_packets == 1
    assert not jb.mark_lost(0)  # behind the playout point
    jb.release_next()
    c2 = jb.release_next()
    assert c2.lost.tolist() == [True, False] and c2.late_packets == 1
    jb.skip_to(40000)  # seq wraps mod 2^16
    assert jb.mark_lost((40001 * 2) % 65536) and jb.peek(40001).lost.tolist() == [True, False]
    with pytest.raises(ConfigError, match="behind"):
        jb.skip_to(39999)
    assert jb.stats.marked_lost == 3


def test_snapshot_and_restore_replay_the_same_releases() -> None:
    jb = make(num_layers=1)
    for k in range(3):
        jb.push(k, k, 40.0 * k, pkt(0, bytes([k])))
    snap = jb.snapshot()
    first = jb.pop(1000.0)
    assert jb.push(0, 0, 0.0, pkt(0, b"a")) == PushOutcome.LATE
    jb.restore(snap)
    again = jb.pop(1000.0)
    assert [c.payloads for c in again] == [c.payloads for c in first]
    assert jb.stats.late == 0 and snap.next_chunk == 0  # the snapshot itself is unchanged
    with pytest.raises(ConfigError, match="configuration"):
        jb.restore(make(num_layers=2).snapshot())
    with pytest.raises(TypeError):
        jb.restore("snap")  # type: ignore[arg-type]


def test_a_late_packet_of_a_held_chunk_is_counted_on_it() -> None:
    jb = make(num_layers=1, playout_delay_ms=50.0)
    jb.push(0, 0, 0.0, pkt(0, b"a"))
    assert jb.push(1, 1, 90.5, pkt(0, b"b")) == PushOutcome.LATE  # chunk 1 was due at 90
    out = jb.pop(100.0)
    assert [(c.chunk, c.late_packets) for c in out] == [(0, 0), (1, 1)]


def test_release_next_before_any_packet_positions_the_playout_point() -> None:
    jb = make(num_layers=1, playout_delay_ms=0.0)
    assert jb.release_next().chunk == 0 and jb.next_chunk == 1 and jb.deadline_ms(1) is None
    jb.push(5, 5, 1000.0, pkt(0, b"x"))  # anchors the clock only
    assert jb.deadline_ms(5) == 1000.0 and jb.next_chunk == 1
    assert [c.chunk for c in jb.pop(1000.0)] == [1, 2, 3, 4, 5]
