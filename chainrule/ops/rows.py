"""Gathering rows and adding them back: a pair of primitives, each the other's rule (so every order of
derivative comes free), whose scatter-add runs on :mod:`chainrule.backend.scatter` (one ``bincount`` per
column, several times faster than ``index_add``'s ``add.at`` for many rows of few columns). They carry the
gathers of grid_sample (rows of channels per position) and fractional max pooling (one column of all
elements). Indices are arrays, never tensors: they come from forward computations that need no graph.
"""

from __future__ import annotations

from chainrule.backend.scatter import add_rows_at
from chainrule.backend.scatter import take_rows as _take
from chainrule.ops._helpers import Tensor, record

__all__ = ["take_rows", "add_rows"]


def take_rows(a: Tensor, index) -> Tensor:
    """``a[index]`` for a 2-D ``a`` and a 1-D integer array ``index``; its gradient is :func:`add_rows`."""
    rows = a.shape[0]
    return record(_take(a._data, index), "take_rows", (a,), lambda g, _: (add_rows(g, index, rows),))


def add_rows(g: Tensor, index, rows: int) -> Tensor:
    """Zeros of (``rows``, K) with row ``j`` of ``g`` added at row ``index[j]`` (repeats summed); its gradient
    is :func:`take_rows`."""
    return record(add_rows_at(g._data, index, rows), "add_rows", (g,), lambda gg, _: (take_rows(gg, index),))
