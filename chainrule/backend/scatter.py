"""Gathering rows of a 2-D array and its adjoint, adding rows back at their indices: the array side of
:mod:`chainrule.ops.rows` (grid_sample's rows of channels per position, fractional max pooling's column
of all elements).

The scatter-add runs one ``bincount`` per column (over the transposed values, so each is contiguous):
numpy's ``add.at`` along the rows, the usual scatter-add, gives the same sums several times slower
(bench/ANALYSIS.md, "Resampling").
"""

from __future__ import annotations

from chainrule.backend import gpu_kernels, xp_of
from chainrule.backend.gpu import on_gpu

__all__ = ["take_rows", "add_rows_at"]


def take_rows(a, index):
    """``a[index]`` for a 2-D ``a`` and a 1-D integer ``index``."""
    return xp_of(a).take(a, index, axis=0)


def add_rows_at(values, index, rows: int):
    """Zeros of (``rows``, K) with row ``j`` of ``values`` (M, K) added at row ``index[j]``, repeats summed:
    the transpose of :func:`take_rows`. bincount sums in float64; the result has values' dtype (and is
    laid out column by column). On the GPU, CuPy's scatter-add in values' dtype (one kernel, not one per column)."""
    if on_gpu(values) and values.dtype in gpu_kernels.DTYPES:
        return gpu_kernels.add_rows_at(values, index, rows)
    xp = xp_of(values)
    columns = xp.empty((values.shape[1], rows), dtype=values.dtype)
    for column, source in zip(columns, xp.ascontiguousarray(values.T)):
        column[...] = xp.bincount(index, weights=source, minlength=rows)
    return columns.T
