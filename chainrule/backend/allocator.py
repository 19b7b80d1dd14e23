"""Keep freed memory in the process (glibc only).

glibc hands freed blocks of 128 KiB and more back to the operating system, so every large temporary
array of a training step (activations, gradients, im2col columns) is mapped afresh and costs a page
fault per 4 KiB page on first touch: about 35% of a GPT training step on the machines we measure.
Raising glibc's mmap and trim thresholds keeps freed blocks for reuse, as PyTorch's caching allocators
do for their own tensors. Peak memory is unchanged (it is set by what is alive at once); the process
just does not shrink between steps.

Applied when chainrule is imported on Linux with glibc; ``CHAINRULE_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # blocks above this are still mapped and unmapped each time (glibc's maximum)
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (see the module docstring); returns whether they were set."""
    if os.environ.get("CHAINRULE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
