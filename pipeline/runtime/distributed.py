"""Data-parallel training under `torchrun`: process-group setup and the few collectives the
train stage needs. Without torchrun (no WORLD_SIZE in the environment) everything is a no-op
and the stage runs as one process."""
from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist


class World(NamedTuple):
    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def start(device: torch.device) -> World:
    """Join the torchrun process group (NCCL on CUDA, gloo on the CPU); one GPU per process,
    chosen by LOCAL_RANK. Returns World(0, 1, device) when not launched by torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), device)


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def sum_all(world: World, values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of a float64 CPU tensor over all processes (gloo and NCCL)."""
    if world.size == 1:
        return values
    moved = values.to(world.device)
    dist.all_reduce(moved)
    return moved.cpu()
