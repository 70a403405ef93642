"""Where a run executes: the process's rank under torchrun, its device, mixed precision and memory
format."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from archspec.errors import ArchspecError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_available():
        raise ArchspecError("torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def close_distributed(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()


def device_kind(name: str) -> str:
    """"cuda" or "cpu": the kind `pick_device(name)` will give, before any process group exists."""
    return "cuda" if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()) else "cpu"


def pick_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArchspecError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
        return torch.device(f"cuda:{dist.local_rank}" if dist.world > 1 else name)
    return torch.device("cpu")


def autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()  # entering a disabled torch.autocast costs a few µs a step
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@dataclass(frozen=True)
class Runtime:
    """The device a run computes on, its autocast mode ("off", "bf16", "fp16") and memory format."""

    device: torch.device
    amp: str = "off"
    channels_last: bool = False

    def to(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def autocast(self):
        return autocast(self.device, self.amp)
