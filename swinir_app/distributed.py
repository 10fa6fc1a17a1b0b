"""torch.distributed under torchrun, for training and for the batch CLI: gloo on CPU, nccl on CUDA.

basicsr's own init is CUDA/NCCL-only; this one runs the same code on CPU (gloo), so DDP is
testable anywhere. Without a launcher everything here is a no-op for one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Union

import torch
import torch.distributed as dist
# Imported before any init_process_group: its functions take `group=group.WORLD` as a default, bound at import.
# Imported later (torch imports it lazily, e.g. when a network is built on the meta device), they would hold
# the default group past destroy_process_group, and its gloo threads would outlive the interpreter: an abort
# ("terminate called without an active exception") at exit.
import torch.distributed.nn

from .errors import UserError

LAUNCHERS = ("none", "pytorch")
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(UserError):
    """A launcher or device setting that cannot work; one line."""


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""  # "" without torch.distributed

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return bool(self.backend)


def pick_device(num_gpu: Union[int, str], local_rank: int = 0) -> torch.device:
    """CUDA when there is one and num_gpu is not 0; else the CPU."""
    if num_gpu != 0 and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible")
        return torch.device("cuda", local_rank)
    if isinstance(num_gpu, int) and num_gpu > 0:
        raise DistributedError(f"num_gpu is {num_gpu} but CUDA is not available; set num_gpu: 0 (CPU) or auto")
    return torch.device("cpu")


def setup(launcher: str, num_gpu: Union[int, str] = "auto") -> Dist:
    """One process (``none``) or one rank of a torchrun job (``pytorch``)."""
    if launcher not in LAUNCHERS:
        raise DistributedError(f"--launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
    if launcher == "none":
        return Dist(device=pick_device(num_gpu))
    missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
    if missing:
        raise DistributedError(f"--launcher pytorch runs under torchrun, which sets {', '.join(missing)}: "
                               f"torchrun --nproc_per_node=N -m swinir_app.train -opt FILE --launcher pytorch")
    rank, world, local = (int(os.environ[v]) for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = pick_device(num_gpu, local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    return Dist(rank, world, local, device, backend)


def join(device: str = "auto") -> Dist:
    """This process's place in a torchrun job (one process without one), for work split by rank:
    the batch CLI's shards. ``device`` is the one the work runs on (``--device``): nccl only when it
    is this rank's GPU, gloo otherwise (``--device cpu`` on a machine with GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local, torch.device("cuda", local) if backend == "nccl" else torch.device("cpu"),
                backend)


def backend_for(device: str) -> str:
    """The batch CLI's process-group backend for ``--device``: nccl where that is a GPU, else gloo."""
    return "nccl" if torch.cuda.is_available() and rank_device(device).startswith("cuda") else "gloo"


def rank_device(device: str) -> str:
    """``device``, with "auto" made this rank's own GPU (``cuda:LOCAL_RANK``) under torchrun."""
    if device == "auto" and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def all_sum(d: Dist, values: List[float]) -> List[float]:
    """``values`` added up over the ranks."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if d.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def cleanup(d: Dist, wait: bool = False) -> None:
    """Leave the process group. ``wait``: after a normal finish, first wait for every rank, so that no
    gloo rank tears its connections down while a peer still talks to it (that can abort the peer with
    "terminate called without an active exception"). Not on errors: a dead peer would never arrive."""
    if d.enabled and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast(d: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(d: Dist, obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    out: List[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def all_mean(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks."""
    if not d.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / d.world_size
