"""Is this process one of several started by an MPI launcher? Read from the launcher's environment, so that
answering never imports mpi4py (single-process use must not load MPI).

Every ``mpiexec``/``srun`` sets the job's size in the environment of each process it starts:
MPICH and Intel MPI's hydra ``PMI_SIZE``, Open MPI ``OMPI_COMM_WORLD_SIZE``, MVAPICH ``MV2_COMM_WORLD_SIZE``,
Slurm's ``srun`` ``SLURM_NTASKS`` (with ``SLURM_PROCID`` for the task's rank). ``CHAINRULE_DISTRIBUTED=0``
or ``=1`` overrides the guess either way.
"""

from __future__ import annotations

import os

__all__ = ["launched_world_size", "wants_distributed", "import_mpi"]

# (size variable, the variable that says this process was really started by that launcher)
_LAUNCHERS = (
    ("PMI_SIZE", "PMI_RANK"),  # MPICH / Intel MPI (hydra)
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),  # Open MPI
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),  # MVAPICH
    ("SLURM_NTASKS", "SLURM_PROCID"),  # srun (inside an salloc/sbatch allocation only the job sets SLURM_STEP_ID)
)


def launched_world_size() -> int | None:
    """The number of processes the launcher started, or None when no launcher started this one."""
    for size_var, rank_var in _LAUNCHERS:
        size = os.environ.get(size_var)
        if size is None or rank_var not in os.environ:
            continue
        if size_var == "SLURM_NTASKS" and "SLURM_STEP_ID" not in os.environ:
            continue  # a batch script itself (not a task srun started) also sees SLURM_NTASKS
        try:
            return int(size)
        except ValueError:
            continue
    return None


def wants_distributed() -> bool:
    """Whether a program that can run either way should join a process group: launched as one of several
    processes, or told so by ``CHAINRULE_DISTRIBUTED=1``."""
    forced = os.environ.get("CHAINRULE_DISTRIBUTED", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    size = launched_world_size()
    return size is not None and size > 1


_MISSING = ("chainrule.distributed needs mpi4py: pip install 'chainrule[mpi]' (mpi4py with the MPICH wheel) "
            "or 'chainrule[distributed]' (mpi4py for the cluster's own MPI)")


def import_mpi():
    """mpi4py's ``MPI`` module (importing it initializes MPI), or an ImportError saying what to install."""
    if os.environ.get("CHAINRULE_DISTRIBUTED_NO_MPI4PY") == "1":  # lets tests see what a user without mpi4py sees
        raise ImportError(_MISSING)
    try:
        import mpi4py
    except ImportError as err:
        raise ImportError(_MISSING) from err
    mpi4py.rc.thread_level = "multiple"  # the watchdog thread aborts while the main thread waits in MPI
    from mpi4py import MPI

    return MPI
