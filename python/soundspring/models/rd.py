"""Rate-distortion quantisation: the transmitter's token choice, next to the quantizer.

``ResidualVQ.encode`` picks, level by level, the codeword nearest to the residual. With a
rate term the choice of level k's code for frame c is

    argmin over v of  ||r_c - codebook_k[v]||^2 + rd_lambda * bits[c, k, v]

where r_c is the residual left by levels 0..k-1 of that frame and ``bits[c, k, v]`` what
coding v would cost (the RDO quantisation of video encoders). Bit costs come per layer of
levels: the PMFs of a fine layer depend on the levels below it (the base of the chunk,
and in progressive mode the lower fine groups), so a layer's costs are asked for only once
every level below it is chosen. ``RateDistortionQuantizer`` runs that search for one
chunk; the costs come from a callable (the entropy coder's ``ChunkCoder.rate_bits``) or a
static array. The bitstream does not change: a receiver decodes whatever tokens were sent.

The search runs in the C++ kernel ``soundspring._core.rvq`` (``ResidualVQ.native_search``:
deterministic float32, the same kernel as the codec's inference ``encode``, so at
rd_lambda = 0 the tokens are ``Codec.encode``'s), one call per layer with the residual
carried between layers; ``search="torch"`` runs the PyTorch reference
(``ResidualVQ.nearest_rd``), which picks the same tokens except between candidates within
float rounding of each other.

Example:
    >>> import numpy as np, torch
    >>> from soundspring.config import codec_tiny
    >>> from soundspring.models.codec import Codec
    >>> q = Codec(codec_tiny()).quantizer
    >>> rd = RateDistortionQuantizer(q, [(0, 3), (3, 6)])
    >>> z = torch.randn(q.dim, 2)                                   # latents [D, C]
    >>> costs = np.zeros((2, 6, q.codebook_size), dtype=np.float32)   # [C, K, V]
    >>> rd.quantize(z, costs, rd_lambda=0.5).shape                  # int64 [K, C]
    (6, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError, NativeFeatureError
from .rvq import SEARCH_BACKENDS, ResidualVQ

BitCosts = Callable[[int, np.ndarray], np.ndarray]
"""``bit_costs(layer, tokens)`` -> float [C, L, V'] (V' >= V): what coding each value of
each token of layer ``layer`` (levels [lo, hi), L = hi - lo) would cost in bits, given the
chunk's tokens int64 [K, C] chosen so far (levels at and above ``lo`` are not yet chosen
and must not be read)."""


class RateDistortionQuantizer:
    """Rate-distortion token choice for one chunk over a ``ResidualVQ``'s codebooks.

    Args:
        quantizer: the codec's quantizer (its codebooks [K_q, V, D]).
        layers: contiguous (lo, hi) level ranges from level 0, e.g. a ``LayerLayout``'s
            ``layers``: ((0, 3), (3, 6), ...); their end K is the number of tokens chosen
            per frame (K <= K_q).
        search: ``auto`` (the C++ kernel, or the PyTorch search where it cannot run:
            codebooks not float32 on the CPU), ``native`` (the kernel or
            NativeFeatureError at ``quantize``) or ``torch`` (the PyTorch reference).

    Raises:
        TypeError: ``quantizer`` is not a ResidualVQ.
        ConfigError: ``layers`` are not contiguous from 0 or reach past the quantizer;
            unknown ``search``.
    """

    def __init__(self, quantizer: ResidualVQ, layers: Sequence[tuple[int, int]],
                 search: str = "auto") -> None:
        if not isinstance(quantizer, ResidualVQ):
            raise TypeError(f"quantizer must be a ResidualVQ, got {type(quantizer).__name__}")
        if search not in SEARCH_BACKENDS:
            raise ConfigError(f"search must be one of {SEARCH_BACKENDS}, got {search!r}")
        self.search = search
        spans = [tuple(int(x) for x in span) for span in layers]
        start = 0
        for lo, hi in spans:
            if lo != start or hi <= lo:
                raise ConfigError(f"layers must be contiguous (lo, hi) ranges from level 0, "
                                  f"got {list(layers)!r}")
            start = hi
        if not spans or start > quantizer.n_codebooks:
            raise ConfigError(f"layers must cover 1..{quantizer.n_codebooks} levels of the "
                              f"quantizer, got {list(layers)!r}")
        self.quantizer = quantizer
        self.layers: tuple[tuple[int, int], ...] = tuple(spans)  # type: ignore[assignment]
        self.n_codebooks = start

    def quantize(self, latents: torch.Tensor | np.ndarray, bit_costs: BitCosts | np.ndarray,
                 rd_lambda: float) -> np.ndarray:
        """Tokens int64 [K, C] of one chunk's latents [D, C].

        Args:
            latents: float [D, C] (torch tensor or numpy array), the encoder's output for
                the chunk's C frames.
            bit_costs: a ``BitCosts`` callable, asked once per layer in order, or a static
                float array [C, K, V'] (V' >= V) of every level's costs.
            rd_lambda: squared-error units per bit, finite and >= 0; 0 picks the nearest
                codewords (``ResidualVQ.encode``'s tokens) without asking for costs.

        Returns:
            int64 [K, C]: level k of frame c minimising squared error + rd_lambda * bits.

        Raises:
            ConfigError: latents not float [D, C] (or not finite, with the C++ search),
                rd_lambda negative or not finite, costs of the wrong shape (or, with the
                C++ search, not finite).
            NativeFeatureError: ``search="native"`` where the kernel cannot run.
        """
        q = self.quantizer
        z = torch.from_numpy(latents) if isinstance(latents, np.ndarray) else latents
        if (not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != q.dim
                or not z.is_floating_point()):
            what = (f"{z.dtype} {tuple(z.shape)}" if isinstance(z, torch.Tensor)
                    else type(latents).__name__)
            raise ConfigError(f"latents must be float [D={q.dim}, C], got {what}")
        if (isinstance(rd_lambda, bool) or not isinstance(rd_lambda, (int, float))
                or not math.isfinite(rd_lambda) or rd_lambda < 0):
            raise ConfigError(f"rd_lambda must be finite and >= 0, got {rd_lambda!r}")
        c = int(z.shape[1])
        if isinstance(bit_costs, np.ndarray):
            table = bit_costs
            if table.ndim != 3 or table.shape[:2] != (c, self.n_codebooks) \
                    or table.shape[2] < q.codebook_size:
                raise ConfigError(f"bit_costs must be float [C={c}, K={self.n_codebooks}, "
                                  f">= {q.codebook_size}], got {table.shape}")

            def costs(layer: int, tokens: np.ndarray) -> np.ndarray:
                lo, hi = self.layers[layer]
                return table[:, lo:hi]
        elif callable(bit_costs):
            costs = bit_costs
        else:
            raise ConfigError(f"bit_costs must be a callable or a numpy array, got "
                              f"{type(bit_costs).__name__}")
        native = None if self.search == "torch" else q.native_search()
        if self.search == "native" and native is None:
            raise NativeFeatureError("the C++ RVQ search needs float32 codebooks on the CPU")
        with torch.inference_mode():
            if native is not None:
                return self._search_native(native, z, costs, float(rd_lambda), c)
            return self._search(z, costs, float(rd_lambda), c)

    def _layer_bits(self, costs: BitCosts, layer: int, tokens: np.ndarray, c: int) -> np.ndarray:
        """The costs of layer ``layer``, checked: [C, L, V'] with V' >= V."""
        lo, hi = self.layers[layer]
        got = np.asarray(costs(layer, tokens))
        if got.ndim != 3 or got.shape[:2] != (c, hi - lo) or got.shape[2] < self.quantizer.codebook_size:
            raise ConfigError(f"bit costs of layer {layer} must be float [C={c}, "
                              f"L={hi - lo}, >= {self.quantizer.codebook_size}], got {got.shape}")
        return got

    def _search_native(self, native, z: torch.Tensor, costs: BitCosts, rd_lambda: float,
                       c: int) -> np.ndarray:
        """The search in the C++ kernel: one call per layer, the residual [C, D] carried
        (updated in place) from one layer to the next."""
        tokens = np.zeros((self.n_codebooks, c), dtype=np.int64)
        r = np.array(z.detach().t().to(torch.float32).numpy(), dtype=np.float32, order="C",
                     copy=True)  # [C, D]
        if not np.isfinite(r).all():
            raise ConfigError("latents must be finite")
        for layer, (lo, hi) in enumerate(self.layers):
            bits = None
            if rd_lambda != 0.0:  # float32 [C, L, V'], the kernel reads the first V
                bits = np.ascontiguousarray(self._layer_bits(costs, layer, tokens, c),
                                            dtype=np.float32)
            tokens[lo:hi] = native.search(r, lo, hi, bits, rd_lambda)
        return tokens

    def _search(self, z: torch.Tensor, costs: BitCosts, rd_lambda: float, c: int) -> np.ndarray:
        """The PyTorch reference search (``ResidualVQ.nearest_rd``)."""
        q = self.quantizer
        tokens = np.zeros((self.n_codebooks, c), dtype=np.int64)
        r = z.t().to(q.codebooks.dtype)  # [C, D]
        v = q.codebook_size  # the coder's alphabet may be larger (never smaller)
        for layer, (lo, hi) in enumerate(self.layers):
            bits = None
            if rd_lambda != 0.0:
                got = self._layer_bits(costs, layer, tokens, c)
                bits = torch.from_numpy(np.ascontiguousarray(got[..., :v]))
            for k in range(lo, hi):
                idx = q.nearest_rd(r, k, None if bits is None else bits[:, k - lo], rd_lambda)
                r = r - q.codebooks[k][idx]
                tokens[k] = idx.numpy()
        return tokens


__all__ = ["BitCosts", "RateDistortionQuantizer"]
