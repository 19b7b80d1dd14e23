"""Indexing primitives: ``a[index]`` (basic, integer-array and boolean-mask indexing) and its
out-of-place twin for ``a[index] = v``, gather/scatter/scatter_add, scatter_reduce, index_select/index_add,
masked_fill, take_along_dim, one_hot, nonzero; and the composites built on them: index_copy, index_fill,
index_reduce, masked_scatter, take, put, argwhere.

Gradients of reads with repeated indices accumulate (scatter-add), as the chain rule demands; of a position
written several times (index_copy, put), only the write that stays gets one.
"""

from __future__ import annotations

from chainrule import dtypes as _dt
from chainrule.autograd.graph import PlacedGrad
from chainrule.autograd.provenance import ORIGINS, note_origin
from chainrule.backend import cpu, device_of, is_host, np, xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, record, tensor_operand, untracked, wrap
from chainrule.ops.elementwise import where
from chainrule.ops.shape import as_view, pad

__all__ = ["getitem", "index_put", "gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add",
           "index_copy", "index_fill", "index_reduce", "masked_fill", "masked_select", "masked_scatter", "take", "put",
           "take_along_dim", "one_hot", "nonzero", "argwhere", "convert_index"]


def convert_index(index, op: str = "getitem", device=cpu):
    """A numpy-compatible index from a PyTorch-style one, its index arrays on ``device`` (the indexed
    tensor's), and whether it has integer-array parts (whose gradient must accumulate repeats) or any
    advanced part at all."""
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
            item = arr if device_of(arr) is device else _index_on(device, arr, op)
        elif isinstance(item, list):
            item = device.xp.asarray(item)
            if item.dtype.kind == "f":
                raise IndexError(f"{op}: lists used as indices must hold ints or bools, got floats")
        elif isinstance(item, np.ndarray) and item.ndim and device_of(item) is not device:
            item = _index_on(device, item, op)
        if hasattr(item, "dtype") and hasattr(item, "ndim"):
            has_advanced = True
            if item.dtype.kind != "b":
                has_int_array = True
        elif isinstance(item, bool):
            has_advanced = True
        converted.append(item)
    return tuple(converted), has_int_array, has_advanced


def _index_on(device, index, op: str):
    """An index array copied to the indexed tensor's device: as in PyTorch, host (CPU) indices serve a
    tensor on any device, device indices only a tensor on their own device."""
    if not is_host(index):
        raise RuntimeError(f"{op}: indices should be either on cpu or on the same device as the indexed tensor "
                           f"({device}), got indices on {device_of(index)}")
    return device.xp.asarray(index)


def getitem(a: Tensor, index) -> Tensor:
    idx, has_int_array, has_advanced = convert_index(index, "getitem", a.device)
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
    starts = xp.flatnonzero(xp.concatenate((xp.ones(1, dtype=bool), sorted_rows[1:] != sorted_rows[:-1])))
    out[sorted_rows[starts]] += xp.add.reduceat(values[order], starts, axis=0)


def index_put(a: Tensor, index, value, accumulate: bool = False) -> Tensor:
    """A copy of ``a`` with ``a[index] = value`` (broadcast): what ``a[index] = value`` records.
    With ``accumulate``, ``value`` is added instead, repeated indices adding up (PyTorch's index_put)."""
    idx, _, _ = convert_index(index, "setitem", a.device)
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


def scatter(a, dim: int, index: Tensor, src=None, value=None, *, reduce: str | None = None) -> Tensor:
    """A copy of ``a`` with ``src`` (or the number ``value``) written at the ``index`` positions; with
    ``reduce="add"`` or ``"multiply"`` combined with what is there instead (``scatter_reduce``'s sum and prod,
    which PyTorch recommends in its place; here it is differentiable too)."""
    a = tensor_operand(a, "scatter")
    if src is None:
        src = value
    if reduce is not None:
        return _scatter_with_reduce(a, dim, index, src, reduce)
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


def _scatter_with_reduce(a: Tensor, dim: int, index: Tensor, src, reduce: str) -> Tensor:
    if reduce not in ("add", "multiply"):
        raise RuntimeError(f"scatter: reduce argument must be either add or multiply, got {reduce!r}")
    if not isinstance(src, Tensor):  # a number: the same value at every index position
        src = wrap(xp_of(a._data).full(index.shape, src, dtype=a._data.dtype))
    return scatter_reduce(a, dim, index, src, "sum" if reduce == "add" else "prod")


_SCATTER_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def scatter_reduce(a, dim: int, index: Tensor, src, reduce: str, *, include_self: bool = True) -> Tensor:
    """A copy of ``a`` where each ``index`` position along ``dim`` is reduced (sum, prod, mean, amax or amin)
    with the ``src`` values sent to it, and with its own value when ``include_self``.

    Gradients are PyTorch's: prod's are exact with zeros (a second derivative with two or more zeros sent to one
    position is refused, as in PyTorch), mean divides by each position's count, and amax/amin split the gradient
    evenly among the tied values. One difference: with ``include_self=False`` an excluded value of ``a`` that
    equals the result is not among the tied (PyTorch counts it, so the ``src`` gradients there add up to less than
    the output's).
    """
    a = tensor_operand(a, "scatter_reduce")
    src = tensor_operand(src, "scatter_reduce", like=a)
    if reduce not in _SCATTER_REDUCTIONS:
        raise RuntimeError(f"scatter_reduce: reduce argument must be either sum, prod, mean, amax or amin, got {reduce!r}")
    if src._data.dtype != a._data.dtype:
        raise RuntimeError(f"scatter_reduce: expected src ({describe(src)}) to have the dtype of self ({describe(a)})")
    if reduce == "mean" and a._data.dtype.kind == "b":
        raise RuntimeError(f"scatter_reduce: reduce='mean' is not supported for bool tensors ({describe(a)})")
    if a.ndim == 0:  # one position: the same as on one-element vectors
        return scatter_reduce(a.reshape(1), 0, index.reshape(1) if index.ndim == 0 else index, src.reshape(-1)
                              if src.ndim == 0 else src, reduce, include_self=include_self).reshape(())
    d = norm_dim(dim, a.ndim, "scatter_reduce")
    _check_gather_index("scatter_reduce", a, d, index)
    if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
        raise RuntimeError(
            f"scatter_reduce: expected index ({describe(index)}) to be no larger than src ({describe(src)}) in every "
            "dimension"
        )
    if src.shape != index.shape:  # only the part of src that index covers takes part
        src = src[tuple(slice(0, n) for n in index.shape)]
    return _scatter_reduce(a, d, index, src, reduce, include_self)


def _reduction_identity(reduce: str, dtype):
    """The start value of a position whose own value is excluded (``include_self=False``)."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind == "b":
        return reduce == "amin"
    if dtype.kind == "f":
        return float("-inf") if reduce == "amax" else float("inf")
    info = np.iinfo(dtype)
    return info.min if reduce == "amax" else info.max


def _scatter_reduce(a: Tensor, d: int, index: Tensor, src: Tensor, reduce: str, include_self: bool) -> Tensor:
    """The primitive: ``src`` has ``index``'s shape. The forward is one unbuffered ufunc (``ufunc.at``)."""
    xp = xp_of(a._data)
    full = _along_dim_index(index._data, d)
    hit = xp.zeros(a.shape, dtype=bool)  # the positions some src value is sent to
    hit[full] = True
    excluded = None if include_self else hit  # the positions whose own value takes no part
    out = a._data.copy()
    if excluded is not None:
        out[excluded] = _reduction_identity(reduce, out.dtype)
    ufunc = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "amax": xp.maximum, "amin": xp.minimum}[reduce]
    ufunc.at(out, full, src._data)
    count = None
    if reduce == "mean":  # how many values each position averages
        count = (xp.ones(a.shape, dtype=bool) if excluded is None else ~excluded).astype(out.dtype)
        xp.add.at(count, full, xp.ones(index.shape, dtype=out.dtype))  # (an array of out's dtype: add.at's fast path)
        count[count == 0] = 1
        out = out / count if out.dtype.kind == "f" else out // count  # integers: floor division, as PyTorch

    def rule(g, result):
        grad_a, grad_src = _SCATTER_REDUCE_GRADS[reduce](g, result, a, d, index, src, excluded, count)
        if excluded is not None:
            grad_a = where(wrap(~excluded), grad_a, 0.0)
        return grad_a, grad_src

    return record(out, "scatter_reduce", (a, src), rule, (a, src), keep_output=reduce in ("prod", "amax", "amin"))


def _sum_grads(g, result, a, d, index, src, excluded, count):
    return g, gather(g, d, index)


def _mean_grads(g, result, a, d, index, src, excluded, count):
    share = g / wrap(count)
    return share, gather(share, d, index)


def _extremum_grads(g, result, a, d, index, src, excluded, count):
    """Split evenly among the values equal to the result (an excluded own value is not one of them)."""
    xp = xp_of(g._data)
    full = _along_dim_index(index._data, d)
    out = result._data
    own_is_result = a._data == out
    if excluded is not None:
        own_is_result &= ~excluded
    src_is_result = src._data == out[full]
    ties = own_is_result.astype(out.dtype)
    xp.add.at(ties, full, src_is_result.astype(out.dtype))
    ties[ties == 0] = 1
    share = g / wrap(ties)
    return where(wrap(own_is_result), share, 0.0), where(wrap(src_is_result), gather(share, d, index), 0.0)


def _prod_grads(g, result, a, d, index, src, excluded, count):
    """The product of the other factors, without dividing by a zero: a zero of ``a`` or a lone zero among a
    position's src values gets the product of the rest, computed again with that factor replaced by 1."""
    xp = xp_of(g._data)
    full = _along_dim_index(index._data, d)
    a_nonzero = a.masked_fill(wrap(a._data == 0), 1.0)
    include_self = excluded is None
    grad_a = g * _scatter_reduce(a_nonzero, d, index, src, "prod", include_self) / a_nonzero
    src_zero = src._data == 0
    zeros_at = xp.zeros(a.shape, dtype=xp.int64)
    xp.add.at(zeros_at, full, src_zero.astype(xp.int64))
    zeros_at = zeros_at[full]
    lone_zero = src_zero & (zeros_at == 1)
    without_lone_zero = _scatter_reduce(a, d, index, src.masked_fill(wrap(lone_zero), 1.0), "prod", include_self)
    grad_src = where(wrap(lone_zero), gather(g * without_lone_zero, d, index),
                     gather(g * result, d, index) / src.masked_fill(wrap(src_zero), 1.0))
    if (zeros_at > 1).any():
        grad_src = _no_second_derivative(grad_src, "scatter_reduce: the second derivative of reduce='prod' for src "
                                                   "with two or more zeros sent to one position is not supported")
    return grad_a, grad_src


def _no_second_derivative(t: Tensor, message: str) -> Tensor:
    """``t``, whose own gradient (a derivative of one order higher) is refused with ``message``."""
    def refuse(g, _):
        raise RuntimeError(message)

    return record(t._data, "refused_higher_order", (t,), refuse)


_SCATTER_REDUCE_GRADS = {"sum": _sum_grads, "mean": _mean_grads, "prod": _prod_grads, "amax": _extremum_grads,
                         "amin": _extremum_grads}


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


def _check_index_along(op: str, a: Tensor, d: int, index: Tensor) -> Tensor:
    """``index`` as a 1-D int64 tensor of positions along dim ``d`` of ``a``, checked (a 0-d index is one position)."""
    index = tensor_operand(index, op)
    if index.ndim > 1 or index._data.dtype != _dt.int64.np:
        raise IndexError(f"{op}: index must be a 0-d or 1-D int64 tensor, got {describe(index)}")
    index = index.reshape(-1)
    size = a.shape[d] if a.ndim else 1
    if index._data.size:
        lo, hi = int(index._data.min()), int(index._data.max())
        if lo < -size or hi >= size:
            bad = hi if hi >= size else lo
            raise IndexError(f"{op}: index {bad} is out of bounds for dimension {d} with size {size}")
    return index


def _last_of_repeats(positions):
    """The indices ``i`` of the last occurrence of each distinct value of ``positions`` (1-D, non-negative), in
    order: the writes that stay when a repeated position is written several times."""
    xp = xp_of(positions)
    first_from_end = xp.unique(positions[::-1], return_index=True)[1]
    return xp.sort(positions.size - 1 - first_from_end)


def _along(d: int, index: Tensor) -> tuple:
    """The index ``a[:, ..., index]`` (``index`` at dim ``d``) for index_put."""
    return (slice(None),) * d + (index,)


def index_copy(a, dim: int, index: Tensor, source) -> Tensor:
    """A copy of ``a`` whose slices ``index[i]`` along ``dim`` are ``source``'s slices ``i``. With a repeated
    index the last copy stays (PyTorch leaves it unspecified) and only its source slice gets a gradient (PyTorch
    sends one to every copy, also those overwritten)."""
    a = tensor_operand(a, "index_copy")
    source = tensor_operand(source, "index_copy", like=a)
    d = norm_dim(dim, a.ndim, "index_copy")
    index = _check_index_along("index_copy", a, d, index)
    if source._data.dtype != a._data.dtype:
        raise RuntimeError(f"index_copy: expected source ({describe(source)}) to have the dtype of self ({describe(a)})")
    if a.ndim == 0:
        return index_copy(a.reshape(1), 0, index, source.reshape(-1)).reshape(())
    expected = a.shape[:d] + (index.shape[0],) + a.shape[d + 1:]
    if source.shape != expected:
        raise IndexError(
            f"index_copy: source of {describe(source)} must have the shape {expected} (self {describe(a)} with "
            f"dimension {d} the number of indices, {index.shape[0]})"
        )
    positions = index._data % a.shape[d]
    kept = _last_of_repeats(positions)
    if kept.size < positions.size:
        index, source = wrap(positions[kept]), index_select(source, d, wrap(kept))
    return index_put(a, _along(d, index), source)


def index_reduce(a, dim: int, index: Tensor, source, reduce: str, *, include_self: bool = True) -> Tensor:
    """A copy of ``a`` whose slice ``index[i]`` along ``dim`` is reduced (prod, mean, amax or amin) with ``source``'s
    slice ``i``, and with its own value when ``include_self``: scatter_reduce with the index spread over each slice,
    whose gradients it has."""
    a = tensor_operand(a, "index_reduce")
    source = tensor_operand(source, "index_reduce", like=a)
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce: reduce argument must be either prod, mean, amax or amin, got {reduce!r}")
    if reduce == "mean" and a._data.dtype.kind == "b":
        raise RuntimeError(f"index_reduce: reduce='mean' is not supported for bool tensors ({describe(a)})")
    d = norm_dim(dim, a.ndim, "index_reduce")
    index = _check_index_along("index_reduce", a, d, index)
    expected = a.shape[:d] + (index.shape[0],) + a.shape[d + 1:] if a.ndim else ()
    if source.shape != expected:
        raise IndexError(
            f"index_reduce: source of {describe(source)} must have the shape {expected} (self {describe(a)} with "
            f"dimension {d} the number of indices, {index.shape[0]})"
        )
    if a.ndim == 0:
        return index_reduce(a.reshape(1), 0, index, source.reshape(1), reduce, include_self=include_self).reshape(())
    along = (1,) * d + (index.shape[0],) + (1,) * (a.ndim - d - 1)
    spread = xp_of(index._data).broadcast_to(index._data.reshape(along), expected)
    return scatter_reduce(a, d, wrap(spread), source, reduce, include_self=include_self)


def index_fill(a, dim: int, index: Tensor, value) -> Tensor:
    """A copy of ``a`` whose slices ``index[i]`` along ``dim`` are filled with ``value`` (a number or a 0-d tensor,
    which gets the sum of those slices' gradients)."""
    a = tensor_operand(a, "index_fill")
    d = norm_dim(dim, a.ndim, "index_fill")
    index = _check_index_along("index_fill", a, d, index)
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"index_fill: only a 0-d value tensor is supported, got {describe(value)}")
    if a.ndim == 0:
        return index_fill(a.reshape(1), 0, index, value).reshape(())
    filled = wrap(xp_of(index._data).unique(index._data % a.shape[d]))  # a tensor value counts each slice once
    return index_put(a, _along(d, filled), value)


def masked_scatter(a, mask, source) -> Tensor:
    """``a`` (broadcast with ``mask``) with its elements where ``mask`` is True replaced, in row-major order, by
    the first elements of ``source``."""
    a = tensor_operand(a, "masked_scatter")
    mask = tensor_operand(mask, "masked_scatter")
    source = tensor_operand(source, "masked_scatter", like=a)
    if mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_scatter: mask must be a bool tensor, got {describe(mask)}")
    if source._data.dtype != a._data.dtype:
        raise RuntimeError(f"masked_scatter: expected source ({describe(source)}) to have the dtype of self ({describe(a)})")
    xp = xp_of(a._data)
    try:
        shape = tuple(xp.broadcast_shapes(a.shape, mask.shape))
    except ValueError:
        raise RuntimeError(f"masked_scatter: mask of {describe(mask)} and self of {describe(a)} cannot be broadcast "
                           "together") from None
    chosen = xp.broadcast_to(mask._data, shape)
    n = int(chosen.sum())
    if n > source.numel():
        raise RuntimeError(
            f"masked_scatter: the mask has {n} True elements but source ({describe(source)}) only {source.numel()}"
        )
    return index_put(a.expand(shape), (wrap(chosen.copy()),), source.reshape(-1)[:n])


def _check_flat_index(op: str, a: Tensor, index: Tensor) -> Tensor:
    index = tensor_operand(index, op)
    if index._data.dtype != _dt.int64.np:
        raise RuntimeError(f"{op}: index must be an int64 tensor, got {describe(index)}")
    n = a.numel()
    if index._data.size:
        lo, hi = int(index._data.min()), int(index._data.max())
        if lo < -n or hi >= n:
            bad = hi if hi >= n else lo
            raise IndexError(f"{op}: out of range: tried to access index {bad} on a tensor of {n} elements "
                             f"({describe(a)})")
    return index


def take(a, index: Tensor) -> Tensor:
    """The elements of ``a``, read as a flat row-major vector, at ``index`` (the result has ``index``'s shape)."""
    a = tensor_operand(a, "take")
    index = _check_flat_index("take", a, index)
    return a.reshape(-1)[index]


def put(a, index: Tensor, source, accumulate: bool = False) -> Tensor:
    """A copy of ``a`` with the elements of ``source`` written (or, with ``accumulate``, added: repeats add up) at
    the flat row-major positions ``index``. Written to a repeated position, the last value stays and only it gets a
    gradient, as in :func:`index_copy`."""
    a = tensor_operand(a, "put")
    source = tensor_operand(source, "put", like=a)
    index = _check_flat_index("put", a, index)
    if source.numel() != index.numel():
        raise IndexError(f"put: expected source and index to have the same number of elements, got source "
                         f"{describe(source)} and index {describe(index)}")
    if source._data.dtype != a._data.dtype:
        raise RuntimeError(f"put: expected source ({describe(source)}) to have the dtype of self ({describe(a)})")
    index, source = index.reshape(-1), source.reshape(-1)
    if not accumulate:
        positions = index._data % max(a.numel(), 1)
        kept = _last_of_repeats(positions)
        if kept.size < positions.size:
            index, source = wrap(positions[kept]), source[wrap(kept)]
    return index_put(a.reshape(-1), (index,), source, accumulate=accumulate).reshape(a.shape)


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
    """The indices of the non-zero elements: an int64 tensor of shape (count, ndim), or with ``as_tuple``
    one vector per dim. A 0-d tensor counts as one element: (1, 0) or (0, 0), and as a tuple one vector."""
    a = tensor_operand(a, "nonzero")
    xp = xp_of(a._data)
    parts = xp.nonzero(xp.atleast_1d(a._data))
    if as_tuple:
        return tuple(untracked(p.astype(_dt.int64.np), a, "nonzero") for p in parts)
    if a.ndim == 0:
        return untracked(xp.zeros((parts[0].size, 0), dtype=_dt.int64.np), a, "nonzero")
    return untracked(xp.stack(parts, axis=-1).astype(_dt.int64.np), a, "nonzero")


def argwhere(a) -> Tensor:
    """``nonzero(a)``: the indices of the non-zero elements, one row each."""
    return nonzero(a)
