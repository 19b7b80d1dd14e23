"""torch.*'s matrix functions on top of :mod:`chainrule.linalg` (issue 16): the fused multiply-adds (addmm,
addmv, addr, addbmm, baddbmm), mv, tensordot, the older spellings of the factorizations (qr(some=),
svd(some=, compute_uv=) returning V, triangular_solve, cholesky(upper), lu, lu_unpack, lu_solve), cholesky_solve
and cholesky_inverse, cross with PyTorch's default dim, norms and distances, cov/corrcoef, vander and the
trapezoid rules.

All are composites of differentiable primitives (matmul, the linalg factorizations, sums), so gradients of
every order come from those rules; none has a rule of its own.
"""

from __future__ import annotations

import math
import warnings
from collections import namedtuple

from chainrule import linalg as _la
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, float_operand, norm_dim, tensor_operand
from chainrule.ops.elementwise import clamp, sqrt, where
from chainrule.ops.linalg import bmm, matmul, mm, outer
from chainrule.ops.reduction import cumprod, cumsum
from chainrule.ops.reduction import sum as _sum
from chainrule.ops.shape import cat, diag, flip

__all__ = ["addmm", "addmv", "addr", "addbmm", "baddbmm", "mv", "ger", "chain_matmul", "tensordot", "dist", "renorm",
           "cov", "corrcoef", "diagflat", "qr", "svd", "triangular_solve", "cholesky", "cholesky_solve",
           "cholesky_inverse", "cross", "nuclear_norm", "frobenius_norm", "vander", "trapezoid", "trapz",
           "cumulative_trapezoid", "matrix_exp", "matrix_power", "pinverse", "det", "slogdet", "logdet", "inverse",
           "trace", "lu", "lu_unpack", "lu_solve", "geqrf", "orgqr", "ormqr", "svd_lowrank", "pca_lowrank", "adjoint"]

# methods of torch.Tensor among them (ger, chain_matmul, the norms, vander and the trapezoid rules are functions only)
# (adjoint's method is bound with the other complex-aware properties)
METHODS = [n for n in __all__ if n not in ("chain_matmul", "tensordot", "nuclear_norm", "frobenius_norm", "vander",
                                           "trapezoid", "trapz", "cumulative_trapezoid", "lu_unpack", "svd_lowrank",
                                           "pca_lowrank", "adjoint")]

SVDResult = namedtuple("svd", ["U", "S", "V"])
TriangularSolveResult = namedtuple("triangular_solve", ["solution", "cloned_coefficient"])
LUUnpackResult = namedtuple("lu_unpack", ["P", "L", "U"])
GeqrfResult = namedtuple("geqrf", ["a", "tau"])

det, slogdet, logdet, inverse, trace, matrix_exp = _la.det, _la.slogdet, _la.logdet, _la.inverse, _la.trace, _la.matrix_exp


def _ndim(op: str, t: Tensor, ndim: int, name: str) -> None:
    if t.ndim != ndim:
        raise RuntimeError(f"{op}: {name} must be a {ndim}-D tensor, got {describe(t)}")


def _same_dtype(op: str, *tensors: Tensor) -> None:
    if len({t._data.dtype for t in tensors}) > 1:
        raise RuntimeError(f"{op}: expected all inputs to have the same dtype, got "
                           f"{', '.join(describe(t) for t in tensors)}")


# ----- fused multiply-adds: beta * input + alpha * product -------------------------------------------------

def _no_bool(op: str, *tensors: Tensor) -> None:
    """The matrix products refuse bool tensors, as PyTorch's (addr alone takes them, as logical and/or)."""
    for t in tensors:
        if t._data.dtype.kind == "b":
            raise RuntimeError(f"{op}: not implemented for bool tensors ({describe(t)})")


def _scaled_sum(op: str, input, product: Tensor, beta, alpha) -> Tensor:
    """beta * input + alpha * product, input broadcast to the product's shape (never the other way). With
    beta == 0 the input is ignored, so nan and inf in it do not propagate, as in PyTorch."""
    input = tensor_operand(input, op)
    _same_dtype(op, input, product)
    if product._data.dtype.kind in "iu":  # PyTorch converts the scalars to the integer dtype (truncating)
        beta, alpha = int(beta), int(alpha)
    try:
        xp_of(input._data).broadcast_to(input._data, product.shape)
    except ValueError:
        raise RuntimeError(f"{op}: the input {describe(input)} cannot be broadcast to the product's shape "
                           f"{tuple(product.shape)}") from None
    if product._data.dtype.kind == "b":  # bool: "beta and input or alpha and product", as PyTorch's
        from chainrule.ops.elementwise import logical_and, logical_or

        return logical_or(logical_and(input, bool(beta)), logical_and(product, bool(alpha))).expand(product.shape)
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:
        return scaled
    return scaled + (input if beta == 1 else input * beta).expand(product.shape)


def addmm(input, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2)."""
    mat1, mat2 = tensor_operand(mat1, "addmm"), tensor_operand(mat2, "addmm")
    _no_bool("addmm", mat1, mat2)
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


def mv(mat, vec) -> Tensor:
    """The matrix-vector product of a 2-D ``mat`` and a 1-D ``vec``."""
    mat, vec = tensor_operand(mat, "mv"), tensor_operand(vec, "mv")
    _ndim("mv", mat, 2, "mat")
    _ndim("mv", vec, 1, "vec")
    return matmul(mat, vec)


def addmv(input, mat, vec, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * (mat @ vec)."""
    _no_bool("addmv", tensor_operand(mat, "addmv"))
    return _scaled_sum("addmv", input, mv(mat, vec), beta, alpha)


def ger(vec1, vec2) -> Tensor:
    """The outer product of two 1-D tensors (``outer``'s older name)."""
    vec1, vec2 = tensor_operand(vec1, "ger"), tensor_operand(vec2, "ger")
    _ndim("ger", vec1, 1, "vec1")
    _ndim("ger", vec2, 1, "vec2")
    return outer(vec1, vec2)


def addr(input, vec1, vec2, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * outer(vec1, vec2)."""
    vec1, vec2 = tensor_operand(vec1, "addr"), tensor_operand(vec2, "addr")
    _ndim("addr", vec1, 1, "vec1")
    _ndim("addr", vec2, 1, "vec2")
    if vec1._data.dtype.kind == "b" and vec2._data.dtype.kind == "b":
        from chainrule.ops.elementwise import logical_and

        return _scaled_sum("addr", input, logical_and(vec1.unsqueeze(1), vec2.unsqueeze(0)), beta, alpha)
    return _scaled_sum("addr", input, outer(vec1, vec2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * (batch1 @ batch2), batch by batch."""
    batch1, batch2 = tensor_operand(batch1, "baddbmm"), tensor_operand(batch2, "baddbmm")
    _no_bool("baddbmm", batch1, batch2)
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
    """beta * input + alpha * sum_b (batch1[b] @ batch2[b])."""
    batch1, batch2 = tensor_operand(batch1, "addbmm"), tensor_operand(batch2, "addbmm")
    _no_bool("addbmm", batch1, batch2)
    products = bmm(batch1, batch2)
    return _scaled_sum("addbmm", input, _sum(products, 0, dtype=products.dtype), beta, alpha)


def chain_matmul(*matrices) -> Tensor:
    """The product of 2-D matrices (``linalg.multi_dot``'s older form, taking them as arguments)."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    for i, m in enumerate(matrices):
        _ndim("chain_matmul", tensor_operand(m, "chain_matmul"), 2, f"matrix {i}")
    if len(matrices) == 1:
        return matrices[0]
    return _la.multi_dot(list(matrices))


def tensordot(a, b, dims=2) -> Tensor:
    """Contracts the last ``dims`` dims of a with the first of b, or the dims listed as ([a's], [b's])."""
    a, b = tensor_operand(a, "tensordot"), tensor_operand(b, "tensordot")
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot: expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot: dims={dims} is more than the dims of {describe(a)} or {describe(b)}")
        dims_a, dims_b = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(dims_a) != len(dims_b):
        raise RuntimeError(f"tensordot: both dimension lists should have the same length, got {dims_a} and {dims_b}")
    dims_a = [norm_dim(d, a.ndim, "tensordot") for d in dims_a]
    dims_b = [norm_dim(d, b.ndim, "tensordot") for d in dims_b]
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise RuntimeError(f"tensordot: contracted dimensions need to match, but first has size {a.shape[da]} in "
                               f"dim {da} and second has size {b.shape[db]} in dim {db}")
    free_a = [d for d in range(a.ndim) if d not in dims_a]
    free_b = [d for d in range(b.ndim) if d not in dims_b]
    k = math.prod(a.shape[d] for d in dims_a)
    left = a.permute(free_a + dims_a).reshape(math.prod(a.shape[d] for d in free_a), k)
    right = b.permute(dims_b + free_b).reshape(k, math.prod(b.shape[d] for d in free_b))
    return mm(left, right).reshape([a.shape[d] for d in free_a] + [b.shape[d] for d in free_b])


# ----- norms, distances, statistics ------------------------------------------------------------------------

def dist(input, other, p=2) -> Tensor:
    """The p-norm of input - other (broadcast), over all elements."""
    input, other = tensor_operand(input, "dist"), tensor_operand(other, "dist")
    return _la.vector_norm(input - other, p)


def renorm(input, p, dim: int, maxnorm) -> Tensor:
    """Each slice ``input.select(dim, i)`` whose p-norm exceeds maxnorm, rescaled to norm maxnorm (as PyTorch,
    by maxnorm / (norm + 1e-7))."""
    input = tensor_operand(input, "renorm")
    if input.ndim < 2:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.ndim} dimensions ({describe(input)})")
    if p <= 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported, got p={p}")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    dim = norm_dim(dim, input.ndim, "renorm")
    others = tuple(d for d in range(input.ndim) if d != dim)
    norms = _la.vector_norm(input, p, dim=others, keepdim=True)
    factor = where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)
    return input * factor


def nuclear_norm(input, dim=None, keepdim: bool = False) -> Tensor:
    """The sum of the singular values over the two dims ``dim`` (the last two by default)."""
    if isinstance(dim, bool):  # nuclear_norm(input, keepdim)
        dim, keepdim = None, dim
    input = tensor_operand(input, "nuclear_norm")
    return _la.matrix_norm(input, "nuc", (-2, -1) if dim is None else tuple(dim), keepdim)


def frobenius_norm(input, dim=(-2, -1), keepdim: bool = False) -> Tensor:
    """The 2-norm of the elements over ``dim`` (at most two dims)."""
    input = tensor_operand(input, "frobenius_norm")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if len(dims) > 2:
        raise RuntimeError(f"frobenius_norm: expected at most 2 dims, got {dims}")
    return _la.vector_norm(input, 2, dim=dims, keepdim=keepdim)


def cov(input, *, correction: int = 1, fweights=None, aweights=None) -> Tensor:
    """The covariance matrix of the variables in input's rows (observations in its columns), with frequency
    and/or observation weights; divides by (sum of weights - correction), at least 0."""
    if isinstance(input, Tensor) and input._data.dtype.kind == "b":
        raise RuntimeError(f"cov: bool dtype is not supported for input ({describe(input)})")
    x = float_operand(input, "cov")
    if x.ndim > 2:
        raise RuntimeError(f"cov: expected input to have two or fewer dimensions but got {describe(x)}")
    x = x.reshape(1, -1) if x.ndim < 2 else x
    n = x.shape[1]
    weights = None
    for name, w in (("fweights", fweights), ("aweights", aweights)):
        if w is None:
            continue
        w = tensor_operand(w, "cov")
        if w.ndim > 1 or w.numel() != n:
            raise RuntimeError(f"cov: expected {name} to have one dimension of size {n} (the number of observations), "
                               f"got {describe(w)}")
        if name == "fweights" and w._data.dtype.kind not in "iu":
            raise RuntimeError(f"cov: expected fweights to have an integral dtype, got {describe(w)}")
        w = w.reshape(-1).to(x.dtype)
        weights = w if weights is None else weights * w
    if weights is None:
        total = float(n)
        mean = x.mean(1, keepdim=True)
        norm_factor = total - correction
    else:
        total = weights.sum()
        mean = (x * weights).sum(1, keepdim=True) / total
        if aweights is None:
            norm_factor = total - correction
        else:
            norm_factor = total - correction * (weights * tensor_operand(aweights, "cov").reshape(-1).to(x.dtype)).sum() / total
    centred = x - mean
    product = (centred * weights) @ centred.mT if weights is not None else centred @ centred.mT
    norm_factor = clamp(norm_factor, min=0) if isinstance(norm_factor, Tensor) else max(norm_factor, 0.0)
    out = product / norm_factor
    return out.reshape(()) if out.shape == (1, 1) else out


def corrcoef(input) -> Tensor:
    """Pearson correlation coefficients of the variables in input's rows, clipped to [-1, 1]."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    std = sqrt(diag(c))
    return clamp(c / std.unsqueeze(1) / std.unsqueeze(0), -1.0, 1.0)


# ----- shapes of matrices --------------------------------------------------------------------------------

def diagflat(input, offset: int = 0) -> Tensor:
    """A 2-D matrix with the flattened input on its ``offset`` diagonal."""
    return diag(tensor_operand(input, "diagflat").reshape(-1), offset)


def _powers(x: Tensor, n: int, op: str) -> Tensor:
    """x[..., None] ** [0, 1, ..., n-1] as a cumulative product (exact, with cumprod's gradient at zeros)."""
    if n < 0:
        raise RuntimeError(f"{op}: N must be non-negative, got {n}")
    from chainrule.creation import ones

    if n == 0:
        return x.unsqueeze(-1)[..., :0]
    first = ones(tuple(x.shape) + (1,), dtype=x.dtype, device=x.device)
    return cumprod(cat([first, x.unsqueeze(-1).expand(tuple(x.shape) + (n - 1,))], -1), -1)


def vander(x, N: int | None = None, increasing: bool = False) -> Tensor:
    """The Vandermonde matrix of a 1-D x: columns x**(N-1), ..., x, 1 (or increasing powers)."""
    x = tensor_operand(x, "vander")
    if x.ndim != 1:
        raise RuntimeError(f"vander: x must be a one-dimensional tensor, got {describe(x)}")
    if x._data.dtype.kind == "b":
        x = x.long()
    out = _powers(x, x.shape[0] if N is None else N, "vander")
    return out if increasing else flip(out, (1,))


# ----- the trapezoid rule -----------------------------------------------------------------------------------

def _along(t: Tensor, dim: int, part: slice) -> Tensor:
    return t[(slice(None),) * dim + (part,)]


def _trapezoid_areas(op: str, y, x, dx, dim: int) -> tuple[Tensor, int]:
    """The areas of the trapezoids between neighbours along ``dim``, and the normalised dim."""
    y = tensor_operand(y, op)
    if y.ndim == 0:
        raise IndexError(f"{op}: dimension out of range: y is 0-d ({describe(y)})")
    dim = norm_dim(dim, y.ndim, op)
    if y._data.dtype.kind == "b":
        raise RuntimeError(f"{op}: received a bool input for `y`, but bool is not supported ({describe(y)})")
    y = float_operand(y, op)
    pairs = _along(y, dim, slice(1, None)) + _along(y, dim, slice(None, -1))
    if x is None:
        return pairs * ((1.0 if dx is None else dx) / 2.0), dim
    if dx is not None:
        raise RuntimeError(f"{op}: cannot pass both x and dx")
    x = tensor_operand(x, op)
    if x.ndim == 1:
        if x.shape[0] != y.shape[dim]:
            raise RuntimeError(f"{op}: there must be one `x` value for each sample point; x has {x.shape[0]} "
                               f"values, y {y.shape[dim]} along dim {dim} ({describe(y)})")
        spacing = (x[1:] - x[:-1]).reshape([-1 if d == dim else 1 for d in range(y.ndim)])
    else:
        x_dim = dim - y.ndim + x.ndim
        spacing = _along(x, x_dim, slice(1, None)) - _along(x, x_dim, slice(None, -1))
    return pairs * spacing / 2.0, dim


def trapezoid(y, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """The integral of y along ``dim`` by the trapezoid rule, at spacing dx (default 1) or sample points x."""
    areas, dim = _trapezoid_areas("trapezoid", y, x, dx, dim)
    return _sum(areas, dim)


def trapz(y, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """``trapezoid``'s older name."""
    areas, dim = _trapezoid_areas("trapz", y, x, dx, dim)
    return _sum(areas, dim)


def cumulative_trapezoid(y, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """The running trapezoid-rule integral along ``dim`` (one value fewer than y there)."""
    areas, dim = _trapezoid_areas("cumulative_trapezoid", y, x, dx, dim)
    return cumsum(areas, dim)


# ----- the older spellings of the factorizations -------------------------------------------------------------

def qr(input, some: bool = True):
    """``linalg.qr`` with mode 'reduced' (some=True) or 'complete'."""
    return _la.qr(input, "reduced" if some else "complete")


def svd(input, some: bool = True, compute_uv: bool = True) -> SVDResult:
    """(U, S, V) with input = U diag(S) V^T (V, not linalg.svd's Vh); without compute_uv, U and V are zeros of
    shapes (..., m, m) and (..., n, n), as in PyTorch."""
    A = tensor_operand(input, "svd")
    if compute_uv:
        U, S, Vh = _la.svd(A, full_matrices=not some)
        return SVDResult(U, S, Vh.mT)
    from chainrule.creation import zeros

    S = _la.svdvals(A)
    batch, (m, n) = tuple(A.shape[:-2]), tuple(A.shape[-2:])
    return SVDResult(zeros(batch + (m, m), dtype=A.dtype, device=A.device), S,
                     zeros(batch + (n, n), dtype=A.dtype, device=A.device))


def triangular_solve(b, A, upper: bool = True, transpose: bool = False,
                     unitriangular: bool = False) -> TriangularSolveResult:
    """(X, A broadcast and copied) with A X = b, or A^T X = b with ``transpose``."""
    b, A = tensor_operand(b, "triangular_solve"), tensor_operand(A, "triangular_solve")
    coefficient = A.mT if transpose else A
    X = _la.solve_triangular(coefficient, b, upper=upper != transpose, unitriangular=unitriangular)
    return TriangularSolveResult(X, A.expand(tuple(X.shape[:-2]) + tuple(A.shape[-2:])).clone())


def cholesky(input, upper: bool = False) -> Tensor:
    """``linalg.cholesky`` with ``upper`` as a positional argument too."""
    return _la.cholesky(input, upper=upper)


def cholesky_solve(B, L, upper: bool = False) -> Tensor:
    """X with A X = B, given A's Cholesky factor L (A = L L^T) or, with ``upper``, U (A = U^T U)."""
    B, L = tensor_operand(B, "cholesky_solve"), tensor_operand(L, "cholesky_solve")
    if B.ndim < 2:
        raise RuntimeError(f"cholesky_solve: b should have at least 2 dimensions, but has {B.ndim} ({describe(B)})")
    lower = L.mT if upper else L
    return _la.solve_triangular(lower.mT, _la.solve_triangular(lower, B, upper=False), upper=True)


def cholesky_inverse(L, upper: bool = False) -> Tensor:
    """The inverse of A from its Cholesky factor L (A = L L^T), or U with ``upper``."""
    L = tensor_operand(L, "cholesky_inverse")
    if L.ndim < 2 or L.shape[-1] != L.shape[-2]:
        raise RuntimeError(f"cholesky_inverse: A must be batches of square matrices, got {describe(L)}")
    from chainrule.creation import eye

    return cholesky_solve(eye(L.shape[-1], dtype=L.dtype, device=L.device), L, upper)


def cross(input, other, dim: int | None = None) -> Tensor:
    """The cross product along ``dim``; without ``dim``, along the first dim of size 3 (deprecated in PyTorch,
    which warns, as this does: pass dim or use linalg.cross, whose default is -1). Operands broadcast."""
    input, other = tensor_operand(input, "cross"), tensor_operand(other, "cross")
    if input.ndim != other.ndim:
        raise RuntimeError(f"cross: inputs must have the same number of dimensions, got {describe(input)} and "
                           f"{describe(other)}")
    try:
        shape = xp_of(input._data).broadcast_shapes(tuple(input.shape), tuple(other.shape))
    except ValueError:
        raise RuntimeError(f"cross: the shapes of {describe(input)} and {describe(other)} do not broadcast") from None
    input, other = input.expand(shape), other.expand(shape)
    if dim is None:
        warnings.warn("Using cross without specifying the dim arg is deprecated: it takes the first dim of size 3. "
                      "Please either pass the dim explicitly or simply use linalg.cross.", UserWarning, stacklevel=3)
        sized = [d for d, s in enumerate(input.shape) if s == 3]
        if not sized:
            raise RuntimeError(f"cross: no dimension of size 3 in input ({describe(input)})")
        dim = sized[0]
    return _la.cross(input, other, dim=dim)


def matrix_power(input, n: int) -> Tensor:
    return _la.matrix_power(input, n)


def pinverse(input, rcond: float = 1e-15) -> Tensor:
    """The pseudo-inverse, singular values below rcond * the largest dropped (``linalg.pinv(rtol=rcond)``)."""
    return _la.pinv(input, rtol=rcond)


# ----- LU --------------------------------------------------------------------------------------------------------

def lu(A, pivot: bool = True, get_infos: bool = False):
    """(LU, pivots[, infos]): ``linalg.lu_factor_ex``'s results under the older name."""
    factor = _la.lu_factor_ex(A, pivot=pivot)
    return (factor.LU, factor.pivots, factor.info) if get_infos else (factor.LU, factor.pivots)


def lu_unpack(LU_data, LU_pivots, unpack_data: bool = True, unpack_pivots: bool = True) -> LUUnpackResult:
    """(P, L, U) from a packed LU factorization and its 1-based pivots: A = P L U. What is not unpacked comes
    back empty, as in PyTorch."""
    LU = tensor_operand(LU_data, "lu_unpack")
    P, L, U = _la.lu_unpack_parts(LU, tensor_operand(LU_pivots, "lu_unpack"), unpack_data, unpack_pivots)
    return LUUnpackResult(P, L, U)


def lu_solve(b, LU_data, LU_pivots) -> Tensor:
    """X with A X = b, from A's packed LU factorization (``linalg.lu_solve`` with b first)."""
    return _la.lu_solve(LU_data, LU_pivots, b)



# ----- Householder form of QR --------------------------------------------------------------------------------

def geqrf(input) -> GeqrfResult:
    """(a, tau): LAPACK's geqrf, R on and above a's diagonal and the Householder reflectors below it (see
    ``orgqr``/``ormqr``). Not differentiable, as in PyTorch: a backward through it raises."""
    from chainrule.ops._helpers import record

    A = _la._matrix("geqrf", input)
    xp = xp_of(A._data)
    h, tau = xp.linalg.qr(A._data, mode="raw")

    def rule(g, _):
        raise RuntimeError("geqrf: the derivative is not implemented (as in PyTorch); use linalg.qr to differentiate")

    return GeqrfResult(record(xp.swapaxes(h, -1, -2).copy(), "geqrf", (A,), rule),
                       record(tau.astype(A._data.dtype, copy=False), "geqrf", (A,), rule))


def orgqr(input, tau) -> Tensor:
    """``linalg.householder_product``'s older name."""
    return _la.householder_product(input, tau)


def ormqr(input, tau, other, left: bool = True, transpose: bool = False) -> Tensor:
    """Q other, Q^T other (left) or other Q, other Q^T, with Q (m x m) the product of the Householder reflectors
    in input and tau (from ``geqrf``). A composite: gradients reach all three."""
    A = _la._matrix("ormqr", input)
    tau, other = tensor_operand(tau, "ormqr"), tensor_operand(other, "ormqr")
    _same_dtype("ormqr", A, tau, other)
    m = A.shape[-2]
    if other.ndim < 2 or (other.shape[-2] if left else other.shape[-1]) != m or tau.ndim != A.ndim - 1 \
            or tau.shape[-1] != min(m, A.shape[-1]) or tuple(A.shape[:-2]) != tuple(other.shape[:-2]):
        raise RuntimeError(f"ormqr: expected input (..., m, n), tau (..., min(m, n)) and other with m "
                           f"{'rows' if left else 'columns'} and input's batch shape, got {describe(A)}, {describe(tau)} "
                           f"and {describe(other)}")
    return _la.apply_reflectors(A, tau, other, left=left, transpose=transpose)


# ----- randomized low-rank SVD and PCA -------------------------------------------------------------------------

def svd_lowrank(A, q: int | None = 6, niter: int | None = 2, M=None) -> SVDResult:
    """(U, S, V), A - M ~ U diag(S) V^T of rank q (at most min(m, n)), by Halko, Martinsson and Tropp's
    randomized range finder: Q spans (X X^T)^niter X R for a Gaussian R drawn from chainrule's generator, and the
    SVD of the small Q^T X gives the rest. A composite (of matmul, qr and svd), so differentiable; exact when
    A - M has rank at most q. The random draw differs from PyTorch's, so only that exact part agrees."""
    from chainrule.creation import randn

    X = _la._matrix("svd_lowrank", A)
    if M is not None:
        X = X - tensor_operand(M, "svd_lowrank")
    m, n = X.shape[-2:]
    q = min(6 if q is None else q, m, n)
    R = randn(*(tuple(X.shape[:-2]) + (n, q)), dtype=X.dtype, device=X.device)
    Q = _la.qr(X @ R).Q
    for _ in range(2 if niter is None else niter):  # power iterations sharpen the basis when the spectrum decays slowly
        Q = _la.qr(X.mT @ Q).Q
        Q = _la.qr(X @ Q).Q
    U, S, Vh = _la.svd(Q.mT @ X, full_matrices=False)
    return SVDResult(Q @ U, S, Vh.mT)


def pca_lowrank(A, q: int | None = None, center: bool = True, niter: int = 2) -> SVDResult:
    """``svd_lowrank`` of A with its column means removed (``center``), q defaulting to min(6, m, n): V's columns
    are the principal directions, S**2 / (m - 1) the variances along them."""
    A = _la._matrix("pca_lowrank", A)
    m, n = A.shape[-2:]
    q = min(6, m, n) if q is None else q
    if not 0 <= q <= min(m, n):
        raise RuntimeError(f"pca_lowrank: q must be in [0, min(m, n)] = [0, {min(m, n)}], got q={q} ({describe(A)})")
    return svd_lowrank(A - A.mean(-2, keepdim=True) if center else A, q, niter)


def adjoint(input) -> Tensor:
    """The conjugate transpose of the last two dims (the transpose of a real tensor)."""
    A = tensor_operand(input, "adjoint")
    if A.ndim < 2:
        raise RuntimeError(f"adjoint: tensor must have at least 2 dimensions, got {describe(A)}")
    return A.mT.conj_physical() if A._data.dtype.kind == "c" else A.mT
