"""Run under ``mpiexec -n 2`` with one mode: rank 1 fails in that way while rank 0 goes on communicating.

Every mode must end the whole job with a non-zero status within the timeout (CHAINRULE_DIST_TIMEOUT),
never hang.
"""

import os
import signal
import sys
import time

import _device  # noqa: F401  (the suite's device: workers/_device.py)

import chainrule as cr
import chainrule.distributed as dist


def main(mode):
    dist.init_process_group("mpi")
    rank = dist.get_rank()
    t = cr.ones(4)
    dist.all_reduce(t)  # both ranks are up
    if rank == 1:
        if mode == "raise":
            raise ValueError("rank 1 found bad input")
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "stall":
            time.sleep(600)
        if mode == "exit_early":
            return  # leaves while rank 0 still communicates: the exit barrier must not deadlock
        if mode == "monitored":
            time.sleep(600)
    if mode == "monitored":
        dist.monitored_barrier(timeout=1.0, wait_all_ranks=True)  # rank 0 raises naming rank 1
    if mode == "debug_mismatch":  # run with CHAINRULE_DISTRIBUTED_DEBUG=DETAIL: raises on both ranks
        if rank == 0:
            dist.all_reduce(t)
        else:
            dist.broadcast(t, src=0)
    if mode == "debug_parameters":  # with CHAINRULE_DISTRIBUTED_DEBUG=DETAIL: rank 1's weights drift
        from chainrule import nn
        from chainrule.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(nn.Linear(2, 2))
        model(cr.ones(1, 2))
        if rank == 1:
            with cr.no_grad():
                model.module.weight.add_(1.0)
        model(cr.ones(1, 2))
    for _ in range(3):
        dist.all_reduce(t)
    print(f"rank {rank}: finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
