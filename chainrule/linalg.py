"""``chainrule.linalg``, as ``torch.linalg``: factorizations, inverses, solves and norms with gradients
of every order.

Each decomposition is a primitive: its forward is ``numpy.linalg`` (through the backend's namespace) on
the arrays, its backward rule is written with differentiable tensor ops (matmul, solve, ...), so
``create_graph=True`` differentiates the rule again. A factorization with several outputs (eigh's
eigenvalues and eigenvectors, svd's U, S, Vh, qr's Q, R) records one node per output; each node's rule
is the part of the gradient that comes from its own output (the formulas are linear in the output
gradients), reading the other outputs as tensors. An unused output therefore costs nothing and adds
nothing, exactly as PyTorch's undefined gradients.

Policy at degenerate spectra (PyTorch's): the gradient through eigenvectors (eigh) and singular vectors
(svd) divides by eigenvalue gaps ``lambda_j - lambda_i`` (``s_j^2 - s_i^2`` for svd). chainrule divides as
PyTorch does, without guarding: at (near-)repeated eigenvalues such a gradient is inf/nan or huge, since
the vectors are not a differentiable function there. Gradients that only use the eigenvalues / singular
values (``eigvalsh``, ``svdvals``, ``matrix_norm(ord='nuc')``, a loss that ignores ``eigenvectors``) never
divide and stay finite.

Composites (gradients for free): ``solve`` for the left=False form, ``svdvals``, the norms, ``pinv``,
``cross``, ``matrix_exp`` (scaling and squaring of a degree-18 Taylor polynomial), ``lstsq`` (through
``pinv``), ``det``'s top-level alias ``logdet``, ``cond``, ``multi_dot``, ``tensorinv``/``tensorsolve``,
``householder_product``, ``lu`` and ``lu_solve`` (from ``lu_factor``'s packed factors).

numpy has no LU or LDL^T: :mod:`chainrule.backend.factor` computes them as LAPACK does (the same pivots as
PyTorch's). ``lu_factor`` is a primitive with PyTorch's gradient for square, wide and tall matrices;
``ldl_factor``/``ldl_solve`` have no derivative, as in PyTorch. LAPACK has no float16, and PyTorch refuses half
precision here: so does chainrule, with a message.
"""

from __future__ import annotations

import math
from collections import namedtuple

from chainrule.backend import special, xp_of
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, untracked

__all__ = ["inv", "inv_ex", "det", "slogdet", "logdet", "solve", "cholesky", "eigh", "eigvalsh", "svd", "svdvals",
           "vector_norm", "matrix_norm", "norm", "solve_triangular", "pinv", "cross", "matrix_exp", "qr", "lstsq",
           "inverse", "trace", "diagonal", "matmul", "vecdot", "matrix_power", "LinAlgError",
           "solve_ex", "cholesky_ex", "matrix_rank", "cond", "multi_dot", "tensorinv", "tensorsolve", "vander",
           "householder_product", "lu_factor", "lu_factor_ex", "lu", "lu_solve", "ldl_factor", "ldl_factor_ex",
           "ldl_solve"]

SlogdetResult = namedtuple("slogdet", ["sign", "logabsdet"])
EighResult = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
SVDResult = namedtuple("svd", ["U", "S", "Vh"])
QRResult = namedtuple("qr", ["Q", "R"])
LstsqResult = namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])
InvExResult = namedtuple("inv_ex", ["inverse", "info"])


class LinAlgError(RuntimeError):
    """A matrix the operation cannot handle (singular, not positive-definite): as ``torch.linalg.LinAlgError``,
    a RuntimeError."""


# ----- helpers --------------------------------------------------------------------------------------

def _float(op: str, A: Tensor, half_ok: bool = False) -> None:
    """``A`` must be floating; unless ``half_ok`` (no LAPACK call), float32 or wider."""
    if A._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: Expected a floating point tensor as input. Got {A.dtype} ({describe(A)}); "
                           "convert it with .double() or .float()")
    if A._data.dtype.itemsize < 4 and not half_ok:  # LAPACK has no half precision; PyTorch refuses it too
        raise RuntimeError(f"{op}: Low precision dtypes not supported. Got {A.dtype} ({describe(A)}); "
                           "convert it with .float()")


def _square(op: str, A, name: str = "A") -> Tensor:
    A = tensor_operand(A, op)
    if A.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor {name} must have at least 2 dimensions, got {describe(A)}")
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"{op}: {name} must be batches of square matrices, but they are "
                           f"{A.shape[-2]} by {A.shape[-1]} matrices ({describe(A)})")
    _float(op, A)
    return A


def _matrix(op: str, A, name: str = "A") -> Tensor:
    A = tensor_operand(A, op)
    if A.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor {name} must have at least 2 dimensions, got {describe(A)}")
    _float(op, A)
    return A


def _eye(n: int, like: Tensor) -> Tensor:
    from chainrule.creation import eye

    return eye(n, dtype=like.dtype, device=like.device)


def diagonal(A, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """``torch.diagonal`` with the last two dims as default (``torch.linalg.diagonal``)."""
    from chainrule.ops.shape import diagonal as _diagonal

    return _diagonal(tensor_operand(A, "linalg.diagonal"), offset, dim1, dim2)


def _diag(A: Tensor) -> Tensor:
    from chainrule.ops.linalg import einsum

    return einsum("...ii->...i", A)


def _diag_embed(v: Tensor) -> Tensor:
    return v.unsqueeze(-1) * _eye(v.shape[-1], v)


def trace(A) -> Tensor:
    """Sum of the diagonal of a 2-D matrix (``torch.trace``)."""
    A = tensor_operand(A, "trace")
    if A.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {A.ndim} ({describe(A)})")
    from chainrule.ops.shape import diagonal as _diagonal

    return _diagonal(A).sum()  # (a rectangular matrix's main diagonal too, as PyTorch)


def _linalg_error(op: str, err: Exception, what: str) -> LinAlgError:
    return LinAlgError(f"{op}: {what} ({err})")


def _check_finite_result(op: str, out, what: str):
    xp = xp_of(out)
    if not bool(xp.all(xp.isfinite(out))):
        raise LinAlgError(f"{op}: {what}")


# ----- inv, det, slogdet -----------------------------------------------------------------------------

_SINGULAR = "The input matrix is singular, so the inversion could not be completed"


def inv(A) -> Tensor:
    """Inverse of a square matrix (batches of them). Raises LinAlgError for a singular matrix, as PyTorch."""
    A = _square("linalg.inv", A)
    xp = xp_of(A._data)
    try:
        out = xp.linalg.inv(A._data)
    except xp.linalg.LinAlgError as err:
        raise _linalg_error("linalg.inv", err, _SINGULAR) from None
    _check_finite_result("linalg.inv", out, _SINGULAR)

    def rule(g, Ainv):  # d(A^-1) = -A^-1 dA A^-1
        return (-(Ainv.mT @ g @ Ainv.mT),)

    return record(out, "linalg_inv", (A,), rule, (), keep_output=True)


inverse = inv


def inv_ex(A, *, check_errors: bool = False) -> InvExResult:
    A = _square("linalg.inv_ex", A)
    try:
        X = inv(A)
        info = 0
    except LinAlgError:
        if check_errors:
            raise
        xp = xp_of(A._data)
        X = untracked(xp.full(A._data.shape, xp.nan, dtype=A._data.dtype), A)
        info = 1
    xp = xp_of(A._data)
    return InvExResult(X, untracked(xp.full(A._data.shape[:-2], info, dtype=xp.int32), A))


def det(A) -> Tensor:
    """Determinant. Its gradient det(A) A^-T needs an invertible A (a singular A gets inf/nan gradients,
    where PyTorch falls back to an SVD formula)."""
    A = _square("linalg.det", A)
    out = xp_of(A._data).linalg.det(A._data)

    def rule(g, d):
        return ((g * d).unsqueeze(-1).unsqueeze(-1) * inv(A).mT,)

    return record(out, "linalg_det", (A,), rule, (A,), keep_output=True)


def slogdet(A) -> SlogdetResult:
    """(sign, log|det|); only logabsdet carries a gradient (A^-T)."""
    A = _square("linalg.slogdet", A)
    sign, logabs = xp_of(A._data).linalg.slogdet(A._data)

    def rule(g, _):
        return (g.unsqueeze(-1).unsqueeze(-1) * inv(A).mT,)

    return SlogdetResult(untracked(sign, A), record(logabs, "linalg_slogdet", (A,), rule, (A,)))


def logdet(A) -> Tensor:
    """log det A: nan for a negative determinant, -inf for a zero one (``torch.logdet``)."""
    sign, logabs = slogdet(A)
    xp = xp_of(logabs._data)
    bad = untracked(xp.where(sign._data < 0, xp.nan, xp.where(sign._data == 0, -xp.inf, 0.0)).astype(
        logabs._data.dtype), logabs)
    return logabs + bad


# ----- solve -----------------------------------------------------------------------------------------

def solve(A, B, *, left: bool = True) -> Tensor:
    """X with A X = B (left) or X A = B; B may be a vector (..., n) when its shape is A's batch shape plus n,
    as PyTorch. Leading dims broadcast."""
    A = _square("linalg.solve", A)
    B = tensor_operand(B, "linalg.solve")
    _float("linalg.solve", B)
    if A._data.dtype != B._data.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type {A.dtype} "
                           f"and B of type {B.dtype} instead")
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if vector:
        if not left:
            raise RuntimeError("linalg.solve: Vector broadcasting of the left hand side is not supported for "
                               "left=False. In this case linalg.solve is equivalent to B / A.squeeze(-1)")
        return _solve(A, B.unsqueeze(-1)).squeeze(-1)
    if not left:
        return _solve(A.mT, B.mT).mT
    return _solve(A, B)


def _solve(A: Tensor, B: Tensor) -> Tensor:
    if B.ndim < 2 or B.shape[-2] != A.shape[-1]:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({A.shape[-2]}x{A.shape[-1]} and {B.shape[-2] if B.ndim > 1 else B.shape[0]}x"
                           f"{B.shape[-1] if B.ndim > 1 else 1}); A {describe(A)}, B {describe(B)}")
    xp = xp_of(A._data)
    try:
        out = xp.linalg.solve(A._data, B._data)
    except xp.linalg.LinAlgError as err:
        raise _linalg_error("linalg.solve", err, "The solver failed because the input matrix is singular") from None
    except ValueError as err:
        raise RuntimeError(f"linalg.solve: the batch dims of A {describe(A)} and B {describe(B)} do not "
                           f"broadcast ({err})") from None
    _check_finite_result("linalg.solve", out, "The solver failed because the input matrix is singular")

    def rule(g, X):  # gB = A^-T g, gA = -gB X^T
        gB = _solve(A.mT, g)
        return (-(gB @ X.mT) if A._rg else None, gB if B._rg else None)

    return record(out, "linalg_solve", (A, B), rule, (A,), keep_output=True)


def solve_triangular(A, B, *, upper: bool, left: bool = True, unitriangular: bool = False) -> Tensor:
    """X with A X = B (left) or X A = B, reading only the upper or lower triangle of A (its diagonal taken
    as ones when ``unitriangular``)."""
    A = _square("linalg.solve_triangular", A)
    B = tensor_operand(B, "linalg.solve_triangular")
    _float("linalg.solve_triangular", B)
    if B.ndim < 2:
        raise RuntimeError(f"linalg.solve_triangular: The input tensor B must have at least 2 dimensions, "
                           f"got {describe(B)}")
    if A._data.dtype != B._data.dtype:
        raise RuntimeError(f"linalg.solve_triangular: Expected A and B to have the same dtype, but found A of "
                           f"type {A.dtype} and B of type {B.dtype} instead")
    n = A.shape[-1]
    if (B.shape[-2] if left else B.shape[-1]) != n:
        raise RuntimeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the equation "
                           f"{'AX = B' if left else 'XA = B'} ({A.shape[-2]}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    xp = xp_of(A._data)
    tri = xp.triu(A._data) if upper else xp.tril(A._data)
    if unitriangular:
        tri = tri - xp.eye(n, dtype=tri.dtype) * tri + xp.eye(n, dtype=tri.dtype)
    try:
        out = xp.linalg.solve(tri, B._data) if left else xp.swapaxes(
            xp.linalg.solve(xp.swapaxes(tri, -1, -2), xp.swapaxes(B._data, -1, -2)), -1, -2)
    except xp.linalg.LinAlgError:
        with special._quiet(xp):  # a zero on the diagonal: PyTorch returns inf/nan, not an error
            out = _substitute(xp, tri, B._data, upper, left)

    def rule(g, X):
        gB = solve_triangular(A.mT, g, upper=not upper, left=left, unitriangular=unitriangular)
        gA = None
        if A._rg:
            gA = -(gB @ X.mT) if left else -(X.mT @ gB)
            gA = gA.triu(1 if unitriangular else 0) if upper else gA.tril(-1 if unitriangular else 0)
        return gA, (gB if B._rg else None)

    return record(out, "linalg_solve_triangular", (A, B), rule, (A,), keep_output=True)


def _substitute(xp, tri, B, upper: bool, left: bool):
    """Back/forward substitution (for singular triangular matrices, where it yields inf/nan as LAPACK's trtrs)."""
    if not left:
        return xp.swapaxes(_substitute(xp, xp.swapaxes(tri, -1, -2), xp.swapaxes(B, -1, -2), not upper, True), -1, -2)
    n = tri.shape[-1]
    batch = xp.broadcast_shapes(tri.shape[:-2], B.shape[:-2])
    tri = xp.broadcast_to(tri, batch + tri.shape[-2:])
    X = xp.array(xp.broadcast_to(B, batch + B.shape[-2:]), dtype=xp.result_type(tri, B))
    order = range(n - 1, -1, -1) if upper else range(n)
    for i in order:
        others = slice(i + 1, n) if upper else slice(0, i)
        acc = X[..., i, :] - xp.einsum("...k,...kj->...j", tri[..., i, others], X[..., others, :])
        X[..., i, :] = acc / tri[..., i, i, None]
    return X


# ----- cholesky --------------------------------------------------------------------------------------

def cholesky(A, *, upper: bool = False) -> Tensor:
    """L with A = L L^T (lower), or U = L^T with ``upper``; reads A's lower triangle. Raises LinAlgError for
    a matrix that is not positive-definite, as PyTorch."""
    A = _square("linalg.cholesky", A)
    xp = xp_of(A._data)
    try:
        L = xp.linalg.cholesky(A._data)
    except xp.linalg.LinAlgError as err:
        raise _linalg_error("linalg.cholesky", err, "The factorization could not be completed because the input "
                            "is not positive-definite") from None
    out = xp.swapaxes(L, -1, -2).copy() if upper else L

    def rule(g, out):  # PyTorch's cholesky_backward
        L_ = out.mT if upper else out
        gL = g.mT if upper else g
        gA = (L_.mT @ gL).tril()
        gA = 0.5 * (gA + gA.tril(-1).mT)
        gA = solve_triangular(L_.mT, gA, upper=True, left=True)
        gA = solve_triangular(L_, gA, upper=False, left=False)
        return (gA,)

    return record(out, "linalg_cholesky", (A,), rule, (), keep_output=True)


# ----- eigh ------------------------------------------------------------------------------------------

def eigh(A, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix, reading its ``UPLO``
    triangle. The eigenvectors' gradient divides by eigenvalue gaps: see the module docstring."""
    A = _square("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"linalg.eigh: Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    w, v = xp_of(A._data).linalg.eigh(A._data, UPLO=UPLO)
    box = {}

    def rule_values(g, _):  # V diag(gL) V^T
        V = box["V"]
        return ((V * g.unsqueeze(-2)) @ V.mT,)

    def rule_vectors(g, V):  # V (skew(V^T gV) / E) V^T, E_ij = L_j - L_i (PyTorch's linalg_eig_backward)
        L = box["L"]
        VtgV = V.mT @ g
        VtgV = 0.5 * (VtgV - VtgV.mT)
        E = L.unsqueeze(-2) - L.unsqueeze(-1) + _eye(L.shape[-1], L)
        return (V @ (VtgV / E) @ V.mT,)

    L = record(w, "linalg_eigh_values", (A,), rule_values, ())
    V = record(v, "linalg_eigh_vectors", (A,), rule_vectors, (), keep_output=True)
    box["L"], box["V"] = L, V
    return EighResult(L, V)


def eigvalsh(A, UPLO: str = "L") -> Tensor:
    return eigh(A, UPLO).eigenvalues


# ----- svd -------------------------------------------------------------------------------------------

def svd(A, full_matrices: bool = True) -> SVDResult:
    """A = U diag(S) Vh, singular values descending. As PyTorch, the gradient ignores the extra columns of
    U (rows of Vh) of a full_matrices factorization of a non-square matrix; it divides by gaps s_j^2 - s_i^2
    (see the module docstring) and, for a non-square matrix, by the singular values."""
    A = _matrix("linalg.svd", A)
    xp = xp_of(A._data)
    u, s, vh = xp.linalg.svd(A._data, full_matrices=full_matrices)
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    box = {}

    def parts():
        U, S, Vh = box["U"], box["S"], box["Vh"]
        if full_matrices and m != n:
            U, Vh = U[..., :, :k], Vh[..., :k, :]
        S2 = S * S
        E = S2.unsqueeze(-2) - S2.unsqueeze(-1) + _eye(k, S)
        return U, S, Vh, E

    def rule_S(g, _):
        U, _S, Vh, _E = parts()
        return ((U * g.unsqueeze(-2)) @ Vh,)

    def rule_U(g, _):
        U, S, Vh, E = parts()
        if full_matrices and m != n:
            g = g[..., :, :k]
        UtgU = U.mT @ g
        inner = ((UtgU - UtgU.mT) / E) * S.unsqueeze(-2)
        gA = U @ inner
        if m > k:
            gUSinv = g / S.unsqueeze(-2)
            gA = gA + gUSinv - U @ (U.mT @ gUSinv)
        return (gA @ Vh,)

    def rule_Vh(g, _):
        U, S, Vh, E = parts()
        if full_matrices and m != n:
            g = g[..., :k, :]
        gV, V = g.mT, Vh.mT
        VtgV = V.mT @ gV
        inner = S.unsqueeze(-1) * ((VtgV - VtgV.mT) / E)
        gA = inner @ Vh
        if n > k:
            gVSinv = gV / S.unsqueeze(-2)
            gA = gA + gVSinv.mT - (gVSinv.mT @ V) @ Vh
        return (U @ gA,)

    U = record(u, "linalg_svd_U", (A,), rule_U, ())
    S = record(s, "linalg_svd_S", (A,), rule_S, ())
    Vh = record(vh, "linalg_svd_Vh", (A,), rule_Vh, ())
    box.update(U=U, S=S, Vh=Vh)
    return SVDResult(U, S, Vh)


def svdvals(A) -> Tensor:
    """Singular values, descending (a composite of svd: its gradient U diag(gS) Vh never divides)."""
    return svd(_matrix("linalg.svdvals", A), full_matrices=False).S


# ----- norms -----------------------------------------------------------------------------------------

def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The ord-norm of x over ``dim`` (all of x by default) seen as a vector: a composite of ``chainrule.norm``
    (2-norm gradient 0 at 0, as PyTorch)."""
    from chainrule.ops.reduction import norm as _norm

    x = tensor_operand(x, "linalg.vector_norm")
    if x._data.dtype.kind not in "fc" and dtype is None:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {x.dtype}")
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}; use matrix_norm for 'fro'/'nuc'")
    if x.ndim == 0:
        x = x.reshape(1) if dim is None or not keepdim else x
    return _norm(x, float(ord), dim=dim, keepdim=keepdim, dtype=dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """'fro', 'nuc', 2, -2 (through the singular values), 1, -1, inf, -inf (max/min absolute column/row sum)."""
    A = tensor_operand(A, "linalg.matrix_norm")
    if dtype is not None:
        A = A.to(dtype)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 dimensions, "
                           f"got {describe(A)}")
    _float("linalg.matrix_norm", A, half_ok=ord not in ("nuc", 2, -2))  # only those go through the SVD
    if len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {dim}")
    d0, d1 = (d % A.ndim for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({d0}, {d1})")
    if ord == "fro":
        return vector_norm(A, 2, dim=(d0, d1), keepdim=keepdim)
    if ord in ("nuc", 2, -2):
        moved = A.movedim((d0, d1), (-2, -1))
        S = svdvals(moved)
        out = S.sum(-1) if ord == "nuc" else (S.amax(-1) if ord == 2 else S.amin(-1))
        if keepdim:
            out = out.unsqueeze(min(d0, d1)).unsqueeze(max(d0, d1))
        return out
    if ord in (1, -1, math.inf, -math.inf):
        sum_dim, red_dim = (d0, d1) if ord in (1, -1) else (d1, d0)
        sums = A.abs().sum(sum_dim, keepdim=True)
        out = sums.amax(red_dim, keepdim=True) if ord > 0 else sums.amin(red_dim, keepdim=True)
        return out if keepdim else out.squeeze(max(d0, d1)).squeeze(min(d0, d1))
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """``torch.linalg.norm``: a vector norm when dim is an int or A is 1-D, a matrix norm when dim is a 2-tuple
    or A is 2-D (with ord given), the 2-norm of all elements when ord and dim are None."""
    A = tensor_operand(A, "linalg.norm")
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 2 or (dim is None and ord is not None and A.ndim == 2):
        return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if dim is None and ord is not None and A.ndim != 1:
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
                           f"Got {A.ndim}D.")
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


# ----- composites ------------------------------------------------------------------------------------

def pinv(A, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
    """Moore-Penrose pseudo-inverse through the SVD (a composite): singular values at or below
    max(atol, rtol * s_max) are dropped; rtol defaults to eps * max(m, n) when atol is not given, as PyTorch."""
    A = _matrix("linalg.pinv", A)
    U, S, Vh = svd(A, full_matrices=False)
    xp = xp_of(A._data)
    eps = float(xp.finfo(A._data.dtype).eps)
    if rtol is None:
        rtol = eps * max(A.shape[-2], A.shape[-1]) if atol is None or atol == 0 else 0.0
    smax = S._data[..., :1] if S.shape[-1] else S._data
    cut = xp.maximum(atol or 0.0, rtol * smax)
    keep = untracked(S._data > cut, S)
    Sinv = (1.0 / S.masked_fill(~keep, 1.0)).masked_fill(~keep, 0.0)
    return (Vh.mT * Sinv.unsqueeze(-2)) @ U.mT


def cross(a, b, *, dim: int = -1) -> Tensor:
    """Cross product of 3-vectors along ``dim`` (operands broadcast). A composite."""
    from chainrule.ops.shape import stack

    a, b = tensor_operand(a, "linalg.cross"), tensor_operand(b, "linalg.cross")
    if a.ndim != b.ndim:
        raise RuntimeError(f"linalg.cross: inputs dimensions {a.ndim} and {b.ndim} must match")
    if a.shape[dim] != 3 or b.shape[dim] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {a.shape[dim]} and "
                           f"{b.shape[dim]}")
    a0, a1, a2 = a.unbind(dim)
    b0, b1, b2 = b.unbind(dim)
    return stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim=dim % a.ndim)


def matrix_exp(A) -> Tensor:
    """exp(A) by scaling and squaring: a degree-18 Taylor polynomial of A / 2^s (||A / 2^s||_1 <= 1/2), squared
    s times. A composite of matmuls, so every order of gradient follows."""
    A = _square("linalg.matrix_exp", A)
    xp = xp_of(A._data)
    n = A.shape[-1]
    norm1 = float(xp.abs(A._data).sum(-2).max()) if A._data.size else 0.0
    s = max(0, int(math.ceil(math.log2(norm1 / 0.5))) if norm1 > 0 else 0)
    X = A / float(2 ** s)
    eye = _eye(n, A)
    out = eye + X / 18.0
    for k in range(17, 0, -1):  # Horner: I + X/1 (I + X/2 (I + ...))
        out = eye + (X @ out) / float(k)
    for _ in range(s):
        out = out @ out
    return out


def matrix_power(A, n: int) -> Tensor:
    A = _square("linalg.matrix_power", A)
    if n < 0:
        return matrix_power(inv(A), -n)
    result = None
    base = A
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return _eye(A.shape[-1], A).expand(A.shape) * 1.0 if result is None else result


def matmul(a, b) -> Tensor:
    from chainrule.ops.linalg import matmul as _matmul

    return _matmul(a, b)


def vecdot(x, y, *, dim: int = -1) -> Tensor:
    x, y = tensor_operand(x, "linalg.vecdot"), tensor_operand(y, "linalg.vecdot")
    return (x * y).sum(dim)


def qr(A, mode: str = "reduced") -> QRResult:
    """A = Q R with Q orthonormal columns and R upper triangular (numpy's signs, which are LAPACK's, as
    PyTorch's on CPU). Differentiable when m >= n ('reduced', or 'complete' with m == n), as PyTorch."""
    A = _matrix("linalg.qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), "
                           "'r', or 'complete'")
    xp = xp_of(A._data)
    q, r = xp.linalg.qr(A._data, mode="complete" if mode == "complete" else "reduced")
    m, n = A.shape[-2], A.shape[-1]
    box = {}

    def check():
        if mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                               "Please use linalg.qr(A, mode='reduced') if you are going to differentiate through "
                               "linalg.qr.")
        if m < n or (mode == "complete" and m > n):
            raise NotImplementedError("linalg.qr: the derivative is implemented for m >= n with mode='reduced', "
                                      f"or m == n with mode='complete'; got a {m}x{n} matrix and mode={mode!r}")

    def sym(X):  # syminvadj of PyTorch's linalg_qr_backward: X + X^T with the diagonal halved
        X = X.triu()
        return X + X.mT - _diag_embed(_diag(X))

    def finish(M, gQ=None):
        Q, R = box["Q"], box["R"]
        gA = Q @ sym(M)
        if gQ is not None:
            gA = gA + gQ
        return (solve_triangular(R.mT, gA, upper=False, left=False),)

    def rule_Q(g, _):
        check()
        return finish(-(box["Q"].mT @ g), g)

    def rule_R(g, _):
        check()
        return finish(g @ box["R"].mT)

    R = record(r, "linalg_qr_R", (A,), rule_R, ())
    if mode == "r":
        return QRResult(untracked(xp.zeros((0,), dtype=A._data.dtype), A), R)
    Q = record(q, "linalg_qr_Q", (A,), rule_Q, ())
    box.update(Q=Q, R=R)
    return QRResult(Q, R)


def lstsq(A, B, rcond=None, *, driver=None) -> LstsqResult:
    """Least-squares solution of A X = B through the pseudo-inverse (a composite). As PyTorch's default CPU
    driver ('gelsy'), residuals and singular_values are empty; rank is computed."""
    A = _matrix("linalg.lstsq", A)
    B = tensor_operand(B, "linalg.lstsq")
    _float("linalg.lstsq", B)
    if A._data.dtype != B._data.dtype:
        raise RuntimeError(f"linalg.lstsq: Expected input and other to have the same dtype, but got input's dtype "
                           f"{A.dtype} and other's dtype {B.dtype}")
    vector = B.ndim == A.ndim - 1
    Bm = B.unsqueeze(-1) if vector else B
    if Bm.shape[-2] != A.shape[-2]:
        raise RuntimeError(f"linalg.lstsq: input.size(-2) should match other.size(-2), got {A.shape[-2]} and "
                           f"{Bm.shape[-2]}")
    xp = xp_of(A._data)
    eps = float(xp.finfo(A._data.dtype).eps)
    rtol = eps * max(A.shape[-2], A.shape[-1]) if rcond is None else rcond
    X = pinv(A, rtol=rtol) @ Bm
    if vector:
        X = X.squeeze(-1)
    s = xp.linalg.svd(A._data, compute_uv=False)
    rank = (s > rtol * s[..., :1]).sum(-1).astype(xp.int64) if s.shape[-1] else xp.zeros(s.shape[:-1], xp.int64)
    empty = xp.zeros((0,), dtype=A._data.dtype)
    return LstsqResult(X, untracked(empty, A), untracked(rank, A), untracked(empty, A))


# ----- more of torch.linalg (issue 16) ---------------------------------------------------------------------

SolveExResult = namedtuple("solve_ex", ["result", "info"])
CholeskyExResult = namedtuple("cholesky_ex", ["L", "info"])
LUFactorResult = namedtuple("lu_factor", ["LU", "pivots"])
LUFactorExResult = namedtuple("lu_factor_ex", ["LU", "pivots", "info"])
LUResult = namedtuple("lu", ["P", "L", "U"])


def _info(A: Tensor, values) -> Tensor:
    xp = xp_of(A._data)
    return untracked(xp.broadcast_to(xp.asarray(values, dtype=xp.int32), A._data.shape[:-2]).copy(), A)


def solve_ex(A, B, *, left: bool = True, check_errors: bool = False) -> SolveExResult:
    """``solve`` that reports a singular A in ``info`` (LAPACK's: the 1-based index of the zero pivot) instead
    of raising, unless check_errors; the result is then what the LU solve gives (inf/nan), as in PyTorch."""
    from chainrule.backend.special import _quiet

    A = _square("linalg.solve_ex", A)
    try:
        X = solve(A, B, left=left)
        return SolveExResult(X, _info(A, 0))
    except LinAlgError:
        if check_errors:
            raise
    B = tensor_operand(B, "linalg.solve_ex")
    LU, pivots, info = lu_factor_ex(A)
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    with _quiet(xp_of(A._data)):
        X = lu_solve(LU, pivots, B.unsqueeze(-1) if vector else B, left=left)
    return SolveExResult(X.squeeze(-1) if vector else X, info)


def cholesky_ex(A, *, upper: bool = False, check_errors: bool = False) -> CholeskyExResult:
    """``cholesky`` that reports, instead of raising, the order of the first leading minor that is not
    positive-definite in ``info`` (0 when the factorization succeeded); a failed factor is left as LAPACK's
    potf2 leaves it, as in PyTorch."""
    from chainrule.backend.factor import cholesky_unblocked

    A = _square("linalg.cholesky_ex", A)
    try:
        return CholeskyExResult(cholesky(A, upper=upper), _info(A, 0))
    except LinAlgError:
        if check_errors:
            raise
    xp = xp_of(A._data)
    flat = A._data.reshape((-1,) + A._data.shape[-2:])
    parts = [cholesky_unblocked(matrix, xp) for matrix in flat]
    factors = xp.stack([factor for factor, _ in parts]).reshape(A._data.shape)
    if upper:
        factors = xp.swapaxes(factors, -1, -2).copy()
    return CholeskyExResult(untracked(factors, A), _info(A, xp.asarray([k for _, k in parts]).reshape(A._data.shape[:-2])))


def matrix_rank(A, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
    """The number of singular values (|eigenvalues| when hermitian) above max(atol, rtol * the largest), int64;
    rtol defaults to eps * max(m, n), or to 0 when atol > 0 is given, as PyTorch."""
    A = _matrix("linalg.matrix_rank", A)
    xp = xp_of(A._data)
    s = xp.abs(xp.linalg.eigvalsh(A._data)) if hermitian else xp.linalg.svd(A._data, compute_uv=False)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else float(xp.finfo(A._data.dtype).eps) * max(A.shape[-2:])
    largest = s.max(-1, keepdims=True) if s.shape[-1] else xp.zeros(s.shape[:-1] + (1,), dtype=s.dtype)
    cut = xp.maximum(0.0 if atol is None else atol, rtol * largest)
    return untracked((s > cut).sum(-1).astype(xp.int64), A, "linalg.matrix_rank")


def cond(A, p=None) -> Tensor:
    """The condition number in the p-norm: s_max / s_min for p None or 2 (s_min / s_max for -2), otherwise
    norm(A, p) * norm(A^-1, p) (square A). A composite."""
    A = _matrix("linalg.cond", A)
    if p is None or p in (2, -2):
        S = svdvals(A)
        return S[..., 0] / S[..., -1] if p != -2 else S[..., -1] / S[..., 0]
    A = _square("linalg.cond", A)
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


def multi_dot(tensors) -> Tensor:
    """The product of the matrices in ``tensors``, multiplied in the order that costs the fewest scalar
    multiplications (the classic matrix-chain dynamic programme); the first may be a row vector and the last a
    column vector (1-D), which are dropped from the result's shape."""
    tensors = [tensor_operand(t, "linalg.multi_dot") for t in tensors]
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    first_vector, last_vector = tensors[0].ndim == 1, tensors[-1].ndim == 1
    mats = [tensors[0].unsqueeze(0) if first_vector else tensors[0]] + tensors[1:-1] + \
           [tensors[-1].unsqueeze(-1) if last_vector else tensors[-1]]
    for i, m in enumerate(mats):
        if m.ndim != 2:
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D (the first and last may be 1D), got {describe(tensors[i])}")
        if i and mats[i - 1].shape[1] != m.shape[0]:
            raise RuntimeError(f"multi_dot(): tensors {i - 1} and {i} cannot be multiplied: "
                               f"{describe(tensors[i - 1])} and {describe(tensors[i])}")
    out = _chain_product(mats, _chain_order([m.shape[0] for m in mats] + [mats[-1].shape[1]]), 0, len(mats) - 1)
    if first_vector:
        out = out.squeeze(0)
    return out.squeeze(-1) if last_vector else out


def _chain_order(dims: list) -> dict:
    """split[(i, j)]: where the cheapest product of matrices i..j splits (matrix i is dims[i] x dims[i + 1])."""
    n = len(dims) - 1
    cost, split = {(i, i): 0 for i in range(n)}, {}
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            cost[i, j], split[i, j] = min((cost[i, k] + cost[k + 1, j] + dims[i] * dims[k + 1] * dims[j + 1], k)
                                          for k in range(i, j))
    return split


def _chain_product(mats: list, split: dict, i: int, j: int) -> Tensor:
    if i == j:
        return mats[i]
    k = split[i, j]
    return _chain_product(mats, split, i, k) @ _chain_product(mats, split, k + 1, j)


def tensorinv(A, ind: int = 2) -> Tensor:
    """The inverse of A seen as a map from its last dims to its first ``ind`` dims: the result has shape
    A.shape[ind:] + A.shape[:ind]."""
    A = tensor_operand(A, "linalg.tensorinv")
    if ind <= 0:
        raise RuntimeError(f"linalg.tensorinv: Expected a strictly positive integer for 'ind', but got {ind}")
    rows, cols = math.prod(A.shape[:ind]), math.prod(A.shape[ind:])
    if rows != cols:
        raise RuntimeError(f"linalg.tensorinv: Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           f"prod(self.shape[:ind]), but got {cols} != {rows} ({describe(A)}, ind={ind})")
    return inv(A.reshape(rows, cols)).reshape(tuple(A.shape[ind:]) + tuple(A.shape[:ind]))


def tensorsolve(A, B, dims=None) -> Tensor:
    """X with tensordot(A, X, X.ndim) = B; ``dims`` of A are moved to the end first."""
    A, B = tensor_operand(A, "linalg.tensorsolve"), tensor_operand(B, "linalg.tensorsolve")
    if dims is not None:
        dims = [d % A.ndim for d in dims]
        A = A.permute([d for d in range(A.ndim) if d not in dims] + dims)
    rest = tuple(A.shape[B.ndim:])
    if tuple(A.shape[:B.ndim]) != tuple(B.shape) or math.prod(rest) != B.numel():
        raise RuntimeError(f"linalg.tensorsolve: Expected self to satisfy the requirement prod(self.shape[other.ndim:]) "
                           f"== prod(self.shape[:other.ndim]) with A.shape[:other.ndim] == other.shape; got "
                           f"{describe(A)} and {describe(B)}")
    return solve(A.reshape(B.numel(), B.numel()), B.reshape(-1)).reshape(rest)


def vander(x, *, N: int | None = None) -> Tensor:
    """x[..., :, None] ** [0, 1, ..., N-1] (increasing powers; N defaults to x.shape[-1])."""
    from chainrule.ops.linalg_more import _powers

    x = tensor_operand(x, "linalg.vander")
    if x.ndim == 0:
        raise RuntimeError("linalg.vander: x must have at least one dimension, got a 0-d tensor")
    n = x.shape[-1] if N is None else N
    if n <= 1 and N is not None:
        raise RuntimeError(f"linalg.vander: N must be greater than 1, got {N}")
    return _powers(x.long() if x._data.dtype.kind == "b" else x, n, "linalg.vander")


def householder_product(A, tau) -> Tensor:
    """The first n columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T with v_i the i-th column of A below the
    diagonal and a 1 on it (LAPACK's orgqr). A composite of matmuls."""
    from chainrule.creation import eye

    A, tau = _matrix("linalg.householder_product", A), tensor_operand(tau, "linalg.householder_product")
    m, n = A.shape[-2:]
    k = tau.shape[-1] if tau.ndim else 0
    if m < n or k > n or tau.ndim != A.ndim - 1 or tuple(tau.shape[:-1]) != tuple(A.shape[:-2]):
        raise RuntimeError(f"linalg.householder_product: expected A (..., m, n) with m >= n and tau (..., k) with "
                           f"k <= n and A's batch shape, got {describe(A)} and {describe(tau)}")
    identity = eye(m, n, dtype=A.dtype, device=A.device).expand(tuple(A.shape[:-2]) + (m, n))
    return apply_reflectors(A, tau, identity, left=True, transpose=False)


def apply_reflectors(A: Tensor, tau: Tensor, C: Tensor, *, left: bool, transpose: bool) -> Tensor:
    """Q C, Q^T C (left) or C Q, C Q^T, Q = H_1 ... H_k the product of the Householder reflectors stored in A's
    columns and tau (as LAPACK's geqrf leaves them), one reflector at a time: H C = C - tau v (v^T C)."""
    from chainrule.creation import ones, zeros
    from chainrule.ops.shape import cat

    batch, k = tuple(A.shape[:-2]), tau.shape[-1]
    # Q C = H_1 (H_2 (... H_k C)); Q^T C = H_k (... (H_1 C)); on the right the orders swap
    order = range(k) if left == transpose else reversed(range(k))
    for i in order:
        head = cat([zeros(batch + (i,), dtype=A.dtype, device=A.device),
                    ones(batch + (1,), dtype=A.dtype, device=A.device)], -1)
        v = cat([head, A[..., i + 1:, i]], -1).unsqueeze(-1)
        t = tau[..., i, None, None]
        C = C - (t * v) @ (v.mT @ C) if left else C - ((C @ v) * t) @ v.mT
    return C


# ----- LU ----------------------------------------------------------------------------------------------------

def lu_factor_ex(A, *, pivot: bool = True, check_errors: bool = False) -> LUFactorExResult:
    """(LU, pivots, info): partial-pivoting LU (chainrule.backend.lu) with L and U packed, 1-based int32 pivots
    and info = j + 1 at a zero pivot U[j, j]. Differentiable (PyTorch's formulas, square, wide and tall: see
    :func:`_lu_backward`), to every order."""
    from chainrule.backend import factor as _lu

    A = _matrix("linalg.lu_factor_ex", A)
    if not pivot:
        raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")
    xp = xp_of(A._data)
    packed, pivots, info = _lu.lu_factor(A._data, xp)
    if check_errors and bool((info > 0).any()):
        j = int(info[info > 0].min()) - 1
        raise LinAlgError(f"linalg.lu_factor: U[{j}, {j}] is zero (the input {describe(A)} is singular) and using "
                          "it in lu_solve would divide by zero; linalg.lu or linalg.lu_factor_ex factor it anyway")
    P = untracked(_lu.permutation_matrix(pivots, A.shape[-2], A._data.dtype, xp), A)

    def rule(g, LU):
        return (P @ _lu_backward(LU, g),)

    LU = record(packed, "linalg_lu_factor", (A,), rule, (), keep_output=True)
    return LUFactorExResult(LU, untracked(pivots, A), untracked(info, A))


def _lu_backward(LU: Tensor, g: Tensor) -> Tensor:
    """P^T gA for A = P L U from the packed factors and the packed gradient g (gL below the diagonal of its first
    k columns, gU on and above the diagonal of its first k rows), as PyTorch's linalg_lu_backward:
      square: L^-T ((L^T gL).tril(-1) + (gU U^T).triu()) U^-T
      wide (m < n, U = [U1 U2]): L^-T [((L^T gL - gU U^T).tril(-1) U1^-T + gU1) gU2]
      tall (m > n, L = [L1; L2]): [L1^-T (gU U^T - L^T gL).triu() + gL1; gL2] U^-T"""
    m, n = LU.shape[-2:]
    k = min(m, n)
    L = LU[..., :, :k].tril(-1) + _eye(m, LU)[:, :k]
    U = LU[..., :k, :].triu()
    gL, gU = g[..., :, :k].tril(-1), g[..., :k, :].triu()
    if m == n:
        phi = (L.mT @ gL).tril(-1) + (gU @ U.mT).triu()
        X = solve_triangular(L.mT, phi, upper=True, unitriangular=True)
        return solve_triangular(U.mT, X, upper=False, left=False)
    from chainrule.ops.shape import cat

    if m < n:
        X = solve_triangular(U[..., :, :k].mT, (L.mT @ gL - gU @ U.mT).tril(-1), upper=False, left=False)
        X = cat([X + gU[..., :, :k], gU[..., :, k:]], -1)
        return solve_triangular(L.mT, X, upper=True, unitriangular=True)
    X = solve_triangular(L[..., :k, :].mT, (gU @ U.mT - L.mT @ gL).triu(), upper=True, unitriangular=True)
    X = cat([X + gL[..., :k, :], gL[..., k:, :]], -2)
    return solve_triangular(U.mT, X, upper=False, left=False)


def lu_factor(A, *, pivot: bool = True) -> LUFactorResult:
    """(LU, pivots): see :func:`lu_factor_ex`; raises LinAlgError for a singular A, as PyTorch (linalg.lu and
    lu_factor_ex factor it)."""
    LU, pivots, _ = lu_factor_ex(A, pivot=pivot, check_errors=True)
    return LUFactorResult(LU, pivots)


def lu_unpack_parts(LU: Tensor, pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True):
    """(P, L, U) from a packed factorization: L (..., m, k) unit lower, U (..., k, n); unpacked with tril/triu,
    so gradients flow back to LU. What is not unpacked is an empty tensor."""
    from chainrule.backend import factor as _lu

    xp = xp_of(LU._data)
    m, n = LU.shape[-2:]
    k = min(m, n)
    empty = untracked(xp.zeros((0,), dtype=LU._data.dtype), LU)
    P = untracked(_lu.permutation_matrix(pivots._data, m, LU._data.dtype, xp), LU) if unpack_pivots else empty
    if not unpack_data:
        return P, empty, empty
    L = LU[..., :, :k].tril(-1) + _eye(m, LU)[:, :k]
    U = LU[..., :k, :].triu()
    return P, L, U


def lu(A, *, pivot: bool = True) -> LUResult:
    """(P, L, U) with A = P L U: the unpacked :func:`lu_factor_ex` (a composite)."""
    LU, pivots, _ = lu_factor_ex(A, pivot=pivot)
    return LUResult(*lu_unpack_parts(LU, pivots))


def lu_solve(LU, pivots, B, *, left: bool = True, adjoint: bool = False) -> Tensor:
    """X with A X = B (A^T X = B with ``adjoint``; X A = B with left=False), from A's packed factorization. A
    composite of two triangular solves and the permutation, so gradients reach LU and B."""
    LU = _square("linalg.lu_solve", LU, "LU")
    pivots, B = tensor_operand(pivots, "linalg.lu_solve"), tensor_operand(B, "linalg.lu_solve")
    if B.ndim < 2:
        raise RuntimeError(f"linalg.lu_solve: B must have at least 2 dimensions, got {describe(B)}")
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return lu_solve(LU, pivots, B.mT, left=True, adjoint=not adjoint).mT
    P, L, U = lu_unpack_parts(LU, pivots)
    if adjoint:  # A^T = U^T L^T P^T
        Y = solve_triangular(L.mT, solve_triangular(U.mT, B, upper=False), upper=True, unitriangular=True)
        return P @ Y
    Y = solve_triangular(L, P.mT @ B, upper=False, unitriangular=True)
    return solve_triangular(U, Y, upper=True)


# ----- LDL^T of symmetric indefinite matrices -------------------------------------------------------------------

LDLFactorResult = namedtuple("ldl_factor", ["LD", "pivots"])
LDLFactorExResult = namedtuple("ldl_factor_ex", ["LD", "pivots", "info"])


def _no_ldl_derivative(op: str):
    def rule(g, _):
        raise RuntimeError(f"{op}: the derivative is not implemented (as in PyTorch)")

    return rule


def ldl_factor_ex(A, *, hermitian: bool = False, check_errors: bool = False) -> LDLFactorExResult:
    """(LD, pivots, info): A = P L D L^T P^T from A's lower triangle with Bunch-Kaufman pivoting
    (chainrule.backend.factor, LAPACK's sytrf: the same pivots and factors as PyTorch's); info = j + 1 when
    D[j, j] is zero. ``hermitian`` only matters for complex input, which chainrule's linalg does not take. Not
    differentiable, as in PyTorch: a backward through it raises."""
    from chainrule.backend import factor as _factor

    A = _square("linalg.ldl_factor_ex", A)
    xp = xp_of(A._data)
    packed, pivots, info = _factor.ldl_factor(A._data, xp)
    if check_errors and bool((info > 0).any()):
        raise LinAlgError(f"linalg.ldl_factor: the factorization of {describe(A)} could not be completed: "
                          f"D[{int(info[info > 0].min()) - 1}] is zero (the matrix is singular)")
    LD = record(packed, "linalg_ldl_factor", (A,), _no_ldl_derivative("linalg.ldl_factor"))
    return LDLFactorExResult(LD, untracked(pivots, A), untracked(info, A))


def ldl_factor(A, *, hermitian: bool = False) -> LDLFactorResult:
    """(LD, pivots): :func:`ldl_factor_ex` that raises LinAlgError for a singular A."""
    LD, pivots, _ = ldl_factor_ex(A, hermitian=hermitian, check_errors=True)
    return LDLFactorResult(LD, pivots)


def ldl_solve(LD, pivots, B, *, hermitian: bool = False) -> Tensor:
    """X with A X = B from A's :func:`ldl_factor` (batch dims broadcast). Not differentiable, as in PyTorch."""
    from chainrule.backend import factor as _factor

    LD = _square("linalg.ldl_solve", LD, "LD")
    pivots, B = tensor_operand(pivots, "linalg.ldl_solve"), tensor_operand(B, "linalg.ldl_solve")
    _float("linalg.ldl_solve", B)
    if B.ndim < 2 or B.shape[-2] != LD.shape[-1] or LD._data.dtype != B._data.dtype:
        raise RuntimeError(f"linalg.ldl_solve: expected B (..., {LD.shape[-1]}, k) of LD's dtype, got {describe(B)} "
                           f"for LD {describe(LD)}")
    if pivots._data.dtype.kind != "i" or tuple(pivots.shape) != tuple(LD.shape[:-1]):
        raise RuntimeError(f"linalg.ldl_solve: expected int32 pivots of shape {tuple(LD.shape[:-1])}, "
                           f"got {describe(pivots)}")
    xp = xp_of(LD._data)
    try:
        out = _factor.ldl_solve(LD._data, pivots._data, B._data, xp)
    except ValueError:
        raise RuntimeError(f"linalg.ldl_solve: the batch dims of LD {describe(LD)} and B {describe(B)} do not "
                           "broadcast") from None
    return record(out, "linalg_ldl_solve", (LD, B), _no_ldl_derivative("linalg.ldl_solve"))
