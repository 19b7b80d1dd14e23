"""Reductions over dimensions: sum, mean, prod, max/min (with indices), amax/amin, var/std,
logsumexp, norm, cumsum, argmax/argmin, all/any.

``dim`` is an int or a tuple of ints (negative allowed) or None for all; ``keepdim`` keeps reduced
dimensions as size 1. numpy's ``axis``/``keepdims`` spellings are accepted too.

Ties and kinks (tested): max/min/amax/amin split the gradient evenly among tied maxima (one
documented policy; PyTorch does this for amax and full max, but sends max(dim)'s gradient to one
index); median() of all elements splits it evenly too, median(dim) sends it to the returned index
(both as PyTorch). The 2-norm's gradient at 0 is 0, and so is std's where it is 0.
"""

from __future__ import annotations

import builtins
from collections import namedtuple

from chainrule import dtypes as _dt
from chainrule.backend import kernels, xp_of
from chainrule.ops._helpers import (
    Tensor,
    float_operand,
    norm_dim,
    norm_dims,
    record,
    refuse_complex,
    tensor_operand,
    untracked,
    wrap,
)

__all__ = ["sum", "sum_to", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "var_mean",
           "std_mean", "logsumexp", "norm", "cumsum", "cumprod", "argmax", "argmin", "all", "any",
           "count_nonzero", "expand_reduced", "median"]

values_indices = namedtuple("values_indices", ["values", "indices"])


def _dims(a: Tensor, dim, axis, op: str) -> tuple[int, ...]:
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    return norm_dims(dim, a._data.ndim, op)


def _keep(keepdim, keepdims) -> bool:
    return bool(keepdim or keepdims)


def expand_reduced(g: Tensor, shape: tuple, dims: tuple, keepdim: bool) -> Tensor:
    """Broadcast the gradient of a reduction back over the reduced dimensions (differentiably)."""
    if not keepdim and dims:
        kept = list(g.shape)
        for d in dims:
            kept.insert(d, 1)
        g = g.reshape(kept)
    return g.expand(shape) if g.shape != tuple(shape) else g


def sum(a, dim=None, keepdim: bool = False, dtype=None, *, axis=None, keepdims: bool = False) -> Tensor:
    """Sum over ``dim``; integer and bool tensors sum to int64, as in PyTorch."""
    a = tensor_operand(a, "sum")
    dims = _dims(a, dim, axis, "sum")
    keep = _keep(keepdim, keepdims)
    out_dtype = _dt.to_dtype(dtype).np if dtype is not None else (
        a._data.dtype if a._data.dtype.kind in "fc" else _dt.int64.np)
    out = a._data.sum(axis=dims, keepdims=keep, dtype=out_dtype)
    shape = a.shape
    return record(out, "sum", (a,), lambda g, _: (expand_reduced(g, shape, dims, keep).to(a.dtype),))


def sum_to(a: Tensor, shape: tuple) -> Tensor:
    """Sum ``a`` down to ``shape`` (the inverse of broadcasting); its backward is broadcasting."""
    shape = tuple(shape)
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1)
    out = a._data.sum(axis=dims, keepdims=True)
    if lead:
        out = out.reshape(shape)
    src = a.shape
    return record(out, "sum_to", (a,), lambda g, _: (g.expand(src),))


def mean(a, dim=None, keepdim: bool = False, dtype=None, *, axis=None, keepdims: bool = False) -> Tensor:
    a = tensor_operand(a, "mean")
    if dtype is not None:
        a = a.to(dtype)
    if a._data.dtype.kind not in "fc":
        raise RuntimeError(
            f"mean: could not infer output dtype; input dtype must be floating point, got {a.dtype}. "
            "Pass dtype=chainrule.float32 or call .float() first"
        )
    dims = _dims(a, dim, axis, "mean")
    keep = _keep(keepdim, keepdims)
    count = 1
    for d in dims:
        count *= a._data.shape[d]
    out = a._data.mean(axis=dims, keepdims=keep) if count else a._data.sum(axis=dims, keepdims=keep) * float("nan")
    shape = a.shape
    return record(out, "mean", (a,), lambda g, _: (expand_reduced(g, shape, dims, keep) / count,))


def prod(a, dim=None, keepdim: bool = False, dtype=None, *, axis=None, keepdims: bool = False) -> Tensor:
    """Product over one dim (or all); the gradient is the product of the other elements, exact with zeros."""
    a = tensor_operand(a, "prod")
    if dtype is not None:
        a = a.to(dtype)
    if dim is None and axis is None:
        flat = a.reshape(-1)
        out = prod(flat, 0)
        return out.reshape([1] * a.ndim) if _keep(keepdim, keepdims) else out
    d = norm_dim(axis if axis is not None else dim, a._data.ndim, "prod")
    if a._data.ndim == 0:  # a 0-d tensor reduces along its one implicit dim to itself
        return prod(a.reshape(1), 0)
    keep = _keep(keepdim, keepdims)
    out = a._data.prod(axis=d, keepdims=keep)
    if a._data.dtype.kind not in "fc":
        return untracked(out.astype(_dt.int64.np), a)
    shape = a.shape

    def rule(g, _):  # (conjugated for complex input: PyTorch's convention)
        return (expand_reduced(g, shape, (d,), keep) * _prod_others(a, d).conj_physical(),)

    return record(out, "prod", (a,), rule, (a,))


def _prod_others(a: Tensor, d: int) -> Tensor:
    """For each element, the product of the other elements along ``d`` (exclusive cumulative products
    from both sides, so zeros need no division)."""
    xp = xp_of(a._data)
    x = xp.moveaxis(a._data, d, -1)
    ones = xp.ones(x.shape[:-1] + (1,), dtype=x.dtype)
    left = xp.cumprod(xp.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
    right = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(x, -1)[..., :-1]], axis=-1), axis=-1), -1)
    out = xp.moveaxis(left * right, -1, d)

    def rule(h, _):
        # d(prod_others_i)/d(a_j) = product of all but i and j (i != j): computed the same way;
        # for complex input (holomorphic) PyTorch's gradient is conj(J^T conj(h))
        if a._data.dtype.kind == "c":
            return (_prod_others_vjp(a, h.conj_physical(), d).conj_physical(),)
        return (_prod_others_vjp(a, h, d),)

    return record(out, "prod_others", (a,), rule, (a,))


def _prod_others_vjp(a: Tensor, h: Tensor, d: int) -> Tensor:
    """sum_{i != j} h_i * prod_{k not in (i, j)} a_k, for every j along ``d`` (second derivative of prod).

    Counted by the number of zeros along ``d``, so it is exact with zeros; not differentiable further.
    """
    xp = xp_of(a._data)
    x = xp.moveaxis(a._data, d, -1)
    hh = xp.moveaxis(h._data, d, -1)
    is_zero = x == 0
    zeros = is_zero.sum(-1, keepdims=True)
    safe = xp.where(is_zero, 1, x)
    p_nonzero = safe.prod(-1, keepdims=True)
    # no zeros: (P / a_j) * (sum_i h_i / a_i - h_j / a_j)
    s = (hh / safe * ~is_zero).sum(-1, keepdims=True)
    none = p_nonzero / safe * (s - hh / safe)
    # one zero at z: j == z -> P_nz * sum_{i != z} h_i / a_i; j != z -> h_z * P_nz / a_j
    h_at_zero = (hh * is_zero).sum(-1, keepdims=True)
    one = xp.where(is_zero, p_nonzero * s, h_at_zero * p_nonzero / safe)
    # two zeros: j is a zero -> h at the other zero times P_nz; otherwise 0
    two = xp.where(is_zero, (h_at_zero - hh) * p_nonzero, 0)
    out = xp.where(zeros == 0, none, xp.where(zeros == 1, one, xp.where(zeros == 2, two, 0)))
    out = xp.moveaxis(out, -1, d).astype(a._data.dtype, copy=False)

    def rule(g, _):
        raise RuntimeError("prod: derivatives of order three and higher are not implemented")

    return record(out, "prod_second_derivative", (a, h), rule)


def _extreme(a: Tensor, dims: tuple, keep: bool, op: str, fn: str) -> Tensor:
    """amax/amin: the gradient is split evenly among the elements equal to the extreme."""
    refuse_complex(op, a)
    xp = xp_of(a._data)
    if a._data.size == 0 and builtins.any(a._data.shape[d] == 0 for d in dims):
        raise RuntimeError(f"{op}: expected a non-empty tensor over the reduced dims, got shape {a.shape}")
    return _split_among_equal(a, getattr(xp, fn)(a._data, axis=dims, keepdims=keep), dims, keep, op)


def _split_among_equal(a: Tensor, out, dims: tuple, keep: bool, op: str) -> Tensor:
    """Record ``out``, a reduction of ``a`` over ``dims`` whose value is one of the reduced elements
    (max, min, median): its gradient is split evenly among the elements equal to it."""
    shape = a.shape

    def rule(g, out):
        full = expand_reduced(out, shape, dims, keep)
        hit = (a == full).to(g.dtype)
        count = hit.sum(dims, keepdim=True)
        return (expand_reduced(g, shape, dims, keep) * hit / count,)

    return record(out, op, (a,), rule, (a,), keep_output=True)


def amax(a, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False) -> Tensor:
    a = tensor_operand(a, "amax")
    return _extreme(a, _dims(a, dim, axis, "amax"), _keep(keepdim, keepdims), "amax", "max")


def amin(a, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool = False) -> Tensor:
    a = tensor_operand(a, "amin")
    return _extreme(a, _dims(a, dim, axis, "amin"), _keep(keepdim, keepdims), "amin", "min")


def _max_min(op: str, a, dim, keepdim, other=None):
    from chainrule.ops.elementwise import maximum, minimum

    a = tensor_operand(a, op)
    if isinstance(dim, Tensor):  # torch.max(a, b) is the elementwise maximum
        return (maximum if op == "max" else minimum)(a, dim)
    if dim is None:
        return _extreme(a, norm_dims(None, a.ndim, op), False, op, op)
    d = norm_dim(dim, a._data.ndim, op)
    if a._data.ndim == 0:  # a 0-d tensor reduces along its one implicit dim to itself
        return _max_min(op, a.reshape(1), 0, False)
    values = _extreme(a, (d,), keepdim, op, op)
    xp = xp_of(a._data)
    idx = (xp.argmax if op == "max" else xp.argmin)(a._data, axis=d, keepdims=keepdim)
    return values_indices(values, untracked(idx.astype(_dt.int64.np, copy=False), a, f"{op} (indices)"))


def max(a, dim=None, keepdim: bool = False):
    """Maximum of all elements, or ``(values, indices)`` along ``dim``; ``max(a, b)`` is elementwise."""
    return _max_min("max", a, dim, keepdim)


def min(a, dim=None, keepdim: bool = False):
    """Minimum of all elements, or ``(values, indices)`` along ``dim``; ``min(a, b)`` is elementwise."""
    return _max_min("min", a, dim, keepdim)


def median(a, dim=None, keepdim: bool = False):
    """The lower median (as PyTorch). Of all elements: its gradient is split evenly among the
    elements equal to it (like max). Along ``dim``: ``(values, indices)``, and the gradient goes to
    the element at the returned index (as PyTorch)."""
    from chainrule.ops.indexing import take_along_dim

    a = tensor_operand(a, "median")
    xp = xp_of(a._data)
    if dim is None:
        n = a._data.size
        if n == 0:
            return wrap(xp.full((), xp.nan, dtype=a._data.dtype))
        flat = a._data.reshape(-1)
        value = xp.partition(flat, (n - 1) // 2)[(n - 1) // 2]
        return _split_among_equal(a, xp.asarray(value), tuple(range(a.ndim)), False, "median")
    d = norm_dim(dim, a.ndim, "median")
    if a.ndim == 0:  # a 0-d tensor reduces along its one implicit dim to itself
        return median(a.reshape(1), 0)
    k = (a.shape[d] - 1) // 2
    order = xp.argsort(a._data, axis=d, kind="stable")
    idx = xp.take(order, [k], axis=d)
    values = take_along_dim(a, wrap(idx), d)
    indices = wrap(idx.astype(_dt.int64.np))
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return values_indices(values, indices)


def _require_float(op: str, a: Tensor, why: str) -> None:
    if a._data.dtype.kind not in "fc":
        raise RuntimeError(f"{op}: {why}, got {a.dtype} (shape {tuple(a.shape)}); convert first, e.g. x.float()")


def _correction(correction, unbiased) -> float:
    if unbiased is not None:
        return 1.0 if unbiased else 0.0
    return 1.0 if correction is None else float(correction)


def var(a, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None, axis=None,
        keepdims: bool = False) -> Tensor:
    """Variance with ``correction`` (1: Bessel's, the default; 0: population); composite, so its
    gradients (of any order) come from the primitives."""
    a = tensor_operand(a, "var")
    _require_float("var", a, "std and var only support floating-point dtypes")
    dims = _dims(a, dim, axis, "var")
    keep = _keep(keepdim, keepdims)
    count = 1
    for d in dims:
        count *= a.shape[d]
    centered = a - a.mean(dims, keepdim=True)
    # as PyTorch: a correction >= the count divides by 0 (inf, or nan for a constant slice)
    denom = builtins.max(count - _correction(correction, unbiased), 0.0)
    if a._data.dtype.kind == "c":  # the mean squared distance |z - mean|^2: a real variance
        return (centered.real.square() + centered.imag.square()).sum(dims, keepdim=keep) / denom
    return (centered * centered).sum(dims, keepdim=keep) / denom


def std(a, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None, axis=None,
        keepdims: bool = False) -> Tensor:
    """Standard deviation, the square root of :func:`var`; its gradient is 0 where it is 0 (a constant
    slice), as PyTorch's, rather than the 0 * inf = nan of a plain square root."""
    return _sqrt_zero_grad_at_zero(var(a, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims))


def _sqrt_zero_grad_at_zero(v: Tensor) -> Tensor:
    def rule(g, out):
        at_zero = out == 0
        return ((g / (out.masked_fill(at_zero, 1.0) * 2.0)).masked_fill(at_zero, 0.0),)

    return record(xp_of(v._data).sqrt(v._data), "std", (v,), rule, keep_output=True)


def var_mean(a, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return var(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


def std_mean(a, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return std(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


def logsumexp(a, dim=None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(a))) computed stably (shifted by the max); the gradient is softmax(a)."""
    a = float_operand(a, "logsumexp")
    dims = norm_dims(dim, a._data.ndim, "logsumexp")
    xp = xp_of(a._data)
    m = xp.max(a._data, axis=dims, keepdims=True) if a._data.size else xp.zeros((1,) * a.ndim, a._data.dtype)
    m = xp.where(xp.isfinite(m), m, 0)
    out = xp.log(xp.sum(kernels.exp(a._data - m), axis=dims, keepdims=True)) + m
    if not keepdim:
        out = out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in dims))
    shape = a.shape

    def rule(g, out):
        lse = expand_reduced(out, shape, dims, keepdim)
        return (expand_reduced(g, shape, dims, keepdim) * (a - lse).exp(),)

    return record(out, "logsumexp", (a,), rule, (a,), keep_output=True)


def norm(a, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over ``dim`` (all elements by default): p = 2 ('fro'), 1, inf, -inf, 0 or any number.

    The 2-norm is a primitive whose gradient a / norm is taken as 0 where the norm is 0 (PyTorch's
    subgradient); other p are composite.
    """
    a = tensor_operand(a, "norm")
    if dtype is not None:
        a = a.to(dtype)
    _require_float("norm", a, "expected a floating-point tensor")
    if a._data.dtype.kind == "c":  # a complex vector's norms are those of its elements' magnitudes
        return norm(a.abs(), p, dim, keepdim)
    dims = norm_dims(dim, a._data.ndim, "norm")
    if p in ("fro", 2, 2.0):
        xp = xp_of(a._data)
        out = xp.sqrt(xp.sum(a._data * a._data, axis=dims, keepdims=keepdim))
        shape = a.shape

        def rule(g, out):
            full = expand_reduced(out, shape, dims, keepdim)
            safe = full.masked_fill(full == 0, 1.0)
            scale = (expand_reduced(g, shape, dims, keepdim) / safe).masked_fill(full == 0, 0.0)
            return (a * scale,)

        return record(out, "norm", (a,), rule, (a,), keep_output=True)
    if p in (float("inf"), "inf"):
        return a.abs().amax(dims, keepdim=keepdim)
    if p in (float("-inf"), "-inf"):
        return a.abs().amin(dims, keepdim=keepdim)
    if p == 0:  # the count of nonzeros, connected to the graph with a zero gradient (as PyTorch)
        return a.sign().abs().sum(dims, keepdim=keepdim)
    if p == 1:
        return a.abs().sum(dims, keepdim=keepdim)
    if isinstance(p, str):
        raise ValueError(f"norm: unsupported p={p!r}; use a number, 'fro', inf or -inf")
    return (a.abs() ** p).sum(dims, keepdim=keepdim) ** (1.0 / p)


def cumsum(a, dim: int, dtype=None) -> Tensor:
    a = tensor_operand(a, "cumsum")
    if dtype is not None:
        a = a.to(dtype)
    d = norm_dim(dim, a._data.ndim, "cumsum")
    if a._data.ndim == 0:  # numpy would flatten to shape (1,)
        return cumsum(a.reshape(1), 0).reshape(())
    xp = xp_of(a._data)
    out_dtype = a._data.dtype if a._data.dtype.kind in "fc" else _dt.int64.np
    out = xp.cumsum(a._data, axis=d, dtype=out_dtype)
    # d(cumsum)/da: each input gets the sum of the gradients at and after it
    return record(out, "cumsum", (a,), lambda g, _: (g.flip(d).cumsum(d).flip(d),))


def cumprod(a, dim: int, dtype=None) -> Tensor:
    """Cumulative product along ``dim``. Its gradient is the reverse cumulative sum of g * out divided
    by the input; where the input has a zero, the products leaving each element out (no division)."""
    a = tensor_operand(a, "cumprod")
    if dtype is not None:
        a = a.to(dtype)
    d = norm_dim(dim, a._data.ndim, "cumprod")
    if a._data.ndim == 0:  # numpy would flatten to shape (1,)
        return cumprod(a.reshape(1), 0).reshape(())
    xp = xp_of(a._data)
    out = xp.cumprod(a._data, axis=d, dtype=a._data.dtype if a._data.dtype.kind in "fc" else _dt.int64.np)

    def rule(g, out):
        if a._data.dtype.kind == "c":  # holomorphic: PyTorch's gradient is conj(J^T conj(g))
            return (_cumprod_rule(g.conj_physical(), out, a, d).conj_physical(),)
        return (_cumprod_rule(g, out, a, d),)

    return record(out, "cumprod", (a,), rule, (a,), keep_output=True)


def _cumprod_rule(g: Tensor, out: Tensor, a: Tensor, d: int) -> Tensor:
    """J^T g for cumprod along ``d``."""
    if bool((a._data == 0).any()):  # PyTorch's exact gradient: no division by the zero
        return _cumprod_grad_with_zeros(a, g, d)
    return ((g * out).flip(d).cumsum(d).flip(d)) / a


def _arg_extreme(a, dim, keepdim: bool, name: str) -> Tensor:
    """argmax / argmin (``name``): the index of the first extreme value, over the flattened tensor when
    ``dim`` is None; int64, no gradient."""
    a = tensor_operand(a, name)
    if a._data.dtype.kind == "b":
        raise RuntimeError(f"{name}: bool input is not supported (shape {tuple(a.shape)}); convert first, e.g. x.int()")
    xp = xp_of(a._data)
    refuse_complex(name, a)
    find = getattr(xp, name)
    if dim is None:
        out = xp.asarray(find(a._data), dtype=_dt.int64.np).reshape((1,) * a.ndim if keepdim else ())
    else:
        out = find(a._data, axis=norm_dim(dim, a._data.ndim, name), keepdims=keepdim).astype(_dt.int64.np, copy=False)
    return untracked(out, a, name)


def argmax(a, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (over the flattened tensor when ``dim`` is None); no gradient."""
    return _arg_extreme(a, dim, keepdim, "argmax")


def argmin(a, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first minimum (over the flattened tensor when ``dim`` is None); no gradient."""
    return _arg_extreme(a, dim, keepdim, "argmin")


def all(a, dim=None, keepdim: bool = False) -> Tensor:
    a = tensor_operand(a, "all")
    out = a._data.astype(bool, copy=False).all(axis=norm_dims(dim, a.ndim, "all"), keepdims=keepdim)
    return wrap(xp_of(a._data).asarray(out))


def any(a, dim=None, keepdim: bool = False) -> Tensor:
    a = tensor_operand(a, "any")
    out = a._data.astype(bool, copy=False).any(axis=norm_dims(dim, a.ndim, "any"), keepdims=keepdim)
    return wrap(xp_of(a._data).asarray(out))


def count_nonzero(a, dim=None) -> Tensor:
    a = tensor_operand(a, "count_nonzero")
    xp = xp_of(a._data)
    return wrap(xp.asarray(xp.count_nonzero(a._data, axis=norm_dims(dim, a.ndim, "count_nonzero")),
                           dtype=_dt.int64.np))


# ----- scans: cummax/cummin, logcumsumexp, diff; cumprod's gradient with zeros; nan-reductions,
# aminmax, mode, kthvalue, quantile (issue 16). Composites of gather/sort where possible, so the
# gradient (to the returned index) and its higher orders come from the primitives.

__all__ += ["cummax", "cummin", "logcumsumexp", "diff", "aminmax", "nansum", "nanmean", "mode", "kthvalue",
            "quantile", "nanquantile"]

aminmax_result = namedtuple("aminmax", ["min", "max"])


def _cumprod_grad_with_zeros(a: Tensor, g: Tensor, d: int) -> Tensor:
    """d cumprod_i / d a_k = prod_{j <= i, j != k} a_j (i >= k): the products with a_k replaced by 1,
    one row per k, so zeros need no division (O(n^2) along ``d``, used only when ``a`` has a zero)."""
    from chainrule.ops.indexing import masked_fill

    xp = xp_of(a._data)
    x = a.movedim(d, -1)
    n = x.shape[-1]
    eye = wrap(xp.eye(n, dtype=bool))
    rows = masked_fill(x.unsqueeze(-2).expand(x.shape[:-1] + (n, n)), eye, 1.0)  # rows[..., k, j]
    later = wrap(xp.triu(xp.ones((n, n), dtype=a._data.dtype)))  # i >= k
    gk = (rows.cumprod(-1) * g.movedim(d, -1).unsqueeze(-2) * later).sum(-1)
    return gk.movedim(-1, d)


def _cum_extreme(a, dim, op: str):
    from chainrule.ops.indexing import take_along_dim

    a = tensor_operand(a, op)
    d = norm_dim(dim, a._data.ndim, op)
    if a._data.ndim == 0:
        v, i = _cum_extreme(a.reshape(1), 0, op)
        return values_indices(v.reshape(()), i.reshape(()))
    xp = xp_of(a._data)
    x = xp.moveaxis(a._data, d, -1)
    idx = xp.zeros(x.shape, dtype=_dt.int64.np)
    if x.shape[-1] and x.size:
        best = x[..., 0].copy()
        cur = xp.zeros(x.shape[:-1], dtype=_dt.int64.np)
        for i in range(1, x.shape[-1]):
            v = x[..., i]
            # as PyTorch: ties move the index to the later element; a NaN wins and stays
            take = (v >= best) if op == "cummax" else (v <= best)
            if x.dtype.kind == "f":
                take = (take | xp.isnan(v)) & ~xp.isnan(best)
            best = xp.where(take, v, best)
            cur = xp.where(take, i, cur)
            idx[..., i] = cur
    idx = wrap(xp.ascontiguousarray(xp.moveaxis(idx, -1, d)))
    values = take_along_dim(a, idx, d) if a._data.size else a.clone()
    return values_indices(values, idx)


def cummax(a, dim: int):
    """Running maximum along ``dim`` and its indices (the later index on ties, as PyTorch); the gradient
    goes to the element at the index."""
    return _cum_extreme(a, dim, "cummax")


def cummin(a, dim: int):
    """Running minimum along ``dim`` and its indices (the later index on ties, as PyTorch)."""
    return _cum_extreme(a, dim, "cummin")


def logcumsumexp(a, dim: int) -> Tensor:
    """log(cumsum(exp(a))) along ``dim``, accumulated pairwise with logaddexp (stable). The gradient
    d out_i / d a_k = exp(a_k - out_i) for i >= k is summed in log space (O(n^2) along ``dim``)."""
    a = float_operand(a, "logcumsumexp")
    d = norm_dim(dim, a._data.ndim, "logcumsumexp")
    if a._data.ndim == 0:
        return logcumsumexp(a.reshape(1), 0).reshape(())
    xp = xp_of(a._data)
    out = xp.logaddexp.accumulate(a._data, axis=d) if a._data.size else a._data.copy()

    def rule(g, out):
        from chainrule.ops.indexing import masked_fill

        x, o, gg = a.movedim(d, -1), out.movedim(d, -1), g.movedim(d, -1)
        n = x.shape[-1]
        before = wrap(xp.tril(xp.ones((n, n), dtype=bool), -1))  # [k, i]: i < k, no contribution
        w = masked_fill(x.unsqueeze(-1) - o.unsqueeze(-2), before, float("-inf")).exp()
        return ((w * gg.unsqueeze(-2)).sum(-1).movedim(-1, d),)

    return record(out, "logcumsumexp", (a,), rule, (a,), keep_output=True)


def diff(a, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
    """n-th forward difference along ``dim`` (composite), after concatenating ``prepend``/``append``."""
    from chainrule.ops.shape import cat

    a = tensor_operand(a, "diff")
    if a.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = norm_dim(dim, a.ndim, "diff")
    if n == 0:  # as PyTorch: the input (a copy), prepend and append ignored
        return a.clone()
    parts = [p if isinstance(p, Tensor) or p is None else tensor_operand(p, "diff") for p in (prepend, a, append)]
    parts = [p if p is None or p.ndim else p.reshape([1] * a.ndim).expand(
        tuple(1 if i == d else s for i, s in enumerate(a.shape))) for p in parts]
    x = cat([p for p in parts if p is not None], d) if len([p for p in parts if p is not None]) > 1 else a
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi = x.narrow(d, 1, m - 1)
        lo = x.narrow(d, 0, m - 1)
        x = (hi != lo) if x.dtype.name == "bool" else hi - lo
    return x


def aminmax(a, *, dim=None, keepdim: bool = False, axis=None, keepdims: bool = False):
    """``(min, max)`` over ``dim`` (one int) or all elements."""
    a = tensor_operand(a, "aminmax")
    if axis is not None:
        dim = axis
    keep = _keep(keepdim, keepdims)
    if a._data.size == 0 and (dim is None or a.ndim == 0 or a.shape[norm_dim(dim, a.ndim, "aminmax")] == 0):
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the operation has no "
                           "identity.")
    if dim is not None:
        norm_dim(dim, a.ndim, "aminmax")
        if a.ndim == 0:
            dim = None
    mn, mx = amin(a, dim, keep), amax(a, dim, keep)
    if dim is None and keep:
        mn, mx = mn.reshape([1] * a.ndim), mx.reshape([1] * a.ndim)
    return aminmax_result(mn, mx)


def _nan_zeroed(a: Tensor) -> tuple:
    """``a`` with NaN replaced by 0; its rule multiplies by the not-NaN mask (as PyTorch's nansum, so
    an infinite gradient, an all-NaN nanmean's, gives NaN there rather than 0)."""
    if a._data.dtype.kind != "f":
        return a, None
    xp = xp_of(a._data)
    isnan = xp.isnan(a._data)
    keep = wrap(xp.asarray(~isnan, dtype=a._data.dtype))
    out = record(xp.asarray(xp.where(isnan, 0, a._data), dtype=a._data.dtype), "nan_to_zero", (a,),
                 lambda g, _: (g * keep,))
    return out, wrap(isnan)


def nansum(a, dim=None, keepdim: bool = False, dtype=None, *, axis=None, keepdims: bool = False) -> Tensor:
    """Sum treating NaN as zero; NaN positions get gradient 0."""
    a = tensor_operand(a, "nansum")
    if dtype is not None:
        a = a.to(dtype)
    return sum(_nan_zeroed(a)[0], dim, keepdim, axis=axis, keepdims=keepdims)


_TORCH_SCALAR_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
                       "bool": "Bool"}


def nanmean(a, dim=None, keepdim: bool = False, dtype=None, *, axis=None, keepdims: bool = False) -> Tensor:
    """Mean of the non-NaN elements (NaN where there are none)."""
    a = tensor_operand(a, "nanmean")
    if dtype is not None:
        a = a.to(dtype)
    if a._data.dtype.kind != "f":
        raise RuntimeError("nanmean(): expected input to have floating point or complex dtype but got "
                           f"{_TORCH_SCALAR_NAMES.get(a.dtype.name, a.dtype.name)}")
    zeroed, nan = _nan_zeroed(a)
    count = sum((~nan).to(a.dtype), dim, keepdim, axis=axis, keepdims=keepdims)
    return sum(zeroed, dim, keepdim, axis=axis, keepdims=keepdims) / count


def _sorted_along(a: Tensor, d: int):
    xp = xp_of(a._data)
    return xp.argsort(a._data, axis=d, kind="stable")


def kthvalue(a, k: int, dim: int = -1, keepdim: bool = False):
    """The k-th smallest element along ``dim`` and its index; the gradient goes to that element."""
    from chainrule.ops.indexing import take_along_dim

    a = tensor_operand(a, "kthvalue")
    d = norm_dim(dim, a.ndim, "kthvalue")
    if a.ndim == 0:
        v, i = kthvalue(a.reshape(1), k, 0, False)
        return values_indices(v.reshape(()), i.reshape(()))
    n = a.shape[d]
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    xp = xp_of(a._data)
    idx = xp.take(_sorted_along(a, d), [k - 1], axis=d).astype(_dt.int64.np)
    values, indices = take_along_dim(a, wrap(idx), d), wrap(idx)
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return values_indices(values, indices)


def mode(a, dim: int = -1, keepdim: bool = False):
    """The most frequent value along ``dim`` (the smallest among equally frequent ones) and the index of
    its last occurrence (as PyTorch on CPU); the gradient goes to that element."""
    from chainrule.ops.indexing import take_along_dim

    a = tensor_operand(a, "mode")
    d = norm_dim(dim, a.ndim, "mode")
    if a.ndim == 0:
        v, i = mode(a.reshape(1), 0, False)
        return values_indices(v.reshape(()), i.reshape(()))
    if a.shape[d] == 0:
        raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size.")
    xp = xp_of(a._data)
    x = xp.moveaxis(a._data, d, -1)
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    out = xp.zeros(rows.shape[0], dtype=_dt.int64.np)
    for r in range(rows.shape[0]):
        vals, counts = xp.unique(rows[r], return_counts=True)
        best = vals[xp.argmax(counts)]  # unique is sorted: the first of the most frequent is the smallest
        out[r] = int(xp.nonzero(rows[r] == best)[0][-1])
    idx = xp.moveaxis(out.reshape(lead + (1,)), -1, d)
    values, indices = take_along_dim(a, wrap(idx), d), wrap(xp.ascontiguousarray(idx))
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return values_indices(values, indices)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(a, q, dim, keepdim, interpolation, op, ignore_nan):
    from chainrule.ops.indexing import take_along_dim

    a = tensor_operand(a, op)
    xp = xp_of(a._data)
    if a._data.dtype.kind != "f" or a._data.dtype.itemsize < 4:  # PyTorch's message names quantile for both
        raise RuntimeError("quantile() input tensor must be either float or double dtype")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{op}() interpolation must be one of linear, lower, higher, midpoint or nearest, "
                           f"but got {interpolation}")
    scalar_q = not isinstance(q, Tensor)
    qa = xp.asarray(q._data if isinstance(q, Tensor) else q, dtype=a._data.dtype)
    if qa.ndim > 1:
        raise RuntimeError(f"{op}() q must be a scalar or 1D tensor")
    if qa.size and ((qa < 0).any() or (qa > 1).any()):
        raise RuntimeError(f"{op}() q values must be in the range [0, 1]" if qa.ndim else
                           f"{op}() q must be in the range [0, 1] but got {q}")
    if isinstance(q, Tensor) and q.ndim == 0:
        scalar_q = True
    qa = qa.reshape(-1)
    if dim is None:
        x, d = a.reshape(-1), 0
    else:
        d = norm_dim(dim, a.ndim, op)
        x = a.reshape(1) if a.ndim == 0 else a
    if x.shape[d] == 0:
        raise RuntimeError(f"{op}() input tensor must be non-empty")
    xs = take_along_dim(x, wrap(xp.argsort(x._data, axis=d, kind="stable")), d).movedim(d, -1)  # NaN sort last
    n = xs.shape[-1]
    nan = xp.isnan(xs._data)
    if ignore_nan:
        valid = (~nan).sum(-1, keepdims=True)
    else:
        valid = xp.full(xs.shape[:-1] + (1,), n)
    pos = qa * (valid - 1).astype(qa.dtype)  # (..., nq)
    # as PyTorch: a slice with a NaN (quantile) reads the last sorted element, an all-NaN slice
    # (nanquantile) the first: NaN either way, and the gradient goes to that element
    bad = (valid == 0) if ignore_nan else nan.any(-1, keepdims=True)
    pos = xp.where(bad, 0 if ignore_nan else n - 1, pos)
    if interpolation == "lower":
        pos = xp.floor(pos)
    elif interpolation == "higher":
        pos = xp.ceil(pos)
    elif interpolation == "nearest":
        pos = xp.round(pos)  # round half to even, as PyTorch
    lo = xp.clip(xp.floor(pos), 0, n - 1).astype(_dt.int64.np)
    hi = xp.clip(xp.ceil(pos), 0, n - 1).astype(_dt.int64.np)
    vlo, vhi = take_along_dim(xs, wrap(lo), -1), take_along_dim(xs, wrap(hi), -1)
    if interpolation == "midpoint":
        w = xp.where(lo == hi, 0.0, 0.5).astype(qa.dtype)
    else:
        w = (pos - lo).astype(qa.dtype)
    out = vlo + (vhi - vlo) * wrap(w) if xp.any(w) else vlo
    out = out.movedim(-1, 0)  # q first, as PyTorch
    if keepdim:
        if dim is None:
            out = out.reshape((out.shape[0],) + (1,) * a.ndim)
        elif a.ndim:
            out = out.unsqueeze(d + 1)
    if scalar_q:
        out = out.squeeze(0)
    return out


def quantile(a, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """The ``q``-th quantiles along ``dim`` (all elements when None), interpolated between the sorted
    neighbours; a tensor ``q`` puts its dim first. Composite of sort-gather and lerp."""
    return _quantile(a, q, dim, keepdim, interpolation, "quantile", False)


def nanquantile(a, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """:func:`quantile` ignoring NaN (NaN where a slice is all NaN)."""
    return _quantile(a, q, dim, keepdim, interpolation, "nanquantile", True)
