"""``nn.parallel.DistributedDataParallel``: one model replica per process, gradients averaged over the
process group during ``backward()``, as PyTorch's.

At construction every rank checks that all ranks built the same model (names, shapes, dtypes: a mismatch
raises the same error on every rank), then takes rank 0's parameters and buffers. The gradients travel in
buckets: flat buffers of whole parameters, filled in reverse registration order (about the order backward
finishes them), the first one small (1 MiB) so communication starts early, the rest up to
``bucket_cap_mb``. Each parameter's post-accumulate-grad hook copies its gradient, divided by the world
size, into its bucket; a full bucket starts a nonblocking allreduce, always in bucket order so every rank
issues the same sequence, while the rest of backward runs. MPICH moves a nonblocking collective forward
only while the process calls into MPI, so each hook also tests the outstanding requests. A callback queued
for the end of ``backward()`` sends what is left, waits, and writes the averages back into ``.grad``, so
``clip_grad_norm_`` and ``optimizer.step()`` after it see the averaged gradients.

Parameters that got no gradient on a rank count as zeros there. One more tiny allreduce says which
parameters got one on any rank: those used nowhere keep ``grad=None``, exactly as in a one-process run, so
the optimizer skips them. This needs no ``find_unused_parameters=True`` (the engine knows which leaves it
reached), so that flag, ``static_graph`` and the device arguments are accepted and change nothing.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from chainrule.autograd.engine import queue_callback
from chainrule.autograd.grad_mode import is_grad_enabled
from chainrule.backend import is_host, to_host
from chainrule.nn.module import Module
from chainrule.tensor import wrap

__all__ = ["DistributedDataParallel", "compute_bucket_assignment_by_size"]

FIRST_BUCKET_BYTES = 1024 * 1024  # as PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES
DEFAULT_BUCKET_CAP_MB = 25


def compute_bucket_assignment_by_size(sizes: list[int], dtypes: list, limits: list[int]) -> list[list[int]]:
    """Group tensor positions, taken in the order given, into buckets of one dtype each: a bucket closes once
    it holds at least its limit in bytes; each dtype's first bucket gets ``limits[0]``, its next
    ``limits[1]``, and so on, the last limit repeating. Returns the buckets ordered by their first position."""
    buckets: list[list[int]] = []
    filling: dict = {}  # dtype -> [positions, bytes, how many buckets of this dtype were closed]
    for position, (size, dtype) in enumerate(zip(sizes, dtypes)):
        key = np.dtype(dtype)
        state = filling.setdefault(key, [[], 0, 0])
        state[0].append(position)
        state[1] += size * key.itemsize
        if state[1] >= limits[min(state[2], len(limits) - 1)]:
            buckets.append(state[0])
            filling[key] = [[], 0, state[2] + 1]
    buckets += [state[0] for state in filling.values() if state[0]]
    return sorted(buckets, key=lambda bucket: bucket[0])


class _Bucket:
    """One flat buffer of gradients, on the parameters' device, and the parameters whose gradients it carries.
    MPI reduces host memory: a bucket on a GPU is reduced through a host copy (``staged``), copied back into
    ``flat`` before the averages are written to ``.grad``."""

    def __init__(self, params: list, dtype):
        self.params = params
        self.flat = params[0].xp.zeros(sum(p._data.size for p in params), dtype)
        self.staged = None  # the host copy being reduced, for a bucket on a device
        self.views = []
        offset = 0
        for p in params:
            self.views.append(self.flat[offset:offset + p._data.size].reshape(p._data.shape))
            offset += p._data.size
        self.pending = len(params)
        self.request = None


class _Reducer:
    """The per-iteration state of gradient averaging for one DistributedDataParallel."""

    def __init__(self, params: list, group, bucket_cap_mb: float, gradient_as_bucket_view: bool):
        from chainrule.distributed._group import _State

        self.mpi = _State.mpi
        self.group = group
        self.comm = group.comm.Dup()  # its own message order, apart from the user's collectives
        self.scale = 1.0 / group.size()
        self.params = params
        self.as_view = gradient_as_bucket_view
        order = list(reversed(range(len(params))))  # backward finishes the last layers first
        cap = max(1, int(bucket_cap_mb * 1024 * 1024))
        limits = [min(FIRST_BUCKET_BYTES, cap), cap]
        assignment = compute_bucket_assignment_by_size([params[i]._data.size for i in order],
                                                       [params[i]._data.dtype for i in order], limits)
        self.buckets = [_Bucket([params[order[j]] for j in bucket], params[order[bucket[0]]]._data.dtype)
                        for bucket in assignment]
        self.slot = {}  # id(param) -> (bucket index, position in the bucket)
        for b, bucket in enumerate(self.buckets):
            for k, p in enumerate(bucket.params):
                self.slot[id(p)] = (b, k)
        self.index = {id(p): i for i, p in enumerate(params)}
        self.armed = False
        self.queued = False
        self.next_bucket = 0
        self.used = np.zeros(len(params), np.int8)
        self.hooks = [p.register_post_accumulate_grad_hook(self.grad_ready) for p in params]

    def arm(self) -> None:
        """A forward that backward will follow: reduce in its backward."""
        self.armed = True
        self.queued = False
        self.next_bucket = 0
        self.used[:] = 0
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
            bucket.request = None

    def grad_ready(self, param) -> None:
        if not self.armed:
            return
        if not self.queued:
            queue_callback(self.finalize)
            self.queued = True
        b, k = self.slot[id(param)]
        bucket = self.buckets[b]
        param.xp.multiply(param.grad._data, self.scale, out=bucket.views[k])
        self.used[self.index[id(param)]] = 1
        bucket.pending -= 1
        self.launch_ready()
        self.progress()

    def launch_ready(self) -> None:
        """Start the allreduce of every full bucket, strictly in bucket order (the same on every rank)."""
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].pending == 0:
            self.launch(self.buckets[self.next_bucket])
            self.next_bucket += 1

    def launch(self, bucket: _Bucket) -> None:
        host = bucket.flat if is_host(bucket.flat) else to_host(bucket.flat)
        bucket.staged = None if host is bucket.flat else host
        bucket.request = self.comm.Iallreduce(self.mpi.IN_PLACE, host, self.mpi.SUM)

    def progress(self) -> None:
        requests = [b.request for b in self.buckets[:self.next_bucket] if b.request is not None]
        if requests:
            self.mpi.Request.Testall(requests)

    def finalize(self) -> None:
        """At the end of backward: send what is left (zeros for parameters that got no gradient here), learn
        which parameters got one anywhere, wait, and write the averages into ``.grad``."""
        from chainrule.distributed._group import watch

        self.armed = False
        for bucket in self.buckets[self.next_bucket:]:
            if bucket.pending:
                for k, p in enumerate(bucket.params):
                    if not self.used[self.index[id(p)]]:
                        bucket.views[k][...] = 0
            self.launch(bucket)
        self.next_bucket = len(self.buckets)
        used_anywhere = self.used.copy()
        requests = [b.request for b in self.buckets]
        requests.append(self.comm.Iallreduce(self.mpi.IN_PLACE, used_anywhere, self.mpi.MAX))
        with watch(f"DistributedDataParallel's gradient allreduce ({len(self.buckets)} buckets)", self.group):
            self.mpi.Request.Waitall(requests)
        for bucket in self.buckets:
            if bucket.staged is not None:  # the reduced host copy back onto the device
                bucket.flat[...] = bucket.params[0].xp.asarray(bucket.staged)
                bucket.staged = None
            for view, p in zip(bucket.views, bucket.params):
                if used_anywhere[self.index[id(p)]]:
                    self.write_back(p, view)

    def write_back(self, param, view) -> None:
        grad = param.grad
        if self.as_view:
            if grad is None or grad._data is not view:
                param.grad = wrap(view)
        elif grad is None:
            param.grad = wrap(view.copy())
        else:
            grad._data[...] = view
            grad._bump_version()

    def remove(self) -> None:
        for handle in self.hooks:
            handle.remove()


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over a process group (``init_process_group`` first).

    Args as PyTorch's: ``broadcast_buffers`` (rank 0's buffers into every rank's before each forward),
    ``process_group`` (default: the world), ``bucket_cap_mb`` (25), ``gradient_as_bucket_view`` (``.grad``
    becomes a view into the bucket: no copy back), ``init_sync`` (take rank 0's state at construction).
    Accepted with no effect here: ``device_ids``, ``output_device``, ``dim``, ``find_unused_parameters``
    (unused parameters are always handled), ``check_reduction``, ``static_graph``,
    ``skip_all_reduce_unused_params``, ``device_mesh``; ``mixed_precision``, ``delay_all_reduce_named_params``
    and ``param_to_hook_all_reduce`` are refused (not implemented).
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float | None = None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False, init_sync: bool = True,
                 delay_all_reduce_named_params=None, param_to_hook_all_reduce=None, mixed_precision=None,
                 device_mesh=None, skip_all_reduce_unused_params: bool = False):
        super().__init__()
        from chainrule.distributed._group import resolve

        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module to wrap, got {type(module).__name__}")
        for name, value in (("mixed_precision", mixed_precision), ("delay_all_reduce_named_params",
                            delay_all_reduce_named_params), ("param_to_hook_all_reduce", param_to_hook_all_reduce)):
            if value is not None:
                raise NotImplementedError(f"DistributedDataParallel: {name} is not implemented in chainrule")
        group = resolve(process_group, "DistributedDataParallel")
        if group is None:
            raise ValueError("DistributedDataParallel: this rank is not in process_group")
        self.module = module
        self.device_ids = None
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.static_graph = static_graph
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        params = [p for p in module.parameters() if p.requires_grad]
        _check_same_model(module, group)
        if init_sync:
            _broadcast_state(module, group)
        cap = DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else bucket_cap_mb
        object.__setattr__(self, "_group", group)
        object.__setattr__(self, "_reducer", _Reducer(params, group, cap, gradient_as_bucket_view))

    @property
    def process_group(self):
        return self._group

    def forward(self, *inputs, **kwargs):
        from chainrule.distributed._collectives import debug_mode

        if debug_mode():
            _check_same_parameters(self.module, self._group)
        if self.broadcast_buffers and self.training:
            _broadcast_buffers(self.module, self._group)
        if is_grad_enabled() and self.require_backward_grad_sync:
            self._reducer.arm()
        return self.module(*inputs, **kwargs)

    @contextmanager
    def no_sync(self):
        """Inside, backward accumulates local gradients only; the first backward after it averages the sums."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def _set_static_graph(self) -> None:
        self.static_graph = True


def _check_same_model(module: Module, group) -> None:
    """Every rank must hold the same parameters and buffers (names, shapes, dtypes): otherwise raise the same
    error on every rank, naming the first rank and entry that differ from rank 0's."""
    from chainrule.distributed import all_gather_object

    mine = [(kind, name, tuple(t.shape), str(t.dtype)) for kind, items in
            (("parameter", module.named_parameters()), ("buffer", module.named_buffers())) for name, t in items]
    every = [None] * group.size()
    all_gather_object(every, mine, group=group)
    reference = every[0]
    for rank, theirs in enumerate(every[1:], start=1):
        if theirs == reference:
            continue
        for i in range(max(len(reference), len(theirs))):
            ours = reference[i] if i < len(reference) else None
            other = theirs[i] if i < len(theirs) else None
            if ours != other:
                raise RuntimeError(
                    f"DistributedDataParallel: the model differs between ranks: rank 0 has {len(reference)} "
                    f"parameters and buffers and rank {group.ranks[rank]} has {len(theirs)}; the first difference "
                    f"is at #{i}: rank 0 has {_described(ours)}, rank {group.ranks[rank]} has {_described(other)} "
                    "(every rank must build the same model)")


def _check_same_parameters(module: Module, group) -> None:
    """The debug mode's check before each forward: every rank holds the same parameter values (bit for bit),
    else every rank raises, naming the ranks that differ from rank 0."""
    import hashlib

    digest = hashlib.sha256()
    for p in module.parameters():
        digest.update(np.ascontiguousarray(to_host(p._data)).tobytes())
    every = group.ctl.allgather(digest.hexdigest())
    differing = [group.ranks[r] for r, d in enumerate(every) if d != every[0]]
    if differing:
        raise RuntimeError(f"DistributedDataParallel: the parameters of rank(s) {differing} differ from rank 0's "
                           "(CHAINRULE_DISTRIBUTED_DEBUG=DETAIL check before forward)")


def _described(entry) -> str:
    if entry is None:
        return "nothing"
    kind, name, shape, dtype = entry
    return f"{kind} '{name}' {list(shape)} {dtype}"


def _broadcast_state(module: Module, group) -> None:
    from chainrule.distributed import broadcast

    for t in list(module.parameters()) + list(module.buffers()):
        _broadcast_one(t, group, broadcast)


def _broadcast_buffers(module: Module, group) -> None:
    from chainrule.distributed import broadcast

    for t in module.buffers():
        _broadcast_one(t, group, broadcast)


def _broadcast_one(t, group, broadcast) -> None:
    if not t._data.flags.c_contiguous:
        t._swap_data(t.xp.ascontiguousarray(t._data))
    broadcast(t, src=group.ranks[0], group=group)
