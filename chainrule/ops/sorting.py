"""Sorting: sort, argsort, topk, msort. The values are a gather of the input at the sorted indices, so
their gradient scatters back to where each value came from."""

from __future__ import annotations

from collections import namedtuple

from chainrule import dtypes as _dt
from chainrule.backend import xp_of
from chainrule.ops._helpers import describe, norm_dim, refuse_complex, tensor_operand, untracked

__all__ = ["sort", "argsort", "topk", "msort"]

values_indices = namedtuple("values_indices", ["values", "indices"])


def _order(a, dim: int, descending: bool, stable: bool):
    xp = xp_of(a._data)
    data = -a._data if descending and a._data.dtype.kind in "fi" else a._data
    order = xp.argsort(data, axis=dim, kind="stable" if stable or descending else None)
    if descending and a._data.dtype.kind not in "fi":  # bool/unsigned: reverse a stable ascending sort
        order = xp.flip(xp.argsort(a._data, axis=dim, kind="stable"), axis=dim)
    return order.astype(_dt.int64.np, copy=False)


def sort(a, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` of ``a`` sorted along ``dim``; NaN sorts last, as in PyTorch."""
    a = tensor_operand(a, "sort")
    refuse_complex("sort", a)
    if a.ndim == 0:
        return values_indices(a.clone(), untracked(xp_of(a._data).zeros((), dtype=_dt.int64.np), a))
    d = norm_dim(dim, a.ndim, "sort")
    indices = untracked(_order(a, d, descending, stable), a, "sort (indices)")
    return values_indices(a.take_along_dim(indices, d), indices)


def argsort(a, dim: int = -1, descending: bool = False, stable: bool = False):
    return sort(a, dim, descending, stable).indices


def msort(a):
    return sort(a, 0).values


def topk(a, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices."""
    a = tensor_operand(a, "topk")
    d = norm_dim(dim, a.ndim, "topk")
    size = a.shape[d] if a.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {d} of size {size} ({describe(a)})")
    values, indices = sort(a, d, descending=largest, stable=True)
    return values_indices(values.narrow(d, 0, k), indices.narrow(d, 0, k))
