"""Run under ``mpiexec -n N``: every collective against what NumPy computes from all ranks' inputs.

Each rank's input is a function of its rank, so every rank knows all inputs and checks its own result;
a failed check raises, which aborts the job (non-zero status, the traceback in stderr).
"""

import _device  # noqa: F401  (the suite's device: workers/_device.py)
import numpy as np

import chainrule as cr
import chainrule.distributed as dist


def inputs(rank, dtype, shape=(3, 4)):
    base = np.arange(int(np.prod(shape))).reshape(shape)
    return (base * (rank + 2) % 7 + rank).astype(dtype)


def check(got, expected, what):
    got = got.cpu().numpy() if isinstance(got, cr.Tensor) else got
    assert got.dtype == np.asarray(expected).dtype, (what, got.dtype, expected.dtype)
    if np.issubdtype(got.dtype, np.floating):
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=what)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def reductions(rank, n):
    for dtype in (np.float32, np.float64, np.int64):
        alls = np.stack([inputs(r, dtype) for r in range(n)])
        ops = {dist.ReduceOp.SUM: alls.sum(0), dist.ReduceOp.PRODUCT: alls.prod(0), dist.ReduceOp.MIN: alls.min(0),
               dist.ReduceOp.MAX: alls.max(0)}
        if dtype is np.int64:
            ops[dist.ReduceOp.BAND] = np.bitwise_and.reduce(alls, 0)
            ops[dist.ReduceOp.BOR] = np.bitwise_or.reduce(alls, 0)
            ops[dist.ReduceOp.BXOR] = np.bitwise_xor.reduce(alls, 0)
        else:
            ops[dist.ReduceOp.AVG] = (alls.sum(0) / n).astype(dtype)
        for op, expected in ops.items():
            for async_op in (False, True):
                t = cr.tensor(inputs(rank, dtype))
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if async_op:
                    assert work.wait() and work.is_completed()
                check(t, expected.astype(dtype), f"all_reduce {op} {dtype} async={async_op}")
            t = cr.tensor(inputs(rank, dtype))
            dist.reduce(t, dst=n - 1, op=op)
            check(t, expected.astype(dtype) if rank == n - 1 else inputs(rank, dtype), f"reduce {op} {dtype}")
            out = cr.zeros(4, dtype=cr.tensor(inputs(0, dtype)).dtype)
            full = cr.tensor(np.concatenate([inputs(rank, dtype, (n, 4))]))
            dist.reduce_scatter_tensor(out, full, op=op)
            allfull = np.stack([inputs(r, dtype, (n, 4)) for r in range(n)])
            reduced = (allfull.sum(0) / n).astype(dtype) if op is dist.ReduceOp.AVG else _np_reduce(op, allfull)
            check(out, reduced[rank], f"reduce_scatter_tensor {op} {dtype}")
            parts = [cr.tensor(row) for row in inputs(rank, dtype, (n, 4))]
            out2 = cr.zeros(4, dtype=out.dtype)
            dist.reduce_scatter(out2, parts, op=op)
            check(out2, reduced[rank], f"reduce_scatter {op} {dtype}")


def booleans(rank, n):
    """Bool tensors reduce logically, as PyTorch's backends do: SUM and MAX are "any", PRODUCT and MIN "all"."""
    alls = np.stack([np.array([r == 0, True, False, r % 2 == 1]) for r in range(n)])
    expected = {dist.ReduceOp.SUM: alls.any(0), dist.ReduceOp.MAX: alls.any(0), dist.ReduceOp.PRODUCT: alls.all(0),
                dist.ReduceOp.MIN: alls.all(0), dist.ReduceOp.BXOR: np.logical_xor.reduce(alls, 0)}
    for op, want in expected.items():
        t = cr.tensor(alls[rank])
        dist.all_reduce(t, op=op)
        check(t, want, f"all_reduce {op} bool")


def _np_reduce(op, a):
    ufunc = {dist.ReduceOp.SUM: np.add, dist.ReduceOp.PRODUCT: np.multiply, dist.ReduceOp.MIN: np.minimum,
             dist.ReduceOp.MAX: np.maximum, dist.ReduceOp.BAND: np.bitwise_and, dist.ReduceOp.BOR: np.bitwise_or,
             dist.ReduceOp.BXOR: np.bitwise_xor}[op]
    return ufunc.reduce(a, 0)


def movements(rank, n):
    for dtype in (np.float32, np.float64, np.int64):
        alls = np.stack([inputs(r, dtype) for r in range(n)])
        for src in range(n):
            t = cr.tensor(inputs(rank, dtype))
            dist.broadcast(t, src=src)
            check(t, alls[src], f"broadcast from {src}")
        outs = [cr.zeros(3, 4, dtype=cr.tensor(alls[0]).dtype) for _ in range(n)]
        dist.all_gather(outs, cr.tensor(inputs(rank, dtype)))
        for r in range(n):
            check(outs[r], alls[r], "all_gather")
        stacked = cr.zeros(n, 3, 4, dtype=outs[0].dtype)
        assert dist.all_gather_into_tensor(stacked, cr.tensor(inputs(rank, dtype))) is None  # blocking
        check(stacked, alls, "all_gather_into_tensor (stacked)")
        flat = cr.zeros(n * 3, 4, dtype=outs[0].dtype)
        dist.all_gather_into_tensor(flat, cr.tensor(inputs(rank, dtype)), async_op=True).wait()
        check(flat, alls.reshape(n * 3, 4), "all_gather_into_tensor (concatenated, async)")
        dst = n - 1
        got = [cr.zeros(3, 4, dtype=outs[0].dtype) for _ in range(n)] if rank == dst else None
        dist.gather(cr.tensor(inputs(rank, dtype)), got, dst=dst)
        if rank == dst:
            for r in range(n):
                check(got[r], alls[r], "gather")
        mine = cr.zeros(3, 4, dtype=outs[0].dtype)
        dist.scatter(mine, [cr.tensor(a) for a in alls * 2] if rank == 0 else None, src=0)
        check(mine, alls[rank] * 2, "scatter")


def objects_groups_p2p(rank, n):
    got = [None] * n
    dist.all_gather_object(got, {"rank": rank, "s": "x" * rank})
    assert got == [{"rank": r, "s": "x" * r} for r in range(n)], got
    items = [rank, "a"] if rank == 1 else [None, None]
    dist.broadcast_object_list(items, src=1)
    assert items == [1, "a"], items
    gathered = [None] * n if rank == 0 else None
    dist.gather_object(rank * 10, gathered, dst=0)
    assert rank != 0 or gathered == [r * 10 for r in range(n)], gathered
    out = [None]
    dist.scatter_object_list(out, [f"to {r}" for r in range(n)] if rank == 0 else None, src=0)
    assert out == [f"to {rank}"], out
    # a group of the last two ranks: collectives inside it; the others get NON_GROUP_MEMBER and skip
    members = [n - 2, n - 1]
    sub = dist.new_group(members)
    if rank in members:
        assert dist.get_rank(sub) == members.index(rank) and dist.get_world_size(sub) == 2
        t = cr.tensor([float(rank)])
        dist.all_reduce(t, group=sub)
        check(t, np.array([float(n - 2 + n - 1)], np.float32), "all_reduce in new_group")
        t = cr.tensor([float(rank)])
        dist.broadcast(t, src=n - 1, group=sub)  # src is a global rank, as in PyTorch
        check(t, np.array([float(n - 1)], np.float32), "broadcast in new_group")
        assert dist.get_process_group_ranks(sub) == members
    else:
        assert sub is dist.GroupMember.NON_GROUP_MEMBER and dist.get_rank(sub) == -1
        assert dist.all_reduce(cr.tensor([1.0]), group=sub) is None
    # point to point: a ring
    nxt, prev = (rank + 1) % n, (rank - 1) % n
    out = cr.zeros(3)
    send = dist.isend(cr.tensor([float(rank)] * 3), dst=nxt)
    assert dist.recv(out, src=prev) == prev
    send.wait()
    check(out, np.full(3, float(prev), np.float32), "isend/recv ring")
    dist.monitored_barrier(timeout=5)
    dist.barrier()
    assert dist.barrier(async_op=True).wait()


def errors(rank, n):
    def raises(kind, text, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except kind as err:
            assert text in str(err), (text, str(err))
        else:
            raise AssertionError(f"{fn.__name__} did not raise {kind.__name__}")
    raises(ValueError, "contiguous", dist.all_reduce, cr.zeros(4, 4).t())
    raises(TypeError, "chainrule Tensor", dist.all_reduce, np.zeros(3))
    raises(ValueError, "AVG needs a floating-point", dist.all_reduce, cr.tensor([1, 2]), op=dist.ReduceOp.AVG)
    raises(ValueError, "must hold", dist.all_gather_into_tensor, cr.zeros(5), cr.zeros(2))
    raises(ValueError, "not in the group", dist.broadcast, cr.zeros(2), src=n)
    raises(ValueError, "twice", dist.init_process_group, "mpi")


def main():
    dist.init_process_group(backend="mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    import os

    assert os.environ["RANK"] == str(rank) and os.environ["WORLD_SIZE"] == str(n)
    assert os.environ["LOCAL_WORLD_SIZE"] == str(n) and dist.get_node_local_rank() == rank  # one machine
    reductions(rank, n)
    booleans(rank, n)
    movements(rank, n)
    objects_groups_p2p(rank, n)
    errors(rank, n)
    every = [None] * n
    dist.all_gather_object(every, f"rank {rank} of {n}: collectives ok ({cr.get_default_device().type})")
    dist.destroy_process_group()
    assert not dist.is_initialized()
    if rank == 0:  # one line for the whole job (the ranks' own lines could interleave)
        print("\n".join(every), flush=True)


if __name__ == "__main__":
    main()
