"""torchrun plumbing: one process per device, NCCL on GPUs and gloo on CPU.

``python -m train.run`` and ``python -m train.stylize_cache`` run as a single process; ``torchrun
--nproc_per_node=K -m ...`` sets RANK / WORLD_SIZE / LOCAL_RANK, which ``setup`` reads. Nothing here
is home-made distribution: it only starts the process group and offers the few collectives the
trainer (DistributedDataParallel) and the offline stylizer (one shard of the work per rank) need. It
lives in ``fastnst`` so that both can use it (``fastnst`` never imports ``fastnst.train``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fastnst.cli import UsageError, check_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        check_device(requested, instead="cpu (or auto)")
        return torch.device("cuda", local_rank)
    if requested != "cpu":
        raise UsageError(f"--device must be auto, cpu or cuda, got {requested!r}")
    return torch.device("cpu")


def launched() -> bool:
    """Whether torchrun started this process as one of several (its environment says so)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current(device: torch.device = torch.device("cpu")) -> DistInfo:
    """The started process group's rank and size (by ``setup`` or by the caller), else a single process."""
    if not dist.is_initialized():
        return DistInfo(device=device)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), device)


def setup(requested_device: str = "auto") -> DistInfo:
    """Start the process group when launched by torchrun; otherwise a single-process DistInfo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return DistInfo(rank, world_size, local_rank, device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks, in place (returns the tensor for chaining)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), indexed by rank."""
    if not info.enabled:
        return [obj]
    gathered = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks."""
    if not info.enabled:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(info.world_size)
