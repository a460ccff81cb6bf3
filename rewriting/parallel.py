"""Data parallelism under `torchrun`: each rank takes a contiguous share of the sample numbers.

Outside torchrun (or with one process) every helper is the identity, so the same code runs in
one process. Under torchrun the process group uses gloo on CPU and NCCL on GPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_environment(device: torch.device) -> None:
    """Join the process group torchrun describes in the environment (no-op otherwise): NCCL
    when the process computes on `device` a CUDA GPU, else gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(numbers: range | list[int]) -> list[int]:
    """This rank's contiguous share of `numbers` (rank order is sample order)."""
    rank, size = rank_and_size()
    numbers = list(numbers)
    bounds = [len(numbers) * r // size for r in range(size + 1)]
    return numbers[bounds[rank] : bounds[rank + 1]]


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of `tensor` over all ranks."""
    if rank_and_size()[1] > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def concat_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's `tensor` concatenated along dim 0 in rank order."""
    if rank_and_size()[1] == 1:
        return tensor
    parts: list = [None] * rank_and_size()[1]
    dist.all_gather_object(parts, tensor)
    return torch.cat(parts)


def is_main() -> bool:
    """Whether this process writes shared outputs (rank 0)."""
    return rank_and_size()[0] == 0
