"""Baseline codecs the evaluation compares against (DESIGN.md section 9)."""

from soundspring.baselines.opus import (
    OpusConfig,
    OpusResult,
    OpusStream,
    decode_opus,
    encode_opus,
    opus15_available,
    opus15_build_command,
    opus15_library_path,
    opus_num_packets,
    run_opus,
)

__all__ = [
    "OpusConfig",
    "OpusResult",
    "OpusStream",
    "decode_opus",
    "encode_opus",
    "opus15_available",
    "opus15_build_command",
    "opus15_library_path",
    "opus_num_packets",
    "run_opus",
]
