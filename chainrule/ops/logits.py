"""Functions of logits along a dim: softmax, log_softmax and softmin. Primitives, stable (shifted by the max,
closed-form gradients), so the common classifier head costs two passes, not a graph of five ops."""

from __future__ import annotations

from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, record, tensor_operand

__all__ = ["softmax", "log_softmax", "softmin"]


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed from x - max(x) so it never overflows."""
    x = _float_input(input, dtype, "softmax")
    d = _softmax_dim(x, dim, "softmax")
    xp = xp_of(x._data)
    shifted = x._data - x._data.max(axis=d, keepdims=True)
    e = xp.exp(shifted, out=shifted)
    out = e / e.sum(axis=d, keepdims=True)

    def rule(g, out):
        return (out * (g - (g * out).sum(d, keepdim=True)),)

    return record(out, "softmax", (x,), rule, keep_output=True)


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed stably."""
    x = _float_input(input, dtype, "log_softmax")
    d = _softmax_dim(x, dim, "log_softmax")
    xp = xp_of(x._data)
    shifted = x._data - x._data.max(axis=d, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=d, keepdims=True))

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
