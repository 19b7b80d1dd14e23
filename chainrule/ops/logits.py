"""Functions of logits along a dim: softmax, log_softmax and softmin. Primitives, stable (shifted by the max,
closed-form gradients), so the common classifier head costs two passes, not a graph of five ops."""

from __future__ import annotations

from chainrule.backend import kernels, xp_of
from chainrule.backend.rows import softmax_rows, softmax_vjp_rows
from chainrule.ops._helpers import Tensor, describe, norm_dim, record, tensor_operand

__all__ = ["softmax", "log_softmax", "softmin"]


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed from x - max(x) so it never overflows. A primitive whose
    backward is the primitive :func:`_softmax_backward`, so gradients of every order come free."""
    x = _float_input(input, dtype, "softmax")
    d = _softmax_dim(x, dim, "softmax")
    return record(_along_last_dim(x._data, d, softmax_rows), "softmax", (x,),
                  lambda g, out: (_softmax_backward(g, out, d),), keep_output=True,
                  fast=lambda g, out: (_along_last_dim(g, d, softmax_vjp_rows, out),))


def _softmax_backward(g: Tensor, out: Tensor, d: int) -> Tensor:
    """out * (g - sum(g * out)) along ``d``: the softmax's vector-Jacobian product as one primitive. Its own
    rule (for double backward): d/dg is this same map; d/dout is gg (g - s) - g sum(gg out)."""
    result = _along_last_dim(g._data, d, softmax_vjp_rows, out._data)

    def rule(gg, _):
        s = (g * out).sum(d, keepdim=True)
        return _softmax_backward(gg, out, d), gg * (g - s) - g * (gg * out).sum(d, keepdim=True)

    return record(result, "softmax_backward", (g, out), rule, (g, out))


def _along_last_dim(data, d: int, row_function, *others):
    """``row_function(rows, *other_rows)`` (a function of the rows of 2-D arrays, as in
    :mod:`chainrule.backend.rows`) applied along dim ``d`` of ``data`` and of the arrays ``others`` of its
    shape, with ``d`` moved last when it is not (the common case needs no copy)."""
    xp = xp_of(data)
    moved = data.ndim > 0 and d != data.ndim - 1
    if moved:
        data = xp.moveaxis(data, d, -1)
        others = tuple(xp.moveaxis(o, d, -1) for o in others)
    width = data.shape[-1] if data.ndim else 1
    out = row_function(*(xp.ascontiguousarray(a).reshape(-1, width) for a in (data, *others))).reshape(data.shape)
    return xp.moveaxis(out, -1, d) if moved else out


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed stably."""
    x = _float_input(input, dtype, "log_softmax")
    d = _softmax_dim(x, dim, "log_softmax")
    xp = xp_of(x._data)
    shifted = x._data - x._data.max(axis=d, keepdims=True)
    out = shifted - xp.log(kernels.exp(shifted).sum(axis=d, keepdims=True))

    def rule(g, out):
        return (g - out.exp() * g.sum(d, keepdim=True),)

    return record(out, "log_softmax", (x,), rule, keep_output=True)


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    return softmax(-input, dim, dtype)


def _float_input(input, dtype, op: str) -> Tensor:
    x = tensor_operand(input, op)
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {describe(x)}; pass dtype= or call .float()")
    return x


def _softmax_dim(x: Tensor, dim, op: str) -> int:
    if dim is None:  # PyTorch's legacy implicit choice, without its deprecation dance
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return norm_dim(dim, x.ndim, op)
