"""The synthetic link runs the real transceiver: packets from TokenTransmitter, the clocked
TokenReceiver on the jitter buffer (late = lost), the decodability rule, concealment."""

from __future__ import annotations

import numpy as np
import pytest
from soundspring.config import TransceiverConfig
from soundspring.errors import ConfigError
from soundspring.linktest import LinktestConfig, SyntheticCodingModel, run_linktest, sample_tokens
from soundspring.transceiver import TokenReceiver, TokenTransmitter


def test_a_lossless_link_decodes_every_packet_exactly() -> None:
    r = run_linktest(LinktestConfig(seconds=1.0, channel="none", jitter_ms=0.0))
    assert r["decoded_tokens_exact"] and r["container_round_trip_ok"]
    assert r["layers_decoded"] == r["packets_sent"] == 25 * 3
    assert r["chunk_status"] == {"received": 25} and r["packets_late"] == 0
    assert r["bitrate_bps"] < r["raw_bitrate_bps"]


def test_losses_make_the_next_fine_packets_undecodable() -> None:
    r = run_linktest(LinktestConfig(seconds=2.0, channel="bernoulli", loss=0.2, jitter_ms=0.0))
    assert r["decoded_tokens_exact"] and r["packets_lost"] > 0
    # a lost base taints the entropy-context reach: received fine packets go unused
    assert r["chunk_status"].get("base_only", 0) > 0 and r["fine_packets_undecodable"] > 0
    assert r["chunks_concealed"] == r["chunk_status"].get("concealed", 0) > 0
    assert r["layers_decoded"] + r["packets_lost"] + r["packets_late_or_dropped"] == 150


def test_jitter_beyond_the_playout_delay_is_loss() -> None:
    r = run_linktest(LinktestConfig(seconds=2.0, channel="none", jitter_ms=80.0,
                                    playout_delay_ms=20.0))
    assert r["packets_lost"] == 0 and r["packets_late"] > 0
    assert r["layers_decoded"] < r["packets_sent"] and r["decoded_tokens_exact"]


def test_the_synthetic_model_codes_its_own_tokens_exactly(rng: np.random.Generator) -> None:
    cfg = TransceiverConfig(bitrate_kbps=12, layered=True, conceal="repeat")
    model = SyntheticCodingModel(seed=1)
    chunks = sample_tokens(model, cfg, 6, rng)
    tx = TokenTransmitter(model, cfg)
    rx = TokenReceiver(model, cfg)
    for block in chunks:
        for p in tx.send_tokens(block):
            rx.push(p.data, p.seq, p.chunk)
    for block in chunks:
        np.testing.assert_array_equal(rx.next_chunk_tokens().tokens, block)
    with pytest.raises(ConfigError, match="repeat"):
        TokenReceiver(model, TransceiverConfig(conceal="lm"))
