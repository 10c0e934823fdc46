"""Receiver-side packet loss concealment of base tokens (DESIGN.md section 7)."""

from .conceal import (
    BLEND_REPEAT_WEIGHT,
    CONCEAL_MODES,
    conceal_base,
    hard_latents,
    soft_latents,
)

__all__ = ["BLEND_REPEAT_WEIGHT", "CONCEAL_MODES", "conceal_base", "hard_latents",
           "soft_latents"]
