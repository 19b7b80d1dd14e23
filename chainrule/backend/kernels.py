"""The array functions behind the hot ops, each a numpy formula with an optional compiled float32 twin:
exp and tanh as drop-in ufuncs, relu and its gradient, GELU and its gradient (this module), softmax and
layer norm over rows (:mod:`chainrule.backend.rows`), and convolution's window copies.

Each function takes and returns arrays and decides inside whether a compiled loop from
:mod:`chainrule.backend._numba` serves: float32 numpy arrays of at least ``MIN_SIZE`` elements laid out
as the loop needs, with numba installed (the ``fast`` extra) and not switched off
(``CHAINRULE_KERNELS=numpy`` or :func:`set_enabled`). Everything else runs the numpy formula beside it,
so results never depend on the extra beyond float32 rounding (the loops are as accurate as numpy's
ufuncs; relu's are exact). The large fused ones split their rows over worker threads
(:func:`chainrule.backend.parallel.parallel_for`), so ops never see threads or kernel modules.

The kernels are loaded on the first call that can use them, not at ``import chainrule``: from an object
file that numba builds once per machine in a child process (:mod:`chainrule.backend._prebuilt`), so that
this process never imports numba; small arrays never trigger the load. When the object file cannot be
built or cached, numba compiles the kernels in this process instead (with a RuntimeWarning). Timings
and memory figures: bench/ANALYSIS.md, "Kernels and fused ops".
"""

from __future__ import annotations

import math
import os
import types
import warnings

import numpy as np

from chainrule.backend import gpu_kernels, special, xp_of
from chainrule.backend.gpu import on_gpu
from chainrule.backend.parallel import MIN_CHUNK, parallel_for

__all__ = ["exp", "tanh", "relu", "relu_grad", "where_zero", "gelu", "gelu_grad", "set_enabled", "enabled",
           "loaded_from", "MIN_SIZE"]

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


def _loaded_elementwise(*arrays):
    """For an exact elementwise kernel (results equal numpy's bit for bit, as relu's): the module and 1-D
    views of ``arrays`` in memory order, when the kernels are loaded already (by work that pays for loading
    them: a small model or a GEMM-bound MLP does not load them for relu alone) and the arrays are large
    float32 numpy arrays laid out alike without gaps, in any axis order (convolution outputs are
    channel-major); else None."""
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


# ----- relu: exact, so the compiled loops give numpy's results bit for bit ------------------------------

def relu(x):
    """max(x, 0) elementwise, as numpy's maximum (NaN stays NaN, -0.0 gives +0.0)."""
    loaded = _loaded_elementwise(x)
    if loaded is None:
        return xp_of(x).maximum(x, 0)
    module, flat_x = loaded
    out = np.empty_like(x)  # x's memory order
    module.relu_f32(flat_x, out.ravel(order="K"))
    return out


def relu_grad(out, g):
    """relu's gradient from its output: ``g`` where ``out > 0``, else 0 (relu'(0) = 0)."""
    loaded = _loaded_elementwise(out, g)
    if loaded is None:
        return where_zero(out > 0, g)
    module, flat_out, flat_g = loaded
    grad = np.empty_like(g)
    module.relu_grad_f32(flat_out, flat_g, grad.ravel(order="K"))
    return grad


def where_zero(mask, x):
    """``where(mask, x, 0)``; a float ``x`` of the result's shape without inf or NaN is multiplied by the
    mask instead, several times faster than where on a random mask and equal to it up to the sign of zero
    (inf * 0 would be NaN, hence the check). Raises ValueError when the shapes do not broadcast. On the GPU
    always ``where``: one kernel, where the check would cost a wait for the device."""
    xp = xp_of(x)
    if on_gpu(x):
        return xp.where(mask, x, 0)
    if (x.dtype.kind == "f" and (x.shape == mask.shape or x.shape == xp.broadcast_shapes(x.shape, mask.shape))
            and xp.isfinite(x).all()):
        return xp.multiply(x, mask)
    return xp.where(mask, x, 0)


# ----- GELU: x Phi(x), or its tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))) -----------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def gelu(x, approximate: str):
    """GELU of an array (``approximate`` 'none' or 'tanh'), and what :func:`gelu_grad` can reuse: the erf or
    tanh values numpy's formula computed (flat), or None from the compiled tanh form, which keeps only x and
    computes them again in its gradient (cheap there; in numpy a whole pass of erf or tanh)."""
    if on_gpu(x) and gpu_kernels.takes_any_layout(x):
        return gpu_kernels.gelu(x, approximate)
    xp = xp_of(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    out = xp.empty_like(flat)
    module = fused(flat) if approximate == "tanh" else None
    inner = None if module else xp.empty_like(flat)

    def work(lo, hi):
        chunk, o = flat[lo:hi], out[lo:hi]
        if module:
            module.gelu_tanh_f32(chunk, o)
            return
        _gelu_inner(chunk, approximate, xp, inner[lo:hi])
        xp.add(inner[lo:hi], 1.0, out=o)
        o *= chunk
        o *= 0.5  # 0.5 x (1 + erf(x / sqrt 2)), or 0.5 x (1 + tanh(...))

    parallel_for(flat.size, 1, flat, work)
    return out.reshape(x.shape), inner


def gelu_grad(x, g, approximate: str, inner=None):
    """``g * gelu'(x)`` (``gelu'(x)`` itself when ``g`` is None), in one pass per chunk; ``inner`` is what
    :func:`gelu` returned beside its output, or None to compute the erf or tanh values again."""
    if on_gpu(x) and gpu_kernels.takes_any_layout(x, *(() if g is None else (g,))):
        return gpu_kernels.gelu_grad(x, g, approximate)
    xp = xp_of(x)
    shape = x.shape
    x = xp.ascontiguousarray(x).reshape(-1)
    factor = None if g is None else xp.ascontiguousarray(g).reshape(-1)
    slope = xp.empty_like(x)
    module = fused(x, factor) if approximate == "tanh" and g is not None else None

    def work(lo, hi):
        chunk, s = x[lo:hi], slope[lo:hi]
        if module:
            module.gelu_tanh_grad_f32(chunk, factor[lo:hi], s)
            return
        if inner is None:
            values = xp.empty_like(chunk)
            _gelu_inner(chunk, approximate, xp, values)
        else:
            values = inner[lo:hi]
        xp.multiply(chunk, chunk, out=s)
        if approximate == "tanh":
            # 0.5 (1 + t) + 0.5 x (1 - t**2) u',  u' = sqrt(2/pi) (1 + 3 * 0.044715 x**2)
            s *= 3 * _GELU_C
            s += 1.0
            s *= chunk
            s *= 0.5 * _SQRT_2_OVER_PI
            one_minus_t2 = xp.multiply(values, values)
            xp.subtract(1.0, one_minus_t2, out=one_minus_t2)
            s *= one_minus_t2
        else:
            # Phi(x) + x phi(x)
            s *= -0.5
            exp(s, out=s)
            s *= chunk
            s *= 1.0 / math.sqrt(2.0 * math.pi)
        s += 0.5 * values
        s += 0.5
        if factor is not None:
            s *= factor[lo:hi]

    parallel_for(x.size, 1, x, work)
    return slope.reshape(shape)


def _gelu_inner(x, approximate: str, xp, out) -> None:
    """erf(x / sqrt 2), or tanh(sqrt(2/pi) (x + 0.044715 x**3)) for the tanh approximation, into ``out``."""
    if approximate == "tanh":
        xp.multiply(x, x, out=out)
        out *= _GELU_C
        out += 1.0
        out *= x
        out *= _SQRT_2_OVER_PI
        tanh(out, out=out)
    else:
        out[...] = special.erf(x * (1.0 / math.sqrt(2.0)), xp)
