"""Factorizations numpy lacks: LU with partial pivoting (batched, one column at a time, as LAPACK's getrf
computes it: the first row of largest magnitude is the pivot, so the pivots agree with LAPACK's), the
unblocked Cholesky that reports where it stops (for linalg.cholesky_ex), and the Bunch-Kaufman LDL^T of
symmetric indefinite matrices with its solve (LAPACK's sytf2 and sytrs, one matrix at a time)."""

from __future__ import annotations

import math


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


# ----- LDL^T with Bunch-Kaufman pivoting ------------------------------------------------------------------------

_BUNCH_KAUFMAN_ALPHA = (1.0 + math.sqrt(17.0)) / 8.0  # the pivoting threshold of Bunch and Kaufman


def _ldl_factor_one(a, xp):
    """(LD, pivots, info) of one symmetric matrix from its lower triangle, as LAPACK's sytf2 (uplo L): D's 1x1 and
    2x2 blocks on LD's diagonal, L's columns below them; pivots 1-based, negative for a 2x2 block."""
    A = xp.tril(a).astype(a.dtype, copy=True)
    n = A.shape[0]
    piv = xp.zeros(n, dtype=xp.int32)
    info = 0
    k = 0
    while k < n:
        kstep = 1
        absakk = abs(A[k, k])
        if k < n - 1:
            imax = k + 1 + int(xp.argmax(xp.abs(A[k + 1:, k])))
            colmax = abs(A[imax, k])
        else:
            imax, colmax = k, 0.0
        if max(absakk, colmax) == 0 or absakk != absakk:
            if info == 0:
                info = k + 1
            kp = k
        else:
            if absakk >= _BUNCH_KAUFMAN_ALPHA * colmax:
                kp = k
            else:
                jmax = k + int(xp.argmax(xp.abs(A[imax, k:imax])))
                rowmax = abs(A[imax, jmax])
                if imax < n - 1:
                    j2 = imax + 1 + int(xp.argmax(xp.abs(A[imax + 1:, imax])))
                    rowmax = max(rowmax, abs(A[j2, imax]))
                if absakk >= _BUNCH_KAUFMAN_ALPHA * colmax * (colmax / rowmax):
                    kp = k
                elif abs(A[imax, imax]) >= _BUNCH_KAUFMAN_ALPHA * rowmax:
                    kp = imax
                else:
                    kp, kstep = imax, 2
            kk = k + kstep - 1
            if kp != kk:
                if kp < n - 1:
                    A[kp + 1:, [kk, kp]] = A[kp + 1:, [kp, kk]]
                seg = A[kk + 1:kp, kk].copy()
                A[kk + 1:kp, kk] = A[kp, kk + 1:kp]
                A[kp, kk + 1:kp] = seg
                A[kk, kk], A[kp, kp] = A[kp, kp], A[kk, kk]
                if kstep == 2:
                    A[k + 1, k], A[kp, k] = A[kp, k], A[k + 1, k]
            if kstep == 1:
                if k < n - 1:
                    d11 = 1.0 / A[k, k]
                    col = A[k + 1:, k].copy()
                    A[k + 1:, k + 1:] -= xp.tril(d11 * xp.outer(col, col))
                    A[k + 1:, k] = col * d11
            elif k < n - 2:
                d21 = A[k + 1, k]
                d11 = A[k + 1, k + 1] / d21
                d22 = A[k, k] / d21
                t = 1.0 / (d11 * d22 - 1.0)
                d21 = t / d21
                wk = d21 * (d11 * A[k + 2:, k] - A[k + 2:, k + 1])
                wkp1 = d21 * (d22 * A[k + 2:, k + 1] - A[k + 2:, k])
                A[k + 2:, k + 2:] -= xp.tril(xp.outer(A[k + 2:, k], wk) + xp.outer(A[k + 2:, k + 1], wkp1))
                A[k + 2:, k], A[k + 2:, k + 1] = wk, wkp1
        if kstep == 1:
            piv[k] = kp + 1
        else:
            piv[k] = piv[k + 1] = -(kp + 1)
        k += kstep
    return A, piv, info


def _ldl_solve_one(LD, piv, B, xp):
    """X with A X = B from _ldl_factor_one's factorization (as LAPACK's sytrs, uplo L)."""
    A = LD
    n = A.shape[0]
    X = B.astype(xp.result_type(LD, B), copy=True)
    k = 0
    while k < n:  # solve L D Y = P^T B
        if piv[k] > 0:
            kp = piv[k] - 1
            X[[k, kp]] = X[[kp, k]]
            X[k + 1:] -= xp.outer(A[k + 1:, k], X[k])
            X[k] /= A[k, k]
            k += 1
        else:
            kp = -piv[k] - 1
            X[[k + 1, kp]] = X[[kp, k + 1]]
            X[k + 2:] -= xp.outer(A[k + 2:, k], X[k]) + xp.outer(A[k + 2:, k + 1], X[k + 1])
            akm1k = A[k + 1, k]
            akm1, ak = A[k, k] / akm1k, A[k + 1, k + 1] / akm1k
            denom = akm1 * ak - 1.0
            bkm1, bk = X[k] / akm1k, X[k + 1] / akm1k
            X[k], X[k + 1] = (ak * bkm1 - bk) / denom, (akm1 * bk - bkm1) / denom
            k += 2
    k = n - 1
    while k >= 0:  # solve L^T P^T X = Y
        if piv[k] > 0:
            X[k] -= A[k + 1:, k] @ X[k + 1:]
            kp = piv[k] - 1
            X[[k, kp]] = X[[kp, k]]
            k -= 1
        else:
            X[k] -= A[k + 1:, k] @ X[k + 1:]
            X[k - 1] -= A[k + 1:, k - 1] @ X[k + 1:]
            kp = -piv[k] - 1
            X[[k, kp]] = X[[kp, k]]
            k -= 2
    return X


def ldl_factor(a, xp):
    """(LD, pivots, info) of a (..., n, n) batch of symmetric matrices (lower triangles read)."""
    flat = a.reshape((math.prod(a.shape[:-2]),) + a.shape[-2:])
    parts = [_ldl_factor_one(m, xp) for m in flat]
    n = a.shape[-1]
    LD = xp.stack([p[0] for p in parts]) if parts else xp.zeros((0, n, n), dtype=a.dtype)
    pivots = xp.stack([p[1] for p in parts]) if parts else xp.zeros((0, n), dtype=xp.int32)
    info = xp.asarray([p[2] for p in parts], dtype=xp.int32)
    return LD.reshape(a.shape), pivots.reshape(a.shape[:-1]), info.reshape(a.shape[:-2])


def ldl_solve(LD, pivots, B, xp):
    """X with A X = B for the batch factored by :func:`ldl_factor` (batch dims broadcast)."""
    batch = xp.broadcast_shapes(LD.shape[:-2], B.shape[:-2])
    count = math.prod(batch)
    LD = xp.broadcast_to(LD, batch + LD.shape[-2:]).reshape((count,) + LD.shape[-2:])
    pivots = xp.broadcast_to(pivots, batch + pivots.shape[-1:]).reshape((count,) + pivots.shape[-1:])
    B = xp.broadcast_to(B, batch + B.shape[-2:]).reshape((count,) + B.shape[-2:])
    out = [_ldl_solve_one(LD[i], pivots[i], B[i], xp) for i in range(B.shape[0])]
    dtype = xp.result_type(LD, B)
    return (xp.stack(out) if out else xp.zeros(B.shape, dtype=dtype)).reshape(batch + B.shape[-2:])
