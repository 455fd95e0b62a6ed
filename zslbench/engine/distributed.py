"""Training across processes with ``torch.distributed`` (``torchrun`` / ``zslbench run --nproc N``).

The engine stays one loop: this module tells it who it is (:func:`current`), splits each global
batch and each evaluation set between the ranks, gathers evaluation outputs, and shares rank 0's
decisions (run id, run folder). Only rank 0 logs to MLflow, writes checkpoints and prints.

A run with the same global batch gives the same metrics on 1 or N processes (within float
tolerance): every rank walks the same global permutation and takes its slice of each batch, the
loss of a slice is weighted by its share of the global batch before DDP averages the gradients,
and evaluation shards are contiguous, so the gathered scores come back in single-process order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` (1 = not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_type: str = "cpu") -> Dist:
    """Join the process group described by torchrun's environment (a no-op for a single process).

    gloo on CPU, nccl on CUDA; each CUDA rank uses device ``LOCAL_RANK``.
    """
    import torch.distributed as dist

    if not launched_by_torchrun():
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return current()


def current() -> Dist:
    """The process's :class:`Dist` (rank 0 of 1 when no process group is initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if current().enabled:
        dist.barrier()


def on_main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the others (e.g. generate the synthetic data once, then read it)."""
    d = current()
    if d.main:
        result = fn()
        barrier()
        return result
    barrier()
    return fn()


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    import torch.distributed as dist

    if not current().enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_true(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on every rank (so all ranks stop together)."""
    import torch
    import torch.distributed as dist

    if not current().enabled:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def rank_slice(n: int, d: Dist) -> slice:
    """The contiguous part of ``n`` items that rank ``d.rank`` handles (sizes differ by at most 1)."""
    bounds = np.linspace(0, n, d.world + 1).round().astype(int)
    return slice(int(bounds[d.rank]), int(bounds[d.rank + 1]))


def gather_arrays(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Concatenate every rank's arrays in rank order (each rank gets the whole)."""
    import torch.distributed as dist

    d = current()
    if not d.enabled:
        return part
    parts: list[Any] = [None] * d.world
    dist.all_gather_object(parts, part)
    filled = [p for p in parts if len(next(iter(p.values()), ())) > 0] or parts  # a rank may get no items
    return {key: np.concatenate([p[key] for p in filled]) for key in filled[0]}
