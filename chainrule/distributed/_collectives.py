"""Collectives on tensors, in place, through the buffer protocol (never pickled), as ``torch.distributed``'s.

Each collective starts MPI's nonblocking form (``Iallreduce``, ``Ibcast``, ...) and returns a :class:`Work`
with ``async_op=True``; without it the call waits at once (MPI's Wait, under the watchdog). What MPI does
not do itself (``ReduceOp.AVG``'s division, copying into a list of tensors) runs when the work completes.
Object collectives pickle, as PyTorch's do.

Tensors on a GPU take part through host copies: mpi4py reads and writes host buffers (unless MPI is built
CUDA-aware, which is not assumed), so a device tensor is staged with ``to_host`` and the result copied back
into it when the work completes (:func:`_array`, :func:`_stage_back`).
"""

from __future__ import annotations

import enum
import os
import time

import numpy as np

from chainrule.backend import is_host, to_host
from chainrule.distributed._group import ProcessGroup, _State, resolve, watch
from chainrule.tensor import Tensor

__all__ = [
    "ReduceOp", "Work", "all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "reduce", "gather", "scatter", "barrier", "monitored_barrier", "send", "recv",
    "isend", "irecv", "all_gather_object", "broadcast_object_list", "gather_object", "scatter_object_list",
]


class ReduceOp(enum.Enum):
    """How ``all_reduce`` and the other reductions combine the ranks' values."""

    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


ReduceOp.RedOpType = ReduceOp  # PyTorch spells the type ReduceOp.RedOpType


def _mpi_op(op, tensor_dtype, name: str):
    mpi = _State.mpi
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{name}: op must be a dist.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and not np.issubdtype(tensor_dtype, np.inexact):
        raise ValueError(f"{name}: ReduceOp.AVG needs a floating-point tensor, got {tensor_dtype}")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and not (
            np.issubdtype(tensor_dtype, np.integer) or tensor_dtype == np.bool_):
        raise ValueError(f"{name}: ReduceOp.{op.name} needs an integer or bool tensor, got {tensor_dtype}")
    if tensor_dtype == np.bool_:  # MPI reduces booleans with its logical ops only (SUM and MAX are "any")
        return {ReduceOp.SUM: mpi.LOR, ReduceOp.MAX: mpi.LOR, ReduceOp.BOR: mpi.LOR, ReduceOp.PRODUCT: mpi.LAND,
                ReduceOp.MIN: mpi.LAND, ReduceOp.BAND: mpi.LAND, ReduceOp.BXOR: mpi.LXOR}[op]
    return {ReduceOp.SUM: mpi.SUM, ReduceOp.AVG: mpi.SUM, ReduceOp.PRODUCT: mpi.PROD, ReduceOp.MIN: mpi.MIN,
            ReduceOp.MAX: mpi.MAX, ReduceOp.BAND: mpi.BAND, ReduceOp.BOR: mpi.BOR, ReduceOp.BXOR: mpi.BXOR}[op]


class Work:
    """A collective in flight: ``wait()`` blocks until it has completed (raising on ``timeout``), and
    ``is_completed()`` asks without blocking."""

    def __init__(self, requests: list, what: str, group: ProcessGroup, finish=None):
        self._requests = requests
        self._what = what
        self._group = group
        self._finish = finish
        self._done = False

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()

    def is_completed(self) -> bool:
        if not self._done and _State.mpi.Request.Testall(self._requests):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        return self.is_completed()

    def wait(self, timeout=None) -> bool:
        """Block until done. Without ``timeout`` the group's timeout applies and the watchdog ends the job past
        it; with ``timeout`` (seconds or a timedelta) a RuntimeError is raised instead."""
        if self._done:
            return True
        if timeout is None:
            with watch(self._what, self._group):
                _State.mpi.Request.Waitall(self._requests)
        else:
            seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
            deadline = time.monotonic() + seconds
            while not _State.mpi.Request.Testall(self._requests):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Work.wait: {self._what} did not complete within {seconds:g} s")
                time.sleep(0.0005)
        self._complete()
        return True

    def exception(self):
        return None


def _array(tensor, name: str, what: str = "tensor") -> np.ndarray:
    """The contiguous host array a collective reads or writes for ``tensor``: its own memory on the CPU, a
    host copy of a device tensor (which :func:`_stage_back` writes back into it)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: {what} must be a chainrule Tensor, got {type(tensor).__name__}")
    data = tensor._data
    if not data.flags.c_contiguous:
        raise ValueError(f"{name}: {what} of shape {tuple(data.shape)} must be contiguous (call .contiguous())")
    return data if is_host(data) else to_host(data)


def _stage_back(tensor, array: np.ndarray) -> None:
    """After a collective wrote ``array`` (from :func:`_array`): a device tensor gets the result copied in."""
    if array is not tensor._data:
        _assign(tensor, array)


def _assign(tensor, host_part: np.ndarray) -> None:
    """``tensor``'s elements set from a host array, on the tensor's device."""
    tensor._data[...] = tensor.xp.asarray(host_part)


def _checked(pg: ProcessGroup, what: str) -> str:
    """``what``, after checking, in the debug mode (``CHAINRULE_DISTRIBUTED_DEBUG=DETAIL``, PyTorch's
    ``TORCH_DISTRIBUTED_DEBUG``), that every rank of the group is making this same call: otherwise every rank
    raises, naming what each one called, instead of mismatched collectives hanging or mixing data."""
    if not debug_mode():
        return what
    pg.seq = getattr(pg, "seq", 0) + 1
    with watch(f"the debug check before {what}", pg):
        calls = pg.ctl.allgather(what)
    if len(set(calls)) > 1:
        listed = "; ".join(f"rank {pg.ranks[r]}: {call}" for r, call in enumerate(calls))
        raise RuntimeError(f"collective #{pg.seq}: the ranks called different collectives ({listed})")
    return what


def debug_mode() -> bool:
    return os.environ.get("CHAINRULE_DISTRIBUTED_DEBUG", "").upper() == "DETAIL"


def _written(*tensors) -> None:
    for t in tensors:
        t._bump_version()


def _run(work: Work, async_op: bool):
    if async_op:
        return work
    work.wait()
    return None


def _averaged(pg: ProcessGroup, op: ReduceOp, tensor, array: np.ndarray):
    """What runs after a reduction into ``tensor`` (through ``array``): the copy back to a device, AVG's
    division by the group size, then the version bump."""
    def finish():
        _stage_back(tensor, array)
        if op is ReduceOp.AVG:
            tensor._data /= pg.size()
        _written(tensor)
    return finish


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` over the group, in place, with ``op`` on every rank."""
    pg = resolve(group, "all_reduce")
    arr = _array(tensor, "all_reduce")
    if pg is None:
        return None
    mpi_op = _mpi_op(op, arr.dtype, "all_reduce")
    what = _checked(pg, f"all_reduce ({op.name}, {arr.dtype}, {arr.size} elements)")
    req = pg.comm.Iallreduce(_State.mpi.IN_PLACE, arr, mpi_op)
    return _run(Work([req], what, pg, _averaged(pg, op, tensor, arr)), async_op)


def broadcast(tensor, src: int | None = None, group=None, async_op: bool = False, group_src: int | None = None):
    """Copy rank ``src``'s ``tensor`` into every rank's."""
    pg = resolve(group, "broadcast")
    arr = _array(tensor, "broadcast")
    if pg is None:
        return None
    root = _root(pg, src, group_src, "broadcast", "src")
    what = _checked(pg, f"broadcast from rank {pg.ranks[root]} ({arr.dtype}, {arr.size} elements)")
    req = pg.comm.Ibcast(arr, root=root)
    return _run(Work([req], what, pg, _receiving(tensor, arr)), async_op)


def _receiving(tensor, array: np.ndarray):
    """What runs after a collective wrote ``tensor`` (through ``array``): the copy back, the version bump."""
    def finish():
        _stage_back(tensor, array)
        _written(tensor)
    return finish


def _root(pg: ProcessGroup, global_rank, group_rank, op: str, what: str) -> int:
    if group_rank is not None:
        if not 0 <= group_rank < pg.size():
            raise ValueError(f"{op}: group_{what}={group_rank} is not a rank of the group of size {pg.size()}")
        return group_rank
    if global_rank is None:
        raise ValueError(f"{op}: give {what} (a global rank) or group_{what}")
    return pg.group_rank(global_rank, op, what)


def _same_as(tensor, others, op: str, what: str) -> None:
    for i, t in enumerate(others):
        if not isinstance(t, Tensor) or t.shape != tensor.shape or t.dtype != tensor.dtype:
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{op}: {what}[{i}] is {got}, expected {tuple(tensor.shape)} {tensor.dtype}")


def _list_size(tensors, pg: ProcessGroup, op: str, what: str) -> list:
    tensors = list(tensors)
    if len(tensors) != pg.size():
        raise ValueError(f"{op}: {what} holds {len(tensors)} tensors but the group has {pg.size()} ranks")
    return tensors


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Every rank's ``tensor`` into ``tensor_list[rank]``, on every rank."""
    pg = resolve(group, "all_gather")
    arr = _array(tensor, "all_gather")
    if pg is None:
        return None
    outs = _list_size(tensor_list, pg, "all_gather", "tensor_list")
    _same_as(tensor, outs, "all_gather", "tensor_list")
    stacked = np.empty((pg.size(),) + arr.shape, arr.dtype)
    what = _checked(pg, f"all_gather ({arr.dtype}, {arr.size} elements)")
    req = pg.comm.Iallgather(arr, stacked)

    def finish():
        for out, part in zip(outs, stacked):
            _assign(out, part)
        _written(*outs)
    return _run(Work([req], what, pg, finish), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Every rank's ``input_tensor`` side by side in ``output_tensor`` (stacked along a new first dimension,
    or concatenated along the first): group size times the input's elements."""
    pg = resolve(group, "all_gather_into_tensor")
    src = _array(input_tensor, "all_gather_into_tensor", "input_tensor")
    out = _array(output_tensor, "all_gather_into_tensor", "output_tensor")
    if pg is None:
        return None
    _sized(out, src, pg.size(), "all_gather_into_tensor", "output_tensor", "input_tensor")
    what = _checked(pg, f"all_gather_into_tensor ({src.dtype}, {src.size} elements)")
    req = pg.comm.Iallgather(src, out)
    return _run(Work([req], what, pg, _receiving(output_tensor, out)), async_op)


def _sized(big: np.ndarray, small: np.ndarray, n: int, op: str, big_name: str, small_name: str) -> None:
    if big.dtype != small.dtype or big.size != n * small.size:
        raise ValueError(f"{op}: {big_name} ({tuple(big.shape)} {big.dtype}) must hold {n} times {small_name} "
                         f"({tuple(small.shape)} {small.dtype}), of the same dtype")


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input`` (group size equal parts) over the group; rank i gets reduced part i in ``output``."""
    pg = resolve(group, "reduce_scatter_tensor")
    src = _array(input, "reduce_scatter_tensor", "input")
    out = _array(output, "reduce_scatter_tensor", "output")
    if pg is None:
        return None
    _sized(src, out, pg.size(), "reduce_scatter_tensor", "input", "output")
    mpi_op = _mpi_op(op, src.dtype, "reduce_scatter_tensor")
    what = _checked(pg, f"reduce_scatter_tensor ({op.name}, {src.dtype}, {src.size} elements)")
    req = pg.comm.Ireduce_scatter_block(src, out, mpi_op)
    return _run(Work([req], what, pg, _averaged(pg, op, output, out)), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """``reduce_scatter_tensor`` with the input given as one tensor per rank."""
    pg = resolve(group, "reduce_scatter")
    out = _array(output, "reduce_scatter", "output")
    if pg is None:
        return None
    parts = _list_size(input_list, pg, "reduce_scatter", "input_list")
    _same_as(output, parts, "reduce_scatter", "input_list")
    stacked = np.stack([_array(p, "reduce_scatter", "input_list item") for p in parts])
    mpi_op = _mpi_op(op, out.dtype, "reduce_scatter")
    what = _checked(pg, f"reduce_scatter ({op.name}, {out.dtype}, {stacked.size} elements)")
    req = pg.comm.Ireduce_scatter_block(stacked, out, mpi_op)
    return _run(Work([req], what, pg, _averaged(pg, op, output, out)), async_op)


def reduce(tensor, dst: int | None = None, op=ReduceOp.SUM, group=None, async_op: bool = False,
           group_dst: int | None = None):
    """Reduce ``tensor`` over the group into rank ``dst``'s (the others' are left as they were)."""
    pg = resolve(group, "reduce")
    arr = _array(tensor, "reduce")
    if pg is None:
        return None
    root = _root(pg, dst, group_dst, "reduce", "dst")
    mpi_op = _mpi_op(op, arr.dtype, "reduce")
    what = _checked(pg, f"reduce ({op.name}) to rank {pg.ranks[root]} ({arr.dtype}, {arr.size} elements)")
    if pg.rank() == root:
        req = pg.comm.Ireduce(_State.mpi.IN_PLACE, arr, mpi_op, root=root)
        finish = _averaged(pg, op, tensor, arr)
    else:
        req = pg.comm.Ireduce(arr, None, mpi_op, root=root)
        finish = None
    return _run(Work([req], what, pg, finish), async_op)


def gather(tensor, gather_list=None, dst: int | None = None, group=None, async_op: bool = False,
           group_dst: int | None = None):
    """Every rank's ``tensor`` into ``gather_list`` on rank ``dst`` (only there may it be given)."""
    pg = resolve(group, "gather")
    arr = _array(tensor, "gather")
    if pg is None:
        return None
    root = _root(pg, 0 if dst is None and group_dst is None else dst, group_dst, "gather", "dst")
    what = _checked(pg, f"gather to rank {pg.ranks[root]} ({arr.dtype}, {arr.size} elements)")
    if pg.rank() != root:
        if gather_list:
            raise ValueError("gather: gather_list must not be given on ranks other than dst")
        return _run(Work([pg.comm.Igather(arr, None, root=root)], what, pg), async_op)
    outs = _list_size(gather_list or [], pg, "gather", "gather_list")
    _same_as(tensor, outs, "gather", "gather_list")
    stacked = np.empty((pg.size(),) + arr.shape, arr.dtype)

    def finish():
        for out, part in zip(outs, stacked):
            _assign(out, part)
        _written(*outs)
    return _run(Work([pg.comm.Igather(arr, stacked, root=root)], what, pg, finish), async_op)


def scatter(tensor, scatter_list=None, src: int | None = None, group=None, async_op: bool = False,
            group_src: int | None = None):
    """Rank ``src``'s ``scatter_list[i]`` into rank i's ``tensor``."""
    pg = resolve(group, "scatter")
    arr = _array(tensor, "scatter")
    if pg is None:
        return None
    root = _root(pg, 0 if src is None and group_src is None else src, group_src, "scatter", "src")
    what = _checked(pg, f"scatter from rank {pg.ranks[root]} ({arr.dtype}, {arr.size} elements)")
    if pg.rank() != root:
        if scatter_list:
            raise ValueError("scatter: scatter_list must not be given on ranks other than src")
        send = None
    else:
        parts = _list_size(scatter_list or [], pg, "scatter", "scatter_list")
        _same_as(tensor, parts, "scatter", "scatter_list")
        send = np.stack([_array(p, "scatter", "scatter_list item") for p in parts])
    req = pg.comm.Iscatter(send, arr, root=root)
    return _run(Work([req], what, pg, _receiving(tensor, arr)), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None):
    """Wait until every rank of the group has called it."""
    pg = resolve(group, "barrier")
    if pg is None:
        return None
    return _run(Work([pg.comm.Ibarrier()], _checked(pg, "barrier"), pg), async_op)


# ----- point to point ------------------------------------------------------------------------------------
def isend(tensor, dst: int | None = None, group=None, tag: int = 0, group_dst: int | None = None):
    pg = resolve(group, "isend")
    arr = _array(tensor, "isend")
    if pg is None:
        return None
    root = _root(pg, dst, group_dst, "isend", "dst")
    return Work([pg.comm.Isend(arr, dest=root, tag=tag)], f"send to rank {pg.ranks[root]}", pg)


def irecv(tensor, src: int | None = None, group=None, tag: int = 0, group_src: int | None = None):
    pg = resolve(group, "irecv")
    arr = _array(tensor, "irecv")
    if pg is None:
        return None
    source = _State.mpi.ANY_SOURCE if src is None and group_src is None else _root(pg, src, group_src, "irecv", "src")
    return Work([pg.comm.Irecv(arr, source=source, tag=tag)], "receive", pg, _receiving(tensor, arr))


def send(tensor, dst: int | None = None, group=None, tag: int = 0, group_dst: int | None = None) -> None:
    work = isend(tensor, dst, group, tag, group_dst)
    if work is not None:
        work.wait()


def recv(tensor, src: int | None = None, group=None, tag: int = 0, group_src: int | None = None) -> int:
    """Receive into ``tensor``; returns the sender's rank (-1 when not in the group)."""
    pg = resolve(group, "recv")
    arr = _array(tensor, "recv")
    if pg is None:
        return -1
    mpi = _State.mpi
    source = mpi.ANY_SOURCE if src is None and group_src is None else _root(pg, src, group_src, "recv", "src")
    status = mpi.Status()
    with watch("recv", pg):
        pg.comm.Recv(arr, source=source, tag=tag, status=status)
    _receiving(tensor, arr)()
    return pg.ranks[status.Get_source()]


# ----- Python objects (pickled) ---------------------------------------------------------------------------
def all_gather_object(object_list: list, obj, group=None) -> None:
    """Every rank's ``obj`` into ``object_list[rank]`` (a list of the group's size), on every rank."""
    pg = resolve(group, "all_gather_object")
    if pg is None:
        return
    if len(object_list) != pg.size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} items but the group has "
                         f"{pg.size()} ranks")
    with watch("all_gather_object", pg):
        object_list[:] = pg.comm.allgather(obj)


def broadcast_object_list(object_list: list, src: int | None = None, group=None, device=None,
                          group_src: int | None = None) -> None:
    """Rank ``src``'s ``object_list`` items into every rank's list (same length everywhere)."""
    pg = resolve(group, "broadcast_object_list")
    if pg is None:
        return
    root = _root(pg, 0 if src is None and group_src is None else src, group_src, "broadcast_object_list", "src")
    with watch(f"broadcast_object_list from rank {pg.ranks[root]}", pg):
        items = pg.comm.bcast(list(object_list) if pg.rank() == root else None, root=root)
    if len(items) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {pg.ranks[root]} sent {len(items)} objects into a list of "
                         f"{len(object_list)}")
    object_list[:] = items


def gather_object(obj, object_gather_list=None, dst: int | None = None, group=None,
                  group_dst: int | None = None) -> None:
    pg = resolve(group, "gather_object")
    if pg is None:
        return
    root = _root(pg, 0 if dst is None and group_dst is None else dst, group_dst, "gather_object", "dst")
    with watch(f"gather_object to rank {pg.ranks[root]}", pg):
        items = pg.comm.gather(obj, root=root)
    if pg.rank() == root:
        if object_gather_list is None or len(object_gather_list) != pg.size():
            raise ValueError(f"gather_object: object_gather_list must be a list of {pg.size()} items on dst")
        object_gather_list[:] = items


def scatter_object_list(scatter_object_output_list: list, scatter_object_input_list=None, src: int | None = None,
                        group=None, group_src: int | None = None) -> None:
    pg = resolve(group, "scatter_object_list")
    if pg is None:
        return
    root = _root(pg, 0 if src is None and group_src is None else src, group_src, "scatter_object_list", "src")
    items = None
    if pg.rank() == root:
        items = list(scatter_object_input_list or [])
        if len(items) != pg.size():
            raise ValueError(f"scatter_object_list: scatter_object_input_list must hold {pg.size()} objects")
    with watch(f"scatter_object_list from rank {pg.ranks[root]}", pg):
        mine = pg.comm.scatter(items, root=root)
    if not scatter_object_output_list:
        raise ValueError("scatter_object_list: scatter_object_output_list must have at least one item")
    scatter_object_output_list[0] = mine


# ----- a barrier that names who is missing -----------------------------------------------------------------
_MONITOR_TAG = 7311


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False) -> None:
    """A barrier that raises, naming the ranks that did not arrive, instead of waiting without end.

    Every rank reports to the group's first rank, which waits ``timeout`` (default: the group's) for them all
    and then answers each; a rank that gets no answer in time raises too.
    """
    pg = resolve(group, "monitored_barrier")
    if pg is None:
        return
    seconds = pg.timeout_s if timeout is None else (
        timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout))
    mpi, token = _State.mpi, np.zeros(1, np.int8)
    if pg.rank() != 0:
        pg.ctl.Isend(token, dest=0, tag=_MONITOR_TAG).Wait()
        answer = pg.ctl.Irecv(np.zeros(1, np.int8), source=0, tag=_MONITOR_TAG)
        if not _poll([answer], seconds):
            answer.Cancel()
            raise RuntimeError(f"monitored_barrier: rank {pg.ranks[0]} did not confirm the barrier within "
                               f"{seconds:g} s (it may have found ranks missing, or failed)")
        return
    others = range(1, pg.size())
    reqs = [pg.ctl.Irecv(np.zeros(1, np.int8), source=r, tag=_MONITOR_TAG) for r in others]
    _poll(reqs, seconds)
    missing = [pg.ranks[r] for r, q in zip(others, reqs) if not q.Test()]
    if missing:
        for q in reqs:
            q.Cancel()
        named = missing if wait_all_ranks else missing[:1]
        which = ", ".join(str(r) for r in named)
        raise RuntimeError(f"monitored_barrier: rank{'s' if len(named) > 1 else ''} {which} failed to pass the "
                           f"barrier within {seconds:g} s")
    mpi.Request.Waitall([pg.ctl.Isend(token, dest=r, tag=_MONITOR_TAG) for r in others])


def _poll(requests: list, seconds: float) -> bool:
    """Test ``requests`` until all complete (True) or ``seconds`` pass (False)."""
    mpi = _State.mpi
    deadline = time.monotonic() + seconds
    while not mpi.Request.Testall(requests):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
