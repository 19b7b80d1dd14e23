"""Keep freed memory in the process (glibc only); opt-in, never applied at import.

glibc hands freed blocks of 128 KiB and more back to the operating system, so every large temporary
array of a training step (activations, gradients, im2col columns) is mapped afresh and pays a page
fault per page on first touch. Raising glibc's mmap and trim thresholds keeps freed blocks for reuse,
as PyTorch's caching allocators do for their own tensors. Peak memory is unchanged (it is set by what
is alive at once); the process just does not shrink between steps. What it saves is measured in
``bench/ANALYSIS.md`` ("Backend: figures moved from the code").

It retunes malloc for the whole process, so a plain ``import chainrule`` leaves it alone: call
:func:`keep_freed_memory` to turn it on. The ``chainrule`` command, :meth:`chainrule.train.Trainer.fit`
(and so ``chainrule.train.fit``) and the benchmark harness do. ``CHAINRULE_MALLOC_TUNING=0`` in the
environment keeps it off even then.
"""

from __future__ import annotations

import os
import sys

__all__ = ["keep_freed_memory", "applied"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # blocks above this are still mapped and unmapped each time (glibc's maximum)
_TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None  # None: not tried yet in this process


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (see the module docstring) once per process; returns whether they are set.

    Idempotent: later calls return the first call's answer without touching malloc again."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def applied() -> bool:
    """Whether :func:`keep_freed_memory` has set the thresholds in this process."""
    return bool(_applied)


def _set_thresholds() -> bool:
    if os.environ.get("CHAINRULE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
