"""Elementwise work on large CPU arrays, split across threads.

numpy's ufuncs run on one core, but they release the GIL, so chunks of one large elementwise
computation run in parallel on Python threads. That pays for compute-bound chains (tanh, exp,
several passes over cache-sized chunks); a single add or multiply is memory-bound and gains nothing
(measured), so only the fused kernels of the hot operations (GELU, softmax, layer norm) hand their
per-chunk work to :func:`parallel_for`. Small arrays, and other backends (whose kernels are parallel
already), run in one piece in the calling thread.

Threads go only to cores the BLAS leaves free (:func:`workers_beside`). OpenBLAS's threads keep
spinning for a while after each matrix product, so a worker on a core they use waits for the spinning
thread: with as many BLAS threads as cores, running these kernels in the calling thread alone is faster
for the training steps we measure, although two threads halve the kernels' time on idle cores
(bench/ANALYSIS.md; ``python bench/ab.py gpt --workers 1 2``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["parallel_for", "set_workers", "get_workers", "workers_beside", "usable_cores"]

MIN_CHUNK = 1 << 16  # elements: below this a thread hand-off costs more than it saves


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_beside(blas_threads: int) -> int:
    """Threads for elementwise kernels next to a BLAS using ``blas_threads`` threads: the calling
    thread plus the usable cores the BLAS leaves free (at most 8)."""
    return max(1, min(usable_cores() - blas_threads + 1, 8))


_WORKERS = [workers_beside(usable_cores())]  # the BLAS uses every core unless told otherwise
_POOL: list = []  # the executor, created on first use, replaced when the worker count changes


def set_workers(n: int) -> None:
    _WORKERS[0] = max(1, int(n))
    while _POOL:
        _POOL.pop().shutdown(wait=False)


def get_workers() -> int:
    return _WORKERS[0]


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=_WORKERS[0] - 1, thread_name_prefix="chainrule"))
    return _POOL[0]


def parallel_for(rows: int, row_size: int, like, work: Callable[[int, int], None]) -> None:
    """Call ``work(start, stop)`` over row ranges covering ``[0, rows)``, in parallel when the work is large
    and ``like`` is a numpy array. ``work`` must only write rows ``start:stop`` of its outputs."""
    chunks = min(_WORKERS[0], (rows * row_size) // MIN_CHUNK, rows)
    if chunks <= 1 or type(like) is not np.ndarray:
        work(0, rows)
        return
    bounds = [rows * i // chunks for i in range(chunks + 1)]
    futures = [_pool().submit(work, bounds[i], bounds[i + 1]) for i in range(1, chunks)]
    work(bounds[0], bounds[1])  # the calling thread takes the first chunk
    for future in futures:
        future.result()

