"""Residual vector quantizer with EMA codebooks, dead-code restarts and quantizer dropout.

Level k quantizes the residual left by levels 0..k-1 with its own codebook [V, D].
Codebooks are not trained by gradients: each level keeps an exponential moving average of
the assignment counts and of the sum of assigned vectors (the k-means update of VQ-VAE-2
/ SoundStream). A code whose EMA count falls under ``dead_code_threshold`` is restarted
from a random residual of the current batch. Quantizer dropout picks, per batch item, how
many levels the decoder sees (from ``dropout_codebooks``, or uniform in [1, K] with
probability ``random_codebooks_prob``), so one model serves every bitrate.

Two implementations of the greedy residual search share the same definition (per level,
the codeword minimising ||r - c||^2, then r -= c): the PyTorch one (``_nearest``), which
the training forward always uses and which stays the reference, and the C++ kernel
``soundspring._core.rvq.Codebooks`` (csrc/core/rvq_search.h), which ``encode`` uses at
inference (``torch.inference_mode`` or no grad, float32 codebooks on the CPU) and
``models.rd`` uses for the transmitter. The kernel is deterministic float32 (the same
tokens for every ISA level and thread count) and differs from PyTorch's BLAS only where two
candidates are within float rounding of each other; every inference path (offline
``Codec.encode``, streaming ``encode_step``, the transmitter's rate-distortion search) uses
it, so streaming == offline holds bit for bit. ``SOUNDSPRING_RVQ_ISA`` (``auto``,
``generic``, ``sse2``, ``avx2``, ``avx512``) forces its kernel level; it never changes the
tokens.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._native import core
from ..config import CodecConfig
from ..errors import ConfigError, NativeFeatureError

SEARCH_BACKENDS = ("auto", "native", "torch")
"""``ResidualVQ.encode(search=...)``: ``auto`` is the C++ kernel at inference (the PyTorch
search while gradients are recorded or where the kernel cannot run), ``native`` insists on
the kernel, ``torch`` is the PyTorch reference."""

RVQ_ISA_ENV = "SOUNDSPRING_RVQ_ISA"
"""Environment variable forcing the C++ search's kernel level (never changes the tokens)."""

# ResidualVQ -> (codebooks tensor, (version, isa, threads), packed codebooks): outside the modules' __dict__, so that deepcopy and
# pickling of a codec never meet the (uncopyable) native object; entries go with the module.
_NATIVE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class RVQOutput:
    """Training forward of the RVQ.

    Attributes:
        quantized: straight-through quantized latents [B, D, F] (sum of the first n_q[b]
            levels for item b).
        codes: int64 [B, K, F] for all K levels.
        commit_loss: mean squared distance between latents and their quantization.
        n_q: int64 [B] levels used per item.
        perplexity: float [K] codebook perplexity per level in this batch.
        usage: float [K] fraction of codes used at least once per level in this batch.
        residual_rel: float [K] energy of the residual left after level k relative to the
            latent energy (how much each level still has to explain: fine levels earn
            their bits when this keeps falling).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    n_q: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    residual_rel: torch.Tensor


def _distributed() -> bool:
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def _mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of t over data-parallel ranks (t itself in one process): EMA statistics of
    every rank's batch, so replicas keep identical codebooks."""
    if not _distributed():
        return t
    t = t.contiguous()
    torch.distributed.all_reduce(t)
    return t / torch.distributed.get_world_size()


def _from_rank0(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's t on every rank (random codebook (re)initialisations agree)."""
    if _distributed():
        t = t.contiguous()
        torch.distributed.broadcast(t, src=0)
    return t


class ResidualVQ(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        k, v, d = cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim
        self.n_codebooks, self.codebook_size, self.dim = k, v, d
        self.decay = cfg.ema_decay
        self.dead = cfg.dead_code_threshold
        self.dropout_choices = tuple(cfg.dropout_codebooks)
        self.random_prob = cfg.random_codebooks_prob
        self.register_buffer("codebooks", torch.randn(k, v, d) * 0.1)
        # Training-only EMA statistics (not shipped; rebuilt by ``reset_ema``).
        self.register_buffer("ema_count", torch.ones(k, v))
        self.register_buffer("ema_sum", self.codebooks.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    TRAINING_ONLY = ("ema_count", "ema_sum", "initialized")

    def reset_ema(self, count: float = 1.0) -> None:
        """Rebuilds EMA statistics from the codebooks (after loading shipped weights)."""
        self.ema_count.fill_(count)
        self.ema_sum.copy_(self.codebooks * count)
        self.initialized.fill_(True)

    @staticmethod
    def _nearest(x: torch.Tensor, cb: torch.Tensor, cb_norm: torch.Tensor | None = None,
                 extra_cost: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, D], cb [V, D] (squared norms [V] if known) -> argmin index [N] of the
        squared distance (plus ``extra_cost`` [N, V] when given)."""
        if cb_norm is None:
            cb_norm = (cb * cb).sum(1)
        d = cb_norm[None, :] - 2.0 * (x @ cb.t())
        if extra_cost is not None:
            d = d + extra_cost.to(d.dtype)
        return d.argmin(dim=1)

    def _codebook_norms(self) -> torch.Tensor:
        """Squared codeword norms [K, V], cached while the codebooks are unchanged (the
        streaming encoder calls ``encode`` every chunk); same ops as ``_nearest``."""
        key = (self.codebooks.data_ptr(), self.codebooks._version)
        cache = getattr(self, "_norm_cache", None)
        if cache is None or cache[0] != key:
            with torch.no_grad():
                norms = torch.stack([(cb * cb).sum(1) for cb in self.codebooks])
            cache = (key, norms)
            self._norm_cache = cache
        return cache[1]

    @torch.no_grad()
    def nearest_rd(self, r: torch.Tensor, level: int, bits: torch.Tensor | None = None,
                   rd_lambda: float = 0.0) -> torch.Tensor:
        """Rate-distortion choice of level ``level``'s codes for residuals r [N, D]:
        argmin over v of ||r - c_v||^2 + rd_lambda * bits[:, v] (bits float [N, V]: what
        coding v would cost). rd_lambda = 0 (or bits None) is the nearest codeword, as
        ``encode`` picks it."""
        rate = None if bits is None or rd_lambda == 0.0 else rd_lambda * bits
        return self._nearest(r, self.codebooks[level], self._codebook_norms()[level], rate)

    def native_search(self) -> core.rvq.Codebooks | None:
        """The C++ search over the current codebooks, packed once and cached while they are
        unchanged (like ``_codebook_norms``) and while the kernel level
        (``SOUNDSPRING_RVQ_ISA``) and ``torch.get_num_threads()`` stay the same; None where it
        cannot run (codebooks not float32 on the CPU, or an extension built without it).

        Raises:
            ConfigError: ``SOUNDSPRING_RVQ_ISA`` names an unknown level or one this CPU
                cannot run.
        """
        cb = self.codebooks
        if cb.dtype != torch.float32 or cb.device.type != "cpu" or not hasattr(core, "rvq"):
            return None  # (no ``rvq`` submodule: an extension built before the kernel)
        isa = os.environ.get(RVQ_ISA_ENV, "auto")
        threads = max(1, min(256, torch.get_num_threads()))
        key = (cb._version, isa, threads)
        cache = _NATIVE_CACHE.get(self)
        # the tensor itself, not its address: a replaced buffer may reuse a freed one's
        if cache is None or cache[0] is not cb or cache[1] != key:
            with torch.no_grad():
                packed = np.ascontiguousarray(cb.detach().numpy())
            cache = (cb, key, core.rvq.Codebooks(packed, isa=isa, num_threads=threads))
            _NATIVE_CACHE[self] = cache
        return cache[2]

    def encode(self, z: torch.Tensor, n_q: int, search: str = "auto") -> torch.Tensor:
        """z [B, D, F] -> codes int64 [B, n_q, F] (greedy residual search).

        Args:
            z: float latents [B, D, F].
            n_q: levels to choose, in [1, K].
            search: one of ``SEARCH_BACKENDS``; ``auto`` runs the C++ kernel under
                ``torch.inference_mode`` / no grad and the PyTorch search otherwise.

        Raises:
            ConfigError: z not [B, D, F], n_q out of range, unknown ``search``.
            NativeFeatureError: ``search="native"`` where the kernel cannot run (gradients
                recorded, codebooks not float32 on the CPU).
        """
        if search not in SEARCH_BACKENDS:
            raise ConfigError(f"search must be one of {SEARCH_BACKENDS}, got {search!r}")
        if z.ndim != 3 or z.shape[1] != self.dim:
            raise ConfigError(f"z must be float [B, D={self.dim}, F], got {tuple(z.shape)}")
        if (isinstance(n_q, bool) or not isinstance(n_q, (int, np.integer))
                or not 1 <= n_q <= self.n_codebooks):
            raise ConfigError(f"n_q must be an int in [1, {self.n_codebooks}], got {n_q!r}")
        n_q = int(n_q)
        b, d, f = z.shape
        inference = torch.is_inference_mode_enabled() or not torch.is_grad_enabled()
        native = self.native_search() if inference and search != "torch" else None
        if search == "native" and native is None:
            raise NativeFeatureError("the C++ RVQ search needs inference mode (or no grad) and "
                                     "float32 codebooks on the CPU")
        if native is not None:
            r = z.detach().transpose(1, 2).reshape(b * f, d)  # [B*F, D]
            r_np = np.array(r.to(device="cpu", dtype=torch.float32).numpy(), dtype=np.float32,
                            order="C", copy=True)  # the kernel updates it in place
            codes = torch.from_numpy(native.search(r_np, 0, n_q))  # [n_q, B*F]
            return codes.view(n_q, b, f).permute(1, 0, 2).contiguous().to(z.device)
        r = z.transpose(1, 2).reshape(b * f, d)
        norms = self._codebook_norms() if inference else None
        codes = []
        for k in range(n_q):
            cb = self.codebooks[k]
            idx = self._nearest(r, cb, None if norms is None else norms[k])
            r = r - cb[idx]
            codes.append(idx)
        return torch.stack(codes, dim=1).reshape(b, f, n_q).transpose(1, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int64 [B, n_q, F] -> latents [B, D, F] (sum of the codebook vectors)."""
        b, n_q, f = codes.shape
        q = torch.zeros(b, f, self.dim, dtype=self.codebooks.dtype, device=codes.device)
        for k in range(n_q):
            q = q + self.codebooks[k][codes[:, k]]
        return q.transpose(1, 2)

    def sample_n_q(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Quantizer dropout: levels per item, int64 [B]."""
        choices = torch.tensor(self.dropout_choices)
        pick = choices[torch.randint(len(choices), (batch,), generator=generator)]
        rand = torch.randint(1, self.n_codebooks + 1, (batch,), generator=generator)
        use_rand = torch.rand(batch, generator=generator) < self.random_prob
        return torch.where(use_rand, rand, pick)

    @torch.no_grad()
    def _ema_update(self, k: int, r: torch.Tensor, idx: torch.Tensor) -> None:
        v = self.codebook_size
        onehot_count = torch.bincount(idx, minlength=v).to(r.dtype)
        sums = torch.zeros(v, self.dim, dtype=r.dtype).index_add_(0, idx, r)
        onehot_count, sums = _mean_over_ranks(onehot_count), _mean_over_ranks(sums)
        self.ema_count[k].mul_(self.decay).add_(onehot_count, alpha=1 - self.decay)
        self.ema_sum[k].mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count[k].sum()
        count = (self.ema_count[k] + 1e-5) / (n + v * 1e-5) * n  # Laplace smoothing
        self.codebooks[k].copy_(self.ema_sum[k] / count[:, None])
        dead = self.ema_count[k] < self.dead
        n_dead = int(dead.sum())
        if n_dead:
            pick = r[torch.randint(r.shape[0], (n_dead,))]
            pick = _from_rank0(pick + 1e-3 * pick.std() * torch.randn_like(pick))
            mean_count = float(self.ema_count[k].mean())
            self.codebooks[k][dead] = pick
            self.ema_sum[k][dead] = pick * mean_count
            self.ema_count[k][dead] = mean_count

    @torch.no_grad()
    def _init_from(self, k: int, r: torch.Tensor) -> None:
        # Batch vectors plus noise: without noise level 0 would copy every vector exactly
        # and leave zero residuals (and useless codebooks) to the levels after it.
        pick = r[torch.randint(r.shape[0], (self.codebook_size,))]
        pick = _from_rank0(pick + 0.1 * r.std(dim=0, keepdim=True) * torch.randn_like(pick))
        count = r.shape[0] / self.codebook_size  # expected assignments per code and step
        self.codebooks[k].copy_(pick)
        self.ema_sum[k].copy_(pick * count)
        self.ema_count[k].fill_(count)

    def forward(self, z: torch.Tensor, n_q: torch.Tensor | None = None) -> RVQOutput:
        """Training/analysis forward. z [B, D, F]; n_q int64 [B] (default: sampled in
        training, all K in eval). EMA updates happen only in training mode."""
        b, d, f = z.shape
        if n_q is None:
            n_q = (self.sample_n_q(b) if self.training
                   else torch.full((b,), self.n_codebooks, dtype=torch.long))
        zf = z.detach().transpose(1, 2).reshape(b * f, d)
        r = zf
        q_sel = torch.zeros_like(zf)
        keep_items = n_q.to(z.device)[:, None].expand(b, f).reshape(b * f)  # [B*F]
        codes, ppl, usage, res = [], [], [], []
        energy = (zf * zf).sum().clamp_min(1e-12)
        first = self.training and not bool(self.initialized)
        for k in range(self.n_codebooks):
            if first:
                self._init_from(k, r)
            idx = self._nearest(r, self.codebooks[k])
            if self.training:
                self._ema_update(k, r, idx)
            qk = self.codebooks[k][idx]
            q_sel = q_sel + qk * (keep_items > k).to(qk.dtype)[:, None]
            r = r - qk
            codes.append(idx)
            with torch.no_grad():
                p = torch.bincount(idx, minlength=self.codebook_size).float() / idx.numel()
                ppl.append(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
                usage.append((p > 0).float().mean())
                res.append((r * r).sum() / energy)
        if first:
            self.initialized.fill_(True)
        q = q_sel.reshape(b, f, d).transpose(1, 2)
        commit = torch.mean((z - q) ** 2)
        quantized = z + (q - z).detach()
        codes_t = torch.stack(codes, dim=1).reshape(b, f, self.n_codebooks).transpose(1, 2)
        return RVQOutput(quantized, codes_t, commit, n_q, torch.stack(ppl), torch.stack(usage),
                         torch.stack(res))
