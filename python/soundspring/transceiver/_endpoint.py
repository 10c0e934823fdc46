"""What both ends of the transceiver hold: the shared settings, the chunk coder and the
model memory."""

from __future__ import annotations

from ..config import TransceiverConfig
from ..entropy import ChunkCoder, CodingModel


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
