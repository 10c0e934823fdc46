"""Receiver-side packet loss concealment (DESIGN.md section 7): every mode the receiver runs."""

from .conceal import (
    BLEND_REPEAT_WEIGHT,
    CONCEAL_MODES,
    conceal_base,
    hard_latents,
    repeat_frame,
    soft_latents,
)

__all__ = ["BLEND_REPEAT_WEIGHT", "CONCEAL_MODES", "conceal_base", "hard_latents",
           "repeat_frame", "soft_latents"]
