"""Device choice and the little that DistributedDataParallel needs, so the engine reads the same
with one process or under ``torchrun --nproc_per_node=N`` (NCCL on GPUs, gloo on CPUs)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import ConfigError


@dataclass(frozen=True)
class Process:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU. Asking for a device that is not there
    is an error, not a silent fallback (a 'GPU run' that trained on the CPU wastes a day)."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: torch sees no CUDA GPU (torch {torch.__version__})")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps': Apple's Metal backend is not available here")
    if name not in ("cpu", "mps"):
        raise ConfigError(f"device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def setup(device: str = "auto") -> Process:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
    return Process(rank, world, dev)


def all_reduce_sum(t: torch.Tensor, proc: Process) -> torch.Tensor:
    if proc.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, proc: Process) -> bool:
    """True on every rank when it is True on one (a cancel must stop all ranks together)."""
    if proc.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=proc.device)
    return bool(all_reduce_sum(t, proc).item() > 0)


def weights_agree(model: torch.nn.Module, proc: Process) -> bool:
    """All ranks hold the same weights (DDP's promise, checked once at the end of a run)."""
    if proc.world == 1:
        return True
    with torch.no_grad():
        s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        lo, hi = s.clone(), s.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool((hi - lo).abs().item() <= 1e-6 * max(1.0, s.abs().item()))


def cleanup(proc: Process) -> None:
    if proc.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
