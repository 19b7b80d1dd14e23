"""Failure is clean, never a hang.

MPI itself does not guarantee that: when one rank raises, its interpreter's exit runs ``MPI_Finalize``,
which waits for the other ranks while they wait for it in their next collective. So, once a process group
exists:

- an uncaught exception prints its traceback with the rank, then ``MPI_Abort`` ends every rank
  (:func:`install_excepthook`);
- every blocking wait is watched by a daemon thread (:class:`Watchdog`): past its deadline the thread
  names the operation that stalled, dumps every thread's stack and aborts the job with status 124
  (mpi4py releases the GIL inside MPI calls, so the thread runs while the main thread waits);
- at interpreter exit every rank passes one barrier under the watchdog before MPI finalizes, so a rank
  that returned early while the others still communicate ends the job within the timeout instead of
  deadlocking in ``MPI_Finalize``.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
import traceback

__all__ = ["Watchdog", "abort", "install_excepthook"]

# the exit status of a job ended by the watchdog (as `timeout` reports a command that ran too long)
TIMEOUT_STATUS = 124
# mpiexec forwards each rank's output through a proxy process that MPI_Abort kills with the ranks: what a
# rank has just written can be lost unless the proxy gets a moment to pass it on first
_FORWARDING_GRACE_S = 0.5


def abort(comm, rank: int, message: str, status: int = 1) -> None:
    """Print ``message`` for rank ``rank`` and end every process of the job with ``status``."""
    try:
        sys.stdout.flush()
        sys.stderr.write(f"[rank {rank}] {message}\n")
        sys.stderr.flush()
        time.sleep(_FORWARDING_GRACE_S)
    finally:
        comm.Abort(status)
        os._exit(status)  # MPI_Abort may return before the launcher's kill arrives: print nothing more


class Watchdog:
    """Aborts the job when an operation armed with :meth:`watch` runs past its deadline."""

    POLL_S = 0.05

    def __init__(self, comm, rank: int):
        self._comm = comm
        self._rank = rank
        self._armed: tuple | None = None  # (deadline, what, timeout_s)
        self._thread = threading.Thread(target=self._run, name="chainrule-distributed-watchdog", daemon=True)
        self._thread.start()

    def watch(self, what: str, timeout_s: float) -> _Armed:
        """A context in which ``what`` must finish within ``timeout_s`` seconds."""
        return _Armed(self, what, timeout_s)

    def _run(self) -> None:
        while True:
            time.sleep(self.POLL_S)
            armed = self._armed
            if armed is not None and time.monotonic() > armed[0]:
                self._expire(armed[1], armed[2])

    def _expire(self, what: str, timeout_s: float) -> None:
        sys.stderr.write(f"[rank {self._rank}] chainrule.distributed: {what} did not complete within {timeout_s:g} s "
                         "(another rank failed, stalled or never called it); the stacks of this rank:\n")
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        abort(self._comm, self._rank, f"aborting the job: {what} timed out", TIMEOUT_STATUS)


class _Armed:
    __slots__ = ("_dog", "_what", "_timeout_s", "_outer")

    def __init__(self, dog: Watchdog, what: str, timeout_s: float):
        self._dog = dog
        self._what = what
        self._timeout_s = timeout_s

    def __enter__(self):
        self._outer = self._dog._armed
        self._dog._armed = (time.monotonic() + self._timeout_s, self._what, self._timeout_s)
        return self

    def __exit__(self, *exc) -> None:
        self._dog._armed = self._outer


def install_excepthook(comm, rank: int, world_size: int) -> None:
    """Make an uncaught exception on any rank end the whole job (MPI_Abort) after printing its traceback."""
    def excepthook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        status = 130 if issubclass(kind, KeyboardInterrupt) else 1
        abort(comm, rank, f"uncaught {kind.__name__}, ending all {world_size} processes:\n{text}", status)

    sys.excepthook = excepthook

