"""Elementwise work on large CPU arrays, split across threads.

numpy's ufuncs run on one core, but they release the GIL, so chunks of one large elementwise
computation run in parallel on Python threads. That pays for compute-bound chains (tanh, exp,
several passes over cache-sized chunks); a single add or multiply is memory-bound and gains nothing
(measured), so only the fused kernels of the hot operations (GELU, softmax, layer norm) hand their
per-chunk work to :func:`parallel_for`. Small arrays, and other backends (whose kernels are parallel
already), run in one piece in the calling thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["parallel_for", "set_workers", "get_workers"]

MIN_CHUNK = 1 << 16  # elements: below this a thread hand-off costs more than it saves
_WORKERS = [max(1, min(os.cpu_count() or 1, 8))]
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

