"""Factorizations numpy lacks: LU with partial pivoting (batched, one column at a time, as LAPACK's getrf
computes it: the first row of largest magnitude is the pivot, so the pivots agree with LAPACK's), and the
unblocked Cholesky that reports where it stops (for linalg.cholesky_ex)."""

from __future__ import annotations


def lu_factor(a, xp):
    """(LU, pivots, info) of a (..., m, n) float array: L (unit lower, below the diagonal) and U packed in one
    array; pivots (..., min(m, n)) int32, 1-based, row i swapped with row pivots[i] - 1 at step i; info (...)
    int32, 0, or j + 1 for the first zero pivot U[j, j] (the factorization is still completed, as LAPACK's)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    lu = xp.array(a, copy=True).reshape((-1, m, n) if a.size else (int(xp.prod(xp.asarray(batch))), m, n))
    count = lu.shape[0]
    pivots = xp.zeros((count, k), dtype=xp.int32)
    info = xp.zeros(count, dtype=xp.int32)
    every = xp.arange(count)
    for j in range(k):
        p = j + xp.argmax(xp.abs(lu[:, j:, j]), axis=1)
        pivots[:, j] = p + 1
        row = lu[every, j, :].copy()
        lu[every, j, :] = lu[every, p, :]
        lu[every, p, :] = row
        pivot = lu[:, j, j]
        zero = pivot == 0
        info = xp.where(zero & (info == 0), j + 1, info).astype(xp.int32)
        # a zero pivot leaves its column unscaled (LAPACK's getrf does the same)
        lu[:, j + 1:, j] = xp.where(zero[:, None], lu[:, j + 1:, j], lu[:, j + 1:, j] / xp.where(zero, 1, pivot)[:, None])
        lu[:, j + 1:, j + 1:] -= lu[:, j + 1:, j, None] * lu[:, j, None, j + 1:]
    return lu.reshape(a.shape), pivots.reshape(batch + (k,)), info.reshape(batch)


def permutation(pivots, m: int, xp):
    """perm (..., m) with A[..., perm, :] = L U, from the 1-based pivots of :func:`lu_factor`."""
    batch = pivots.shape[:-1]
    flat = pivots.reshape((int(xp.prod(xp.asarray(batch))), pivots.shape[-1])).astype(xp.int64) - 1
    perm = xp.broadcast_to(xp.arange(m), (flat.shape[0], m)).copy()
    every = xp.arange(flat.shape[0])
    for j in range(flat.shape[1]):
        p = flat[:, j]
        swapped = perm[every, p].copy()
        perm[every, p] = perm[every, j]
        perm[every, j] = swapped
    return perm.reshape(batch + (m,))


def permutation_matrix(pivots, m: int, dtype, xp):
    """P (..., m, m) with A = P L U: P[perm[i], i] = 1."""
    perm = permutation(pivots, m, xp)
    eye = xp.eye(m, dtype=dtype)
    return xp.swapaxes(eye[perm], -1, -2)


def cholesky_unblocked(a, xp):
    """(L, info) of one symmetric (n, n) float array from its lower triangle, column by column as LAPACK's
    potf2: at the first leading minor of order j + 1 that is not positive-definite, info = j + 1 and the
    factorization stops, leaving a[j, j] - |L[j, :j]|^2 on the diagonal there and the columns after it as
    they were (the upper triangle is zero)."""
    n = a.shape[-1]
    out = xp.tril(a).astype(a.dtype, copy=True)
    for j in range(n):
        diagonal = out[j, j] - out[j, :j] @ out[j, :j]
        if not diagonal > 0:
            out[j, j] = diagonal
            return out, j + 1
        out[j, j] = xp.sqrt(diagonal)
        out[j + 1:, j] = (out[j + 1:, j] - out[j + 1:, :j] @ out[j, :j]) / out[j, j]
    return out, 0
