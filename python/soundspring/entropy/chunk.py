"""Coding one chunk's layers: base with static PMFs, fine groups with model PMFs, and the
integrity checks that turn every corrupted payload into a loss (docs/bitstream.md, "Token
payloads", format version 2).

Base payloads (a layered base packet, and every FEC copy in either format): the base
tokens in frame-major order (frame 0 levels 0..2, then frame 1, ...), then the base check.

Layered fine payloads: the layer's tokens in frame-major order, then the layer check over
the chunk's base tokens and the layer's tokens (salted with the layer index).

Combined payloads (``encode_chunk``; the default): one stream per chunk holding the base
tokens, then the base check *if* the chunk has no fine levels or the entropy context
reaches past chunks (``combined_base_check``: then a receiver whose memory is tainted can
still verify and play the base), then every fine layer's tokens, then one check over the
base and every fine level. With the default reach (fine PMFs depend on the chunk's own
base only) no receiver ever needs the base alone, so the single check covers the whole
chunk and costs nothing extra; a chunk that fails it is concealed whole.

Every check is the low ``check_bits`` bits of a CRC-32 (``integrity_value``) coded as
uniform symbols of <= 8 bits; a corrupted payload passes one with probability about
2^-check_bits. ``check_bits = 0`` disables integrity (corruption may then play).

Determinism: model logits are rounded to multiples of 2^-``logit_step_log2`` before
``cdf_from_logits``, so tiny float differences between two machines rarely change a CDF;
when they do, the integrity check turns the packet into a loss instead of garbage. A model
with fused CDFs (``FusedCdfModel.fine_cdfs``, the C++ engine: the same bits on every
machine) hands the coder its CDFs directly, with no rounding and no second quantiser.

One chunk's fine PMFs are asked of the model once and kept in a ``ChunkCache``, which the
transmitter's rate-distortion search (``rate_bits``) and the encoder share.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import coding
from .._native import core
from ..config import (
    CHECK_BITS_RANGE,
    CODEBOOK_SIZE,
    MAX_CHUNK_FRAMES,
    PRECISION_BITS_RANGE,
    LayerLayout,
)
from ..errors import BitstreamError, ConfigError, IntegrityError
from .model import MASK, MASK_UPPER, CodingModel, FusedCdfModel


def _uniform_cdf(bits: int, precision_bits: int) -> np.ndarray:
    """uint32 [1, 2^bits + 1]: every value of ``bits`` bits equally likely (bits <= p)."""
    return (np.arange((1 << bits) + 1, dtype=np.uint32) << (precision_bits - bits))[None, :]


def _bits_of_logits(logits: np.ndarray) -> np.ndarray:
    """-log2 softmax over the last axis, float32 (a stable log-sum-exp)."""
    m = logits.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
    return ((lse - logits) * np.float32(1.0 / np.log(2.0))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _bits_of_frequency(precision_bits: int) -> np.ndarray:
    """float32 [2^precision_bits + 1]: precision_bits - log2(f) for each frequency f (the
    entry at 0 is never read: every frequency is >= 1)."""
    f = np.arange((1 << precision_bits) + 1, dtype=np.float32)
    f[0] = 1.0
    out = (np.float32(precision_bits) - np.log2(f)).astype(np.float32)
    out.setflags(write=False)
    return out


def _bits_of_cdfs(cdfs: np.ndarray, precision_bits: int) -> np.ndarray:
    """float32 [N, V]: -log2 of each symbol's frequency in uint32 [N, V + 1] CDF rows of
    total 2^precision_bits (exactly what the range coder pays, to its termination aside),
    looked up per frequency (the same float32 values as computing each one)."""
    return _bits_of_frequency(precision_bits)[cdfs[:, 1:] - cdfs[:, :-1]]


def integrity_value(base: np.ndarray, tokens: np.ndarray, layer: int, check_bits: int) -> int:
    """Low ``check_bits`` bits of CRC-32 over (layer, base tokens, layer tokens as int16 LE).

    Covering the base too means a fine packet decoded against a wrong (corrupt or
    concealed) base fails its check instead of yielding garbage.
    """
    data = (
        bytes([layer])
        + np.ascontiguousarray(base, dtype="<i2").tobytes()
        + np.ascontiguousarray(tokens, dtype="<i2").tobytes()
    )
    return zlib.crc32(data) & ((1 << check_bits) - 1)


def _check_pieces(check_bits: int) -> list[int]:
    pieces = [8] * (check_bits // 8)
    return pieces + ([check_bits % 8] if check_bits % 8 else [])


def _encode_check(enc: coding.Encoder, value: int, check_bits: int, precision_bits: int) -> None:
    shift = check_bits
    for bits in _check_pieces(check_bits):
        shift -= bits
        piece = np.array([(value >> shift) & ((1 << bits) - 1)], dtype=np.int32)
        enc.encode(piece, _uniform_cdf(bits, precision_bits))


def _decode_check(dec: coding.Decoder, check_bits: int, precision_bits: int) -> int:
    value = 0
    for bits in _check_pieces(check_bits):
        value = (value << bits) | int(dec.decode(_uniform_cdf(bits, precision_bits))[0])
    return value


# CRC salts: a base check uses 0 (the base layer's index), a layered fine payload its layer
# index (1..3), and the check of a combined payload, which covers every level, this value.
BASE_CHECK_SALT = 0
COMBINED_CHECK_SALT = 0xFF


@dataclass(frozen=True)
class LayerPmfs:
    """The coding distributions of one fine layer of one chunk, as the model gave them.

    Attributes:
        layer: the fine layer, 1..n_layers-1.
        condition: int64 [n, C]: the chunk's levels below ``n`` that the model saw (the
            base, plus in progressive mode the lower fine groups); the PMFs are a function
            of these and of the memory.
        rows: one row per token of the layer, frame-major (frame 0 levels lo..hi-1, then
            frame 1, ...): float32 [C * L, V] logits rounded to the coder's grid when
            ``fused`` is False, uint32 [C * L, V + 1] CDFs from the model when True.
        fused: whether ``rows`` are the model's own CDFs (``FusedCdfModel``).
    """

    layer: int
    condition: np.ndarray
    rows: np.ndarray
    fused: bool

    def encode_into(self, enc: coding.Encoder, symbols: np.ndarray) -> None:
        """Codes the layer's int32 [C * L] frame-major symbols with these PMFs."""
        if self.fused:
            enc.encode(symbols, self.rows)
        else:
            enc.encode_logits(symbols, self.rows)

    def decode_from(self, dec: coding.Decoder) -> np.ndarray:
        """Decodes the layer's int32 [C * L] frame-major symbols with these PMFs."""
        return dec.decode(self.rows) if self.fused else dec.decode_logits(self.rows)

    def bits(self, precision_bits: int) -> np.ndarray:
        """float32 [C * L, V]: what coding each value of each token costs, in bits."""
        if self.fused:
            return _bits_of_cdfs(self.rows, precision_bits)
        return _bits_of_logits(self.rows)


class ChunkCache:
    """The model calls of one chunk, made at most once and shared between the
    rate-distortion search (``ChunkCoder.rate_bits``) and the encoder (``encode_chunk``,
    ``encode_fine``).

    It holds each fine layer's ``LayerPmfs`` and, outside progressive mode, the one model
    call that covers every fine group, each with the tokens it was conditioned on. A lookup
    with other conditioning tokens misses (and the new call replaces the old), so passing
    a cache of other tokens never mis-codes a chunk. It cannot see the model memory: make
    one per chunk and stream, before the chunk is committed.

    Example:
        cache = ChunkCache()
        bits = coder.rate_bits(memory, tokens, 1, cache)   # one model call
        payload = coder.encode_chunk(memory, tokens, cache)  # reuses it

    Attributes:
        model_calls: how many model calls (``fine_logits`` / ``fine_cdfs``) went through
            this cache.
    """

    __slots__ = ("_groups", "_layers", "model_calls")

    def __init__(self) -> None:
        self._groups: tuple[np.ndarray, np.ndarray] | None = None
        self._layers: dict[int, LayerPmfs] = {}
        self.model_calls = 0

    @property
    def layers(self) -> tuple[int, ...]:
        """The fine layers whose PMFs are held, ascending."""
        return tuple(sorted(self._layers))

    def layer(self, layer: int, condition: np.ndarray) -> LayerPmfs | None:
        """The PMFs of ``layer`` if they were computed from ``condition`` int64 [n, C]."""
        got = self._layers.get(layer)
        if got is None or not np.array_equal(got.condition, condition):
            return None
        return got

    def put_layer(self, pmfs: LayerPmfs) -> None:
        """Holds ``pmfs`` (replacing any of the same layer)."""
        self._layers[pmfs.layer] = pmfs

    def groups(self, condition: np.ndarray) -> np.ndarray | None:
        """The all-groups model output computed from ``condition``, if held."""
        if self._groups is None or not np.array_equal(self._groups[0], condition):
            return None
        return self._groups[1]

    def put_groups(self, condition: np.ndarray, output: np.ndarray) -> None:
        """Holds the all-groups model output [L, C, V(+1)] computed from ``condition``."""
        self._groups = (condition, output)

    def clear(self) -> None:
        """Forgets every call (a new chunk); the call count stays."""
        self._groups = None
        self._layers.clear()


@dataclass(frozen=True)
class FineDecodeResult:
    """Fine layers decoded for one chunk.

    Attributes:
        tokens: int64 [n_levels, C]: every level that can be used, base included (a prefix
            of the levels: decoding stops at the first missing or failed layer).
        n_levels: number of usable levels (>= 3).
        failed_layers: fine layers whose payload arrived but failed to decode or check.
    """

    tokens: np.ndarray
    n_levels: int
    failed_layers: tuple[int, ...]


class ChunkCoder:
    """Encodes and decodes the layers of one chunk of C frames.

    Args:
        model: the coding model (static base PMFs, fine PMFs from its memory).
        layout: levels per layer at the bitrate.
        chunk_frames: C, frames per chunk (1..5).
        precision_bits: range-coder CDF precision (V <= 2^p, so 10..16).
        check_bits: integrity-check width per fine packet, 0..16 (0 = none).
        progressive: code fine group g conditioned on the lower fine groups of the same
            chunk (one model call per group) instead of all groups from one call.
        combined_base_check: combined payloads carry a base check after the base prefix
            even when the chunk has fine levels (set when the entropy context reaches past
            chunks, so a tainted receiver can verify the base alone). Base-only chunks
            always carry it.
        logit_step_log2: logits are rounded to multiples of 2^-this before quantisation
            (models with fused CDFs are not rounded: see the module docstring).

    Attributes:
        fused_cdfs: whether fine PMFs come from the model's ``fine_cdfs``.
    """

    def __init__(
        self,
        model: CodingModel,
        layout: LayerLayout,
        chunk_frames: int,
        precision_bits: int = 16,
        check_bits: int = 8,
        progressive: bool = False,
        combined_base_check: bool = False,
        logit_step_log2: int = 6,
    ) -> None:
        if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
            raise ConfigError(f"chunk_frames must be in [1, {MAX_CHUNK_FRAMES}], got {chunk_frames}")
        lo, hi = PRECISION_BITS_RANGE
        if not lo <= precision_bits <= hi:
            raise ConfigError(
                f"precision_bits must be in [{lo}, {hi}] for V = 1024, got {precision_bits}"
            )
        lo, hi = CHECK_BITS_RANGE
        if not lo <= check_bits <= hi:
            raise ConfigError(f"check_bits must be in [{lo}, {hi}], got {check_bits}")
        if layout.n_codebooks > model.max_codebooks:
            raise ConfigError(
                f"the model codes {model.max_codebooks} levels, the bitrate needs "
                f"{layout.n_codebooks}"
            )
        self.model = model
        self.layout = layout
        self.chunk_frames = chunk_frames
        self.precision_bits = precision_bits
        self.check_bits = check_bits
        self.progressive = progressive
        self.combined_base_check = bool(combined_base_check) or layout.n_layers == 1
        self.fused_cdfs = isinstance(model, FusedCdfModel)
        self._scale = float(1 << logit_step_log2)
        base = self._quantise(model.base_logits()[: layout.base_levels])
        self._base_logits = base  # [3, V]
        self._base_bits: np.ndarray | None = None  # [C, 3, V], built on first use
        base_cdfs = coding.cdf_from_logits(base, precision_bits)  # [3, V+1]
        # frame-major rows: frame 0 levels 0..2, frame 1 levels 0..2, ...
        self._base_rows = np.ascontiguousarray(np.tile(base_cdfs, (chunk_frames, 1)))
        # A model with a C++ chunk coder (the engine) decodes a chunk in one call: the same
        # PMFs (its fused CDFs), the same range coder and checks, no Python per layer.
        make = getattr(model, "native_chunk_decoder", None)
        self._native = (make(layout.n_codebooks, chunk_frames, precision_bits, check_bits,
                             progressive, self.combined_base_check)
                        if self.fused_cdfs and callable(make) else None)

    @property
    def native(self) -> Any:
        """The C++ chunk decoder behind this coder (``_core.lm.ChunkDecoder``: its
        ``profiling`` switch and ``model_cpu_seconds`` split a profile), or None where the
        coder runs in Python."""
        return self._native

    # -------------------------------------------------------------------------- helpers
    def _quantise(self, logits: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.round(logits * self._scale) / self._scale, dtype=np.float32)

    def _view(self, tokens: np.ndarray, revealed: int) -> np.ndarray:
        """int64 [K_max, C]: levels < revealed visible, then MASK up to K, MASK_UPPER above."""
        view = np.full((self.model.max_codebooks, self.chunk_frames), MASK_UPPER, dtype=np.int64)
        view[:revealed] = tokens[:revealed]
        view[revealed : self.layout.n_codebooks] = MASK
        return view

    def _model_pmfs(self, state: Any, tokens: np.ndarray, revealed: int,
                    levels: tuple[int, int], cache: ChunkCache) -> np.ndarray:
        """One model call: levels [lo, hi) given the levels below ``revealed``; float32
        logits [L, C, V] or (fused) uint32 CDFs [L, C, V + 1], shape checked."""
        view = self._view(tokens, revealed)
        cache.model_calls += 1
        if self.fused_cdfs:
            out = np.asarray(self.model.fine_cdfs(state, view, levels, self.precision_bits))
            width, dtype = CODEBOOK_SIZE + 1, np.uint32
        else:
            out = np.asarray(self.model.fine_logits(state, view, levels), dtype=np.float32)
            width, dtype = CODEBOOK_SIZE, np.float32
        want = (levels[1] - levels[0], self.chunk_frames, width)
        if out.shape != want or out.dtype != dtype:
            raise ConfigError(f"model returned {'CDFs' if self.fused_cdfs else 'logits'} of "
                              f"{out.dtype} {out.shape}, expected {np.dtype(dtype)} {want}")
        return out

    def _layer_pmfs(self, state: Any, tokens: np.ndarray, layer: int,
                    cache: ChunkCache) -> LayerPmfs:
        """The PMFs of one fine layer given the memory and the levels below it in
        ``tokens`` int64 [K, C], from ``cache`` when it holds them for these tokens."""
        lo, hi = self.layout.layers[layer]
        first, end = self.layout.layers[1][0], self.layout.n_codebooks
        revealed = lo if self.progressive else first
        condition = np.array(tokens[:revealed], dtype=np.int64)  # a copy: callers mutate
        if not isinstance(cache, ChunkCache):
            raise TypeError(f"cache must be an entropy.ChunkCache, got {type(cache).__name__}")
        got = cache.layer(layer, condition)
        if got is not None:
            return got
        if self.progressive:
            out = self._model_pmfs(state, tokens, lo, (lo, hi), cache)
        else:
            groups = cache.groups(condition)
            if groups is None:
                groups = self._model_pmfs(state, tokens, first, (first, end), cache)
                cache.put_groups(condition, groups)
            out = groups[lo - first : hi - first]
        rows = out.transpose(1, 0, 2).reshape(-1, out.shape[-1])  # [C * L, V(+1)]
        rows = np.ascontiguousarray(rows) if self.fused_cdfs else self._quantise(rows)
        pmfs = LayerPmfs(layer, condition, rows, self.fused_cdfs)
        cache.put_layer(pmfs)
        return pmfs

    def rate_bits(self, state: Any, tokens: np.ndarray, layer: int,
                  cache: ChunkCache | None = None) -> np.ndarray:
        """float32 [C, L, V]: what coding each value of each token of ``layer`` would cost,
        in bits (-log2 of the coder's PMF: of the rounded logits' softmax, or of the fused
        CDF's frequency), given the memory and the chunk's levels below the layer in
        ``tokens`` int [K, C] (levels at and above the layer are not read). Layer 0 is the
        static base. Passing the same ``cache`` to ``encode_chunk`` / ``encode_fine``
        reuses the model calls.

        Raises:
            ConfigError: ``layer`` is not a layer of the layout.
        """
        if layer == 0:
            if self._base_bits is None:  # static: computed once
                self._base_bits = np.ascontiguousarray(np.broadcast_to(
                    _bits_of_logits(self._base_logits),
                    (self.chunk_frames,) + self._base_logits.shape))
            return self._base_bits
        if not isinstance(layer, (int, np.integer)) or not 1 <= layer < self.layout.n_layers:
            raise ConfigError(f"layer must be an int in [0, {self.layout.n_layers}), got "
                              f"{layer!r}")
        lo, hi = self.layout.layers[layer]
        pmfs = self._layer_pmfs(state, np.asarray(tokens), layer,
                                ChunkCache() if cache is None else cache)
        return pmfs.bits(self.precision_bits).reshape(self.chunk_frames, hi - lo, CODEBOOK_SIZE)

    def rd_encoder(self, codebooks: np.ndarray) -> Any:
        """The transmitter's whole chunk in one C++ call, or None where this coder has no
        C++ chunk coder (models without one): ``_core.lm.ChunkEncoder``, whose
        ``encode_chunk(state, latents float32 [C, D], rd_lambda)`` returns (tokens int64
        [K, C], payload): the tokens ``models.rd.RateDistortionQuantizer`` picks with the C++
        search under ``rate_bits`` costs (these tables), and ``encode_chunk``'s payload of
        them, both bit for bit.

        Args:
            codebooks: the codec quantiser's float32 [K_q, V, D] codebooks (packed here).
        """
        if (self._native is None or codebooks.ndim != 3
                or codebooks.shape[0] < self.layout.n_codebooks
                or codebooks.shape[1] > CODEBOOK_SIZE):
            return None  # (a quantizer that cannot code the layout: the Python path says so)
        return core.lm.ChunkEncoder(
            self._native, np.ascontiguousarray(codebooks, dtype=np.float32),
            _bits_of_frequency(self.precision_bits),
            np.ascontiguousarray(self.rate_bits(None, None, 0), dtype=np.float32))

    def _check_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        if t.shape != (self.layout.n_codebooks, self.chunk_frames) or t.dtype.kind not in "iu":
            raise ConfigError(
                f"tokens must be int [K={self.layout.n_codebooks}, "
                f"C={self.chunk_frames}], got {t.dtype} {t.shape}"
            )
        if t.size and (t.min() < 0 or t.max() >= CODEBOOK_SIZE):
            raise ConfigError(f"tokens must be in [0, {CODEBOOK_SIZE})")
        return t.astype(np.int64)

    # -------------------------------------------------------------------------- base
    def _encode_base_into(self, enc: coding.Encoder, t: np.ndarray, check: bool) -> None:
        nb = self.layout.base_levels
        enc.encode(np.ascontiguousarray(t[:nb].T.reshape(-1), dtype=np.int32), self._base_rows)
        if check and self.check_bits:
            value = integrity_value(t[:nb], t[:0], BASE_CHECK_SALT, self.check_bits)
            _encode_check(enc, value, self.check_bits, self.precision_bits)

    def _decode_base_from(self, dec: coding.Decoder, check: bool) -> np.ndarray:
        """int64 [3, C] base tokens read from ``dec``, verified when ``check``."""
        sym = dec.decode(self._base_rows)
        base = sym.reshape(self.chunk_frames, self.layout.base_levels).T.astype(np.int64)
        if check and self.check_bits:
            value = _decode_check(dec, self.check_bits, self.precision_bits)
            if value != integrity_value(base, base[:0], BASE_CHECK_SALT, self.check_bits):
                raise IntegrityError("base integrity check failed")
        return base

    def encode_base(self, tokens: np.ndarray) -> bytes:
        """Base payload of tokens int [K, C]: the base levels (static PMFs, no context)
        and the base check. Layered base packets and FEC copies hold it."""
        enc = coding.Encoder(self.precision_bits)
        self._encode_base_into(enc, self._check_tokens(tokens), check=True)
        return enc.finish()

    def decode_base(self, payload: bytes) -> np.ndarray:
        """int64 [3, C] base tokens of a base payload (``encode_base``).

        Raises:
            BitstreamError: the payload does not decode; IntegrityError: its check fails.
        """
        if self._native is not None:
            return self._native.decode_base(payload)
        return self._decode_base_from(coding.Decoder(payload, self.precision_bits), check=True)

    # -------------------------------------------------------------------------- fine
    def encode_fine(self, state: Any, tokens: np.ndarray,
                    cache: ChunkCache | None = None) -> list[bytes]:
        """Payloads of fine layers 1..n_layers-1 for tokens int [K, C], given the memory
        (``cache``: from ``rate_bits`` calls on the same chunk, or None)."""
        t = self._check_tokens(tokens)
        cache = ChunkCache() if cache is None else cache
        payloads = []
        for layer in range(1, self.layout.n_layers):
            lo, hi = self.layout.layers[layer]
            enc = coding.Encoder(self.precision_bits)
            sym = np.ascontiguousarray(t[lo:hi].T.reshape(-1), dtype=np.int32)
            self._layer_pmfs(state, t, layer, cache).encode_into(enc, sym)
            if self.check_bits:
                value = integrity_value(
                    t[: self.layout.base_levels], t[lo:hi], layer, self.check_bits
                )
                _encode_check(enc, value, self.check_bits, self.precision_bits)
            payloads.append(enc.finish())
        return payloads

    def decode_fine(
        self, state: Any, base: np.ndarray, payloads: list[bytes | None]
    ) -> FineDecodeResult:
        """Decodes the fine layers that arrived, in order, stopping at the first gap.

        Args:
            state: the model memory (must equal the transmitter's for these PMFs).
            base: int64 [3, C] base tokens of the chunk.
            payloads: per fine layer (1..n_layers-1), the payload or None if not received.

        Returns:
            The usable prefix of levels; a payload that fails to decode or whose integrity
            check fails ends the prefix and is listed in ``failed_layers``.
        """
        tokens = np.zeros((self.layout.n_codebooks, self.chunk_frames), dtype=np.int64)
        tokens[: self.layout.base_levels] = base
        n_levels = self.layout.base_levels
        cache = ChunkCache()
        failed: list[int] = []
        for layer in range(1, self.layout.n_layers):
            payload = payloads[layer - 1] if layer - 1 < len(payloads) else None
            if payload is None:
                break
            lo, hi = self.layout.layers[layer]
            try:
                dec = coding.Decoder(payload, self.precision_bits)
                sym = self._layer_pmfs(state, tokens, layer, cache).decode_from(dec)
                got = sym.reshape(self.chunk_frames, hi - lo).T.astype(np.int64)
                if self.check_bits:
                    value = _decode_check(dec, self.check_bits, self.precision_bits)
                    if value != integrity_value(base, got, layer, self.check_bits):
                        raise IntegrityError("integrity check failed")
            except BitstreamError:
                failed.append(layer)
                break
            tokens[lo:hi] = got
            n_levels = hi
        return FineDecodeResult(tokens[:n_levels].copy(), n_levels, tuple(failed))

    # -------------------------------------------------------------------------- combined
    def encode_chunk(self, state: Any, tokens: np.ndarray,
                     cache: ChunkCache | None = None) -> bytes:
        """One payload for every level of tokens int [K, C]: base (static PMFs), the base
        check when ``combined_base_check``, then the fine layers in order (model PMFs
        given ``state``), then one check over every level (``cache``: from ``rate_bits``
        calls on the same chunk, or None)."""
        t = self._check_tokens(tokens)
        nb = self.layout.base_levels
        enc = coding.Encoder(self.precision_bits)
        self._encode_base_into(enc, t, check=self.combined_base_check)
        if self.layout.n_layers > 1:
            cache = ChunkCache() if cache is None else cache
            for layer in range(1, self.layout.n_layers):
                lo, hi = self.layout.layers[layer]
                sym = np.ascontiguousarray(t[lo:hi].T.reshape(-1), dtype=np.int32)
                self._layer_pmfs(state, t, layer, cache).encode_into(enc, sym)
            if self.check_bits:
                value = integrity_value(t[:nb], t[nb:], COMBINED_CHECK_SALT, self.check_bits)
                _encode_check(enc, value, self.check_bits, self.precision_bits)
        return enc.finish()

    def decode_chunk_base(self, payload: bytes) -> np.ndarray:
        """int64 [3, C] base tokens of a combined payload, verified by its base check,
        without the model (for a receiver whose memory is tainted, or a look at a later
        chunk). Only payloads with a base check can be read this way.

        Raises:
            ConfigError: the format carries no base check (``combined_base_check`` False
                and fine levels present): use ``decode_chunk``.
            BitstreamError / IntegrityError: the payload is corrupt.
        """
        if not self.combined_base_check:
            raise ConfigError("combined payloads of this format have no base check; "
                              "decode the whole chunk with decode_chunk")
        if self._native is not None:
            return self._native.decode_chunk_base(payload)
        return self._decode_base_from(coding.Decoder(payload, self.precision_bits), check=True)

    def decode_chunk(self, state: Any, payload: bytes) -> FineDecodeResult:
        """Decodes a combined payload (``encode_chunk``) given the model memory.

        Returns every level when all checks pass. When only the final check fails and the
        payload carries a base check that passed, the base alone (``failed_layers ==
        (1,)``): the fine bits were hit, or the memory differs from the transmitter's.

        Raises:
            BitstreamError / IntegrityError: nothing in the payload can be trusted (the
                base check failed, or the single check of a chunk without one did).
        """
        if self._native is not None:
            tokens, fine_failed = self._native.decode_chunk(state, payload)
            return FineDecodeResult(tokens, tokens.shape[0], (1,) if fine_failed else ())
        nb = self.layout.base_levels
        dec = coding.Decoder(payload, self.precision_bits)
        base = self._decode_base_from(dec, check=self.combined_base_check)
        tokens = np.zeros((self.layout.n_codebooks, self.chunk_frames), dtype=np.int64)
        tokens[:nb] = base
        if self.layout.n_layers == 1:
            return FineDecodeResult(tokens, nb, ())
        cache = ChunkCache()
        try:
            for layer in range(1, self.layout.n_layers):
                lo, hi = self.layout.layers[layer]
                sym = self._layer_pmfs(state, tokens, layer, cache).decode_from(dec)
                tokens[lo:hi] = sym.reshape(self.chunk_frames, hi - lo).T
            if self.check_bits:
                value = _decode_check(dec, self.check_bits, self.precision_bits)
                if value != integrity_value(base, tokens[nb:], COMBINED_CHECK_SALT,
                                            self.check_bits):
                    raise IntegrityError("integrity check failed")
        except BitstreamError:
            if not self.combined_base_check:
                raise
            return FineDecodeResult(tokens[:nb].copy(), nb, (1,))
        return FineDecodeResult(tokens, self.layout.n_codebooks, ())
