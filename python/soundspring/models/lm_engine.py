"""SpringLM on the C++ engine: a ``CodingModel`` that needs no torch per chunk.

``SpringLMEngine`` has the interface of ``lm_adapter.SpringLMCodingModel`` (``new_state``,
``fine_logits``, ``commit``, ``conceal_logits``, ``base_logits``, ``model_id``, ...), so
``transceiver.Transmitter`` / ``Receiver`` take either. It runs ``soundspring._core.lm.Engine``
(csrc/core/lm_engine.h): deterministic float32 whose logits are the same bits on every
machine, instruction set, thread count and batch size, and within float rounding (about
1e-6) of the PyTorch reference in ``masked_lm.SpringLM``, which stays the training and
reference path.

It is the transceiver's coding model by default: ``weights_io.load_coding_model`` (and
``load_models``) read the shipped weights file (verifying the content SHA-256) and hand the
fp16 tensors, keyed by their state-dict names, to this class, which widens them to float32
(exactly) for the engine, which checks every name and shape and packs its own copy.
``from_model`` does the same from a live ``SpringLM``. This module reads no files, so the
loaders sit above it.

The engine also fuses ``cdf_from_logits`` behind its heads (``fine_cdfs``), which
``entropy.ChunkCoder`` uses instead of rounding logits: a stream it codes can differ in
CDF bits from one coded through the PyTorch reference, so its ``model_id`` is the weights'
content hash plus ``ENGINE_ID_SUFFIX``, and a decoder holding the other kind of model
refuses the stream (``ModelMismatchError``) instead of mis-decoding it.

The kernel level is chosen at construction: ``isa`` if given, else the environment
variable ``SOUNDSPRING_ENGINE_ISA`` (``auto``, ``generic``, ``sse2``, ``avx2`` or
``avx512``), else ``auto`` (the best the CPU runs). Every level gives the same bits; forcing
one exists for tests and measurements.

Example:
    >>> import numpy as np
    >>> from soundspring.models.lm_engine import SpringLMEngine
    >>> from soundspring.models.masked_lm import MASK, SpringLM, springlm_tiny
    >>> engine = SpringLMEngine.from_model(SpringLM(springlm_tiny()))
    >>> state = engine.new_state(context_frames=4, chunk_frames=2)
    >>> view = np.full((12, 2), MASK, dtype=np.int64)
    >>> view[:3] = 7                                            # base visible
    >>> engine.fine_logits(state, view, (3, 12)).shape          # [hi - lo, C, V]
    (9, 2, 1024)
    >>> state = engine.commit(state, view[:3])
    >>> state.frames
    2
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._native import core
from .._validate import int_in
from ..config import MAX_CHUNK_FRAMES, SpringLMConfig
from ..errors import ConfigError, ModelMismatchError

ISA_ENV = "SOUNDSPRING_ENGINE_ISA"
"""Environment variable that forces the engine's kernel level when ``isa`` is not given."""

ISA_LEVELS = ("auto", "generic", "sse2", "avx2", "avx512")

ENGINE_ID_SUFFIX = "+engine1"
"""Appended to the weights' content hash in ``SpringLMEngine.model_id``: streams whose fine
CDFs are the engine's fused ones (version 1 of its arithmetic), never the PyTorch path's."""

_UNIGRAM = "unigram_logprobs"

StreamState = core.lm.StreamState
"""The engine's per-stream coding memory (``snapshot()``, ``reset()``, ``frames``)."""


def resolve_isa(isa: str | None) -> str:
    """The kernel level to build an engine with: ``isa``, or when None the environment
    variable ``SOUNDSPRING_ENGINE_ISA``, else ``auto``.

    Raises:
        ConfigError: not one of ``ISA_LEVELS``.
    """
    isa = os.environ.get(ISA_ENV, "auto") if isa is None else isa
    if isa not in ISA_LEVELS:
        raise ConfigError(f"isa must be one of {', '.join(ISA_LEVELS)} (argument or "
                          f"{ISA_ENV}), got {isa!r}")
    return isa


def supported_isas() -> list[str]:
    """The kernel levels this build and CPU can run, lowest first (e.g. ``["generic",
    "sse2", "avx2"]``)."""
    return list(core.lm.supported_isas())


def best_isa() -> str:
    """The level ``isa="auto"`` picks on this CPU."""
    return str(core.lm.best_isa())


def _tokens(name: str, value: Any, ndim: int, form: str) -> np.ndarray:
    """An integer array as int64, C-contiguous (copied only when needed); TypeError otherwise."""
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.integer):
        what = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name} must be an integer numpy array {form}, got {what}")
    if value.ndim != ndim:
        raise ConfigError(f"{name} must be {form}, got shape {value.shape}")
    return np.ascontiguousarray(value, dtype=np.int64)


class SpringLMEngine:
    """SpringLM through the C++ engine, as a ``soundspring.entropy.CodingModel``.

    Args:
        cfg: the model shape.
        tensors: float32 (or fp16, widened exactly) arrays keyed by SpringLM state-dict
            names; ``unigram_logprobs`` [K_max, V] gives ``base_logits`` (uniform if absent).
        weights_id: the weights' content hash (``weights_io.read_lm_weights``); the
            ``model_id`` stream headers record is it plus ``ENGINE_ID_SUFFIX``.
        isa: kernel level (see the module docstring); None reads ``SOUNDSPRING_ENGINE_ISA``.
        num_threads: worker threads per call in [1, 256] (never changes the bits).

    Raises:
        ConfigError: ``isa`` unknown or not runnable on this CPU, ``num_threads`` out of
            range.
        ModelMismatchError: a tensor missing, unexpected or of the wrong shape for ``cfg``.
        TypeError: a tensor that is not a numpy array or torch tensor.
    """

    uses_memory = True

    def __init__(self, cfg: SpringLMConfig, tensors: Mapping[str, Any], *,
                 weights_id: str = "springlm-unsaved", isa: str | None = None,
                 num_threads: int = 1) -> None:
        if not isinstance(cfg, SpringLMConfig):
            raise TypeError(f"cfg must be a SpringLMConfig, got {type(cfg).__name__}")
        isa = resolve_isa(isa)
        threads = int_in("num_threads", num_threads, 1, 256)
        arrays = {name: _float32(name, t) for name, t in tensors.items()}
        unigram = arrays.pop(_UNIGRAM, None)
        v, k = cfg.codebook_size, cfg.n_codebooks
        if unigram is None:
            unigram = np.full((k, v), -np.log(v), dtype=np.float32)
        elif unigram.shape != (k, v):
            raise ModelMismatchError(f"{_UNIGRAM} must be [{k}, {v}], got {unigram.shape}")
        self.cfg = cfg
        self._base = np.ascontiguousarray(unigram)
        self._weights_id = str(weights_id)
        try:
            self._engine = core.lm.Engine(
                arrays, n_codebooks=k, codebook_size=v, base_codebooks=cfg.base_codebooks,
                dim=cfg.dim, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                ffn_mult=cfg.ffn_mult, max_context_frames=cfg.max_context_frames,
                max_rel_distance=cfg.max_rel_distance, tie_embeddings=cfg.tie_embeddings,
                isa=isa, num_threads=threads)
        except ConfigError as exc:
            if str(exc).startswith("weights"):
                raise ModelMismatchError(f"SpringLM weights do not fit the config: {exc}") from exc
            raise

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_model(cls, lm: Any, *, isa: str | None = None,
                   num_threads: int = 1) -> SpringLMEngine:
        """The engine of a live ``masked_lm.SpringLM`` (its current float32 weights)."""
        state = {name: t.detach().to("cpu").float().numpy() for name, t in lm.state_dict().items()}
        weights_id = str(getattr(lm, "model_id", "")) or "springlm-unsaved"
        return cls(lm.cfg, state, weights_id=weights_id, isa=isa, num_threads=num_threads)

    # ---- CodingModel ---------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """``weights_id`` + ``ENGINE_ID_SUFFIX`` (what stream headers record)."""
        return self._weights_id + ENGINE_ID_SUFFIX

    @property
    def weights_id(self) -> str:
        """The weights' content hash (the PyTorch reference's ``model_id``)."""
        return self._weights_id

    @property
    def max_codebooks(self) -> int:
        return int(self.cfg.n_codebooks)

    @property
    def max_context_frames(self) -> int:
        return int(self.cfg.max_context_frames)

    @property
    def isa(self) -> str:
        """The kernel level in use (``generic``, ``sse2``, ``avx2`` or ``avx512``)."""
        return str(self._engine.isa)

    @property
    def num_threads(self) -> int:
        return int(self._engine.num_threads)

    @property
    def weight_storage(self) -> str:
        """``int8`` when every matrix column is exactly q 2^e with |q| <= 127
        (``block_float.round_engine_weights``) and the kernel level has the int8 product
        (SSE2, AVX2, AVX-512); else ``binary16`` when every matrix weight is exactly a half
        (the shipped fp16 file) and the level converts fast (AVX2 + F16C, AVX-512); else
        ``float32``. The same values in each, so the same bits; binary16 halves the bytes
        each call reads, int8 halves them again."""
        return str(self._engine.weight_storage)

    def base_logits(self) -> np.ndarray:
        """float32 [K_max, V]: the static per-level logits (unigram PMFs)."""
        return self._base

    def new_state(self, context_frames: int, chunk_frames: int) -> StreamState:
        """An empty memory: reach R in [0, max_context_frames], chunks of C in [1, 5] frames.

        Raises:
            ConfigError: R or C out of range.
        """
        r = int_in("context_frames", context_frames, 0, self.cfg.max_context_frames)
        c = int_in("chunk_frames", chunk_frames, 1, MAX_CHUNK_FRAMES)
        return self._engine.new_state(r, c)

    def fine_logits(self, state: StreamState, view: np.ndarray,
                    levels: tuple[int, int]) -> np.ndarray:
        """Coding pass: float32 [hi - lo, C, V] logits of levels [lo, hi) for the chunk
        ``view`` int [K, C] (base visible, fine levels visible / MASK / MASK_UPPER) against
        the memory in ``state``, which is not changed.

        Raises:
            TypeError: ``view`` is not an integer array or ``state`` not a StreamState.
            ConfigError: bad shape, token ids, levels, or C not the state's.
        """
        lo, hi = self._levels(levels)
        return self._engine.fine_logits(state, _tokens("chunk_tokens", view, 2, "[K, C]"), lo, hi)

    def fine_logits_batch(self, states: Sequence[StreamState], views: np.ndarray,
                          levels: tuple[int, int]) -> np.ndarray:
        """``fine_logits`` of B independent streams in one call: ``views`` int [B, K, C],
        one state each; float32 [B, hi - lo, C, V], the same bits as B separate calls."""
        lo, hi = self._levels(levels)
        return self._engine.fine_logits_batch(
            list(states), _tokens("chunk_tokens", views, 3, "[B, K, C]"), lo, hi)

    def fine_cdfs(self, state: StreamState, view: np.ndarray, levels: tuple[int, int],
                  precision_bits: int) -> np.ndarray:
        """``fine_logits`` with ``cdf_from_logits`` fused behind it in C++: uint32
        [hi - lo, C, V + 1], each row the CDF ``coding.cdf_from_logits`` gives those logits."""
        lo, hi = self._levels(levels)
        bits = int_in("precision_bits", precision_bits, 1, 16)
        return self._engine.fine_cdfs(state, _tokens("chunk_tokens", view, 2, "[K, C]"), lo, hi,
                                      bits)

    def commit(self, state: StreamState, base: np.ndarray) -> StreamState:
        """Memory pass: appends a chunk's base tokens int [k, C] (levels >= 3 ignored) to
        ``state`` in place and returns it."""
        self._engine.commit(state, _tokens("base_tokens", base, 2, "[k, C]"))
        return state

    def commit_batch(self, states: Sequence[StreamState], base: np.ndarray) -> None:
        """``commit`` of B distinct streams in one call: ``base`` int [B, k, C], one state
        each (updated in place); the same bits as B separate commits, and nothing changes
        when an argument is refused."""
        self._engine.commit_batch(list(states), _tokens("base_tokens", base, 3, "[B, k, C]"))

    def conceal_logits(self, window: np.ndarray,
                       levels: tuple[int, int] | None = None) -> np.ndarray:
        """Concealment: float32 [hi - lo, W, V] logits (default the base levels) for
        ``window`` int [K, W] (MASK = lost base), full attention over the window."""
        lo, hi = (0, self.cfg.base_codebooks) if levels is None else self._levels(levels)
        return self._engine.conceal_logits(_tokens("window", window, 2, "[K, W]"), lo, hi)

    def forward_coding(self, codes: np.ndarray, context_frames: int, chunk_frames: int,
                       levels: tuple[int, int] | None = None) -> np.ndarray:
        """The coding pass of every chunk of ``codes`` int [K, F] (F a multiple of C) from
        a fresh memory, committing each chunk after its logits: float32 [hi - lo, F, V],
        what ``SpringLM.forward_coding`` computes for one stream."""
        codes = _tokens("codes", codes, 2, "[K, F]")
        c = int_in("chunk_frames", chunk_frames, 1, MAX_CHUNK_FRAMES)
        if codes.shape[1] % c:
            raise ConfigError(f"codes must hold a whole number of chunks: F={codes.shape[1]} "
                              f"is not a multiple of chunk_frames={c}")
        lo, hi = (0, codes.shape[0]) if levels is None else self._levels(levels)
        state = self.new_state(context_frames, c)
        out = []
        for f0 in range(0, codes.shape[1], c):
            chunk = np.ascontiguousarray(codes[:, f0:f0 + c])
            out.append(self._engine.fine_logits(state, chunk, lo, hi))
            self._engine.commit(state, chunk)
        return np.concatenate(out, axis=1)

    def native_chunk_decoder(self, n_codebooks: int, chunk_frames: int, precision_bits: int,
                             check_bits: int, progressive: bool,
                             combined_base_check: bool) -> Any:
        """The C++ chunk decoder (``_core.lm.ChunkDecoder``, csrc/core/chunk_decoder.h) of
        these stream settings over this engine, or None where it cannot code them: what
        ``entropy.ChunkCoder`` decodes with (and, through ``_core.lm.ChunkEncoder``, what its
        transmitter's fused rate-distortion encoder takes its PMFs from), one call per chunk.

        The C++ coder derives the combined payload's base check from the reach R (R // C >
        0); the memory itself carries R, so R = C stands for "a base check" here.
        """
        reach = chunk_frames if combined_base_check else 0
        try:
            return core.lm.ChunkDecoder(self._engine, n_codebooks, chunk_frames, reach,
                                        bool(progressive), check_bits, precision_bits,
                                        self._base)
        except ConfigError:
            return None

    def _levels(self, levels: Any) -> tuple[int, int]:
        k = self.cfg.n_codebooks
        if (not isinstance(levels, (tuple, list)) or len(levels) != 2
                or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                           for x in levels)
                or not 0 <= levels[0] < levels[1] <= k):
            raise ConfigError(f"levels must be a (lo, hi) pair of ints with 0 <= lo < hi <= "
                              f"{k}, got {levels!r}")
        return int(levels[0]), int(levels[1])


def _float32(name: str, tensor: Any) -> np.ndarray:
    """A float32 C-contiguous numpy array from a numpy array or torch tensor (fp16 and
    fp32 only: widening fp16 is exact)."""
    if hasattr(tensor, "detach") and hasattr(tensor, "numpy"):  # a torch tensor
        tensor = tensor.detach().to("cpu").float().numpy()
    if not isinstance(tensor, np.ndarray):
        raise TypeError(f"weights[{name!r}] must be a numpy array or torch tensor, got "
                        f"{type(tensor).__name__}")
    if tensor.dtype not in (np.float16, np.float32):
        raise ModelMismatchError(f"weights[{name!r}] must be float16 or float32, got "
                                 f"{tensor.dtype}")
    return np.ascontiguousarray(tensor, dtype=np.float32)


def measure_against_reference(lm: Any, *, context_frames: int = 15, chunk_frames: int = 2,
                              levels: tuple[int, int] = (3, 12), isa: str | None = None,
                              num_threads: int = 1, calls: int = 50, seed: int = 0) -> dict:
    """Per-call time of the engine and of the PyTorch reference on the same chunks, same run.

    Both run one chunk's coding pass (``fine_logits``, levels ``levels``) and its memory
    pass (``commit``) against a full memory, the work of one transceiver end per chunk;
    plus the concealment window over R + C frames. Times are the median over ``calls``
    calls (torch's intra-op threads as the caller set them).

    Args:
        lm: a ``masked_lm.SpringLM`` (the reference; the engine is built from its weights).
        context_frames, chunk_frames: R and C.
        levels: the (lo, hi) levels of the coding pass (6 kbps: (3, 12); 12 kbps: (3, 24)).
        isa, num_threads: the engine's (see ``SpringLMEngine``).
        calls: timed calls per case.
        seed: of the random tokens.

    Returns:
        {"isa", "num_threads", "engine_fine_ms", "torch_fine_ms", "engine_commit_ms",
        "torch_commit_ms", "engine_conceal_ms", "torch_conceal_ms", "step_speedup"
        (torch fine + commit over engine fine + commit), "max_abs_diff" (logits of every
        timed case)}.
    """
    import time

    from .lm_adapter import SpringLMCodingModel

    n_calls = int_in("calls", calls, 1, 1 << 20)
    engine = SpringLMEngine.from_model(lm, isa=isa, num_threads=num_threads)
    ref = SpringLMCodingModel(lm)
    lo, hi = engine._levels(levels)
    rng = np.random.default_rng(seed)
    c, k = chunk_frames, max(hi, lm.cfg.base_codebooks)
    view = rng.integers(0, lm.cfg.codebook_size, size=(k, c)).astype(np.int64)
    view[lm.cfg.base_codebooks:] = lm.cfg.codebook_size  # MASK: the levels being coded
    window = rng.integers(0, lm.cfg.codebook_size,
                          size=(lm.cfg.base_codebooks, context_frames + c)).astype(np.int64)
    window[:, -c:] = lm.cfg.codebook_size  # the lost chunk
    st_e, st_t = engine.new_state(context_frames, c), ref.new_state(context_frames, c)
    for _ in range(context_frames // c + 1):
        engine.commit(st_e, view)
        ref.commit(st_t, view)

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(n_calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    out: dict = {"isa": engine.isa, "num_threads": engine.num_threads}
    out["engine_fine_ms"] = median_ms(lambda: engine.fine_logits(st_e, view, (lo, hi)))
    out["torch_fine_ms"] = median_ms(lambda: ref.fine_logits(st_t, view, (lo, hi)))
    out["engine_commit_ms"] = median_ms(lambda: engine.commit(st_e.snapshot(), view))
    out["torch_commit_ms"] = median_ms(lambda: ref.commit(st_t.snapshot(), view))
    out["engine_conceal_ms"] = median_ms(lambda: engine.conceal_logits(window))
    out["torch_conceal_ms"] = median_ms(lambda: ref.conceal_logits(window))
    out["step_speedup"] = ((out["torch_fine_ms"] + out["torch_commit_ms"])
                           / (out["engine_fine_ms"] + out["engine_commit_ms"]))
    diffs = [np.abs(engine.fine_logits(st_e, view, (lo, hi))
                    - ref.fine_logits(st_t, view, (lo, hi))).max(),
             np.abs(engine.conceal_logits(window) - ref.conceal_logits(window)).max()]
    out["max_abs_diff"] = float(max(diffs))
    return out


__all__ = ["ENGINE_ID_SUFFIX", "ISA_ENV", "ISA_LEVELS", "SpringLMEngine", "StreamState",
           "best_isa", "measure_against_reference", "supported_isas"]
