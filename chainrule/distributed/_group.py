"""Process groups over MPI: the default (world) group that ``init_process_group`` creates, and ``new_group``.

A :class:`ProcessGroup` owns two duplicates of an MPI communicator: ``comm`` for the collectives users
call, ``ctl`` for chainrule's own messages (``monitored_barrier``), so the two never match each other's
messages. Ranks given to the public functions (``src``, ``dst``, ``new_group(ranks)``) are global ranks,
as in PyTorch; inside a group they are translated to the group's own numbering.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta

from chainrule.distributed import _watchdog
from chainrule.distributed._launch import import_mpi, launched_world_size

__all__ = [
    "ProcessGroup", "GroupMember", "group", "init_process_group", "destroy_process_group", "is_initialized",
    "is_available", "is_mpi_available", "get_rank", "get_world_size", "get_node_local_rank", "get_backend",
    "get_global_rank", "get_group_rank", "get_process_group_ranks", "new_group",
]

# PyTorch's default_pg_timeout; CHAINRULE_DIST_TIMEOUT (seconds) overrides it for every group
DEFAULT_TIMEOUT_S = 30 * 60.0


class ProcessGroup:
    """Some ranks of the job that take part in collectives together."""

    def __init__(self, comm, ranks: list[int], timeout_s: float):
        self.comm = comm
        self.ctl = comm.Dup()
        self.ranks = ranks  # global rank of each member, in the group's order
        self.timeout_s = timeout_s

    def rank(self) -> int:
        return self.comm.Get_rank()

    def size(self) -> int:
        return len(self.ranks)

    def group_rank(self, global_rank: int, op: str, what: str = "rank") -> int:
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(f"{op}: {what} {global_rank} is not in the group (its ranks: {self.ranks})") from None

    def free(self) -> None:
        for comm in (self.ctl, self.comm):
            comm.Free()

    def __repr__(self) -> str:
        return f"ProcessGroup(backend='mpi', ranks={self.ranks})"


class GroupMember:
    """PyTorch's markers: ``WORLD`` (the default group, written None) and the group a non-member gets."""

    WORLD = None
    NON_GROUP_MEMBER = object()


group = GroupMember  # torch.distributed.group.WORLD


class _State:
    """The process's MPI world (kept after destroy_process_group: MPI is initialized once per process)."""

    mpi = None
    world_comm = None
    watchdog: _watchdog.Watchdog | None = None
    default: ProcessGroup | None = None
    local_rank = 0
    local_size = 1


def is_available() -> bool:
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py can be imported (checked without importing it, which would start MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    return _State.default is not None


def _timeout_seconds(timeout) -> float:
    if timeout is None:
        env = os.environ.get("CHAINRULE_DIST_TIMEOUT")
        return float(env) if env else DEFAULT_TIMEOUT_S
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    return seconds


def init_process_group(backend: str | None = None, init_method: str | None = None, timeout=None,
                       world_size: int = -1, rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join the processes ``mpiexec`` (or ``srun``) started into the default group.

    Only ``backend="mpi"`` (or None) exists; ``init_method``, ``store`` and the rest are accepted for PyTorch
    programs and unused, since MPI already knows every process. ``world_size``/``rank``, when given, must be
    MPI's. ``timeout`` (a timedelta or seconds; default 30 min, ``CHAINRULE_DIST_TIMEOUT`` overrides) bounds
    every wait. Sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` as torchrun does.
    """
    if is_initialized():
        raise ValueError("init_process_group: trying to initialize the default process group twice!")
    if backend is not None and str(backend).lower() != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not available; chainrule's processes talk "
                         "over MPI: backend='mpi'")
    timeout_s = _timeout_seconds(timeout)
    _start_mpi()
    world = _State.world_comm
    told = os.environ.get("WORLD_SIZE")  # what torchrun (or a previous init) says
    if told is not None and told.strip() != str(world.Get_size()):
        raise RuntimeError(f"init_process_group: WORLD_SIZE={told} but MPI started {world.Get_size()} process(es); "
                           "chainrule's processes are started by an MPI launcher (mpiexec -n N ...), not torchrun")
    for name, given, actual in (("world_size", world_size, world.Get_size()), ("rank", rank, world.Get_rank())):
        if given not in (-1, None) and given != actual:
            raise ValueError(f"init_process_group: {name}={given} but the MPI launcher started this process with "
                             f"{name} {actual}")
    _State.default = ProcessGroup(world.Dup(), list(range(world.Get_size())), timeout_s)
    os.environ.update(RANK=str(world.Get_rank()), WORLD_SIZE=str(world.Get_size()),
                      LOCAL_RANK=str(_State.local_rank), LOCAL_WORLD_SIZE=str(_State.local_size))
    _size_threads()


def _start_mpi() -> None:
    """Initialize MPI once per process, with the abort-on-error machinery around it."""
    if _State.mpi is not None:
        return
    mpi = import_mpi()
    world = mpi.COMM_WORLD
    launched = launched_world_size()
    if launched is not None and launched > 1 and world.Get_size() == 1:
        raise RuntimeError(
            f"init_process_group: the launcher started {launched} processes but MPI sees only this one: mpiexec "
            f"and mpi4py's MPI library ({mpi.Get_library_version().splitlines()[0]}) do not match (install one MPI "
            "per environment and launch with that MPI's mpiexec)")
    local = world.Split_type(mpi.COMM_TYPE_SHARED)
    _State.local_rank, _State.local_size = local.Get_rank(), local.Get_size()
    local.Free()
    _State.mpi, _State.world_comm = mpi, world
    _State.watchdog = _watchdog.Watchdog(world, world.Get_rank())
    _watchdog.install_excepthook(world, world.Get_rank(), world.Get_size())
    atexit.register(_shutdown_barrier)


def _size_threads() -> None:
    """Share the node's cores among its ranks, unless the user chose a thread count."""
    if _State.local_size == 1 or "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        from chainrule.threads import set_num_threads

        set_num_threads(max(1, cores // _State.local_size))
    except ImportError:  # no threadpoolctl: the BLAS keeps its own count
        pass


def _shutdown_barrier() -> None:
    """At exit, wait for every rank (bounded): a rank that finished early must not leave the others hanging."""
    world = _State.world_comm
    timeout_s = _State.default.timeout_s if _State.default is not None else _timeout_seconds(None)
    with _State.watchdog.watch("the barrier at interpreter exit (other ranks were still working or waiting)",
                               timeout_s):
        world.Barrier()


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Leave the default group (or free ``group``). MPI stays initialized until the process exits."""
    if group is None or group is _State.default:
        if _State.default is None:
            raise ValueError("destroy_process_group: the default process group has not been initialized")
        _State.default.free()
        _State.default = None
    elif isinstance(group, ProcessGroup):
        group.free()


def default_group(op: str) -> ProcessGroup:
    if _State.default is None:
        raise ValueError(f"{op}: the default process group has not been initialized, please make sure to call "
                         "init_process_group.")
    return _State.default


def resolve(group, op: str) -> ProcessGroup | None:
    """The group a call acts on; None when this rank is not a member (the call then does nothing)."""
    world = default_group(op)
    if group is None:
        return world
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"{op}: group must be a ProcessGroup from new_group or None, got {type(group).__name__}")
    return group


def watch(what: str, pg: ProcessGroup, timeout_s: float | None = None):
    return _State.watchdog.watch(what, pg.timeout_s if timeout_s is None else timeout_s)


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (default: the world); -1 when not a member."""
    pg = resolve(group, "get_rank")
    return -1 if pg is None else pg.rank()


def get_world_size(group=None) -> int:
    pg = resolve(group, "get_world_size")
    return -1 if pg is None else pg.size()


def get_node_local_rank(fallback_rank: int | None = None) -> int:
    """This process's rank among those on its machine (``LOCAL_RANK``)."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("get_node_local_rank: LOCAL_RANK is not set (call init_process_group first) and no "
                       "fallback_rank was given")


def get_backend(group=None) -> str:
    resolve(group, "get_backend")
    return "mpi"


def get_process_group_ranks(group) -> list[int]:
    pg = resolve(group, "get_process_group_ranks")
    return [] if pg is None else list(pg.ranks)


def get_global_rank(group, group_rank: int) -> int:
    pg = resolve(group, "get_global_rank")
    if pg is None or not 0 <= group_rank < pg.size():
        raise ValueError(f"get_global_rank: group rank {group_rank} is not in the group")
    return pg.ranks[group_rank]


def get_group_rank(group, global_rank: int) -> int:
    pg = resolve(group, "get_group_rank")
    if pg is None:
        raise ValueError("get_group_rank: this process is not in the group")
    return pg.group_rank(global_rank, "get_group_rank")


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization: bool = False,
              group_desc=None, device_id=None):
    """A group of some of the world's ranks. Every rank of the world must call it, with the same ``ranks``;
    ranks outside it get ``GroupMember.NON_GROUP_MEMBER``, and collectives on that do nothing."""
    world = default_group("new_group")
    size = world.size()
    members = list(range(size)) if ranks is None else sorted(int(r) for r in ranks)
    if len(set(members)) != len(members) or any(not 0 <= r < size for r in members):
        raise ValueError(f"new_group: ranks must be distinct ranks of the world (0..{size - 1}), got {ranks}")
    me = world.rank()
    mpi = _State.mpi
    with watch("new_group", world):
        comm = world.comm.Split(0 if me in members else mpi.UNDEFINED, key=me)
    if comm == mpi.COMM_NULL:
        return GroupMember.NON_GROUP_MEMBER
    return ProcessGroup(comm, members, world.timeout_s if timeout is None else _timeout_seconds(timeout))
