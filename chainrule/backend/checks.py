"""Checks of index values that library code makes before it indexes: the one place such values are read.

A compiled step (:mod:`chainrule.compiler`) runs these again at every replay, and runs the step eagerly
(raising eager's error) when an answer differs from the capture's; a value read anywhere else would have
to be frozen into the program.
"""

from __future__ import annotations

__all__ = ["indices_within"]


def indices_within(indices, low: int, high: int) -> bool:
    """Whether every value of the integer array ``indices`` lies in ``[low, high)`` (True when empty)."""
    return not indices.size or (int(indices.min()) >= low and int(indices.max()) < high)
