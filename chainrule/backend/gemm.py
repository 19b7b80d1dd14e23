"""Matrix products on backend arrays, laid out for BLAS.

numpy runs ``a @ b`` for a stack of matrices ``a`` (..., M, K) and one matrix ``b`` (K, N) as one BLAS call
per matrix of the stack, which for a small M is several times slower than one call over all the rows at
once; :func:`matmul` folds the stack into rows when it can.
"""

from __future__ import annotations

__all__ = ["matmul"]


def matmul(a, b):
    """``a @ b`` (numpy's rules), with a stack of matrices times one matrix done as one product of
    (rows, K) by (K, N)."""
    if a.ndim > 2 and b.ndim == 2 and a.shape[-1] == b.shape[0]:
        rows = a.reshape(-1, a.shape[-1])  # a view when ``a`` is contiguous, else one copy
        return (rows @ b).reshape(a.shape[:-1] + (b.shape[1],))
    return a @ b

