"""Shape primitives: reshape/view, permute/transpose, squeeze/unsqueeze, expand/broadcast_to,
repeat/tile, cat/stack/split/chunk, flip, roll, pad, tril/triu, movedim.

Results that numpy gives as views (reshape of contiguous data, transpose, expand, slicing) are views
here too: they share memory and the version counter with their base, as in PyTorch.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from chainrule import dtypes as _dt
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, norm_dims, record, tensor_operand, wrap

__all__ = ["reshape", "view", "flatten", "unflatten", "permute", "transpose", "swapaxes", "t", "mT", "T",
           "squeeze", "unsqueeze", "expand", "expand_as", "broadcast_to", "repeat", "tile", "cat", "concat",
           "concatenate", "stack", "hstack", "vstack", "split", "chunk", "unbind", "narrow", "flip", "roll",
           "pad", "tril", "triu", "movedim", "clone", "contiguous", "as_view", "select"]


def as_view(result: Tensor, base: Tensor) -> Tensor:
    """Mark ``result`` as a view of ``base``: one version counter, and in-place changes to either reach
    the other's graph (see ``chainrule.ops.inplace``)."""
    root = base._base if base._base is not None else base
    result._base = root
    result._vc = base._shared_version()
    if result._node is not None and root._node is not None:  # see inplace.refresh_views
        if root._views is None:
            root._views = []
        root._views.append(weakref.ref(result))
    return result


def _view_result(out, op: str, a: Tensor, rule) -> Tensor:
    """``out`` recorded as the result of ``op`` on ``a``, marked a view of ``a`` when it shares ``a``'s
    memory. numpy's reshape copies when the layout allows no view (a transposed input), and its result
    then has a base too, the copy: so the test is the owner of the memory, not ``out.base``."""
    result = record(out, op, (a,), rule)
    if out.base is not None and _memory_owner(out) is _memory_owner(a._data):
        as_view(result, a)
    return result


def _memory_owner(array):
    """The object at the end of ``array``'s chain of bases: the same for an array and its views."""
    while (base := getattr(array, "base", None)) is not None:
        array = base
    return array


def _sizes(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    if len(shape) == 1 and isinstance(shape[0], Tensor):
        return tuple(int(s) for s in shape[0].tolist())
    return tuple(shape)


def reshape(a, *shape) -> Tensor:
    """``a`` with a new shape of the same number of elements; one size may be -1 (inferred)."""
    a = tensor_operand(a, "reshape")
    shape = tuple(int(s) for s in _sizes(shape))
    if shape == a._data.shape:
        return a
    try:
        out = a._data.reshape(shape)
    except ValueError:
        raise RuntimeError(
            f"reshape: shape {list(shape)} is invalid for input of size {a._data.size} ({describe(a)})"
        ) from None
    src = a._data.shape
    return _view_result(out, "reshape", a, lambda g, _: (g.reshape(src),))


view = reshape


def flatten(a, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    a = tensor_operand(a, "flatten")
    if a.ndim == 0:
        return a.reshape(1)
    s = norm_dim(start_dim, a.ndim, "flatten")
    e = norm_dim(end_dim, a.ndim, "flatten")
    if s > e:
        raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for {describe(a)}")
    shape = a.shape
    size = 1
    for n in shape[s:e + 1]:
        size *= n
    return a.reshape(shape[:s] + (size,) + shape[e + 1:])


def unflatten(a, dim: int, sizes: Sequence[int]) -> Tensor:
    a = tensor_operand(a, "unflatten")
    d = norm_dim(dim, a.ndim, "unflatten")
    return a.reshape(a.shape[:d] + tuple(sizes) + a.shape[d + 1:])


def permute(a, *dims) -> Tensor:
    a = tensor_operand(a, "permute")
    dims = _sizes(dims)
    if len(dims) != a.ndim:
        raise RuntimeError(f"permute: got {len(dims)} dims {tuple(dims)} for a tensor of {describe(a)}")
    perm = tuple(norm_dim(d, a.ndim, "permute") for d in dims)
    if len(set(perm)) != len(perm):
        raise RuntimeError(f"permute: repeated dim in {tuple(dims)}")
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return _view_result(a._data.transpose(perm), "permute", a, lambda g, _: (g.permute(inverse),))


def transpose(a, dim0: int, dim1: int) -> Tensor:
    a = tensor_operand(a, "transpose")
    if a.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return a
    d0, d1 = norm_dim(dim0, a.ndim, "transpose"), norm_dim(dim1, a.ndim, "transpose")
    if d0 == d1:
        return a
    return _view_result(a._data.swapaxes(d0, d1), "transpose", a, lambda g, _: (g.transpose(d0, d1),))


swapaxes = transpose


def t(a) -> Tensor:
    """Transpose of a tensor with at most 2 dims."""
    a = tensor_operand(a, "t")
    if a.ndim > 2:
        raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, but got {describe(a)}; use transpose or mT")
    return a if a.ndim < 2 else transpose(a, 0, 1)


def T(a) -> Tensor:
    """All dims reversed (PyTorch's ``.T``)."""
    return permute(a, tuple(range(a.ndim - 1, -1, -1))) if a.ndim > 1 else a


def mT(a) -> Tensor:
    """The last two dims swapped (batched matrix transpose)."""
    if a.ndim < 2:
        raise RuntimeError(f"mT: tensor must have at least 2 dimensions, got {describe(a)}")
    return transpose(a, -2, -1)


def squeeze(a, dim=None) -> Tensor:
    """Drop size-1 dims (all, or those in ``dim`` that have size 1)."""
    a = tensor_operand(a, "squeeze")
    dims = norm_dims(dim, a.ndim, "squeeze")
    drop = tuple(d for d in dims if a.shape[d] == 1)
    if not drop:
        return a
    return a.reshape(tuple(s for i, s in enumerate(a.shape) if i not in drop))


def unsqueeze(a, dim: int) -> Tensor:
    a = tensor_operand(a, "unsqueeze")
    d = norm_dim(dim, a.ndim + 1, "unsqueeze")
    return a.reshape(a.shape[:d] + (1,) + a.shape[d:])


def expand(a, *sizes) -> Tensor:
    """Broadcast to ``sizes`` without copying; -1 keeps a dim; new dims may be added in front."""
    a = tensor_operand(a, "expand")
    sizes = tuple(int(s) for s in _sizes(sizes))
    if len(sizes) < a.ndim:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
            f"number of dimensions in the tensor ({a.ndim})"
        )
    lead = len(sizes) - a.ndim
    shape = tuple(a.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    for i in range(a.ndim):
        if a.shape[i] != 1 and a.shape[i] != shape[i + lead]:
            raise RuntimeError(
                f"expand: the expanded size of the tensor ({shape[i + lead]}) must match the existing "
                f"size ({a.shape[i]}) at non-singleton dimension {i + lead}; target sizes {list(sizes)}, "
                f"tensor {describe(a)}"
            )
    return broadcast_to(a, shape)


def broadcast_to(a, shape) -> Tensor:
    a = tensor_operand(a, "broadcast_to")
    shape = tuple(shape)
    if shape == a._data.shape:
        return a
    xp = xp_of(a._data)
    try:
        out = xp.broadcast_to(a._data, shape)
    except ValueError:
        raise RuntimeError(f"broadcast_to: can't broadcast {describe(a)} to shape {shape}") from None
    src = a.shape
    return _view_result(out, "expand", a, lambda g, _: (g.sum_to(src),))


def expand_as(a, other: Tensor) -> Tensor:
    return expand(a, other.shape)


def repeat(a, *repeats) -> Tensor:
    """Tile ``a`` ``repeats[i]`` times along each dim (PyTorch's repeat, numpy's tile)."""
    a = tensor_operand(a, "repeat")
    repeats = tuple(int(r) for r in _sizes(repeats))
    if len(repeats) < a.ndim:
        raise RuntimeError(
            f"repeat: number of repeat dims ({len(repeats)}) can not be smaller than number of dimensions "
            f"of tensor ({a.ndim})"
        )
    src = (1,) * (len(repeats) - a.ndim) + a.shape
    xp = xp_of(a._data)
    out = xp.tile(a._data.reshape(src), repeats)

    def rule(g, _):
        interleaved = []
        for r, s in zip(repeats, src):
            interleaved += [r, s]
        summed = g.reshape(interleaved).sum(tuple(range(0, 2 * len(src), 2)))
        return (summed.reshape(a.shape),)

    return record(out, "repeat", (a,), rule)


def tile(a, dims) -> Tensor:
    a = tensor_operand(a, "tile")
    dims = tuple(dims)
    return repeat(a, (1,) * (a.ndim - len(dims)) + dims)


def _tensor_list(tensors, op: str) -> list:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError(f"{op}: expected a non-empty list of tensors")
    from chainrule.ops._helpers import binary_operands

    tensors = [tensor_operand(x, op) for x in tensors]
    first = tensors[0]
    if any(x._data.dtype != first._data.dtype for x in tensors):
        # promote all to one dtype, as PyTorch does
        common = first
        for x in tensors[1:]:
            common, _ = binary_operands(common, x, op)
        tensors = [x.to(common.dtype) for x in tensors]
    return tensors


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim; all other dims must match."""
    given = _tensor_list(tensors, "cat")
    # PyTorch skips 1-d empty tensors whatever the other shapes (they still get an empty gradient)
    joined = [i for i, x in enumerate(given) if not (x.ndim == 1 and x.shape[0] == 0)] or [0]
    ref = given[joined[0]]
    d = norm_dim(dim, ref.ndim, "cat")
    for i in joined:
        x = given[i]
        if x.ndim != ref.ndim or any(x.shape[k] != ref.shape[k] for k in range(ref.ndim) if k != d):
            raise RuntimeError(
                f"cat: sizes of tensors must match except in dimension {d}; tensor {joined[0]} has shape "
                f"{tuple(ref.shape)} but tensor {i} has shape {tuple(x.shape)}"
            )
    xp = xp_of(ref._data)
    out = xp.concatenate([given[i]._data for i in joined], axis=d)

    def rule(g, _):
        grads = [None] * len(given)
        start = 0
        for i in joined:
            n = given[i].shape[d]
            if given[i]._rg:
                grads[i] = narrow(g, d, start, n)
            start += n
        for i, x in enumerate(given):
            if x._rg and grads[i] is None:  # a skipped 1-d empty tensor
                grads[i] = g.new_zeros(x.shape)
        return tuple(grads)

    return record(out, "cat", tuple(given), rule)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = _tensor_list(tensors, "stack")
    ref = tensors[0]
    for i, x in enumerate(tensors):
        if x.shape != ref.shape:
            raise RuntimeError(
                f"stack: expects each tensor to be equal size, but got {tuple(ref.shape)} at entry 0 and "
                f"{tuple(x.shape)} at entry {i}"
            )
    d = norm_dim(dim, ref.ndim + 1, "stack")
    return cat([x.unsqueeze(d) for x in tensors], d)


def hstack(tensors) -> Tensor:
    """Concatenate along the columns (the first dim of 1-d tensors; 0-d ones count as 1-d)."""
    tensors = [x if x.ndim else x.reshape(1) for x in _tensor_list(tensors, "hstack")]
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    tensors = [x if x.ndim >= 2 else x.reshape(1, x.numel()) for x in _tensor_list(tensors, "vstack")]
    return cat(tensors, 0)


def select(a, dim: int, index: int) -> Tensor:
    """``a`` indexed at ``index`` along ``dim``, that dim removed."""
    a = tensor_operand(a, "select")
    d = norm_dim(dim, a.ndim, "select")
    return a[(slice(None),) * d + (index,)]


def narrow(a, dim: int, start: int, length: int) -> Tensor:
    a = tensor_operand(a, "narrow")
    d = norm_dim(dim, a.ndim, "narrow")
    size = a.shape[d]
    if start < 0:
        start += size
    if not (0 <= start <= size and 0 <= length and start + length <= size):
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({size}) of {describe(a)}")
    return a[(slice(None),) * d + (slice(start, start + length),)]


def split(a, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
    a = tensor_operand(a, "split")
    d = norm_dim(dim, a.ndim, "split")
    size = a.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise RuntimeError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, size - s) for s in range(0, size, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != size:
            raise RuntimeError(
                f"split: split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                f"size at dimension {d}), but got split_sizes={sizes}"
            )
    pieces, start = [], 0
    for n in sizes:
        pieces.append(narrow(a, d, start, n))
        start += n
    return tuple(pieces)


def chunk(a, chunks: int, dim: int = 0) -> tuple:
    a = tensor_operand(a, "chunk")
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunks must be positive, got {chunks}")
    d = norm_dim(dim, a.ndim, "chunk")
    size = a.shape[d]
    if size == 0:  # as PyTorch: ``chunks`` empty pieces
        return tuple(narrow(a, d, 0, 0) for _ in range(chunks))
    return split(a, -(-size // chunks), d)


def unbind(a, dim: int = 0) -> tuple:
    a = tensor_operand(a, "unbind")
    d = norm_dim(dim, a.ndim, "unbind")
    return tuple(select(a, d, i) for i in range(a.shape[d]))


def flip(a, dims) -> Tensor:
    a = tensor_operand(a, "flip")
    dims = norm_dims((dims,) if isinstance(dims, int) else dims, a.ndim, "flip")
    xp = xp_of(a._data)
    return record(xp.flip(a._data, dims).copy(), "flip", (a,), lambda g, _: (g.flip(dims),))


def roll(a, shifts, dims=None) -> Tensor:
    a = tensor_operand(a, "roll")
    xp = xp_of(a._data)
    if dims is None:
        flat = a.reshape(-1)
        return roll(flat, shifts, 0).reshape(a.shape)
    if isinstance(shifts, int):
        shifts = (shifts,)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts {tuple(shifts)} and dims {dims} must have the same length")
    axes = tuple(norm_dim(d, a.ndim, "roll") for d in dims)
    out = xp.roll(a._data, tuple(shifts), axes)
    back = tuple(-s for s in shifts)
    return record(out, "roll", (a,), lambda g, _: (g.roll(back, axes),))


def pad(a, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """PyTorch's F.pad: ``pad`` lists (before, after) pairs starting from the last dim; negative
    amounts crop. ``mode`` 'constant' fills with ``value``; 'reflect', 'replicate' and 'circular' pad
    the last 1-3 dims (of a 2-5 dim input) by gathering along each with an index array: the gather's
    rule (a scatter-add) is the backward, so every order of gradient comes free."""
    a = tensor_operand(a, "pad")
    pad = list(pad)
    if mode != "constant":
        return _pad_by_index(a, pad, mode)
    if len(pad) % 2 or len(pad) // 2 > a.ndim:
        raise RuntimeError(f"pad: padding length {len(pad)} must be even and at most 2 * ndim for {describe(a)}")
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    cropped = a
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        index = tuple(slice(-lo if lo < 0 else 0, (a.shape[k] + hi) if hi < 0 else None)
                      for k, (lo, hi) in enumerate(widths))
        cropped = a[index]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    xp = xp_of(a._data)
    out = xp.pad(cropped._data, widths, mode="constant", constant_values=0.0 if value is None else value)
    inner = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, cropped.shape))
    return record(out, "pad", (cropped,), lambda g, _: (g[inner],))


def _pad_source(n: int, lo: int, hi: int, mode: str, xp):
    """The source index along a dim of size ``n`` of each position padded by (lo, hi) in ``mode``."""
    j = xp.arange(-lo, n + hi)
    if mode == "reflect":
        j = xp.abs(j)
        return xp.where(j > n - 1, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return xp.clip(j, 0, n - 1)
    start, m = max(-lo, 0), n - max(-lo, 0) - max(-hi, 0)  # circular: crop first, then wrap what is left
    return start + (xp.arange(-max(lo, 0), m + max(hi, 0)) % max(m, 1))


def _pad_by_index(a: Tensor, pad: list, mode: str) -> Tensor:
    from chainrule.ops.indexing import index_select  # indexing imports this module

    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if k not in (1, 2, 3) or a.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {a.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    if mode == "replicate" and a.dtype.name == "bool":
        raise NotImplementedError(f"\"replication_pad{k}d\" not implemented for 'Bool'")
    if mode == "reflect" and a.dtype.name == "bool":
        raise NotImplementedError(f"\"reflection_pad{k}d\" not implemented for 'Bool'")
    xp = xp_of(a._data)
    out = a
    for i in range(k):
        d = a.ndim - 1 - i
        n, lo, hi = a.shape[d], pad[2 * i], pad[2 * i + 1]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                f"Argument #{2 * k + 2}: Padding size should be less than the corresponding input dimension, but got: "
                f"padding ({lo}, {hi}) at dimension {d} of input {list(a.shape)}")
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if mode == "replicate" and n == 0 and lo + hi > 0:
            raise RuntimeError(f"pad: cannot replicate-pad dimension {d} of size 0 of input {list(a.shape)}")
        if n + lo + hi < 0 or (n + lo + hi == 0 and n > 0 and mode != "circular"):
            raise RuntimeError(f"pad: padding ({lo}, {hi}) leaves dimension {d} of input {list(a.shape)} empty "
                               "or negative")
        if lo == 0 and hi == 0:
            continue
        out = index_select(out, d, wrap(_pad_source(n, lo, hi, mode, xp).astype("int64")))
    return out


def _triangle(a, diagonal: int, op: str) -> Tensor:
    a = tensor_operand(a, op)
    if a.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got {describe(a)}")
    xp = xp_of(a._data)
    out = getattr(xp, op)(a._data, diagonal)
    return record(out, op, (a,), lambda g, _: (getattr(g, op)(diagonal),))


def tril(a, diagonal: int = 0) -> Tensor:
    return _triangle(a, diagonal, "tril")


def triu(a, diagonal: int = 0) -> Tensor:
    return _triangle(a, diagonal, "triu")


def movedim(a, source, destination) -> Tensor:
    a = tensor_operand(a, "movedim")
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    src = tuple(norm_dim(s, a.ndim, "movedim") for s in src)
    dst = tuple(norm_dim(s, a.ndim, "movedim") for s in dst)
    order = [d for d in range(a.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(a, order)


def clone(a) -> Tensor:
    a = tensor_operand(a, "clone")
    return record(a._data.copy(), "clone", (a,), lambda g, _: (g,))


def contiguous(a) -> Tensor:
    a = tensor_operand(a, "contiguous")
    if a._data.flags.c_contiguous:
        return a
    xp = xp_of(a._data)
    return record(xp.ascontiguousarray(a._data), "contiguous", (a,), lambda g, _: (g,))


# ----- diagonals, flips and rotations, interleaving, splits, block and Kronecker products, grids,
# at-least-n-d and stacking (issue 16). All composites of indexing, pad, cat and reshape, so every
# order of gradient comes from those primitives.

__all__ += ["diag", "diagonal", "diag_embed", "fliplr", "flipud", "rot90", "repeat_interleave", "tensor_split",
            "hsplit", "vsplit", "dsplit", "block_diag", "kron", "cartesian_prod", "meshgrid", "atleast_1d",
            "atleast_2d", "atleast_3d", "column_stack", "dstack"]


def diagonal(a, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the (dim1, dim2) planes, ``offset`` above (> 0) or below (< 0) the main one,
    as the last dim (a gather with index arrays)."""
    a = tensor_operand(a, "diagonal")
    d1, d2 = norm_dim(dim1, a.ndim, "diagonal"), norm_dim(dim2, a.ndim, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    x = movedim(a, (d1, d2), (-2, -1))
    rows, cols = x.shape[-2], x.shape[-1]
    start_r, start_c = max(-offset, 0), max(offset, 0)
    n = max(min(rows - start_r, cols - start_c), 0)
    xp = xp_of(a._data)
    i = wrap(xp.arange(start_r, start_r + n))
    j = wrap(xp.arange(start_c, start_c + n))
    return x[(Ellipsis, i, j)]


def diag_embed(a, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Matrices (in output dims dim1, dim2) with the last dim of ``a`` on their ``offset`` diagonal:
    ``a`` times an identity, padded by |offset|."""
    a = tensor_operand(a, "diag_embed")
    nd = a.ndim + 1
    d1, d2 = norm_dim(dim1, nd, "diag_embed"), norm_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    v = a.reshape(1) if a.ndim == 0 else a
    n = v.shape[-1]
    xp = xp_of(a._data)
    m = v.unsqueeze(-1) * wrap(xp.eye(n, dtype=a._data.dtype))
    k = abs(offset)
    if k:
        m = pad(m, (k, 0, 0, k) if offset > 0 else (0, k, k, 0))
    if a.ndim == 0:
        m = m.reshape(m.shape[-2:])
    if (d1, d2) == (nd - 2, nd - 1):
        return m
    return movedim(m, (-2, -1), (d1, d2))


def diag(a, diagonal: int = 0) -> Tensor:
    """1-d: the square matrix with ``a`` on its ``diagonal``; 2-d: that diagonal of ``a``."""
    a = tensor_operand(a, "diag")
    if a.ndim == 1:
        return diag_embed(a, diagonal)
    if a.ndim == 2:
        return globals()["diagonal"](a, diagonal)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {a.ndim}D")


def fliplr(a) -> Tensor:
    a = tensor_operand(a, "fliplr")
    if a.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(a, (1,))


def flipud(a) -> Tensor:
    a = tensor_operand(a, "flipud")
    if a.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(a, (0,))


def rot90(a, k: int = 1, dims=(0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane ``dims``, from the first towards the second."""
    a = tensor_operand(a, "rot90")
    dims = tuple(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if a.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {a.ndim}")
    d0, d1 = norm_dim(dims[0], a.ndim, "rot90"), norm_dim(dims[1], a.ndim, "rot90")
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return transpose(flip(a, (d1,)), d0, d1)
    if k == 2:
        return flip(a, (d0, d1))
    if k == 3:
        return transpose(flip(a, (d0,)), d0, d1)
    return clone(a)


def repeat_interleave(a, repeats=None, dim=None, *, output_size=None) -> Tensor:
    """Each element (slice along ``dim``; of the flattened input when None) repeated ``repeats``
    times (an int, or one count per element); ``repeat_interleave(counts)`` repeats the indices."""
    from chainrule.ops.indexing import index_select

    a = tensor_operand(a, "repeat_interleave")
    xp = xp_of(a._data)
    if repeats is None:  # torch.repeat_interleave(repeats): the indices, each repeated
        if a.ndim != 1 or a._data.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
        return wrap(xp.repeat(xp.arange(a.shape[0], dtype="int64"), a._data))
    if dim is None:
        a, d = a.reshape(-1), 0
    else:
        d = norm_dim(dim, a.ndim, "repeat_interleave")
        if a.ndim == 0:  # as PyTorch (its index_select sees a 1-element dim 0 and reports dim 1)
            raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    r = repeats._data if isinstance(repeats, Tensor) else xp.asarray(repeats)
    if r.ndim > 1:
        raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
    if (r < 0).any():
        raise RuntimeError("repeats can not be negative")
    n = a.shape[d]
    if r.ndim == 1 and r.shape[0] not in (1, n):
        raise RuntimeError("repeats must have the same size as input along dim, but got "
                           f"repeats.size(0) = {r.shape[0]} and input.size({d}) = {n}")
    idx = xp.repeat(xp.arange(n, dtype="int64"), r.reshape(-1) if r.ndim else int(r))
    if output_size is not None and idx.shape[0] != output_size:
        raise RuntimeError(f"repeat_interleave: output_size {output_size} does not match the {idx.shape[0]} repeats")
    return index_select(a, d, wrap(idx))


def tensor_split(a, indices_or_sections, dim: int = 0) -> tuple:
    """``sections`` nearly equal pieces (the first n % sections one longer), or pieces cut before
    each of ``indices``; views along ``dim``."""
    a = tensor_operand(a, "tensor_split")
    if a.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    d = norm_dim(dim, a.ndim, "tensor_split")
    n = a.shape[d]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        if ios._data.dtype.kind not in "iu" or ios.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               f"one-dimensional tensor, but got a tensor with {ios.ndim} dims")
        ios = int(ios.item()) if ios.ndim == 0 else [int(v) for v in ios.tolist()]
    if isinstance(ios, int):
        if ios <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {ios}")
        q, r = divmod(n, ios)
        bounds, start = [], 0
        for i in range(ios):
            bounds.append((start, start + q + (1 if i < r else 0)))
            start = bounds[-1][1]
    else:
        cuts = [0] + [min(max(c + n if c < 0 else c, 0), n) for c in ios] + [n]
        bounds = [(s, max(e, s)) for s, e in zip(cuts[:-1], cuts[1:])]
    return tuple(a[(slice(None),) * d + (slice(s, e),)] for s, e in bounds)


def _split_along(a, ios, dim: int, op: str, need: int) -> tuple:
    a = tensor_operand(a, op)
    if a.ndim < need:
        raise RuntimeError(f"torch.{op} requires a tensor with at least {need} dimension, but got a tensor with "
                           f"{a.ndim} dimensions!")
    if isinstance(ios, int):
        size = a.shape[dim]
        if ios == 0 or size % ios:
            raise RuntimeError(f"torch.{op} attempted to split along dimension {dim}, but the size of the dimension "
                               f"{size} is not divisible by the split_size {ios}!")
    return tensor_split(a, ios, dim)


def hsplit(a, indices_or_sections) -> tuple:
    a = tensor_operand(a, "hsplit")
    return _split_along(a, indices_or_sections, 1 if a.ndim > 1 else 0, "hsplit", 1)


def vsplit(a, indices_or_sections) -> tuple:
    return _split_along(a, indices_or_sections, 0, "vsplit", 2)


def dsplit(a, indices_or_sections) -> tuple:
    return _split_along(a, indices_or_sections, 2, "dsplit", 3)


def _varargs(tensors, op: str) -> list:
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    return [tensor_operand(t, op) for t in tensors]


def block_diag(*tensors) -> Tensor:
    """The block-diagonal matrix of the inputs (0-d as 1x1, 1-d as one row), zero elsewhere."""
    mats = []
    for i, t in enumerate(_varargs(tensors, "block_diag")):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t.ndim} dimensions")
        mats.append(t.reshape(1, -1) if t.ndim < 2 else t)
    if not mats:
        from chainrule import creation

        return creation.zeros(1, 0)
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = _dt.result_type(dtype, 1, m.dtype, 1)
    total = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        w = m.shape[1]
        rows.append(pad(m.to(dtype), (left, total - left - w)))
        left += w
    return cat(rows, 0)


def kron(a, b) -> Tensor:
    """Kronecker product: the broadcast product of interleaved singleton-padded shapes, reshaped."""
    a, b = tensor_operand(a, "kron"), tensor_operand(b, "kron")
    nd = max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    xa = a.reshape([v for s in sa for v in (s, 1)])
    xb = b.reshape([v for s in sb for v in (1, s)])
    return (xa * xb).reshape([p * q for p, q in zip(sa, sb)])


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Grids of the 0-d or 1-d inputs; ``indexing='xy'`` swaps the first two output dims."""
    ts = _varargs(tensors, "meshgrid")
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    for t in ts:
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {describe(t)}")
    ts = [t.reshape(-1) for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    order = list(ts)
    if swap:
        order[0], order[1] = order[1], order[0]
    shape = tuple(t.shape[0] for t in order)
    out = []
    for t in ts:
        i = next(k for k, s in enumerate(order) if s is t)
        view_shape = [1] * len(order)
        view_shape[i] = t.shape[0]
        out.append(t.reshape(view_shape).expand(shape))
    return tuple(out)


def cartesian_prod(*tensors) -> Tensor:
    """All combinations of the 1-d inputs' elements, one per row (the input itself for one input)."""
    ts = _varargs(tensors, "cartesian_prod")
    for t in ts:
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(ts) == 1:
        return ts[0]
    return stack([g.reshape(-1) for g in meshgrid(*ts, indexing="ij")], 1)


def _atleast(tensors, n: int):
    ts = _varargs(tensors, f"atleast_{n}d")
    out = []
    for t in ts:
        if t.ndim == 0:
            t = t.reshape((1,) * n)
        elif t.ndim == 1 and n >= 2:
            t = t.reshape((1, t.shape[0], 1)[: n] if n == 3 else (1, t.shape[0]))
        elif t.ndim == 2 and n == 3:
            t = t.unsqueeze(-1)
        out.append(t)
    single = len(tensors) == 1 and not isinstance(tensors[0], (list, tuple))
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    return _atleast(tensors, 1)


def atleast_2d(*tensors):
    return _atleast(tensors, 2)


def atleast_3d(*tensors):
    return _atleast(tensors, 3)


def column_stack(tensors) -> Tensor:
    ts = [t.reshape(-1, 1) if t.ndim <= 1 else t for t in _tensor_list(tensors, "column_stack")]
    return cat(ts, 1)


def dstack(tensors) -> Tensor:
    return cat(list(atleast_3d(_tensor_list(tensors, "dstack"))), 2)
