"""How many threads numerical work may use: ``set_num_threads(n)`` limits the BLAS (through
threadpoolctl, when installed) and the OpenMP pools numpy links against to ``n``, and gives
chainrule's own threads for large elementwise kernels (``chainrule.backend.parallel``) the cores
those leave free."""

from __future__ import annotations

import os

__all__ = ["set_num_threads", "get_num_threads"]

_limiter = []  # the active threadpool_limits object, kept alive


def set_num_threads(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    from chainrule.backend.parallel import set_workers, workers_beside

    try:
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        raise ImportError(
            "set_num_threads needs threadpoolctl to limit the BLAS: pip install threadpoolctl (or chainrule[train])"
        ) from err
    set_workers(workers_beside(n))
    _limiter.clear()
    _limiter.append(threadpool_limits(limits=n))
    os.environ["OMP_NUM_THREADS"] = str(n)


def get_num_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)
