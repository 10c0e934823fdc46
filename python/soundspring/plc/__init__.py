"""Receiver-side packet loss concealment of base tokens (DESIGN.md section 7)."""

from .conceal import CONCEAL_MODES, conceal_base, soft_latents

__all__ = ["CONCEAL_MODES", "conceal_base", "soft_latents"]
