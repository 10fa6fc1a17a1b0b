"""The order of training samples: a stream of (epoch, index) for each rank, restartable at any sample.

With it, the batches after a resume are the batches of the straight run, whatever the number of
DataLoader workers.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import torch
from torch.utils.data import DataLoader, Sampler

from .data import RestorationDataset

__all__ = ["ResumableSampler", "train_loader"]


class ResumableSampler(Sampler):
    """An endless stream of (epoch, index) for one rank, restartable at any sample.

    Epoch ``e`` is a permutation of ``size * enlarge`` indices drawn from (seed, e) (or the identity
    without shuffle), padded to a multiple of ``world_size`` like DistributedSampler, and rank ``r``
    takes every ``world_size``-th from ``r``. ``start`` skips that many of this rank's samples: a
    resume at iteration ``it`` starts at ``it * batch_size``.
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True, enlarge: int = 1, rank: int = 0,
                 world_size: int = 1, start: int = 0):
        self.size, self.seed, self.shuffle, self.enlarge = size, seed, shuffle, enlarge
        self.rank, self.world_size, self.start = rank, world_size, start
        self.per_rank = math.ceil(size * enlarge / world_size)

    def epoch_of(self, position: int) -> int:
        return position // self.per_rank

    def order(self, epoch: int) -> List[int]:
        total = self.size * self.enlarge
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            indices = torch.randperm(total, generator=g).tolist()
        else:
            indices = list(range(total))
        padded = self.per_rank * self.world_size
        indices += (indices * math.ceil(padded / total))[:padded - total]
        return indices[self.rank::self.world_size]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            for index in self.order(epoch)[offset:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0


def train_loader(dataset: RestorationDataset, *, seed: int, rank: int, world_size: int, start_iter: int,
                 pin_memory: bool = False) -> Tuple[DataLoader, ResumableSampler]:
    """A loader of training batches that starts at batch ``start_iter`` of this rank's stream."""
    o = dataset.opts
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=o.use_shuffle, enlarge=o.dataset_enlarge_ratio,
                               rank=rank, world_size=world_size, start=start_iter * o.batch_size_per_gpu)
    workers = o.num_worker_per_gpu
    loader = DataLoader(dataset, batch_size=o.batch_size_per_gpu, sampler=sampler, num_workers=workers,
                        pin_memory=pin_memory and o.pin_memory, drop_last=True,
                        # worker seeds come from here, not from the global RNG that training uses
                        generator=torch.Generator().manual_seed(seed),
                        prefetch_factor=max(2, o.num_prefetch_queue) if workers else None)
    return loader, sampler
