"""The integrity contract (docs/bitstream.md, "Token payloads"): every token a receiver
plays is either the token that was sent or a concealment, whatever bits a channel flips.

Real packets of every format (combined and layered, with and without FEC, the base-only
bitrate, a reach past the chunk) get random bits flipped, one packet per chunk, at least
10^4 per format; the receiver's outcome of each chunk is compared with what was sent. A
check of b bits lets a corrupted payload through with probability about 2^-b, which the
bounds account for; a control with no check shows the test finds garbage when there is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from soundspring.transceiver import TokenReceiver, TokenTransmitter, TransceiverConfig
from synthetic_lm import FastLM, V

# name: (settings, corrupted chunks, least share of chunks still played exactly). The
# share shows the checks are not over-cautious: a flip in a fine part, or in a primary
# payload whose FEC copy is intact, keeps the verified base.
FORMATS = {
    "combined": ({"bitrate_kbps": 3}, 10_000, 0.0),
    "combined_fec": ({"bitrate_kbps": 3, "fec": True}, 10_000, 0.1),
    "layered": ({"bitrate_kbps": 3, "layered": True}, 10_000, 0.3),
    "layered_fec": ({"bitrate_kbps": 3, "layered": True, "fec": True}, 10_000, 0.4),
    # a reach past the chunk: combined payloads carry a base check after the base
    "combined_reach": ({"bitrate_kbps": 3, "context_frames": 4}, 3_000, 0.15),
    "combined_base_only": ({"bitrate_kbps": 1.5}, 3_000, 0.0),
}


def _corruption_run(fmt: dict, check_bits: int, n_chunks: int, seed: int) -> dict:
    """Sends n_chunks chunks of random tokens, flips 1-3 random bits in one packet of each
    chunk, receives the rest intact, and counts the outcomes."""
    cfg = TransceiverConfig(check_bits=check_bits, conceal="zero", **fmt)
    model = FastLM()
    rng = np.random.default_rng(seed)
    tx = TokenTransmitter(model, cfg, history_chunks=None)
    rx = TokenReceiver(model, cfg, history_chunks=None)
    k, c = cfg.layout.n_codebooks, cfg.chunk_frames
    counts = {"garbage": 0, "exact": 0, "concealed": 0, "corrupted_packets": 0}
    for _ in range(n_chunks):
        packets = tx.send_tokens(rng.integers(0, V, size=(k, c)))
        victim = int(rng.integers(len(packets)))
        for i, p in enumerate(packets):
            data = bytearray(p.data)
            if i == victim:
                for bit in rng.choice(8 * len(data), size=min(int(rng.integers(1, 4)),
                                                              8 * len(data)), replace=False):
                    data[bit // 8] ^= 1 << (bit % 8)
                counts["corrupted_packets"] += 1
            rx.push(bytes(data), p.seq, p.chunk)
        outcome = rx.next_chunk_tokens().outcome
        sent = tx.sent_tokens[outcome.chunk]
        if outcome.n_levels == 0:
            counts["concealed"] += 1
        elif np.array_equal(outcome.tokens, sent[: outcome.n_levels]):
            counts["exact"] += 1
        else:
            counts["garbage"] += 1
    return counts


@pytest.mark.parametrize("name", list(FORMATS))
def test_flipped_bits_never_play_as_sent_tokens(name):
    fmt, n, least_exact = FORMATS[name]
    counts = _corruption_run(fmt, check_bits=16, n_chunks=n, seed=len(name))
    assert counts["corrupted_packets"] >= n
    # false accepts: about 2^-16 per corrupted payload that reaches a check (expected
    # count <= 0.16 here); a bound of 2 fails with probability ~5e-4 under the contract
    assert counts["garbage"] <= 2, counts
    assert counts["exact"] >= least_exact * n, counts


def test_false_accepts_follow_the_check_width():
    """With an 8-bit check the garbage rate is the check's own false-accept rate."""
    n = 6_000
    counts = _corruption_run(FORMATS["combined"][0], check_bits=8, n_chunks=n, seed=1)
    # combined, reach 0: every corruption that decodes reaches the one check; the false
    # accepts are Binomial(n_checked, 2^-8) with n_checked <= n: mean <= 23.4, sd <= 4.8
    assert counts["garbage"] <= n * 2**-8 + 6 * np.sqrt(n * 2**-8), counts


def test_without_a_check_the_test_finds_garbage():
    """Control: with check_bits = 0 nothing stops corruption, and the test sees it."""
    counts = _corruption_run(FORMATS["layered"][0], check_bits=0, n_chunks=500, seed=2)
    assert counts["garbage"] > 50, counts


def test_base_check_bitrate_cost():
    """What the checks cost, in bytes per chunk (a documented price): the default combined
    format pays one check per chunk; a base check (layered base packets, FEC copies, a
    reach past the chunk, the base-only bitrate) pays check_bits more."""
    rng = np.random.default_rng(3)
    tokens = [rng.integers(0, V, size=(6, 2)) for _ in range(400)]

    def mean_bytes(**kw) -> float:
        tx = TokenTransmitter(FastLM(), TransceiverConfig(bitrate_kbps=3, **kw))
        return float(np.mean([sum(len(p.data) for p in tx.send_tokens(t)) for t in tokens]))

    r0 = mean_bytes(check_bits=8)
    reach = mean_bytes(check_bits=8, context_frames=4)
    none = mean_bytes(check_bits=0)
    assert 0.8 < r0 - none < 1.2  # one 8-bit check
    assert 1.8 < reach - none < 2.2  # the base check on top
    assert dataclasses.replace(TransceiverConfig(context_frames=4)).combined_base_check
