"""Golden packets of every token-payload format (docs/bitstream.md, "Token payloads").

A deterministic model whose logits are exact functions of integers (no RNG, no
transcendental functions) codes fixed tokens; the packets' bytes are pinned, so any change
to the payload layout, the checks, the TOC or the coder is a deliberate format change
(regenerate with SOUNDSPRING_REGEN_GOLDEN=1 and bump the version in docs/bitstream.md).
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from soundspring.entropy import MASK
from soundspring.pipeline import TokenReceiver, TokenTransmitter, TransceiverConfig
from soundspring.transport import PACKET_VERSION

GOLDEN = Path(__file__).parent / "golden" / "payload_golden.json"
V = 1024


class FormulaLM:
    """Base and fine logits from integer formulas; fine ones depend on the memory and the
    visible tokens, as SpringLM's do."""

    model_id = "formula-lm"
    max_codebooks = 24
    max_context_frames = 50
    uses_memory = True
    can_conceal = False

    def base_logits(self) -> np.ndarray:
        k = np.arange(24)[:, None]
        v = np.arange(V)[None, :]
        return (-((v * 37 + k * 11) % 97) / 16.0).astype(np.float32)

    def new_state(self, context_frames: int, chunk_frames: int):
        return deque(maxlen=context_frames // chunk_frames)

    def commit(self, state, base):
        new = deque(state, maxlen=state.maxlen)
        new.append(int(np.asarray(base).sum()))
        return new

    def fine_logits(self, state, view, levels):
        lo, hi = levels
        mem = sum(state)
        visible = np.where(view < MASK, view, 0).sum(axis=0)  # [C]
        level = np.arange(lo, hi)[:, None, None]
        v = np.arange(V)[None, None, :]
        centre = ((mem * 7 + visible * 13)[None, :, None] + level * 101) % V
        return (-np.abs(v - centre) / 8.0).astype(np.float32)


FORMATS = {
    "combined_6k": dict(bitrate_kbps=6),
    "combined_6k_reach4": dict(bitrate_kbps=6, context_frames=4),
    "combined_1k5": dict(bitrate_kbps=1.5),
    "combined_6k_fec": dict(bitrate_kbps=6, fec=True),
    "layered_12k": dict(bitrate_kbps=12, layered=True),
    "layered_6k_fec_progressive": dict(bitrate_kbps=6, layered=True, fec=True, progressive=True),
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
