"""``torch.distributed`` for chainrule: processes started by ``mpiexec`` (or ``srun``) train together over MPI.

``init_process_group(backend="mpi")`` joins them; collectives act in place on tensors (``all_reduce``,
``broadcast``, ``all_gather``, ...) and return a :class:`Work` with ``async_op=True``. MPI comes from mpi4py,
imported only by ``init_process_group`` (``pip install 'chainrule[mpi]'``), so single-process programs never
load it. Once a group exists, an uncaught exception on any rank, or a wait past the timeout, ends every rank
of the job with a message instead of leaving the others hanging (``_watchdog``).
"""

from chainrule.distributed._collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    gather,
    gather_object,
    irecv,
    isend,
    monitored_barrier,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    scatter_object_list,
    send,
)
from chainrule.distributed._group import (
    GroupMember,
    ProcessGroup,
    destroy_process_group,
    get_backend,
    get_global_rank,
    get_group_rank,
    get_node_local_rank,
    get_process_group_ranks,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
    new_group,
)
from chainrule.distributed._launch import launched_world_size, wants_distributed

__all__ = [
    "ReduceOp", "Work", "ProcessGroup", "GroupMember", "group", "init_process_group", "destroy_process_group",
    "is_available", "is_initialized", "is_mpi_available", "get_rank", "get_world_size", "get_node_local_rank",
    "get_backend", "get_global_rank", "get_group_rank", "get_process_group_ranks", "new_group", "all_reduce",
    "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "reduce",
    "gather", "scatter", "barrier", "monitored_barrier", "send", "recv", "isend", "irecv", "all_gather_object",
    "broadcast_object_list", "gather_object", "scatter_object_list", "launched_world_size", "wants_distributed",
]
