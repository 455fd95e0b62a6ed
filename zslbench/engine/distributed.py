"""Training across processes with ``torch.distributed`` (``torchrun`` / ``zslbench run --nproc N``).

The engine stays one loop: this module tells it who it is (:func:`current`), splits each global
batch and each evaluation set between the ranks, gathers evaluation outputs, and shares rank 0's
decisions (run id, run folder). Only rank 0 logs to MLflow, writes checkpoints and prints.

A run with the same global batch gives the same metrics on 1 or N processes (within float
tolerance): every rank walks the same global permutation and takes its slice of each batch, the
loss of a slice is weighted by its share of the global batch before DDP averages the gradients,
and evaluation shards are contiguous, so the gathered scores come back in single-process order.

Two kinds of collective, two groups. DistributedDataParallel reduces gradients on the group that
serves the model's device (:func:`device_group`); everything the engine itself exchanges — loss
sums, the finiteness flag, gathered scores, broadcast decisions, barriers — lives in host memory and
goes through :func:`host_group`, a group that serves CPU tensors. On CUDA the default group is
``cpu:gloo,cuda:nccl`` (both in one); when the default group serves CUDA only (nccl alone, e.g.
created by another launcher), a gloo group is added for the host side. nccl would otherwise reject
every host tensor (``No backend type associated with device type cpu``).

The group's timeout (``train.dist_timeout`` minutes, default 60, vs nccl's own 10) covers the
longest wait of one rank for another: rank 0 generating the synthetic benchmark while the others
wait (:func:`on_main_first`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_TIMEOUT_MINUTES = 60
_host_groups: dict[int, Any] = {}  # id(default group) → its host-side group


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


def init_from_env(device_type: str = "cpu", timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> Dist:
    """Join the process group described by torchrun's environment (a no-op for a single process).

    gloo on CPU; on CUDA ``cpu:gloo,cuda:nccl`` (gradients over nccl, host-side values over gloo),
    each rank on device ``LOCAL_RANK``. A group created before (by another launcher) is kept.
    """
    import torch.distributed as dist

    if not launched_by_torchrun():
        return Dist()
    if not dist.is_initialized():
        if device_type == "cuda":
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend_for(device_type), timeout=timedelta(minutes=timeout_minutes))
    host_group()  # collective: created now, while every rank is at the same place
    return current()


def backend_for(device_type: str) -> str:
    """The process-group backend of a run on ``device_type``.

    >>> backend_for("cuda"), backend_for("cpu")
    ('cpu:gloo,cuda:nccl', 'gloo')
    """
    return "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"


def served_device_types(group: Any = None) -> set[str]:
    """The device types whose tensors ``group`` (default: the default group) can reduce.

    Read from the group's backend configuration, e.g. ``cuda:nccl`` → ``{"cuda"}``.
    """
    import torch.distributed as dist

    config = dist.get_backend_config(group)
    return {pair.split(":")[0].strip() for pair in config.split(",") if ":" in pair}


def host_group() -> Any:
    """The group for host-memory (CPU) tensors and pickled objects: the default group when it serves
    CPU tensors, else a gloo group over the same ranks (created once; every rank must call this at
    the same point the first time, as with any collective)."""
    import torch.distributed as dist

    default = dist.group.WORLD
    if "cpu" in served_device_types(default):
        return default
    key = id(default)
    if key not in _host_groups:
        _host_groups[key] = dist.new_group(backend="gloo")
    return _host_groups[key]


def device_group(device: Any) -> Any:
    """The group whose backend serves tensors on ``device`` (what DistributedDataParallel reduces on)."""
    import torch.distributed as dist

    kind = getattr(device, "type", str(device))
    if kind in served_device_types(dist.group.WORLD):
        return dist.group.WORLD
    if kind == "cpu":
        return host_group()
    raise RuntimeError(f"the process group ({dist.get_backend_config()}) serves no {kind} tensors; "
                       f"start the run with --device matching the launcher's backend")


def current() -> Dist:
    """The process's :class:`Dist` (rank 0 of 1 when no process group is initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        _host_groups.clear()
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if current().enabled:
        dist.barrier(group=host_group())


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
    dist.broadcast_object_list(box, src=0, group=host_group())
    return box[0]


def all_true(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on every rank (so all ranks stop together)."""
    import torch
    import torch.distributed as dist

    if not current().enabled:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)  # host memory: the host group's
    dist.all_reduce(value, op=dist.ReduceOp.MIN, group=host_group())
    return bool(value.item())


def min_over_ranks(value: int) -> int:
    """The smallest of every rank's ``value``."""
    import torch
    import torch.distributed as dist

    if not current().enabled:
        return value
    box = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(box, op=dist.ReduceOp.MIN, group=host_group())
    return int(box.item())


def sum_over_ranks(values: list[float]) -> list[float]:
    """The element-wise sum of ``values`` over all ranks (float64, in host memory)."""
    import torch
    import torch.distributed as dist

    if not current().enabled:
        return list(values)
    totals = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(totals, group=host_group())
    return totals.tolist()


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
    dist.all_gather_object(parts, part, group=host_group())
    filled = [p for p in parts if len(next(iter(p.values()), ())) > 0] or parts  # a rank may get no items
    return {key: np.concatenate([p[key] for p in filled]) for key in filled[0]}
