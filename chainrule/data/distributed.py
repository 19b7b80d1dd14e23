"""``DistributedSampler``: each process of a data-parallel job takes its own share of every epoch, as in
``torch.utils.data.distributed``.

Every rank computes the same epoch order (a permutation drawn from a generator seeded with
``seed + epoch``, so all ranks agree without talking), pads it by repeating its start until it divides
evenly (or, with ``drop_last``, cuts the tail), and keeps positions ``rank, rank + N, rank + 2N, ...``.
Local batch i of all N ranks together is then positions [i*N*b, (i+1)*N*b) of the padded order: the
global batch a one-process run with batch N*b would see (before padding). Call ``set_epoch(epoch)``
before each epoch for a new order (``Trainer``/``fit`` do it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

from chainrule.backend import np
from chainrule.data.sampler import _ArraySampler
from chainrule.random import Generator

__all__ = ["DistributedSampler"]


class DistributedSampler(_ArraySampler):
    """This rank's share of ``dataset``: ``len(dataset) / num_replicas`` indices, rounded up (padding by
    repeating the first ones) or, with ``drop_last``, down. ``num_replicas`` and ``rank`` default to the
    process group's."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from chainrule import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: give num_replicas and rank, or call "
                                   "chainrule.distributed.init_process_group first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be positive, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _index_chunks(self) -> Iterator:
        n = len(self.dataset)
        if self.shuffle:
            order = Generator(self.seed + self.epoch).numpy.permutation(n).astype(np.int64)
        else:
            order = np.arange(n, dtype=np.int64)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n and n:
            order = np.resize(order, self.total_size)  # repeats the order from its start
        return iter([order[self.rank:self.total_size:self.num_replicas]])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (the same on every rank) from the next iteration on."""
        self.epoch = epoch
