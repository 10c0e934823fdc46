"""What both ends of the transceiver hold: the shared settings, the chunk coder and the
model memory."""

from __future__ import annotations

import gc
from collections import deque

from .._validate import int_in
from ..config import TransceiverConfig
from ..entropy import ChunkCoder, CodingModel

DEFAULT_HISTORY_CHUNKS = 1500
"""Per-chunk records either end keeps by default (the receiver's outcomes, the
transmitter's tokens): the latest 60 s at 40 ms, so a live stream's memory stays bounded
however long it runs; None keeps all (files and evaluations)."""


def history_deque(history_chunks: int | None) -> deque:
    """An empty per-chunk record that keeps the latest ``history_chunks`` entries (None:
    all), for either end; ``history_chunks`` is checked to be in [1, 2^30]."""
    if history_chunks is not None:
        int_in("history_chunks", history_chunks, 1, 1 << 30)
    return deque(maxlen=history_chunks)


class _Endpoint:
    """What both ends hold: the shared settings, the chunk coder and the model memory."""

    def __init__(self, model: CodingModel, config: TransceiverConfig | None) -> None:
        if config is not None and not isinstance(config, TransceiverConfig):
            raise TypeError(f"config must be a TransceiverConfig, got {type(config).__name__}")
        self.config = cfg = config or TransceiverConfig()
        self.model = model
        self.coder = ChunkCoder(
            model, cfg.layout, cfg.chunk_frames, cfg.precision_bits, cfg.check_bits,
            cfg.progressive, combined_base_check=cfg.combined_base_check,
        )
        self._memory = model.new_state(cfg.context_frames, cfg.chunk_frames)


def settle_heap() -> int:
    """Puts every object alive now out of the cyclic garbage collector's reach
    (``gc.collect()``, then ``gc.freeze()``); returns how many it froze.

    Call it once after loading the models and before a live stream. The loaded models and
    torch's modules are some 170,000 long-lived objects; without it, every full
    collection during a stream walks all of them (127 ms measured on one core of the
    development machine: more than three 40 ms chunks of audio at once), and one is due whenever enough objects have
    survived to the oldest generation. Frozen objects are never walked, so a full
    collection costs what the stream itself holds. It only changes what the collector
    looks at, not what is freed: objects frozen and later dropped are freed by reference
    counting as before (cycles among them wait for ``gc.unfreeze()``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
