"""What ``fit``/``Trainer`` do differently when several processes train together (a process group of more
than one rank, see :mod:`chainrule.distributed`): the decisions every rank must take alike.

- each rank's step loss is replaced by the mean over all ranks' samples, and an epoch's training metrics
  by their mean over ranks, so logs, ``TerminateOnNaN``, early stopping and "best checkpoint" decide from
  the same numbers everywhere;
- a stop asked for on any rank stops every rank (one small allreduce per step);
- every rank must have the same number of batches per epoch (checked once per epoch), since each step
  is a collective;
- only rank 0 shows progress and writes files (checkpoints, logs), the others wait at a barrier after
  each write; a resume is read by rank 0 and its bytes sent to the others (no shared file system needed).

Outside a process group (or in a group of one) nothing here runs.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["RankGroup", "current_group", "unwrapped", "is_writer"]


class RankGroup:
    """The process group a fit runs in, with the few collectives the Trainer needs."""

    def __init__(self):
        from chainrule import distributed as dist

        self.dist = dist
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()

    def mean_loss(self, loss: float, count: int) -> float:
        """The mean loss over every rank's samples, from this rank's mean over its ``count``."""
        from chainrule.creation import tensor

        pair = tensor(np.array([loss * count, count], np.float64), device="cpu")  # bookkeeping stays on the host
        self.dist.all_reduce(pair)
        total, n = pair.tolist()
        return total / n

    def any(self, flag: bool) -> bool:
        from chainrule.creation import tensor

        t = tensor(np.array([1 if flag else 0], np.int64), device="cpu")
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return bool(t.item())

    def mean_values(self, values: dict) -> dict:
        """``values`` (numbers) averaged over the ranks, key by key."""
        from chainrule.creation import tensor

        keys = sorted(k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        if not keys:
            return values
        t = tensor(np.array([float(values[k]) for k in keys], np.float64), device="cpu")
        self.dist.all_reduce(t, op=self.dist.ReduceOp.AVG)
        return {**values, **dict(zip(keys, t.tolist()))}

    def check_same_count(self, count: int | None, epoch: int) -> None:
        """Raise on every rank unless every rank has ``count`` batches this epoch."""
        from chainrule.creation import tensor

        mine = -1 if count is None else int(count)
        low, high = tensor(np.array([mine], np.int64), device="cpu"), tensor(np.array([mine], np.int64), device="cpu")
        self.dist.all_reduce(low, op=self.dist.ReduceOp.MIN)
        self.dist.all_reduce(high, op=self.dist.ReduceOp.MAX)
        if low.item() != high.item():
            raise RuntimeError(
                f"fit: the ranks have different numbers of batches in epoch {epoch + 1} (between {low.item()} and "
                f"{high.item()}; -1 means unknown): every step is a collective, so give every rank the same number "
                "(a DistributedSampler does, or use max_steps)")

    def barrier(self) -> None:
        self.dist.barrier()

    def file_from_rank0(self, path: str) -> str:
        """``path`` as rank 0 reads it, on every rank: rank 0 sends the bytes, the others keep them in a temporary
        file (the caller removes it when it differs from ``path``)."""
        content = [None]
        if self.rank == 0:
            with open(path, "rb") as f:
                content[0] = f.read()
        self.dist.broadcast_object_list(content, src=0)
        if self.rank == 0:
            return path
        handle, copy = tempfile.mkstemp(suffix=".safetensors", prefix=f"resume-rank{self.rank}-")
        with os.fdopen(handle, "wb") as f:
            f.write(content[0])
        return copy


def current_group() -> RankGroup | None:
    """The process group to train in: None unless one of more than one rank is initialized."""
    from chainrule import distributed as dist

    if not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return RankGroup()


def unwrapped(model):
    """The model inside a DistributedDataParallel (so checkpoints carry no ``module.`` prefix), else ``model``."""
    from chainrule.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def is_writer(trainer) -> bool:
    """Whether this process writes the run's files: always, unless it is a rank other than 0 of a group."""
    group = getattr(trainer, "_group", None)
    return group is None or group.rank == 0
