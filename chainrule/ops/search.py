"""Searching and counting: unique, unique_consecutive, bincount, histc, searchsorted, bucketize.

Their results are integers (indices, counts) or values picked or counted from the input, with no gradient, as in
PyTorch (which has no derivative for any of them): they are untracked results, remembered as coming from their
input for explanations.
"""

from __future__ import annotations

import math

from chainrule import dtypes as _dt
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, tensor_operand, untracked

__all__ = ["unique", "unique_consecutive", "bincount", "histc", "searchsorted", "bucketize"]

_INT64 = _dt.int64.np


def _results(values, inverse, counts, like: Tensor, op: str, return_inverse: bool, return_counts: bool):
    """``values`` alone, or the tuple (values, inverse?, counts?) PyTorch returns."""
    out = [untracked(values, like, op)]
    if return_inverse:
        out.append(untracked(inverse.astype(_INT64), like, op))
    if return_counts:
        out.append(untracked(counts.astype(_INT64), like, op))
    return out[0] if len(out) == 1 else tuple(out)


def _slices_along(op: str, a: Tensor, dim: int):
    """``a``'s array with dim ``dim`` first. A zero-size input is refused unless that dim is its only dimension of
    size zero (as in PyTorch: slices of zero size can't be told apart), and so is a 0-d one (it has no dims)."""
    if a.ndim == 0:
        raise IndexError(f"{op}: dimension specified as {dim} but the tensor ({describe(a)}) has no dimensions")
    d = norm_dim(dim, a.ndim, op)
    moved = xp_of(a._data).moveaxis(a._data, d, 0)
    if moved.size == 0 and (moved.shape[0] or 0 in moved.shape[1:]):
        raise RuntimeError(f"{op}: the input ({describe(a)}) has zero-size dimensions other than dim {d}, so its "
                           "slices along that dim can't be told apart")
    return moved


def unique(a, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):  # noqa: A002
    """The distinct elements of ``a`` in ascending order (or, with ``dim``, its distinct slices along ``dim``, in
    lexicographic order); ``return_inverse`` gives each element's (slice's) position among them (shaped like the
    input, or like ``dim``), ``return_counts`` how often each occurs. NaNs are all distinct, as in PyTorch. The
    result is always sorted (PyTorch's CPU ``sorted=False`` sorts too)."""
    a = tensor_operand(a, "unique")
    xp = xp_of(a._data)
    if dim is None:
        values, inverse, counts = xp.unique(a._data.reshape(-1), return_inverse=True, return_counts=True,
                                            equal_nan=False)
        return _results(values, inverse.reshape(a.shape), counts, a, "unique", return_inverse, return_counts)
    moved = _slices_along("unique", a, dim)
    values, inverse, counts = xp.unique(moved, return_inverse=True, return_counts=True, axis=0, equal_nan=False)
    return _results(xp.moveaxis(values, 0, dim % a.ndim), inverse.reshape(-1), counts, a, "unique", return_inverse,
                    return_counts)


def unique_consecutive(a, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """``a`` with each run of equal consecutive elements (or, with ``dim``, slices along ``dim``) kept once; the
    inverse gives each element's run, the counts each run's length."""
    a = tensor_operand(a, "unique_consecutive")
    xp = xp_of(a._data)
    if dim is None:
        moved = a._data.reshape(-1, 1)
        inverse_shape = a.shape
    else:
        moved = _slices_along("unique_consecutive", a, dim)
        moved = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))  # one row per slice
        inverse_shape = (moved.shape[0],)
    n = moved.shape[0]
    starts = xp.ones(n, dtype=bool)  # where a new run begins
    starts[1:] = (moved[1:] != moved[:-1]).any(axis=1)
    first = xp.flatnonzero(starts)
    counts = xp.diff(xp.append(first, n))
    inverse = (xp.cumsum(starts) - 1).reshape(inverse_shape)
    if dim is None:
        values = a._data.reshape(-1)[first]
    else:
        values = xp.take(a._data, first, axis=dim % a.ndim)
    return _results(values, inverse, counts, a, "unique_consecutive", return_inverse, return_counts)


def bincount(a, weights=None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ..., max(a) occurs in the 1-D non-negative integer tensor ``a`` (at least
    ``minlength`` bins), or the sum of ``weights`` at each value: float32 weights give float32, any other
    weights float64 (PyTorch's rule); without weights the counts are int64."""
    a = tensor_operand(a, "bincount")
    xp = xp_of(a._data)
    if a._data.dtype.kind not in "iu":
        raise RuntimeError(f"bincount: expected an integer tensor, got {describe(a)}")
    if a.ndim != 1 or (a._data.size and a._data.min() < 0):
        raise RuntimeError(f"bincount: only 1-D non-negative integer tensors are supported, got {describe(a)}")
    if minlength < 0:
        raise RuntimeError(f"bincount: minlength should be >= 0, got {minlength}")
    if weights is not None:
        weights = tensor_operand(weights, "bincount")
        if weights.shape != a.shape:
            raise RuntimeError(f"bincount: weights ({describe(weights)}) should be 1-D and as long as the input "
                               f"({describe(a)})")
    if weights is None or a._data.size == 0:  # (PyTorch counts no values as int64 zeros, weights or not)
        return untracked(xp.bincount(a._data, minlength=minlength).astype(_INT64), a, "bincount")
    dtype = _dt.float32.np if weights._data.dtype == _dt.float32.np else _dt.float64.np
    out = xp.bincount(a._data, weights=weights._data.astype(_dt.float64.np), minlength=minlength)
    return untracked(out.astype(dtype), a, "bincount", (a, weights))


def histc(a, bins: int = 100, min=0, max=0) -> Tensor:  # noqa: A002
    """A histogram of ``a``'s elements in ``bins`` equal bins over [min, max] (the data's own range when both
    are equal, widened by 1 on each side if that is a single point); elements outside are left out, the last
    bin includes ``max``. Floating tensors only; the counts have ``a``'s dtype."""
    a = tensor_operand(a, "histc")
    if a._data.dtype.kind != "f":
        raise RuntimeError(f"histc: expected a floating-point tensor, got {describe(a)}")
    if bins <= 0:
        raise RuntimeError(f"histc: bins must be > 0, got {bins}")
    lo, hi = float(min), float(max)
    if lo == hi and a._data.size:
        lo, hi = float(a._data.min()), float(a._data.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RuntimeError(f"histc: the range [{lo}, {hi}] is not finite ({describe(a)})")
    if lo > hi:
        raise RuntimeError(f"histc: max ({hi}) must be larger than min ({lo})")
    # PyTorch's arithmetic, in the input's dtype: the bin is (x - min) * bins / (max - min), truncated (so a value
    # within rounding of an edge may land on either side of it), and x == max counts in the last bin
    xp = xp_of(a._data)
    scalar = a._data.dtype.type
    lo, hi = scalar(lo), scalar(hi)
    data = a._data.reshape(-1)
    inside = data[(data >= lo) & (data <= hi)]
    position = ((inside - lo) * scalar(bins) / (hi - lo)).astype(_INT64)
    counts = xp.bincount(xp.minimum(position, bins - 1), minlength=bins)
    return untracked(counts.astype(a._data.dtype), a, "histc")


def _search_operands(op: str, boundaries: Tensor, values) -> tuple:
    """The boundaries and values as arrays of one dtype (numbers become 0-d values), checked."""
    boundaries = tensor_operand(boundaries, op)
    scalar = not isinstance(values, Tensor)
    values = tensor_operand(values, op, like=boundaries if scalar else None)
    if boundaries.ndim == 0:
        raise RuntimeError(f"{op}: the boundaries tensor should have at least one dimension, got {describe(boundaries)}")
    if boundaries.ndim > 1:
        if scalar or values.ndim == 0:
            raise RuntimeError(f"{op}: the input can be a number only when the boundaries tensor is 1-D, got "
                               f"boundaries of {describe(boundaries)}")
        if values.ndim != boundaries.ndim or values.shape[:-1] != boundaries.shape[:-1]:
            raise RuntimeError(
                f"{op}: the boundaries tensor should be 1-D or match the input in its first N-1 dimensions, got "
                f"boundaries of {describe(boundaries)} and input of {describe(values)}"
            )
    if boundaries._data.dtype.kind == "b" and values._data.dtype.kind == "b":  # (one bool is promoted to the other)
        raise RuntimeError(f"{op}: bool boundaries and values are not supported (boundaries {describe(boundaries)}, "
                           f"input {describe(values)})")
    return boundaries, values


def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False, side=None,  # noqa: A002
                 sorter=None) -> Tensor:
    """For each value, the index at which inserting it keeps ``sorted_sequence`` sorted along its last dim: the
    first such index, or the last with ``right=True`` / ``side="right"``. ``sorted_sequence`` is 1-D, or matches
    ``input`` in all dims but the last (one sorted row per row of values); ``sorter`` sorts an unsorted sequence
    (``argsort``'s result)."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"searchsorted: side can only be 'left' or 'right', got {side!r}")
        if side == "left" and right:
            raise RuntimeError("searchsorted: side and right can't be set to opposites, got side='left' with "
                               "right=True")
        right = side == "right"
    return _search("searchsorted", sorted_sequence, input, right, out_int32, sorter)


def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False) -> Tensor:  # noqa: A002
    """The bucket of each value among the 1-D sorted ``boundaries``: i with boundaries[i-1] < x <= boundaries[i]
    (with ``right=True``: boundaries[i-1] <= x < boundaries[i]); searchsorted with the arguments swapped."""
    boundaries = tensor_operand(boundaries, "bucketize")
    if boundaries.ndim != 1:
        raise RuntimeError(f"bucketize: the boundaries tensor must be 1-D, got {describe(boundaries)}")
    return _search("bucketize", boundaries, input, right, out_int32, None)


def _binary_search(sequence, values, right: bool):
    """For each value, the first position in its (sorted) row of ``sequence`` whose boundary is > the value
    (``right``) or >= it: PyTorch's binary search, step for step on all values at once, so that boundaries it
    can't order (NaN, which compares False and sends the search right) give PyTorch's answers too. ``sequence``
    is 1-D (one row for every value) or has a row per row of ``values``."""
    xp = xp_of(sequence)
    m = sequence.shape[-1]
    lo = xp.zeros(values.shape, dtype=_INT64)
    hi = xp.full(values.shape, m, dtype=_INT64)
    for _ in range(m.bit_length()):  # enough halvings to narrow [0, m] to one position
        mid = (lo + hi) // 2
        probe = xp.minimum(mid, m - 1)
        bound = sequence[probe] if sequence.ndim == 1 else xp.take_along_axis(sequence, probe, axis=-1)
        at_or_before = (bound > values) if right else (bound >= values)
        searching = lo < hi
        hi = xp.where(searching & at_or_before, mid, hi)
        lo = xp.where(searching & ~at_or_before, mid + 1, lo)
    return lo


def _search(op: str, boundaries, values, right: bool, out_int32: bool, sorter) -> Tensor:
    boundaries, values = _search_operands(op, boundaries, values)
    seq = boundaries._data
    xp = xp_of(seq)
    if sorter is not None:
        sorter = tensor_operand(sorter, op)
        if sorter.shape != boundaries.shape or sorter._data.dtype != _INT64:
            raise RuntimeError(f"{op}: sorter ({describe(sorter)}) must be an int64 tensor of the boundaries' shape "
                               f"({describe(boundaries)})")
        seq = xp.take_along_axis(seq, sorter._data, axis=-1)
    if seq.ndim == 1 and not (seq.dtype.kind == "f" and xp.isnan(seq).any()):
        # numpy's search (compiled) gives PyTorch's answers wherever the boundaries are ordered (NaN isn't)
        out = xp.asarray(xp.searchsorted(seq, values._data, side="right" if right else "left"))
    else:
        out = _binary_search(seq, values._data, right)
    dtype = _dt.int32.np if out_int32 else _INT64
    return untracked(out.astype(dtype), values, op, (boundaries, values))
