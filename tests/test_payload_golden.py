"""Golden packets of every token-payload format (docs/bitstream.md, "Token payloads").

A deterministic model whose logits are exact functions of integers (no RNG, no
transcendental functions) codes fixed tokens; the packets' bytes are pinned, so any change
to the payload layout, the checks, the TOC or the coder is a deliberate format change
(regenerate with SOUNDSPRING_REGEN_GOLDEN=1 and bump the version in docs/bitstream.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from soundspring.transceiver import TokenReceiver, TokenTransmitter, TransceiverConfig
from soundspring.transport import PACKET_VERSION
from synthetic_lm import FormulaLM, V

GOLDEN = Path(__file__).parent / "golden" / "payload_golden.json"


FORMATS = {
    "combined_6k": {"bitrate_kbps": 6},
    "combined_6k_reach4": {"bitrate_kbps": 6, "context_frames": 4},
    "combined_1k5": {"bitrate_kbps": 1.5},
    "combined_6k_fec": {"bitrate_kbps": 6, "fec": True},
    "layered_12k": {"bitrate_kbps": 12, "layered": True},
    "layered_6k_fec_progressive": {"bitrate_kbps": 6, "layered": True, "fec": True, "progressive": True},
}


def _tokens(chunk: int, k: int, c: int) -> np.ndarray:
    i = np.arange(k)[:, None]
    f = np.arange(c)[None, :]
    return ((i * 131 + f * 17 + chunk * 257 + i * f * 3) % V).astype(np.int64)


def _packets(fmt: dict) -> tuple[TransceiverConfig, list]:
    cfg = TransceiverConfig(conceal="zero", **fmt)
    tx = TokenTransmitter(FormulaLM(), cfg)
    k, c = cfg.layout.n_codebooks, cfg.chunk_frames
    return cfg, [p for chunk in range(3) for p in tx.send_tokens(_tokens(chunk, k, c))]


@pytest.mark.golden
def test_golden_packets():
    got = {"packet_version": PACKET_VERSION}
    for name, fmt in FORMATS.items():
        got[name] = [p.data.hex() for p in _packets(fmt)[1]]
    if os.environ.get("SOUNDSPRING_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(FORMATS))
def test_golden_packets_decode_to_their_tokens(name):
    cfg, packets = _packets(FORMATS[name])
    rx = TokenReceiver(FormulaLM(), cfg)
    for p in packets:
        rx.push(p.data, p.seq, p.chunk)
    k, c = cfg.layout.n_codebooks, cfg.chunk_frames
    for chunk in range(3):
        out = rx.next_chunk_tokens().outcome
        assert out.status == "received"
        np.testing.assert_array_equal(out.tokens, _tokens(chunk, k, c))
