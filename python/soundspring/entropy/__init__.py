"""Entropy coding of codec tokens: static PMFs for the base layer, SpringLM PMFs for the
fine layers, a per-packet integrity check, all through ``soundspring.coding``.

``config.LayerLayout`` says which levels ride in which layer; ``chunk`` codes one chunk's layers;
``model`` defines what a coding model must provide (SpringLM's adapter implements it).
"""

from ..config import LayerLayout
from .chunk import ChunkCoder, FineDecodeResult
from .model import MASK, MASK_UPPER, CodingModel

__all__ = ["MASK", "MASK_UPPER", "ChunkCoder", "CodingModel", "FineDecodeResult", "LayerLayout"]
