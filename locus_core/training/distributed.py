"""Data-parallel training on CPU (gloo): process group set-up and a differentiable all-gather.

Every process draws the same batch and the same landmarks (both are functions of seed and step),
runs the head on its share of the frames, and all-gathers the features so that each process
computes the loss of the whole batch. The all-gather's backward sums the gradient every process
computed for each shard (``world_size`` × the single-process gradient, since all compute the same
loss); DDP's gradient averaging then divides by ``world_size``: parameters receive exactly the
single-process gradient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env() -> World:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), gloo backend; else single."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size())


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def barrier() -> None:
    if current().size > 1:
        dist.barrier()


class _GatherShards(torch.autograd.Function):
    """all_gather forward; backward sums every process's gradient of the gathered tensor
    (all_reduce) and returns this process's slice. (``torch.distributed.nn.functional.all_gather``
    gave wrong gradients on gloo in torch 2.14: its all-to-all backward; see the DDP test.)"""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), local.shape[0]
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_shards(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``local`` along dim 0 (equal shapes), with gradient flowing back
    to each process's own shard. Identity for a single process."""
    if current().size == 1:
        return local
    return _GatherShards.apply(local)
