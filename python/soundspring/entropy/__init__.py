"""Entropy coding of codec tokens: static PMFs for the base layer, SpringLM PMFs for the
fine layers, a per-packet integrity check, all through ``soundspring.coding``.

``config.LayerLayout`` says which levels ride in which layer; ``chunk`` codes one chunk's
layers (``ChunkCoder``; ``ChunkCache`` holds one chunk's model calls for the transmitter's
rate-distortion search and its encoder); ``model`` defines what a coding model must provide
(SpringLM's adapter and the C++ engine implement it; the engine also gives fused CDFs).
"""

from ..config import LayerLayout
from .chunk import ChunkCache, ChunkCoder, FineDecodeResult, LayerPmfs
from .model import MASK, MASK_UPPER, CodingModel, FusedCdfModel

__all__ = ["MASK", "MASK_UPPER", "ChunkCache", "ChunkCoder", "CodingModel", "FineDecodeResult",
           "FusedCdfModel", "LayerLayout", "LayerPmfs"]
