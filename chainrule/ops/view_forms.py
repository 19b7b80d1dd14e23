"""Other forms of the view operations, as PyTorch has them: the copying forms (``diagonal_copy``,
``permute_copy``, ...: the view's values in fresh memory), the scattering forms (``select_scatter``,
``slice_scatter``, ``diagonal_scatter``: the input with the view's elements replaced), ``unfold``
(sliding windows along a dimension), ``combinations`` and ``unravel_index``.

All are composites of differentiable primitives (indexing, ``index_select``, in-place writes into a
clone, which the engine records), so their gradients need no rules of their own.
"""

from __future__ import annotations

import itertools

from chainrule.backend import np
from chainrule.ops import indexing as ix
from chainrule.ops import shape as sh
from chainrule.ops._helpers import Tensor, describe, norm_dim, tensor_operand, wrap

__all__ = ["alias_copy", "detach_copy", "diagonal_copy", "expand_copy", "permute_copy", "select_copy", "slice_copy",
           "split_copy", "split_with_sizes", "split_with_sizes_copy", "squeeze_copy", "t_copy", "transpose_copy",
           "unbind_copy", "unfold", "unfold_copy", "unsqueeze_copy", "view_copy", "narrow_copy", "select_scatter",
           "slice_scatter", "diagonal_scatter", "combinations", "unravel_index", "unsafe_chunk", "unsafe_split",
           "unsafe_split_with_sizes", "moveaxis", "ravel", "row_stack", "broadcast_shapes", "broadcast_tensors"]


def _copying(view_fn, name: str):
    """The ``*_copy`` form of a view function: the same values, in memory of their own."""
    def copy_fn(a, *args, **kwargs):
        result = view_fn(a, *args, **kwargs)
        if isinstance(result, tuple):
            return tuple(sh.clone(part) for part in result)
        return sh.clone(result)

    copy_fn.__name__ = name
    copy_fn.__doc__ = f"``{view_fn.__name__}``'s values as a new tensor that shares no memory with the input."
    return copy_fn


def split_with_sizes(a, split_sizes, dim: int = 0) -> tuple:
    """``split`` with a list of sizes that must add up to the dimension's size."""
    sizes = [int(s) for s in split_sizes]
    d = norm_dim(dim, a.ndim, "split_with_sizes")
    if sum(sizes) != a.shape[d] or any(s < 0 for s in sizes):
        raise RuntimeError(f"split_with_sizes: split sizes {sizes} must be non-negative and sum to the size of "
                           f"dimension {dim} of {describe(a)} ({a.shape[d]})")
    return sh.split(a, sizes, d)


def slice_view(a, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:
    """``a`` sliced along one dimension (``aten::slice``, whose copying form is ``slice_copy``)."""
    if step < 1:
        raise RuntimeError(f"slice: step must be positive, got {step}")
    d = norm_dim(dim, a.ndim, "slice")
    return ix.getitem(a, (slice(None),) * d + (slice(start, end, step),))


alias_copy = _copying(lambda a: a, "alias_copy")
detach_copy = _copying(lambda a: a.detach(), "detach_copy")
diagonal_copy = _copying(sh.diagonal, "diagonal_copy")
expand_copy = _copying(sh.expand, "expand_copy")
permute_copy = _copying(sh.permute, "permute_copy")
select_copy = _copying(sh.select, "select_copy")
slice_copy = _copying(slice_view, "slice_copy")
split_copy = _copying(sh.split, "split_copy")
split_with_sizes_copy = _copying(split_with_sizes, "split_with_sizes_copy")
squeeze_copy = _copying(sh.squeeze, "squeeze_copy")
t_copy = _copying(sh.t, "t_copy")
transpose_copy = _copying(sh.transpose, "transpose_copy")
unbind_copy = _copying(sh.unbind, "unbind_copy")
unsqueeze_copy = _copying(sh.unsqueeze, "unsqueeze_copy")
view_copy = _copying(sh.view, "view_copy")
narrow_copy = _copying(sh.narrow, "narrow_copy")
# PyTorch's "unsafe" forms skip autograd's view tracking; here they are the ordinary, safe ones
unsafe_chunk, unsafe_split, unsafe_split_with_sizes = sh.chunk, sh.split, split_with_sizes
moveaxis = sh.movedim
row_stack = sh.vstack


def ravel(a) -> Tensor:
    """All elements in one dimension (a view when the memory allows, as ``reshape(-1)``)."""
    return sh.reshape(a, -1)


def broadcast_shapes(*shapes) -> tuple:
    """The shape that tensors of ``shapes`` broadcast to (an int counts as a 1-d shape)."""
    as_tuples = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
    try:
        return tuple(int(n) for n in np.broadcast_shapes(*as_tuples))
    except ValueError:
        raise RuntimeError(f"broadcast_shapes: shapes {as_tuples} cannot be broadcast together") from None


def broadcast_tensors(*tensors) -> tuple:
    """The tensors expanded (as views) to their common broadcast shape."""
    tensors = [tensor_operand(t, "broadcast_tensors") for t in tensors]
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(sh.expand(t, shape) for t in tensors)


def unfold(a, dimension: int, size: int, step: int) -> Tensor:
    """Every window of ``size`` elements along ``dimension``, ``step`` apart: that dimension becomes the
    window count and a new last dimension of length ``size`` holds each window (``Tensor.unfold``)."""
    a = tensor_operand(a, "unfold")
    d = norm_dim(dimension, max(a.ndim, 1), "unfold")
    length = a.shape[d] if a.ndim else 1
    if size < 0 or size > length or step <= 0:
        raise RuntimeError(f"unfold: size {size} must be in [0, {length}] (the size of dimension {dimension} of "
                           f"{describe(a)}) and step {step} must be positive")
    if a.ndim == 0:
        return sh.reshape(a, (1,))
    starts = a.xp.arange(0, length - size + 1, step)
    index = (starts[:, None] + a.xp.arange(size)[None, :]).reshape(-1)
    gathered = ix.index_select(a, d, wrap(index))  # dimension d now holds windows * size elements
    windows = sh.unflatten(gathered, d, (len(starts), size))
    return sh.movedim(windows, d + 1, -1)


unfold_copy = _copying(unfold, "unfold_copy")


def _replaced(a, src, view_index, op: str) -> Tensor:
    """A copy of ``a`` whose elements at ``view_index`` are ``src`` (which must have that view's shape)."""
    a = tensor_operand(a, op)
    src = tensor_operand(src, op, like=a)
    target_shape = tuple(ix.getitem(a.detach(), view_index).shape)
    if tuple(src.shape) != target_shape:
        raise RuntimeError(f"{op}: src of shape {tuple(src.shape)} must have the shape of the embedded view "
                           f"{target_shape} of {describe(a)}")
    out = sh.clone(a)
    out[view_index] = src
    return out


def select_scatter(a, src, dim: int, index: int) -> Tensor:
    """``a`` with ``a.select(dim, index)`` replaced by ``src``."""
    d = norm_dim(dim, a.ndim, "select_scatter")
    if not -a.shape[d] <= index < a.shape[d]:
        raise IndexError(f"select_scatter: index {index} is out of range for dimension {dim} of size {a.shape[d]}")
    return _replaced(a, src, (slice(None),) * d + (index,), "select_scatter")


def slice_scatter(a, src, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:
    """``a`` with ``a[..., start:end:step, ...]`` (along ``dim``) replaced by ``src``."""
    d = norm_dim(dim, a.ndim, "slice_scatter")
    if step < 1:
        raise RuntimeError(f"slice_scatter: step must be positive, got {step}")
    return _replaced(a, src, (slice(None),) * d + (slice(start, end, step),), "slice_scatter")


def diagonal_scatter(a, src, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """``a`` with ``a.diagonal(offset, dim1, dim2)`` replaced by ``src`` (whose last dimension runs along
    the diagonal, as ``diagonal``'s result does)."""
    a = tensor_operand(a, "diagonal_scatter")
    d1, d2 = norm_dim(dim1, a.ndim, "diagonal_scatter"), norm_dim(dim2, a.ndim, "diagonal_scatter")
    if d1 == d2:
        raise RuntimeError(f"diagonal_scatter: dim1 and dim2 are the same dimension ({dim1})")
    rows = a.xp.arange(sh.diagonal(a.detach(), offset, d1, d2).shape[-1])  # the diagonal's length
    row_index, col_index = (rows, rows + offset) if offset >= 0 else (rows - offset, rows)
    # move the two dimensions last, write the diagonal there, move them back
    moved = sh.movedim(sh.clone(a), (d1, d2), (-2, -1))
    src = tensor_operand(src, "diagonal_scatter", like=a)
    if tuple(src.shape) != (*moved.shape[:-2], len(rows)):
        raise RuntimeError(f"diagonal_scatter: src of shape {tuple(src.shape)} must have the diagonal's shape "
                           f"{(*moved.shape[:-2], len(rows))}")
    moved[..., wrap(row_index), wrap(col_index)] = src
    return sh.movedim(moved, (-2, -1), (d1, d2))


def combinations(a, r: int = 2, with_replacement: bool = False) -> Tensor:
    """The ``r``-element combinations of the elements of the 1-d ``a``, one per row (itertools' order)."""
    a = tensor_operand(a, "combinations")
    if a.ndim != 1 or r < 0:
        raise RuntimeError(f"combinations: expects a 1-d tensor and r >= 0, got {describe(a)} and r={r}")
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(a.shape[0]), r))
    if r == 0 or not rows:
        return ix.index_select(a, 0, wrap(a.xp.zeros(0, dtype="int64")))
    index = a.xp.asarray(rows, dtype="int64")
    return sh.reshape(ix.index_select(a, 0, wrap(index.reshape(-1))), (len(rows), r))


def unravel_index(indices, shape) -> tuple:
    """Flat indices into ``shape`` as one integer tensor per dimension."""
    indices = tensor_operand(indices, "unravel_index")
    if indices.dtype._kind != 1:  # integers only (not bool, float or complex)
        raise TypeError(f"unravel_index: expected 'indices' to be an integer tensor, got {describe(indices)}")
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    size = 1
    for s in shape:
        size *= s
    flat = indices._data
    if flat.size and (flat.min() < -size or flat.max() >= size):
        raise RuntimeError(f"unravel_index: indices must be in [{-size}, {size}) for shape {shape}")
    coords = indices.xp.unravel_index(flat % max(size, 1), shape)
    return tuple(wrap(c.astype("int64")) for c in coords)
