"""Data-parallel training across processes (``torchrun --nproc-per-node N``).

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them a run is one
process and nothing here touches ``torch.distributed``. The process group uses gloo on
CPU and nccl when CUDA is present. Every rank trains on its own crops; gradients are
averaged by ``DistributedDataParallel`` and the codec's EMA codebooks by
``models.rvq`` (so every replica holds the same weights after every step); rank 0 alone
writes checkpoints, logs and evaluations, and decides when the run stops, evaluates or
checkpoints (``training.loop``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import torch
from torch import nn

from ..errors import ConfigError

RANK_SEED_STRIDE = 1_000_003
"""Seed offset between ranks' data samplers and RNGs (a prime: streams never coincide)."""


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def seed(self, base: int) -> int:
        """A per-rank seed derived from ``base`` (rank 0 keeps ``base``)."""
        return base + self.rank * RANK_SEED_STRIDE


def init_distributed() -> DistInfo:
    """Joins the torchrun process group if the environment names one (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size())


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """``module`` under DistributedDataParallel when the run has several processes.

    Buffers are not broadcast: the only trained buffers (the codec's EMA codebooks) are
    averaged across ranks where they are updated.
    """
    if not info.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, broadcast_buffers=False)


def sync_decisions(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise maximum of ``values`` over ranks (one collective; a no-op alone).

    Non-negative flags and numbers that only rank 0 fills in (others pass 0) come back
    as rank 0's, and flags any rank raises (a stop signal) come back raised everywhere.
    """
    if not info.active:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def state_digest(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, shape, bytes): equal digests mean
    equal replicas."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def replica_digests(module: nn.Module, info: DistInfo) -> list[str]:
    """Every rank's ``state_digest`` (rank order); all ranks must call it together."""
    mine = state_digest(module)
    if not info.active:
        return [mine]
    import torch.distributed as dist

    out: list[str | None] = [None] * info.world
    dist.all_gather_object(out, mine)
    return [str(d) for d in out]


def shutdown(info: DistInfo) -> None:
    """Leaves the process group (end of a distributed run)."""
    if info.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
