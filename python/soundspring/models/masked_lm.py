"""SpringLM: the dual-functional masked language model over codec tokens.

Shapes (glossary): B batch, K codebooks (RVQ levels, K <= K_max = 24), F frames (50 Hz),
C frames per chunk (packet), R entropy-context reach in frames, V codebook size (1024),
L layers, H heads, D width, Dh = D / H.

Token ids: ``0 .. V-1`` codec tokens, ``MASK = V`` (unknown, to be predicted) and
``MASK_UPPER = V + 1`` (a level above the bitrate or not yet revealed). Levels an input
omits (K < K_max) are ``MASK_UPPER``.

Two modes, one set of weights:

*Coding mode* (entropy coding at both ends; "two-pass, chunk-local memory"). Frames form
chunks of C frames. Pass 1, the *memory stream*, runs every chunk in the *memory view*
(base levels 0..2 visible, every fine level ``MASK_UPPER``) with attention restricted to
its own chunk; its per-layer keys and values are the chunk's *memory*, a pure function of
that chunk's base tokens. Pass 2, the *coding stream*, runs the chunk in the *coding view*
(the caller's tokens: base visible, fine levels visible / ``MASK`` / ``MASK_UPPER``); at
layer l a frame attends to the pass-1 layer-l keys and values of the previous
``R // C`` whole chunks (at most R frames) and to the pass-2 layer-l keys and values of
its own chunk. Logits come from pass 2. Hence the logits of chunk c are an exact function
of the base tokens of chunks ``c - R // C .. c - 1`` and of chunk c's own coding view:
one lost base packet spoils the entropy context of the next ``R // C`` chunks only.

*Concealment mode* ("bidirectional window", receiver only, uncached). One stream with full
attention over a window: base tokens of received frames visible, base of lost frames
``MASK``; fine levels are always replaced by ``MASK_UPPER`` (the model conceals base
tokens; fine tokens of a concealed frame come from a coding-mode forward over the
concealed base, which is exactly the entropy model's prediction of fine given base).

Positions are relative only (a learned bias per layer and head over clipped frame
distances, one table for same-stream keys and one for memory keys), so keys and values
never depend on absolute time: cached == uncached and transmitter == receiver wherever a
stream starts.

Example:
    >>> import torch
    >>> from soundspring.models.masked_lm import MASK, SpringLM, springlm_tiny
    >>> lm = SpringLM(springlm_tiny()).eval()
    >>> codes = torch.randint(0, 1024, (1, 12, 8))
    >>> codes[:, 3:] = MASK                                   # predict fine levels 3..11
    >>> full = lm.forward_coding(codes, context_frames=4, chunk_frames=2)   # [1, 12, 8, V]
    >>> state = lm.init_state(1, context_frames=4, chunk_frames=2)
    >>> out = []
    >>> for c in range(4):
    ...     logits, state = lm.step(codes[..., 2 * c: 2 * c + 2], state)
    ...     out.append(logits)
    >>> bool(torch.allclose(torch.cat(out, dim=2), full, atol=1e-5))
    True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F_
from torch import nn

from ..config import (
    DEFAULT_CONTEXT_FRAMES,
    MASK,
    MASK_UPPER,
    MAX_CHUNK_FRAMES,
    SPRINGLM_PRESETS,
    SpringLMConfig,
    springlm_default,
    springlm_large,
    springlm_tiny,
)
from ..errors import ConfigError

_NEG_INF = float("-inf")


def context_chunks(context_frames: int, chunk_frames: int) -> int:
    """Whole past chunks in the entropy context: ``context_frames // chunk_frames``."""
    return context_frames // chunk_frames


# --------------------------------------------------------------------------------------
# Cached-inference state
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SpringLMState:
    """Fixed-capacity memory of the coding stream (a ring buffer of whole chunks).

    ``keys``/``values`` hold the pass-1 keys and values of the last ``R // C`` committed
    chunks; they are preallocated by ``SpringLM.init_state`` and never grow. ``step``
    updates them in place (and returns the same object): take a ``snapshot`` before
    speculative use.

    Attributes:
        keys: float32 [L, B, H, cap, Dh], cap = (R // C) * C frames.
        values: float32 [L, B, H, cap, Dh].
        slot_frame: int64 [cap], stream frame index of each slot (relative distances only
            are ever used).
        valid: bool [cap], slots holding a committed frame.
        write: next slot to write (a multiple of C).
        frames: frames committed so far.
        context_frames: R.
        chunk_frames: C.
    """

    keys: torch.Tensor
    values: torch.Tensor
    slot_frame: torch.Tensor
    valid: torch.Tensor
    write: int
    frames: int
    context_frames: int
    chunk_frames: int

    @property
    def batch(self) -> int:
        return int(self.keys.shape[1])

    @property
    def capacity_frames(self) -> int:
        return int(self.keys.shape[3])

    def snapshot(self) -> SpringLMState:
        """A deep copy (independent buffers)."""
        return SpringLMState(self.keys.clone(), self.values.clone(), self.slot_frame.clone(),
                             self.valid.clone(), self.write, self.frames, self.context_frames,
                             self.chunk_frames)

    def reset(self) -> None:
        """Empties the memory (a new stream) without reallocating."""
        self.keys.zero_()
        self.values.zero_()
        self.slot_frame.zero_()
        self.valid.zero_()
        self.write = 0
        self.frames = 0


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class _Block(nn.Module):
    """Pre-LN transformer block split in two halves around the attention itself, so the
    model can route queries, keys and values across streams."""

    def __init__(self, dim: int, n_heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ffn_mult * dim)
        self.ff2 = nn.Linear(ffn_mult * dim, dim)
        self.drop = nn.Dropout(dropout)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, D] -> q, k, v each [B, H, T, Dh]."""
        b, t, d = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # [3, B, H, T, Dh]
        return qkv[0], qkv[1], qkv[2]

    def finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Residual updates: x [B, T, D], attn [B, H, T, Dh] -> [B, T, D]."""
        b, h, t, dh = attn.shape
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, t, h * dh)))
        return x + self.drop(self.ff2(F_.gelu(self.ff1(self.ln2(x)))))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            bias: torch.Tensor) -> torch.Tensor:
    """Softmax attention with an additive bias (``-inf`` = masked).

    q [B, H, Tq, Dh], k/v [B, H, Tk, Dh], bias broadcastable to [B, H, Tq, Tk]; every query
    row has at least one finite entry.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.matmul(torch.softmax(scores + bias, dim=-1), v)


class SpringLM(nn.Module):
    """The dual-functional masked LM (see the module docstring for the two modes).

    Args:
        cfg: the model shape; default ``springlm_default()``.

    Buffers:
        unigram_logprobs: float32 [K_max, V], per-level log-probabilities of the training
            tokens (add-one smoothing): the static PMFs of base coding and of the no-LM
            control. Uniform until ``set_unigram`` is called.
    """

    def __init__(self, cfg: SpringLMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or springlm_default()
        self.cfg = cfg
        k, v, d = cfg.n_codebooks, cfg.codebook_size, cfg.dim
        self.vocab = v + 2
        self.embed = nn.Embedding(k * self.vocab, d)
        self.register_buffer("level_offsets", torch.arange(k, dtype=torch.int64) * self.vocab,
                             persistent=False)
        self.blocks = nn.ModuleList(
            _Block(d, cfg.n_heads, cfg.ffn_mult, cfg.dropout) for _ in range(cfg.n_layers))
        n_dist = 2 * cfg.max_rel_distance + 1
        self.rel_bias_self = nn.Parameter(torch.zeros(cfg.n_layers, cfg.n_heads, n_dist))
        self.rel_bias_mem = nn.Parameter(torch.zeros(cfg.n_layers, cfg.n_heads, n_dist))
        self.ln_out = nn.LayerNorm(d)
        self.head_bias = nn.Parameter(torch.zeros(k, v))
        if not cfg.tie_embeddings:
            self.head_weight = nn.Parameter(torch.empty(k, v, d))
        self.register_buffer("unigram_logprobs",
                             torch.full((k, v), -math.log(v), dtype=torch.float32))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.embed.weight, std=0.02)
        if not self.cfg.tie_embeddings:
            nn.init.normal_(self.head_weight, std=0.02)
        for blk in self.blocks:
            for lin in (blk.qkv, blk.proj, blk.ff1, blk.ff2):
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
            # scaled residual projections (GPT-2 style)
            nn.init.normal_(blk.proj.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))
            nn.init.normal_(blk.ff2.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))

    # ---- bookkeeping -------------------------------------------------------------------
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def set_unigram(self, counts: torch.Tensor) -> None:
        """Sets ``unigram_logprobs`` from token counts int/float [K_max, V] (add-one)."""
        counts = torch.as_tensor(counts, dtype=torch.float64)
        if counts.shape != self.unigram_logprobs.shape:
            raise ConfigError(f"counts must be [{self.cfg.n_codebooks}, "
                              f"{self.cfg.codebook_size}], got {tuple(counts.shape)}")
        c = counts + 1.0
        self.unigram_logprobs.copy_((c / c.sum(-1, keepdim=True)).log().float())

    # ---- validation at the boundary ------------------------------------------------------
    def _check_tokens(self, codes: Any, name: str) -> torch.Tensor:
        form = (f"{name} must be an int64 torch.Tensor [B, K, F] with 1 <= K <= "
                f"{self.cfg.n_codebooks} and ids in [0, {self.vocab}) (V={self.cfg.codebook_size}"
                f", MASK={MASK}, MASK_UPPER={MASK_UPPER})")
        if not isinstance(codes, torch.Tensor):
            raise TypeError(f"{form}, got {type(codes).__name__}")
        if codes.dtype != torch.int64 or codes.dim() != 3:
            raise ConfigError(f"{form}, got {codes.dtype} {tuple(codes.shape)}")
        b, k, f = codes.shape
        if b < 1 or f < 1 or not 1 <= k <= self.cfg.n_codebooks:
            raise ConfigError(f"{form}, got shape {tuple(codes.shape)}")
        lo, hi = torch.aminmax(codes)
        if int(lo) < 0 or int(hi) >= self.vocab:
            raise ConfigError(f"{form}, got ids in [{int(lo)}, {int(hi)}]")
        return codes

    def _check_levels(self, levels: Any, k_in: int, name: str = "levels") -> tuple[int, int]:
        if levels is None:
            return 0, k_in
        if (not isinstance(levels, (tuple, list)) or len(levels) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in levels)
                or not 0 <= levels[0] < levels[1] <= self.cfg.n_codebooks):
            raise ConfigError(f"{name} must be a (lo, hi) pair of ints with 0 <= lo < hi <= "
                              f"{self.cfg.n_codebooks}, got {levels!r}")
        return int(levels[0]), int(levels[1])

    def _check_context(self, context_frames: Any, chunk_frames: Any) -> tuple[int, int]:
        from .._validate import int_in

        r = int_in("context_frames", context_frames, 0, self.cfg.max_context_frames)
        c = int_in("chunk_frames", chunk_frames, 1, MAX_CHUNK_FRAMES)
        return r, c

    # ---- building blocks -----------------------------------------------------------------
    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int64 [B, K, F] (K <= K_max; missing levels = MASK_UPPER) -> [B, F, D]."""
        b, k, f = codes.shape
        if k < self.cfg.n_codebooks:
            pad = codes.new_full((b, self.cfg.n_codebooks - k, f), MASK_UPPER)
            codes = torch.cat([codes, pad], dim=1)
        ids = codes + self.level_offsets[:, None]  # [B, K_max, F]
        return self.embed(ids).sum(dim=1)  # [B, F, D]

    def _memory_view(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, K, F] -> [B, K_max, F]: base levels kept, every fine level MASK_UPPER."""
        b, _, f = codes.shape
        out = codes.new_full((b, self.cfg.n_codebooks, f), MASK_UPPER)
        nb = min(self.cfg.base_codebooks, codes.shape[1])
        out[:, :nb] = codes[:, :nb]
        return out

    def _rel(self, table: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """table [H, 2M+1], dist int64 [Tq, Tk] -> bias [H, Tq, Tk]."""
        m = self.cfg.max_rel_distance
        return table[:, dist.clamp(-m, m) + m]

    def _heads(self, h: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """h [B, F, D] -> float32 logits [B, hi - lo, F, V] of levels [lo, hi)."""
        b, f, d = h.shape
        k, v = hi - lo, self.cfg.codebook_size
        h = self.ln_out(h).reshape(1, b * f, d).expand(k, b * f, d)
        if self.cfg.tie_embeddings:
            # the contiguous rows of levels [lo, hi), MASK rows included and dropped after
            w = self.embed.weight[lo * self.vocab:hi * self.vocab].view(k, self.vocab, d)
        else:
            w = self.head_weight[lo:hi]
        logits = torch.bmm(h, w.transpose(1, 2)).view(k, b, f, -1)[..., :v]  # [k, B, F, V]
        return logits.transpose(0, 1) + self.head_bias[lo:hi, None, :]  # [B, k, F, V]

    # ---- uncached coding mode (training, tests, reference) ---------------------------------
    def forward_coding(self, codes: torch.Tensor, context_frames: int = DEFAULT_CONTEXT_FRAMES,
                       chunk_frames: int = 2,
                       levels: tuple[int, int] | None = None) -> torch.Tensor:
        """Coding-mode logits of every chunk of a sequence, without a cache.

        Args:
            codes: int64 [B, K, F], F a multiple of ``chunk_frames``; the coding view of every
                chunk (base visible, fine levels visible / MASK / MASK_UPPER). The memory of
                each chunk is built from its base levels only.
            context_frames: entropy-context reach R in [0, max_context_frames].
            chunk_frames: C in [1, 5].
            levels: (lo, hi) levels whose logits to compute; default all K input levels.

        Returns:
            float32 logits [B, hi - lo, F, V]; the first chunk sees an empty memory, like a
            fresh ``init_state``.

        Raises:
            TypeError: codes is not a torch.Tensor.
            ConfigError: wrong dtype, shape or ids; R, C or levels out of range; F not a
                multiple of C.
        """
        codes = self._check_tokens(codes, "codes")
        r, c = self._check_context(context_frames, chunk_frames)
        lo, hi = self._check_levels(levels, codes.shape[1])
        f = codes.shape[2]
        if f % c:
            raise ConfigError(f"codes must hold a whole number of chunks: F={f} is not a "
                              f"multiple of chunk_frames={c}")
        n_mem = context_chunks(r, c)
        t = torch.arange(f)
        chunk = t // c
        dist = t[:, None] - t[None, :]
        same = chunk[:, None] == chunk[None, :]
        back = chunk[:, None] - chunk[None, :]
        mem_ok = (back >= 1) & (back <= n_mem)
        blocked = torch.full((f, f), _NEG_INF)

        x = torch.cat([self._embed(self._memory_view(codes)), self._embed(codes)], dim=1)
        for li, blk in enumerate(self.blocks):
            self_b = self._rel(self.rel_bias_self[li], dist)  # [H, F, F]
            mem_b = self._rel(self.rel_bias_mem[li], dist)
            top = torch.cat([self_b.masked_fill(~same, _NEG_INF),
                             blocked.expand_as(self_b)], dim=2)
            bottom = torch.cat([mem_b.masked_fill(~mem_ok, _NEG_INF),
                                self_b.masked_fill(~same, _NEG_INF)], dim=2)
            bias = torch.cat([top, bottom], dim=1)  # [H, 2F, 2F]
            q, k, v = blk.project(x)
            x = blk.finish(x, _attend(q, k, v, bias))
        return self._heads(x[:, f:], lo, hi)

    # ---- concealment mode ---------------------------------------------------------------
    def forward_conceal(self, codes: torch.Tensor,
                        levels: tuple[int, int] | None = None) -> torch.Tensor:
        """Bidirectional-window logits (concealment of lost base tokens; uncached).

        Args:
            codes: int64 [B, K, W]; base levels of received frames visible, of lost frames
                ``MASK``. Fine levels (>= 3) are ignored (replaced by MASK_UPPER).
            levels: (lo, hi) levels whose logits to compute; default the base levels.

        Returns:
            float32 logits [B, hi - lo, W, V].

        Raises:
            TypeError / ConfigError: as ``forward_coding``.
        """
        codes = self._check_tokens(codes, "codes")
        lo, hi = self._check_levels(levels, codes.shape[1]) if levels is not None else (
            0, self.cfg.base_codebooks)
        w = codes.shape[2]
        t = torch.arange(w)
        dist = t[:, None] - t[None, :]
        x = self._embed(self._memory_view(codes))
        for li, blk in enumerate(self.blocks):
            q, k, v = blk.project(x)
            x = blk.finish(x, _attend(q, k, v, self._rel(self.rel_bias_self[li], dist)))
        return self._heads(x, lo, hi)

    # ---- cached coding mode (streaming) -----------------------------------------------------
    def _check_chunk(self, tokens: Any, state: SpringLMState, name: str,
                     levels_name: str) -> torch.Tensor:
        """Validates a state and one chunk of tokens [B, levels, C] that must match it."""
        if not isinstance(state, SpringLMState):
            raise TypeError(f"state must be a SpringLMState from init_state, got "
                            f"{type(state).__name__}")
        x_tok = self._check_tokens(tokens, name)
        b, _, c = x_tok.shape
        if b != state.batch or c != state.chunk_frames:
            raise ConfigError(f"{name} must be [B={state.batch}, {levels_name}, "
                              f"C={state.chunk_frames}] to match the state, got "
                              f"{tuple(x_tok.shape)}")
        return x_tok

    def init_state(self, batch: int, context_frames: int = DEFAULT_CONTEXT_FRAMES,
                   chunk_frames: int = 2) -> SpringLMState:
        """An empty, preallocated coding memory.

        Args:
            batch: B >= 1 streams in lockstep.
            context_frames: R in [0, max_context_frames]; the memory holds R // C chunks.
            chunk_frames: C in [1, 5].

        Raises:
            ConfigError: an argument out of range.
        """
        from .._validate import int_in

        b = int_in("batch", batch, 1, 1 << 16)
        r, c = self._check_context(context_frames, chunk_frames)
        cap = context_chunks(r, c) * c
        cfg = self.cfg
        dh = cfg.dim // cfg.n_heads
        p = self.embed.weight
        shape = (cfg.n_layers, b, cfg.n_heads, cap, dh)
        return SpringLMState(
            keys=torch.zeros(shape, dtype=p.dtype, device=p.device),
            values=torch.zeros(shape, dtype=p.dtype, device=p.device),
            slot_frame=torch.zeros(cap, dtype=torch.int64, device=p.device),
            valid=torch.zeros(cap, dtype=torch.bool, device=p.device),
            write=0, frames=0, context_frames=r, chunk_frames=c)

    @torch.no_grad()
    def step(self, chunk_tokens: torch.Tensor, state: SpringLMState, commit: bool = True,
             levels: tuple[int, int] | None = None) -> tuple[torch.Tensor, SpringLMState]:
        """One chunk of the coding stream against the cached memory.

        Args:
            chunk_tokens: int64 [B, K, C], the chunk's coding view (as ``forward_coding``).
            state: from ``init_state`` (same B and C); updated in place when committing.
            commit: True: run pass 1 on the chunk's base tokens and append it to the memory
                (the oldest chunk drops out); False ("peek"): leave the memory untouched,
                e.g. for progressive forwards with more fine groups revealed.
            levels: (lo, hi) levels whose logits to compute; default all K input levels.

        Returns:
            (float32 logits [B, hi - lo, C, V], state). Equal to the corresponding slice of
            ``forward_coding`` over the whole stream (to float rounding, ~1e-6).

        Raises:
            TypeError / ConfigError: bad tokens, levels, or a chunk that does not match the
                state's batch or chunk size.
        """
        x_tok = self._check_chunk(chunk_tokens, state, "chunk_tokens", "K")
        c = x_tok.shape[2]
        lo, hi = self._check_levels(levels, x_tok.shape[1])
        cap = state.capacity_frames
        tq = state.frames + torch.arange(c)
        own = tq[:, None] - tq[None, :]  # [C, C]
        mem_dist = tq[:, None] - state.slot_frame[None, :]  # [C, cap]
        invalid = ~state.valid[None, :]
        do_commit = bool(commit)
        x2 = self._embed(x_tok)
        x1 = self._embed(self._memory_view(x_tok)) if do_commit else None
        new_k: list[torch.Tensor] = []
        new_v: list[torch.Tensor] = []
        for li, blk in enumerate(self.blocks):
            self_b = self._rel(self.rel_bias_self[li], own)  # [H, C, C]
            q2, k2, v2 = blk.project(x2)
            if cap:
                mem_b = self._rel(self.rel_bias_mem[li], mem_dist).masked_fill(invalid, _NEG_INF)
                keys = torch.cat([state.keys[li], k2], dim=2)
                vals = torch.cat([state.values[li], v2], dim=2)
                a2 = _attend(q2, keys, vals, torch.cat([mem_b, self_b], dim=2))
            else:
                a2 = _attend(q2, k2, v2, self_b)
            if x1 is not None:
                q1, k1, v1 = blk.project(x1)
                new_k.append(k1)
                new_v.append(v1)
                x1 = blk.finish(x1, _attend(q1, k1, v1, self_b))
            x2 = blk.finish(x2, a2)
        logits = self._heads(x2, lo, hi)
        if do_commit:
            if cap:
                w = state.write
                state.keys[:, :, :, w:w + c] = torch.stack(new_k)
                state.values[:, :, :, w:w + c] = torch.stack(new_v)
                state.slot_frame[w:w + c] = tq
                state.valid[w:w + c] = True
                state.write = (w + c) % cap
            state.frames += c
        return logits, state

    @torch.no_grad()
    def commit(self, base_tokens: torch.Tensor, state: SpringLMState) -> SpringLMState:
        """Appends a chunk to the memory from its base tokens alone (no logits).

        Args:
            base_tokens: int64 [B, k, C] with k >= 1 levels; levels >= 3 are ignored.
            state: updated in place and returned.
        """
        x_tok = self._check_chunk(base_tokens, state, "base_tokens", "k")
        c = x_tok.shape[2]
        cap = state.capacity_frames
        if cap:
            tq = state.frames + torch.arange(c)
            own = tq[:, None] - tq[None, :]
            x1 = self._embed(self._memory_view(x_tok))
            w = state.write
            for li, blk in enumerate(self.blocks):
                q1, k1, v1 = blk.project(x1)
                state.keys[li, :, :, w:w + c] = k1
                state.values[li, :, :, w:w + c] = v1
                if li + 1 < len(self.blocks):
                    x1 = blk.finish(x1, _attend(q1, k1, v1,
                                                self._rel(self.rel_bias_self[li], own)))
            state.slot_frame[w:w + c] = tq
            state.valid[w:w + c] = True
            state.write = (w + c) % cap
        state.frames += c
        return state


__all__ = [
    "DEFAULT_CONTEXT_FRAMES",
    "MASK",
    "MASK_UPPER",
    "SPRINGLM_PRESETS",
    "SpringLM",
    "SpringLMConfig",
    "SpringLMState",
    "context_chunks",
    "springlm_default",
    "springlm_large",
    "springlm_tiny",
]
