"""Indexing primitives: ``a[index]`` (basic, integer-array and boolean-mask indexing) and its
out-of-place twin for ``a[index] = v``, gather/scatter/scatter_add, index_select/index_add,
masked_fill, take_along_dim, one_hot.

Gradients of reads with repeated indices accumulate (scatter-add), as the chain rule demands.
"""

from __future__ import annotations

from chainrule import dtypes as _dt
from chainrule.autograd.graph import PlacedGrad
from chainrule.autograd.provenance import ORIGINS, note_origin
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, record, tensor_operand, wrap
from chainrule.ops.elementwise import where
from chainrule.ops.shape import as_view, pad

__all__ = ["getitem", "index_put", "gather", "scatter", "scatter_add", "index_select", "index_add",
           "masked_fill", "masked_select", "take_along_dim", "one_hot", "nonzero", "convert_index"]


def convert_index(index, op: str = "getitem"):
    """A numpy-compatible index from a PyTorch-style one, and whether it has integer-array parts
    (whose gradient must accumulate repeats) or any advanced part at all."""
    items = index if isinstance(index, tuple) else (index,)
    converted = []
    has_int_array = has_advanced = False
    for item in items:
        if isinstance(item, Tensor):
            arr = item._data
            if arr.dtype.kind == "f":
                raise IndexError(f"{op}: tensors used as indices must be long, int or bool tensors, got {item.dtype}")
            if arr.ndim == 0 and arr.dtype.kind != "b":
                converted.append(int(arr))
                continue
            item = arr
        elif isinstance(item, list):
            from chainrule.backend import np

            item = np.asarray(item)
            if item.dtype.kind == "f":
                raise IndexError(f"{op}: lists used as indices must hold ints or bools, got floats")
        if hasattr(item, "dtype") and hasattr(item, "ndim"):
            has_advanced = True
            if item.dtype.kind != "b":
                has_int_array = True
        elif isinstance(item, bool):
            has_advanced = True
        converted.append(item)
    return tuple(converted), has_int_array, has_advanced


def getitem(a: Tensor, index) -> Tensor:
    idx, has_int_array, has_advanced = convert_index(index)
    if not has_advanced and not any(item is Ellipsis for item in idx):
        # numpy gives a scalar copy for an index that picks one element (x[0, 1]); with an Ellipsis it
        # gives a 0-d view, which is what the result is: a view (in-place changes reach x, as in PyTorch)
        idx = idx + (Ellipsis,)
    try:
        out = a._data[idx]
    except IndexError as err:
        raise IndexError(f"getitem: {err} (indexing a tensor of {describe(a)})") from None
    shape = a.shape

    def rule(g, _):
        return (_scatter_index(g, idx, shape, has_int_array),)

    def placed(g, _):  # a view's plain backward: its values placed into the base's gradient
        return (PlacedGrad(idx, g, shape),)

    result = record(out, "getitem", (a,), rule, fast=None if has_advanced else placed)
    if not has_advanced:
        as_view(result, a)
    if ORIGINS and result._node is not None:  # indexed by e.g. argmax of a tensor in the graph: note it
        note_origin(result._node, "getitem", [t for t in (index if isinstance(index, tuple) else (index,))
                                             if isinstance(t, Tensor)])
    return result


def _scatter_index(g: Tensor, idx, shape, accumulate: bool) -> Tensor:
    """Zeros of ``shape`` with ``g`` added at ``idx`` (repeats summed): the backward of getitem."""
    xp = xp_of(g._data)
    out = xp.zeros(shape, dtype=g._data.dtype)
    if accumulate and len(idx) == 1 and getattr(idx[0], "dtype", None) is not None and idx[0].dtype.kind in "iu":
        _add_rows_at(out, idx[0], g._data)
    elif accumulate:
        xp.add.at(out, idx, g._data)
    else:
        out[idx] = g._data
    return record(out, "getitem_backward", (g,), lambda gg, _: (gg[idx],))


def _add_rows_at(out, rows, values) -> None:
    """``out[rows] += values`` with repeated rows adding up (``add.at`` along the first axis, e.g. an
    embedding's gradient), as a sort of the rows and one segmented sum (``add.reduceat``): the same sums
    as add.at up to float rounding (numpy may sum a segment pairwise rather than in order), several times
    faster than add.at (bench/ANALYSIS.md)."""
    xp = xp_of(out)
    rows = rows.reshape(-1) % out.shape[0]
    values = values.reshape((rows.size,) + out.shape[1:])
    if rows.size == 0:
        return
    order = xp.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = xp.flatnonzero(xp.concatenate(([True], sorted_rows[1:] != sorted_rows[:-1])))
    out[sorted_rows[starts]] += xp.add.reduceat(values[order], starts, axis=0)


def index_put(a: Tensor, index, value, accumulate: bool = False) -> Tensor:
    """A copy of ``a`` with ``a[index] = value`` (broadcast): what ``a[index] = value`` records.
    With ``accumulate``, ``value`` is added instead, repeated indices adding up (PyTorch's index_put)."""
    idx, _, _ = convert_index(index, "setitem")
    value = tensor_operand(value, "setitem", like=a)
    if value._data.dtype != a._data.dtype:
        value = value.to(a.dtype)
    out = a._data.copy()
    try:
        if accumulate:
            xp_of(out).add.at(out, idx, value._data)
        else:
            out[idx] = value._data
    except (IndexError, ValueError) as err:
        raise RuntimeError(
            f"setitem: can't assign a value of {describe(value)} to index {index!r} of a tensor of "
            f"{describe(a)}: {err}"
        ) from None
    xp = xp_of(a._data)

    def rule(g, _):
        grad_a = grad_v = None
        if a._rg and accumulate:
            grad_a = g
        elif a._rg:
            keep = xp.ones(a.shape, dtype=bool)
            keep[idx] = False
            grad_a = where(wrap(keep), g, 0.0)
        if value._rg:
            grad_v = g[idx]
        return grad_a, grad_v

    return record(out, "setitem", (a, value), rule)


def _along_dim_index(index, d: int):
    """A full numpy index selecting ``index[..., i, ...]`` along axis ``d`` and the matching
    positions of the other axes (for add.at / fancy assignment with gather-shaped indices)."""
    xp = xp_of(index)
    full = []
    for k, n in enumerate(index.shape):
        if k == d:
            full.append(index)
        else:
            shape = [1] * index.ndim
            shape[k] = n
            full.append(xp.arange(n).reshape(shape))
    return tuple(full)


def _check_gather_index(op: str, a: Tensor, d: int, index: Tensor) -> None:
    if index._data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: index must be an int64 tensor, got {index.dtype}")
    if index.ndim != a.ndim:
        raise RuntimeError(
            f"{op}: index tensor must have the same number of dimensions as input: index {describe(index)}, "
            f"input {describe(a)}"
        )
    for k in range(a.ndim):
        if k != d and index.shape[k] > a.shape[k]:
            raise RuntimeError(
                f"{op}: size of index ({tuple(index.shape)}) does not match the input ({tuple(a.shape)}) at "
                f"dimension {k}: index may be smaller, not larger, except at dimension {d}"
            )
    if index._data.size:
        lo, hi = int(index._data.min()), int(index._data.max())
        if lo < -a.shape[d] or hi >= a.shape[d]:
            bad = hi if hi >= a.shape[d] else lo
            raise IndexError(f"{op}: index {bad} is out of bounds for dimension {d} with size {a.shape[d]}")


def gather(a, dim: int, index: Tensor) -> Tensor:
    """``out[i][j][k] = a[index[i][j][k]][j][k]`` for dim 0 (and so on for other dims)."""
    a = tensor_operand(a, "gather")
    d = norm_dim(dim, a.ndim, "gather")
    _check_gather_index("gather", a, d, index)
    full = _along_dim_index(index._data, d)
    out = a._data[full]
    shape = a.shape
    return record(out, "gather", (a,), lambda g, _: (scatter_add(g.new_zeros(shape), d, index, g),))


def scatter_add(a, dim: int, index: Tensor, src) -> Tensor:
    """A copy of ``a`` with ``src`` values added at the ``index`` positions along ``dim`` (repeats add up)."""
    a = tensor_operand(a, "scatter_add")
    src = tensor_operand(src, "scatter_add", like=a)
    d = norm_dim(dim, a.ndim, "scatter_add")
    _check_gather_index("scatter_add", a, d, index)
    full = _along_dim_index(index._data, d)
    part = tuple(slice(0, n) for n in index.shape)
    out = a._data.copy()
    xp_of(out).add.at(out, full, src._data[part].astype(out.dtype, copy=False))

    def rule(g, _):
        grad_src = None
        if src._rg:
            grad_src = gather(g, d, index)
            if grad_src.shape != src.shape:
                grad_src = _zero_pad_to(grad_src, src.shape)
        return g, grad_src

    return record(out, "scatter_add", (a, src), rule)


def _zero_pad_to(t: Tensor, shape) -> Tensor:
    """``t`` padded with zeros at the end of each dim up to ``shape`` (src may exceed index in size)."""
    widths = []
    for have, want in zip(reversed(t.shape), reversed(shape)):
        widths += [0, want - have]
    return pad(t, widths)


def scatter(a, dim: int, index: Tensor, src=None, value=None) -> Tensor:
    """A copy of ``a`` with ``src`` (or the number ``value``) written at the ``index`` positions."""
    a = tensor_operand(a, "scatter")
    if src is None:
        src = value
    d = norm_dim(dim, a.ndim, "scatter")
    _check_gather_index("scatter", a, d, index)
    full = _along_dim_index(index._data, d)
    out = a._data.copy()
    xp = xp_of(out)
    if isinstance(src, Tensor):
        part = tuple(slice(0, n) for n in index.shape)
        out[full] = src._data[part]
    else:
        out[full] = src
        src = None
    written = xp.zeros(a.shape, dtype=bool)
    written[full] = True

    def rule(g, _):
        grad_a = where(wrap(~written), g, 0.0)
        grad_src = None
        if src is not None and src._rg:
            grad_src = gather(g, d, index)
            if grad_src.shape != src.shape:
                grad_src = _zero_pad_to(grad_src, src.shape)
        return (grad_a, grad_src) if src is not None else (grad_a,)

    inputs = (a, src) if src is not None else (a,)
    return record(out, "scatter", inputs, rule)


def index_select(a, dim: int, index: Tensor) -> Tensor:
    a = tensor_operand(a, "index_select")
    d = norm_dim(dim, a.ndim, "index_select")
    index = tensor_operand(index, "index_select")
    if index.ndim > 1 or index._data.dtype.kind not in "iu":
        raise RuntimeError(f"index_select: index must be a 1-D integer tensor, got {describe(index)}")
    xp = xp_of(a._data)
    try:
        out = xp.take(a._data, index._data, axis=d)
    except IndexError as err:
        raise IndexError(f"index_select: {err} (input {describe(a)})") from None
    shape = a.shape
    return record(out, "index_select", (a,), lambda g, _: (index_add(g.new_zeros(shape), d, index, g),))


def index_add(a, dim: int, index: Tensor, source, alpha=1) -> Tensor:
    """A copy of ``a`` with ``alpha * source[i]`` added at position ``index[i]`` along ``dim``."""
    a = tensor_operand(a, "index_add")
    source = tensor_operand(source, "index_add", like=a)
    if alpha != 1:
        source = source * alpha
    d = norm_dim(dim, a.ndim, "index_add")
    xp = xp_of(a._data)
    out = a._data.copy()
    moved = xp.moveaxis(out, d, 0)
    xp.add.at(moved, index._data, xp.moveaxis(source._data, d, 0).astype(out.dtype, copy=False))
    return record(out, "index_add", (a, source),
                  lambda g, _: (g, index_select(g, d, index) if source._rg else None))


def masked_fill(a, mask, value) -> Tensor:
    """``a`` with ``value`` wherever ``mask`` is True; like PyTorch's out-of-place form, ``a`` and
    ``mask`` broadcast together (``a.masked_fill_`` needs the mask to broadcast to ``a``)."""
    a = tensor_operand(a, "masked_fill")
    mask = tensor_operand(mask, "masked_fill")
    if mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    if isinstance(value, Tensor) and value.ndim == 0 and not value._rg:
        value = value.item()
    try:
        out = where(mask, value, a)
    except RuntimeError:
        raise RuntimeError(
            f"masked_fill: the mask of shape {tuple(mask.shape)} and the input of {describe(a)} cannot be broadcast together"
        ) from None
    return out.to(a.dtype)  # the value takes the input's dtype (PyTorch): an int tensor stays int


def masked_select(a, mask) -> Tensor:
    a = tensor_operand(a, "masked_select")
    mask = tensor_operand(mask, "masked_select")
    shape = tuple(xp_of(a._data).broadcast_shapes(a.shape, mask.shape))
    return a.expand(shape)[mask.expand(shape)]


def take_along_dim(a, indices: Tensor, dim: int | None = None) -> Tensor:
    """numpy's take_along_axis with broadcasting, as PyTorch's take_along_dim."""
    a = tensor_operand(a, "take_along_dim")
    if dim is None:
        return a.reshape(-1)[indices.reshape(-1)]
    d = norm_dim(dim, a.ndim, "take_along_dim")
    if indices.ndim != a.ndim:
        raise RuntimeError(
            f"take_along_dim: input {describe(a)} and indices {describe(indices)} should have the same number of dims"
        )
    xp = xp_of(a._data)
    a_shape = list(a.shape)
    i_shape = list(indices.shape)
    a_shape[d] = i_shape[d] = 1
    common = list(xp.broadcast_shapes(tuple(a_shape), tuple(i_shape)))
    a_target = common.copy()
    a_target[d] = a.shape[d]
    i_target = common.copy()
    i_target[d] = indices.shape[d]
    return gather(a.expand(a_target), d, indices.expand(i_target))


def one_hot(index: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of ``num_classes`` (max index + 1 by default)."""
    index = tensor_operand(index, "one_hot")
    if index._data.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot: class values must be an integer tensor, got {index.dtype}")
    xp = xp_of(index._data)
    if num_classes < 0:
        num_classes = int(index._data.max()) + 1 if index._data.size else 0
    if index._data.size and (index._data.min() < 0 or index._data.max() >= num_classes):
        lo, hi = int(index._data.min()), int(index._data.max())
        raise RuntimeError(f"one_hot: class values must be in [0, {num_classes}), got min {lo}, max {hi}")
    return wrap((index._data[..., None] == xp.arange(num_classes)).astype(_dt.int64.np))


def nonzero(a, as_tuple: bool = False):
    a = tensor_operand(a, "nonzero")
    xp = xp_of(a._data)
    parts = xp.nonzero(a._data)
    if as_tuple:
        return tuple(wrap(p.astype(_dt.int64.np)) for p in parts)
    return wrap(xp.stack(parts, axis=-1).astype(_dt.int64.np) if parts else xp.zeros((0, 0), dtype=_dt.int64.np))
