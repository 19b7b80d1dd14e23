"""Statistics over data with gaps and over samples: ``nanmedian`` (the median of the values that are not
NaN), ``histogram`` (counts and bin edges) and ``gradient`` (finite-difference derivatives of sampled
values, as numpy.gradient and torch.gradient compute them).

``nanmedian`` and ``gradient`` are composites of differentiable primitives; ``histogram`` counts, which
has no gradient (as in PyTorch).
"""

from __future__ import annotations

from collections import namedtuple

from chainrule.ops import indexing as ix
from chainrule.ops import shape as sh
from chainrule.ops._helpers import Tensor, describe, norm_dim, tensor_operand, untracked, wrap
from chainrule.ops.reduction import _split_among_equal, values_indices

__all__ = ["nanmedian", "histogram", "gradient"]


def nanmedian(a, dim=None, keepdim: bool = False):
    """The lower median of the non-NaN values (NaN where all are NaN). Of all elements, the gradient is
    split among the elements equal to it; along ``dim``, ``(values, indices)`` and the gradient goes to the
    element at the index (the first position for a row of NaNs), as in PyTorch."""
    a = tensor_operand(a, "nanmedian")
    xp = a.xp
    if dim is None:
        flat = a._data.reshape(-1)
        valid = flat[~xp.isnan(flat)] if flat.dtype.kind == "f" else flat
        if valid.size == 0:
            return wrap(xp.full((), xp.nan, dtype=a._data.dtype))
        value = xp.partition(valid, (valid.size - 1) // 2)[(valid.size - 1) // 2]
        return _split_among_equal(a, xp.asarray(value), tuple(range(a.ndim)), False, "nanmedian")
    d = norm_dim(dim, a.ndim, "nanmedian")
    if a.ndim == 0:
        return nanmedian(a.reshape(1), 0)
    counts = (~xp.isnan(a._data)).sum(axis=d, keepdims=True) if a._data.dtype.kind == "f" else \
        xp.full(a.shape[:d] + (1,) + a.shape[d + 1:], a.shape[d])
    order = xp.argsort(a._data, axis=d, kind="stable")  # NaNs sort last
    idx = xp.take_along_axis(order, xp.maximum(counts - 1, 0) // 2, axis=d)
    idx = xp.where(counts == 0, 0, idx)  # a row of NaNs: PyTorch answers its first position
    values = ix.take_along_dim(a, wrap(idx), d)
    indices = untracked(idx.astype("int64"), a, "nanmedian (indices)")
    if not keepdim:
        values, indices = sh.squeeze(values, d), sh.squeeze(indices, d)
    return values_indices(values, indices)


histogram_result = namedtuple("histogram", ["hist", "bin_edges"])


def histogram(input, bins=100, *, range=None, weight=None, density: bool = False):  # noqa: A002
    """Counts of ``input``'s values in ``bins`` equal bins over ``range`` (default: the values' min and max),
    or in the bins between the edges of a 1-d tensor ``bins``; the last bin includes its right edge.
    Returns ``(hist, bin_edges)``, both of ``input``'s floating dtype."""
    input = tensor_operand(input, "histogram")
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"histogram: input must be a floating-point tensor, got {describe(input)}")
    edges = bins._data if isinstance(bins, Tensor) else int(bins)
    if isinstance(edges, int) and edges < 1:
        raise RuntimeError(f"histogram: bins must be > 0, got {bins}")
    weights = None if weight is None else tensor_operand(weight, "histogram")._data.reshape(-1)
    if weights is not None and weights.size != input.numel():
        raise RuntimeError(f"histogram: weight of {weights.size} values for an input of {input.numel()}")
    hist, bin_edges = input.xp.histogram(input._data.reshape(-1), bins=edges, range=range, weights=weights,
                                         density=density)
    dtype = input._data.dtype
    return histogram_result(wrap(hist.astype(dtype)), wrap(bin_edges.astype(dtype)))


def gradient(input, *, spacing=1, dim=None, edge_order: int = 1) -> tuple:
    """Finite-difference derivative of ``input`` along each dimension of ``dim`` (default all): central
    differences inside, one-sided ones of order ``edge_order`` (1 or 2) at the ends. ``spacing`` is the
    sample distance, one per dimension (a number or a list of numbers)."""
    input = tensor_operand(input, "gradient")
    dims = list(range(input.ndim)) if dim is None else [norm_dim(d, input.ndim, "gradient") for d in (
        [dim] if isinstance(dim, int) else dim)]
    steps = _spacings(spacing, len(dims))
    if edge_order not in (1, 2):
        raise RuntimeError(f"gradient: edge_order must be 1 or 2, got {edge_order}")
    return tuple(_gradient_along(input, d, h, edge_order) for d, h in zip(dims, steps))


def _spacings(spacing, count: int) -> list:
    if isinstance(spacing, (int, float)):
        return [float(spacing)] * count
    values = list(spacing)
    if len(values) != count or not all(isinstance(v, (int, float)) for v in values):
        raise RuntimeError(f"gradient: spacing must be a number or one number per dimension ({count}); "
                           "coordinate tensors are not supported")
    return [float(v) for v in values]


def _gradient_along(x: Tensor, d: int, h: float, edge_order: int) -> Tensor:
    n = x.shape[d]
    if n < edge_order + 1:
        raise RuntimeError(f"gradient: each dimension needs at least edge_order + 1 = {edge_order + 1} samples, "
                           f"dimension {d} of {describe(x)} has {n}")

    def part(start, stop):
        return sh.narrow(x, d, start, stop - start)

    inner = (part(2, n) - part(0, n - 2)) / (2 * h)
    if edge_order == 1:
        first = (part(1, 2) - part(0, 1)) / h
        last = (part(n - 1, n) - part(n - 2, n - 1)) / h
    else:
        first = (-3 * part(0, 1) + 4 * part(1, 2) - part(2, 3)) / (2 * h)
        last = (3 * part(n - 1, n) - 4 * part(n - 2, n - 1) + part(n - 3, n - 2)) / (2 * h)
    return sh.cat([first, inner, last], d)
