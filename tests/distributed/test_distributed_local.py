"""The parts of chainrule.distributed that need no MPI job: launch detection, the bucket assignment (against
PyTorch's), and that single-process use never loads mpi4py."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from chainrule.distributed import launched_world_size, wants_distributed
from chainrule.nn.parallel.distributed import compute_bucket_assignment_by_size

LAUNCH_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE",
               "MV2_COMM_WORLD_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_ID", "CHAINRULE_DISTRIBUTED")


@pytest.fixture
def clean_env(monkeypatch):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize("env, size", [
    ({}, None),
    ({"PMI_SIZE": "4", "PMI_RANK": "1"}, 4),  # MPICH / Intel MPI
    ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "0"}, 3),  # Open MPI
    ({"MV2_COMM_WORLD_SIZE": "2", "MV2_COMM_WORLD_RANK": "0"}, 2),  # MVAPICH
    ({"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_STEP_ID": "0"}, 8),  # a task srun started
    ({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}, None),  # the batch script itself
    ({"PMI_SIZE": "2"}, None),  # a size without a rank is no launch
])
def test_launch_detection_from_the_launchers_environment(clean_env, env, size):
    for var, value in env.items():
        clean_env.setenv(var, value)
    assert launched_world_size() == size
    assert wants_distributed() == (size is not None and size > 1)


def test_chainrule_distributed_forces_either_way(clean_env):
    clean_env.setenv("PMI_SIZE", "2")
    clean_env.setenv("PMI_RANK", "0")
    clean_env.setenv("CHAINRULE_DISTRIBUTED", "0")
    assert not wants_distributed()
    clean_env.delenv("PMI_SIZE")
    clean_env.setenv("CHAINRULE_DISTRIBUTED", "1")
    assert wants_distributed()


def test_single_process_use_never_imports_mpi4py():
    code = ("import sys, chainrule, chainrule.distributed as d, chainrule.nn.parallel;"
            "assert not d.is_initialized(); print('mpi4py' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="needs mpi4py: pip install -e '.[mpi]'")
def test_a_torchrun_launch_is_named_instead_of_training_alone():
    code = "import chainrule.distributed as d; d.init_process_group('mpi')"
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1"}
    for var in LAUNCH_VARS:
        env.pop(var, None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0 and "WORLD_SIZE=2 but MPI started 1 process(es)" in done.stderr
    assert "mpiexec -n N" in done.stderr


def test_calls_before_init_process_group_raise_valueerror():
    import chainrule as cr
    import chainrule.distributed as dist

    for call in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(cr.ones(2))):
        with pytest.raises(ValueError, match="has not been initialized"):
            call()
    with pytest.raises(ValueError, match="backend 'nccl' is not available"):
        dist.init_process_group("nccl")


@pytest.mark.oracle
def test_bucket_assignment_matches_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch.distributed")
    rng = np.random.default_rng(0)
    for _ in range(80):
        n = int(rng.integers(1, 12))
        sizes = [int(s) for s in rng.integers(1, 400, n)]
        kinds = [int(k) for k in rng.integers(0, 2, n)]
        limits = [int(rng.integers(100, 2000)), int(rng.integers(100, 4000))]
        tensors = [torch.empty(s, dtype=(torch.float32, torch.float64)[k]) for s, k in zip(sizes, kinds)]
        theirs, _ = torch.distributed._compute_bucket_assignment_by_size(tensors, limits, [False] * n)
        ours = compute_bucket_assignment_by_size(sizes, [(np.float32, np.float64)[k] for k in kinds], limits)
        assert ours == [list(b) for b in theirs], (sizes, kinds, limits)


@pytest.mark.oracle
def test_distributed_sampler_matches_torch_without_shuffle():
    pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler

    from chainrule.data import DistributedSampler

    for n in range(0, 13):
        for replicas in (1, 2, 3, 5):
            for drop_last in (False, True):
                for rank in range(replicas):
                    theirs = list(TorchSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last))
                    mine = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
                    assert list(mine) == theirs and len(mine) == len(theirs), (n, replicas, rank, drop_last)


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (7, 2, False)])
def test_distributed_sampler_shares_one_shuffled_order(n, replicas, drop_last):
    from chainrule.data import DistributedSampler

    def shares(epoch):
        out = []
        for rank in range(replicas):
            sampler = DistributedSampler(range(n), replicas, rank, seed=3, drop_last=drop_last)
            sampler.set_epoch(epoch)
            out.append(list(sampler))
        return out

    first = shares(0)
    assert len({len(s) for s in first}) == 1  # every rank the same number of samples
    interleaved = [i for row in zip(*first) for i in row]  # rank r holds positions r, r+N, ...
    if drop_last:
        assert len(interleaved) == n // replicas * replicas and len(set(interleaved)) == len(interleaved)
    else:
        assert set(interleaved) == set(range(n))  # the whole data set, the padding repeating the start
        assert interleaved[n:] == interleaved[:len(interleaved) - n]
    assert first == shares(0)  # the same on every rank and every call
    assert first != shares(1)  # a new order for a new epoch


def test_distributed_sampler_feeds_the_loader_and_checks_its_arguments():
    import chainrule as cr
    from chainrule.data import DataLoader, DistributedSampler, TensorDataset

    data = TensorDataset(cr.arange(11))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    loader = DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    assert [b[0].tolist() for b in loader] == [[1, 3], [5, 7], [9, 0]]
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(data, num_replicas=2, rank=2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(data)
