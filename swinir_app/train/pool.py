"""Real-ESRGAN's training-pair pool: batches are mixed across iterations, so one batch holds patches of many
degradations (``queue_size`` in Real-ESRGAN's options; ``RealESRGANModel._dequeue_and_enqueue``).

The pool fills with the first ``queue_size / batch`` batches, which train as they come. Once full, every
iteration shuffles it, trains on its first ``batch`` pairs and puts the new batch in their place. The shuffle
comes from a generator seeded by (run seed, rank, iteration), and the pool itself is saved with each training
state, so a resumed run trains on exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor


class PairPool:
    """A pool of ``size`` (LQ, GT) training pairs, on the training device.

    Args:
        size: pairs held (Real-ESRGAN: 180); a multiple of the batch size per process.
        seed: the run's seed; ``rank``: this process's rank (each has its own pool).
    """

    def __init__(self, size: int, seed: int, rank: int = 0):
        self.size, self.seed, self.rank = size, seed, rank
        self.lq: Tensor | None = None
        self.gt: Tensor | None = None
        self.filled = 0

    def allocate(self, lq_shape: Tuple[int, ...], gt_shape: Tuple[int, ...], device: torch.device) -> None:
        """Hold the pool's memory now, for pairs of these (C, h, w) shapes, rather than at the first step: a
        ``queue_size`` too large fails at setup, before the experiment folder is touched. Raises ValueError."""
        per_pair = 4 * (math.prod(lq_shape) + math.prod(gt_shape))  # float32
        need = self.size * per_pair
        free = _free_memory(device)
        if free is not None and need > free:
            raise ValueError(f"{self.size:,} pairs of {tuple(lq_shape)} + {tuple(gt_shape)} floats need "
                             f"{need / 2 ** 30:,.1f} GiB on {device}, {free / 2 ** 30:,.1f} GiB is free")
        try:
            self.lq = torch.zeros((self.size, *lq_shape), device=device)
            self.gt = torch.zeros((self.size, *gt_shape), device=device)
        except (RuntimeError, MemoryError) as e:  # torch.OutOfMemoryError is a RuntimeError
            self.lq = self.gt = None
            raise ValueError(f"{self.size:,} pairs ({need / 2 ** 30:,.1f} GiB) cannot be allocated on {device}: "
                             f"{str(e).splitlines()[0]}") from None

    def swap(self, lq: Tensor, gt: Tensor, it: int) -> Tuple[Tensor, Tensor]:
        """The batch to train on at iteration ``it``, given the batch just loaded.

        ``lq`` (B, C, h, w) and ``gt`` (B, C, H, W) float tensors; B must divide the pool's size.
        Raises ValueError otherwise.
        """
        b = lq.shape[0]
        if self.size % b:
            raise ValueError(f"queue_size {self.size} is not a multiple of the batch size {b}")
        if self.lq is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        if self.filled < self.size:  # filling: the batch trains as it comes
            self.lq[self.filled:self.filled + b] = lq
            self.gt[self.filled:self.filled + b] = gt
            self.filled += b
            return lq, gt
        g = torch.Generator().manual_seed(hash((self.seed, self.rank, it)) & (2 ** 63 - 1))
        order = torch.randperm(self.size, generator=g).to(self.lq.device)
        self.lq, self.gt = self.lq[order], self.gt[order]
        out = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b], self.gt[:b] = lq, gt
        return out

    def state_dict(self) -> Dict[str, object]:
        """The pairs held (on the CPU) and how many; loadable with ``torch.load(weights_only=True)``."""
        return {"size": self.size, "filled": self.filled,
                "lq": None if self.lq is None else self.lq.cpu(), "gt": None if self.gt is None else self.gt.cpu()}

    def load_state_dict(self, state: Dict[str, object], device: torch.device) -> None:
        """Restore a pool saved by :meth:`state_dict`. Raises ValueError if it was saved with another size."""
        if state["size"] != self.size:
            raise ValueError(f"the saved pool holds {state['size']} pairs, queue_size is {self.size}")
        self.filled = int(state["filled"])
        self.lq = None if state["lq"] is None else state["lq"].to(device)
        self.gt = None if state["gt"] is None else state["gt"].to(device)


def _free_memory(device: torch.device) -> Optional[int]:
    """Bytes free for a new tensor on ``device`` (MemAvailable on Linux CPUs), or None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None
