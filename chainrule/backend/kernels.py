"""Compiled float32 kernels for the hot paths, optional: exp and tanh as drop-in ufuncs, fused
one-pass kernels for GELU, softmax, layer norm and 2 x 2 max pooling, and convolution's window
copies (im2col, col2im) straight from and onto the unpadded image.

numpy's float32 ``exp`` and ``tanh`` cost 2-5 ns per element on the AVX2 machines we measure on,
10-20x a multiply, and numpy computes GELU, softmax and layer norm in several passes each. When numba
is installed (the ``fast`` extra), float32 arrays on the CPU go through the kernels in
:mod:`chainrule.backend._numba`, which are as accurate as numpy's (within one ulp) and 2-5x faster.
Everything else (other dtypes, arrays under ``MIN_SIZE`` elements, other backends, no numba, or
``CHAINRULE_KERNELS=numpy`` in the environment) runs numpy's code, so results never depend on the
extra beyond float32 rounding.

The kernels are loaded on the first call that can use them, not at ``import chainrule``: from an
object file that numba builds once per machine in a child process (:mod:`chainrule.backend._prebuilt`;
about 10 s the first time), so that this process never imports numba. That costs about 0.05 s and, for
llvmlite's JIT linker, about 50 MiB of resident memory (numba itself in the process: 1.5 s and about
120 MiB), which is why small arrays never trigger it. When the object file cannot be built or cached,
numba compiles the kernels in this process instead (with a RuntimeWarning).
"""

from __future__ import annotations

import os
import types
import warnings

import numpy as np

from chainrule.backend import xp_of
from chainrule.backend.parallel import MIN_CHUNK

__all__ = ["exp", "tanh", "fused", "elementwise_if_loaded", "fused_strided", "set_enabled", "enabled", "loaded_from"]

# Arrays under this many elements stay on numpy: the kernels save microseconds there, and a process
# that only meets small arrays (a small MLP's loss) never pays for loading the kernels. Half the smallest
# chunk parallel_for hands a thread, so that the chunks of one array all take the same path.
MIN_SIZE = MIN_CHUNK // 2

_STATE: dict = {"wanted": os.environ.get("CHAINRULE_KERNELS", "").lower() != "numpy", "module": None}


def set_enabled(flag: bool) -> None:
    """Use the compiled kernels when numba is installed (``True``, the default) or always numpy's
    ufuncs (``False``; also ``CHAINRULE_KERNELS=numpy`` in the environment)."""
    _STATE["wanted"] = bool(flag)


def enabled() -> bool:
    """Whether float32 work goes through the compiled kernels (numba installed and not switched off)."""
    return _STATE["wanted"] and _compiled() is not None


def loaded_from() -> str | None:
    """Where the kernels in use came from: "a prebuilt object file" (no numba in this process), "numba
    in this process" (the fallback), or None when numpy computes everything."""
    if not enabled():
        return None
    return "numba in this process" if isinstance(_compiled(), types.ModuleType) else "a prebuilt object file"


def _compiled():
    """The compiled kernels, loaded on first use; False when numba is not installed."""
    module = _STATE["module"]
    if module is None:
        module = _load()
        _STATE["module"] = module
    return module or None


def _load():
    """The kernels as built once per machine and loaded without numba (:mod:`chainrule.backend._prebuilt`);
    failing that (an unwritable cache folder, a failed build), numba's own functions in this process."""
    try:
        from chainrule.backend import _prebuilt

        return _prebuilt.load()
    except ImportError:  # numba (and with it llvmlite) not installed
        return False
    except Exception as error:
        warnings.warn(f"chainrule: prebuilt kernels unavailable ({type(error).__name__}: {error}); "
                      "compiling them with numba in this process (about 70 MiB more memory)", RuntimeWarning, stacklevel=4)
    try:
        from chainrule.backend import _numba

        return _numba
    except ImportError:  # numba not installed, or not for this numpy
        return False
    except Exception as error:  # a broken numba or LLVM: numpy still computes everything
        warnings.warn(f"chainrule: compiled kernels unavailable ({type(error).__name__}: {error}); using numpy",
                      RuntimeWarning, stacklevel=4)
        return False


def fused(*arrays):
    """The compiled kernels (named as in :mod:`chainrule.backend._numba`) when they can take ``arrays``
    (all C-contiguous float32 numpy arrays, the first of at least ``MIN_SIZE`` elements, kernels
    enabled, numba installed), else None: the caller then runs its numpy code."""
    if not _STATE["wanted"] or not arrays or getattr(arrays[0], "size", 0) < MIN_SIZE:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32 or not a.flags.c_contiguous:
            return None
    return _compiled()


def elementwise_if_loaded(*arrays):
    """For an exact elementwise kernel (results equal numpy's bit for bit, as relu's): the module and
    1-D views of ``arrays`` in memory order, when the kernels are loaded already (by work that pays for
    loading them: a small model or a GEMM-bound MLP keeps its ~50 MiB) and the arrays are large float32 numpy
    arrays laid out alike without gaps, in any axis order (convolution outputs are channel-major);
    else None."""
    first = arrays[0]
    if not _STATE["module"] or first.size < MIN_SIZE or type(first) is not np.ndarray or not _gapless(first):
        return None
    if any(a.strides != first.strides or a.shape != first.shape for a in arrays[1:]):
        return None
    flat = [a.ravel(order="K") for a in arrays]  # views: gapless, laid out alike
    module = fused(*flat)
    return None if module is None else (module, *flat)


def _gapless(array) -> bool:
    """Whether ``array``'s elements fill one block of memory, in some order of its axes."""
    expected = array.itemsize
    for stride, size in sorted(zip(array.strides, array.shape)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def fused_strided(array, elements: int):
    """The module of compiled kernels for a kernel that reads or writes the float32 numpy ``array``
    through strided views (any memory layout) and touches ``elements`` elements in all, when that is
    at least ``MIN_SIZE`` (and the kernels are enabled and numba installed); else None."""
    if not _STATE["wanted"] or elements < MIN_SIZE or type(array) is not np.ndarray or array.dtype != np.float32:
        return None
    return _compiled()


def _apply(name: str, x, out):
    """numpy's ufunc ``name`` on ``x`` (into ``out``), or the compiled kernel when it can take them."""
    separate = out is not None and out is not x
    module = fused(x, out) if separate else fused(x)
    if module is None or (separate and (out.shape != x.shape or np.may_share_memory(x, out))):
        ufunc = getattr(xp_of(x), name)
        return ufunc(x) if out is None else ufunc(x, out=out)
    if out is x:
        getattr(module, name + "_f32_in_place")(x.reshape(-1))
        return out
    if out is None:
        out = np.empty_like(x)
    getattr(module, name + "_f32")(x.reshape(-1), out.reshape(-1))
    return out


def exp(x, out=None):
    """``exp`` of an array, elementwise (into ``out`` when given), as the namespace's ufunc."""
    if x.size < MIN_SIZE:  # the common small case first: this runs on every exp op
        return xp_of(x).exp(x) if out is None else xp_of(x).exp(x, out=out)
    return _apply("exp", x, out)


def tanh(x, out=None):
    """``tanh`` of an array, elementwise (into ``out`` when given), as the namespace's ufunc."""
    if x.size < MIN_SIZE:
        return xp_of(x).tanh(x) if out is None else xp_of(x).tanh(x, out=out)
    return _apply("tanh", x, out)
