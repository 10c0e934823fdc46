"""Transceiver: exact round trips without loss, the decodability rule, FEC, concealment,
integrity checks against a perturbed receiver model, and robustness to bad packets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from soundspring.config import codec_tiny
from soundspring.entropy import ChunkCache
from soundspring.errors import ConfigError
from soundspring.models.codec import Codec
from soundspring.transceiver import Receiver, TransceiverConfig, Transmitter
from synthetic_lm import SyntheticLM


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return Codec(codec_tiny()).eval()


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    return (
        0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=t.size)
    ).astype(np.float32)


def _send(codec, cfg, seconds=1.0, model=None):
    tx = Transmitter(codec, model or SyntheticLM(), cfg)
    pcm = _speechlike(seconds)
    packets = []
    for start in range(0, len(pcm), 700):  # odd push sizes: buffering across chunks
        packets += tx.push(pcm[start : start + 700])
    packets += tx.flush()
    return tx, packets


@pytest.mark.parametrize("bitrate", [1.5, 3, 6, 12])
@pytest.mark.parametrize(
    "chunk_frames,context_frames,progressive,layered",
    [(2, 15, False, False), (1, 4, True, False), (3, 50, False, True), (5, 1, True, True),
     (2, 15, False, True), (2, 0, False, False)],
)
def test_no_loss_tokens_exact(codec, bitrate, chunk_frames, context_frames, progressive,
                              layered):
    cfg = TransceiverConfig(
        bitrate_kbps=bitrate,
        chunk_frames=chunk_frames,
        context_frames=context_frames,
        progressive=progressive,
        layered=layered,
    )
    tx, packets = _send(codec, cfg)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in reversed(packets):  # any arrival order before the deadline
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert [h.base for h in rx.history] == ["received"] * tx.chunks_sent
    for sent, got in zip(tx.sent_tokens, rx.history):
        np.testing.assert_array_equal(got.tokens, sent)
    assert rx.stats.fine_packets_undecodable == 0 and rx.stats.chunks_concealed == 0
    n_per_chunk = cfg.layout.n_layers if layered else 1
    assert len(packets) == tx.chunks_sent * n_per_chunk
    assert [p.seq for p in packets] == list(range(len(packets)))


def test_no_loss_audio_equals_offline_decode(codec):
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.8)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        rx.push(p.data, p.seq, p.chunk)
    out = np.concatenate([rx.pull(tx.chunks_sent * cfg.chunk_samples), rx.flush()])
    tokens = torch.from_numpy(np.concatenate(tx.sent_tokens, axis=1))[None]
    ref = codec.decode(tokens)[0, 0].numpy()
    lookahead = codec.lookahead_samples
    np.testing.assert_allclose(
        out[lookahead : lookahead + len(ref) - lookahead], ref[: len(ref) - lookahead], atol=1e-5
    )


@pytest.mark.parametrize("layered", [False, True])
def test_base_loss_conceals_and_taints_the_reach(codec, layered):
    cfg = TransceiverConfig(bitrate_kbps=6, chunk_frames=2, context_frames=4,  # reach 2 chunks
                            layered=layered, conceal="lm")  # LM concealment: the base alone
    tx, packets = _send(codec, cfg, seconds=0.8)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        if not (p.chunk == 3 and p.layer == 0):
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    hist = rx.history
    assert hist[3].base == "concealed" and hist[3].n_levels == 0
    assert hist[3].status == "concealed" and hist[3].tokens.shape[0] == 3
    assert hist[4].n_levels == 3 and hist[5].n_levels == 3  # memory tainted: fine dropped
    assert hist[4].status == hist[5].status == "base_only" and hist[6].status == "received"
    assert hist[6].n_levels == 12
    for c in (0, 1, 2, 6, 7):
        np.testing.assert_array_equal(hist[c].tokens, tx.sent_tokens[c])
    for c in (4, 5):
        np.testing.assert_array_equal(hist[c].tokens, tx.sent_tokens[c][:3])
    # the synthetic model conceals by copying the nearest received frame
    np.testing.assert_array_equal(hist[3].tokens[:, 0], tx.sent_tokens[2][:3, -1])
    # layered: chunk 3's two fine packets arrive but cannot be used, then 2 per tainted
    # chunk; combined: the lost packet held chunk 3's fine part, then 1 per tainted chunk
    # (whose base its own check verifies: context_frames >= chunk_frames)
    expected = 2 + 2 * 2 if layered else 2
    assert rx.stats.chunks_concealed == 1 and rx.stats.fine_packets_undecodable == expected


@pytest.mark.parametrize("layered", [False, True])
def test_fec_recovers_a_lost_base(codec, layered):
    cfg = TransceiverConfig(bitrate_kbps=3, fec=True, layered=layered)
    tx, packets = _send(codec, cfg, seconds=0.6)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        if not (p.chunk == 2 and p.layer == 0):
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert rx.history[2].base == "fec"
    for c, (sent, got) in enumerate(zip(tx.sent_tokens, rx.history)):
        # combined packets: the FEC copy restores the base; the lost fine part is dropped
        np.testing.assert_array_equal(got.tokens, sent if layered or c != 2 else sent[:3])
    assert rx.stats.chunks_from_fec == 1


@pytest.mark.parametrize("layered", [False, True])
def test_perturbed_receiver_model_loses_packets_never_garbage(codec, layered):
    cfg = TransceiverConfig(bitrate_kbps=12, check_bits=12, layered=layered)
    tx, packets = _send(codec, cfg, seconds=1.0)
    rx = Receiver(codec, SyntheticLM(perturb=3.0), cfg)
    for p in packets:
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert rx.stats.fine_packets_failed_check > 0
    for sent, got in zip(tx.sent_tokens, rx.history):
        if got.n_levels:  # a prefix of what was sent, exact; else a concealment
            np.testing.assert_array_equal(got.tokens, sent[: got.n_levels])
        else:  # combined, reach 0: the one check covers the whole chunk
            assert not layered and got.status == "corrupt"


def test_soft_latents_of_certain_pmfs_are_the_tokens_latents(codec, rng):
    from soundspring.plc import soft_latents

    v = codec.cfg.codebook_size
    tokens = rng.integers(0, v, size=(3, 5))
    probs = np.zeros((3, 5, v), dtype=np.float32)
    np.put_along_axis(probs, tokens[..., None], 1.0, axis=-1)
    books = codec.quantizer.codebooks.detach().numpy()
    want = codec.quantizer.decode(torch.from_numpy(tokens)[None])[0].numpy()
    np.testing.assert_allclose(soft_latents(probs, books), want, rtol=1e-5, atol=1e-6)
    flat = np.full((3, 1, v), 1.0 / v, dtype=np.float32)  # no idea: the codebooks' mean
    np.testing.assert_allclose(soft_latents(flat, books)[:, 0], books[:3].mean(axis=1).sum(0),
                               rtol=1e-4, atol=1e-6)


def test_soft_and_greedy_lm_concealment_differ_only_from_the_loss_on(codec):
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.6)
    outs = {}
    for mode in ("lm", "lm_greedy"):
        rx = Receiver(codec, SyntheticLM(), dataclasses.replace(cfg, conceal=mode))
        for p in packets:
            if p.chunk != 4:
                rx.push(p.data, p.seq, p.chunk)
        outs[mode] = (rx.pull(tx.chunks_sent * cfg.chunk_samples), rx.history)
    (soft, h_soft), (greedy, h_greedy) = outs["lm"], outs["lm_greedy"]
    for a, b in zip(h_soft, h_greedy):  # the same tokens (greedy) go to history and memory
        np.testing.assert_array_equal(a.tokens, b.tokens)
    start = 4 * cfg.chunk_samples  # the streaming output lags; before chunk 4 all equal
    np.testing.assert_array_equal(soft[:start], greedy[:start])
    assert np.abs(soft[start:] - greedy[start:]).max() > 0


def test_blend_concealment_mixes_the_lm_and_repeated_latents(codec, monkeypatch):
    from soundspring.plc import BLEND_REPEAT_WEIGHT, hard_latents

    books = codec.quantizer.codebooks.detach().numpy()
    toks = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    want = codec.quantizer.decode(torch.from_numpy(toks)[None])[0].numpy()
    np.testing.assert_allclose(hard_latents(toks, books), want, rtol=1e-5, atol=1e-6)
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.6)
    seen: dict[str, list] = {}
    real = codec.decode_latent_step
    for mode in ("lm", "blend"):
        calls: list = []
        monkeypatch.setattr(codec, "decode_latent_step",
                            lambda lat, st, calls=calls: (calls.append(lat.numpy().copy()),
                                                          real(lat, st))[1])
        rx = Receiver(codec, SyntheticLM(), dataclasses.replace(cfg, conceal=mode))
        for p in packets:
            if p.chunk not in (4, 5):
                rx.push(p.data, p.seq, p.chunk)
        rx.decode_until(tx.chunks_sent)
        seen[mode] = calls
    pairs = list(zip(seen["lm"], seen["blend"], strict=True))  # every chunk's latent
    differ = [i for i, (x, y) in enumerate(pairs) if not np.array_equal(x, y)]
    assert differ == [4, 5]  # the two concealed chunks, nothing else
    last_heard = np.repeat(tx.sent_tokens[3][:, -1:], 2, axis=1)  # all 12 levels of chunk 3
    b = BLEND_REPEAT_WEIGHT
    for i in differ:
        np.testing.assert_allclose(pairs[i][1][0], (1 - b) * pairs[i][0][0]
                                   + b * hard_latents(last_heard, books), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["repeat", "zero", "lm", "lm_greedy", "blend"])
def test_concealment_controls(codec, mode):
    cfg = TransceiverConfig(bitrate_kbps=6, conceal=mode)
    tx, packets = _send(codec, cfg, seconds=0.6)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        if p.chunk != 4:
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    got = rx.history[4].tokens
    if mode == "zero":
        np.testing.assert_array_equal(got, 0)
    elif mode == "repeat":
        np.testing.assert_array_equal(got, np.repeat(tx.sent_tokens[3][:, -1:], 2, axis=1))
    else:
        assert got.shape == (3, 2)


def test_bad_packets_are_counted_not_raised(codec, rng):
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.4)
    rx = Receiver(codec, SyntheticLM(), cfg)
    for p in packets:
        data = bytearray(p.data)
        if p.chunk % 2:
            data[rng.integers(0, len(data))] ^= 0xFF
        rx.push(bytes(data), p.seq, p.chunk)
        rx.push(rng.bytes(int(rng.integers(0, 6))), p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert rx.stats.packets_corrupt > 0
    for sent, got in zip(tx.sent_tokens, rx.history):
        if got.base == "received" and got.n_levels == 12:
            np.testing.assert_array_equal(got.tokens, sent)


@pytest.mark.parametrize("field,value", [
    ("bitrate_kbps", 0.7), ("bitrate_kbps", True), ("bitrate_kbps", "6"),
    ("chunk_frames", 1.9), ("chunk_frames", 2.0), ("chunk_frames", True), ("chunk_frames", 0),
    ("chunk_frames", 6), ("check_bits", 8.0), ("check_bits", 17), ("check_bits", -1),
    ("conceal_context_frames", 15.5), ("conceal_context_frames", 51),
    ("context_frames", "4"), ("context_frames", 51), ("precision_bits", 9),
    ("precision_bits", 16.0), ("layered", "false"), ("fec", 1), ("progressive", None),
    ("conceal", "magic"), ("rd_lambda", float("nan")), ("rd_lambda", True),
])
def test_config_refuses_wrong_types_and_ranges(field, value):
    with pytest.raises(ConfigError, match=field):
        TransceiverConfig(**{field: value})


def test_config_takes_numpy_scalars():
    cfg = TransceiverConfig(chunk_frames=np.int64(3), check_bits=np.int32(4), fec=np.bool_(True))
    assert cfg.chunk_samples == 960


def test_receiver_boundaries(codec):
    from soundspring.entropy.static import StaticModel

    with pytest.raises(ConfigError, match="cannot"):  # no LM to conceal with: refused now
        Receiver(codec, StaticModel(), TransceiverConfig(conceal="lm"))
    Receiver(codec, StaticModel(), TransceiverConfig(conceal="repeat"))
    cfg = TransceiverConfig(bitrate_kbps=6)
    tx, packets = _send(codec, cfg, seconds=0.3)
    rx = Receiver(codec, SyntheticLM(), cfg, window_chunks=4)
    for bad_seq, bad_chunk in [(-1, 0), (0, -1), (2**32, 0), (0, 2**32), (1.0, 0), (0, True)]:
        with pytest.raises(ConfigError):
            rx.push(packets[0].data, bad_seq, bad_chunk)
    with pytest.raises(TypeError):
        rx.push("not bytes", 0, 0)  # type: ignore[arg-type]
    # a hostile sender floods far-future chunks: dropped and counted, memory stays bounded
    for c in range(4, 4 + 1000):
        rx.push(packets[0].data, c % 65536, c)
    assert rx.stats.packets_too_early == 1000 and len(rx._slots) == 0
    for p in packets:  # within the window as playout advances: every chunk decodes
        rx.push(p.data, p.seq, p.chunk)
        rx.decode_until(p.chunk)
    rx.decode_until(tx.chunks_sent)
    for sent, got in zip(tx.sent_tokens, rx.history):
        np.testing.assert_array_equal(got.tokens, sent)
    with pytest.raises(ConfigError):
        rx.pull(-1)
    with pytest.raises(ConfigError):
        rx.pull(2.5)  # type: ignore[arg-type]


def test_history_is_bounded_and_reports_late_packets(codec):
    cfg = TransceiverConfig(bitrate_kbps=3)
    tx, packets = _send(codec, cfg, seconds=0.6)
    rx = Receiver(codec, SyntheticLM(), cfg, history_chunks=5)
    late = next(p for p in packets if p.chunk == tx.chunks_sent - 3)
    for p in packets:
        if p is not late:
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    rx.push(late.data, late.seq, late.chunk)  # after its chunk was played
    hist = rx.history
    assert [h.chunk for h in hist] == list(range(tx.chunks_sent - 5, tx.chunks_sent))
    assert hist[-3].status == "late" and hist[-3].late_packets == 1
    assert rx.stats.packets_late == 1


def test_decoding_is_linear_in_the_stream_length(codec):
    """The output buffer never gets rebuilt: pulling a chunk at a time costs the same
    whatever is buffered (a quadratic buffer made 10 min of audio take 97 s)."""
    import time

    from soundspring.entropy.static import StaticModel

    cfg = TransceiverConfig(bitrate_kbps=1.5, conceal="repeat")
    rx = Receiver(codec, StaticModel(), cfg)
    rx.decode_until(3000)  # 2 min of concealed audio buffered, none pulled
    assert rx.buffered_samples == 3000 * cfg.chunk_samples
    t0 = time.perf_counter()
    for _ in range(2000):
        rx.pull(cfg.chunk_samples // 2)
    per_pull = (time.perf_counter() - t0) / 2000
    assert per_pull < 2e-4, per_pull  # a copy of the buffer per pull would take ~10 ms


def test_bad_audio_and_config(codec):
    with pytest.raises(ConfigError):
        TransceiverConfig(bitrate_kbps=0.7)
    with pytest.raises(ConfigError):
        TransceiverConfig(conceal="magic")
    tx = Transmitter(codec, SyntheticLM(), TransceiverConfig())
    with pytest.raises(TypeError):
        tx.push(np.zeros(10, dtype=np.int16))
    with pytest.raises(ConfigError):
        tx.push(np.full(10, np.nan, dtype=np.float32))


@pytest.fixture(scope="module")
def tiny_lm():
    from soundspring.models.lm_adapter import SpringLMCodingModel
    from soundspring.models.masked_lm import SpringLM, springlm_tiny

    torch.manual_seed(0)
    lm = SpringLM(springlm_tiny()).eval()
    with torch.no_grad():  # a peaked, non-uniform model so PMFs really vary
        for p in lm.parameters():
            p.mul_(3.0)
    return SpringLMCodingModel(lm)


@pytest.mark.parametrize("progressive", [False, True])
def test_springlm_round_trip_and_loss(codec, tiny_lm, progressive):
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=4, progressive=progressive)
    tx, packets = _send(codec, cfg, seconds=0.6, model=tiny_lm)
    rx = Receiver(codec, tiny_lm, cfg)
    for p in packets:
        if not (p.chunk == 2 and p.layer == 0):
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    hist = rx.history
    assert hist[2].base == "concealed" and [h.n_levels for h in hist[3:5]] == [3, 3]
    for c, outcome in enumerate(hist):
        if c not in (2, 3, 4):
            np.testing.assert_array_equal(outcome.tokens, tx.sent_tokens[c])
    assert rx.stats.fine_packets_failed_check == 0


def test_reach_zero_loses_nothing_beyond_the_lost_chunk(codec, tiny_lm):
    cfg = TransceiverConfig(bitrate_kbps=6, context_frames=0)
    tx, packets = _send(codec, cfg, seconds=0.6, model=tiny_lm)
    rx = Receiver(codec, tiny_lm, cfg)
    for p in packets:
        if p.chunk != 2:
            rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert rx.history[2].base == "concealed"
    for c, outcome in enumerate(rx.history):
        if c != 2:  # fine PMFs depend on the chunk's own base only: no taint
            np.testing.assert_array_equal(outcome.tokens, tx.sent_tokens[c])
    assert rx.stats.fine_packets_undecodable == 0


@pytest.mark.parametrize("layered", [False, True])
def test_mark_lost_makes_a_late_copy_late(codec, layered):
    cfg = TransceiverConfig(bitrate_kbps=6, layered=layered)
    tx, packets = _send(codec, cfg, seconds=0.6)
    rx = Receiver(codec, SyntheticLM(), cfg)
    victim = next(p for p in packets if p.chunk == 3 and p.layer == 0)
    rx.mark_lost(victim.seq)
    for p in packets:  # the declared packet arrives anyway: dropped as late
        rx.push(p.data, p.seq, p.chunk)
    rx.decode_until(tx.chunks_sent)
    assert rx.history[3].base == "concealed" and rx.stats.packets_late == 1
    assert rx.stats.chunks_concealed == 1
    rx.mark_lost(0)  # behind the decoding point: ignored
    with pytest.raises(ConfigError):
        rx.mark_lost(-1)
    # seq wraps mod 2^16: chunk 40000's base has seq (40000 * ppc) mod 2^16
    rx2 = Receiver(codec, SyntheticLM(), cfg)
    rx2.next_chunk = 40000
    ppc = cfg.layout.n_layers if layered else 1
    rx2.mark_lost((40001 * ppc) % 0x10000)
    assert 0 in rx2._slots[40001].given_up


def test_soft_concealment_pmfs_are_sharpened_towards_the_greedy_token(rng):
    from soundspring.plc.conceal import SOFT_CONCEAL_ARGMAX_WEIGHT, conceal_base

    class Flat:
        def conceal_logits(self, window):
            return rng.normal(size=(3, window.shape[1], 1024)).astype(np.float32)

    window = np.zeros((24, 6), dtype=np.int64)
    lost = np.array([False, False, True, True, False, False])
    tokens, probs = conceal_base("lm", window, lost, None, Flat(), 1024, return_probs=True)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert (probs.argmax(-1) == tokens).all()
    assert (probs.max(-1) >= SOFT_CONCEAL_ARGMAX_WEIGHT).all()
    greedy, none = conceal_base("lm_greedy", window, lost, None, Flat(), 1024,
                                return_probs=True)
    assert none is None and greedy.shape == (3, 2)


# ---- rate-distortion quantisation (transmitter only) --------------------------------------
@pytest.mark.parametrize("layered,progressive", [(False, False), (True, True), (False, True)])
def test_rd_quantisation_round_trips_and_costs_fewer_bytes(codec, tiny_lm, layered, progressive):
    base = TransceiverConfig(bitrate_kbps=12, context_frames=4, layered=layered,
                             progressive=progressive)
    sizes = {}
    for lam in (0.0, 1e6):
        cfg = dataclasses.replace(base, rd_lambda=lam)
        tx, packets = _send(codec, cfg, seconds=0.6, model=tiny_lm)
        rx = Receiver(codec, tiny_lm, dataclasses.replace(base, rd_lambda=0.0))  # needs no λ
        for p in packets:
            rx.push(p.data, p.seq, p.chunk)
        rx.decode_until(tx.chunks_sent)
        for sent, got in zip(tx.sent_tokens, rx.history):
            np.testing.assert_array_equal(got.tokens, sent)
        sizes[lam] = sum(len(p.data) for p in packets)
        if lam == 0.0:  # the nearest codewords: what the codec's own encoder picks
            codes = codec.encode(torch.from_numpy(_speechlike(0.6))[None, None], 12)[0].numpy()
            np.testing.assert_array_equal(np.concatenate(tx.sent_tokens, 1)[:, :codes.shape[1]],
                                          codes)
        else:  # a huge weight picks the most probable code: the static base PMFs' mode
            bits = tx.coder.rate_bits(None, None, 0, {})[0, :, : codec.quantizer.codebook_size]
            mode = bits.argmin(axis=-1)  # [3]
            for sent in tx.sent_tokens:
                np.testing.assert_array_equal(sent[:3], np.repeat(mode[:, None], 2, axis=1))
    assert sizes[1e6] < 0.8 * sizes[0.0]


def test_nearest_rd_is_nearest_without_a_rate_term(codec, rng):
    q = codec.quantizer
    r = torch.from_numpy(rng.normal(size=(50, q.dim)).astype(np.float32))
    nearest = q._nearest(r, q.codebooks[4])
    flat = torch.full((50, q.codebook_size), 7.0)  # equal cost for every code
    np.testing.assert_array_equal(q.nearest_rd(r, 4), nearest)
    np.testing.assert_array_equal(q.nearest_rd(r, 4, flat, 3.0), nearest)
    bits = torch.zeros(50, q.codebook_size)
    bits[:, 5] = -1e9  # one code is (absurdly) free: any positive weight picks it
    assert (q.nearest_rd(r, 4, bits, 1e-3) == 5).all()


def test_rate_bits_are_the_coder_pmfs(codec, tiny_lm):
    cfg = TransceiverConfig(bitrate_kbps=12, context_frames=4)
    tx, _ = _send(codec, cfg, seconds=0.2, model=tiny_lm)
    tokens = tx.sent_tokens[-1]
    cache = ChunkCache()
    for layer, (lo, hi) in enumerate(cfg.layout.layers):
        bits = tx.coder.rate_bits(tx._memory, tokens, layer, cache)
        assert bits.shape == (cfg.chunk_frames, hi - lo, 1024)
        np.testing.assert_allclose(np.exp2(-bits.astype(np.float64)).sum(-1), 1.0, rtol=1e-5)
    # the cache the rate search filled codes the same bytes as a fresh coder call
    assert tx.coder.encode_chunk(tx._memory, tokens, cache) == \
        tx.coder.encode_chunk(tx._memory, tokens)


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_rd_lambda_is_validated(lam):
    with pytest.raises(ConfigError, match="rd_lambda"):
        TransceiverConfig(rd_lambda=lam)


def test_repeat_frame_is_the_receivers_repeat_concealment():
    from soundspring.plc import repeat_frame

    last = np.arange(24, dtype=np.int64).reshape(12, 2)
    got = repeat_frame(last, 3)
    assert got.shape == (12, 3) and (got == last[:, -1:]).all()
    with pytest.raises(ConfigError):
        repeat_frame(np.zeros((12, 0), dtype=np.int64), 2)


def test_transmitter_history_is_bounded_and_keeps_the_latest(codec):
    """A live transmitter's per-chunk record stays bounded however long it runs; None keeps
    every chunk (files and evaluations)."""
    cfg = TransceiverConfig(bitrate_kbps=6)
    pcm = _speechlike(0.4)  # 10 chunks of 40 ms
    every = Transmitter(codec, SyntheticLM(), cfg, history_chunks=None)
    last3 = Transmitter(codec, SyntheticLM(), cfg, history_chunks=3)
    every.push(pcm)
    last3.push(pcm)
    assert every.chunks_sent == last3.chunks_sent == 10
    assert len(every.sent_tokens) == 10 and len(last3.sent_tokens) == 3
    for kept, want in zip(last3.sent_tokens, list(every.sent_tokens)[-3:]):
        np.testing.assert_array_equal(kept, want)
    with pytest.raises(ConfigError, match="history_chunks"):
        Transmitter(codec, SyntheticLM(), cfg, history_chunks=0)


def test_settle_heap_freezes_what_is_alive_and_collection_still_frees_new_garbage():
    import gc
    import weakref

    from soundspring.transceiver import settle_heap

    class Node:
        pass

    try:
        assert settle_heap() > 1000  # pytest, numpy and torch alone are far more
        assert gc.get_freeze_count() > 1000
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after the freeze
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None  # still found and freed
    finally:
        gc.unfreeze()
