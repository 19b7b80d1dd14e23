"""A stand-in ``cuda`` device for machines without a GPU: numpy arrays that refuse to mix with host arrays.

CuPy's arrays live in GPU memory and refuse numpy arrays in their functions and operators: code that mixes
host and device arrays by accident fails on a GPU machine only. The stand-in device catches those bugs on
every machine. Its arrays (:class:`StandInArray`) are numpy arrays underneath, so results equal the CPU's,
but every ufunc and numpy function given a plain host array next to them raises ``TypeError`` as CuPy does
(Python and numpy scalars and 0-d arrays are fine), and its namespace (:data:`namespace`) is numpy's with CuPy's habits:
creation functions make device arrays, ``asarray`` of a host array copies it to the device, ``asnumpy``
copies back, results of reductions are 0-d arrays rather than scalars.

It is not installed by default: :func:`install` registers it as the ``cuda`` device when no real one is
present (the test suite does that under ``CHAINRULE_TEST_DEVICE=cuda``; so does
``CHAINRULE_STANDIN_CUDA=1`` in the environment at import). What it cannot catch: ``numpy.asarray`` of a
device array gives a host view silently (numpy does not ask a subclass), which CuPy refuses.
"""

from __future__ import annotations

import types

import numpy as np

__all__ = ["StandInArray", "namespace", "install", "uninstall", "installed", "NAME"]

NAME = "chainrule stand-in GPU (numpy arrays in host memory)"


# A CuPy array exports GPU memory (kDLCUDA); the stand-in's is host memory posing as a GPU's, which it must not
# lend as either.
_NO_DLPACK = ("DLPack: the stand-in cuda device has no DLPack device (its memory is the host's, posing as a GPU's); "
              "copy the tensor to the CPU first (tensor.cpu())")


class StandInArray(np.ndarray):
    """An array on the stand-in device: numpy underneath, refusing host arrays as operands."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        host_inputs = [_host_operand(ufunc, x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_host_operand(ufunc, o) for o in out)
        result = (ufunc(*host_inputs, **kwargs) if method == "__call__" else
                  getattr(ufunc, method)(*host_inputs, **kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        if type(result) is np.ndarray:
            return result.view(StandInArray)
        return _on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        args = [_host_operand(func, x) for x in args]
        if kwargs:
            kwargs = {k: _host_operand(func, x) for k, x in kwargs.items()}
        return _on_device(func(*args, **kwargs))

    def __dlpack__(self, *args, **kwargs):
        raise BufferError(_NO_DLPACK)

    def __dlpack_device__(self):
        raise BufferError(_NO_DLPACK)

    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        """A host copy (CuPy's ``ndarray.get``)."""
        host = np.array(self.view(np.ndarray), order=order)
        if out is None:
            return host
        out[...] = host
        return out


def _refuse(name: str, host_array) -> None:
    raise TypeError(
        f"{name}: a host (numpy) array of shape {host_array.shape} and dtype {host_array.dtype} was given together "
        "with arrays on the cuda device; copy it to the device first (the stand-in device refuses the mix as "
        "CuPy does)")


def _host_operand(func, x):
    """An operand of a numpy function as numpy sees it: device arrays (also inside lists and tuples, as
    concatenate takes them) as host views; a host array among them is refused."""
    if isinstance(x, np.ndarray):
        if type(x) is StandInArray:
            return x.view(np.ndarray)
        if x.ndim:
            _refuse(func.__name__, x)
        return x
    if type(x) in (list, tuple):
        return type(x)(_host_operand(func, item) for item in x)
    return x


def _on_device(result):
    """numpy's result as device arrays: arrays and numpy scalars (0-d arrays, as CuPy returns) alike."""
    if isinstance(result, np.ndarray):
        return result if isinstance(result, StandInArray) else result.view(StandInArray)
    if isinstance(result, np.generic):
        return np.asarray(result).view(StandInArray)
    if type(result) in (list, tuple):
        return type(result)(_on_device(r) for r in result)
    if isinstance(result, tuple) and hasattr(result, "_fields"):  # named tuples (linalg results)
        return type(result)(*(_on_device(r) for r in result))
    return result


# ----- the namespace: numpy's, with creation functions making device arrays ------------------------------

def _to_device(array) -> StandInArray:
    """A device copy of a host array (never shared memory: a GPU copy would not see later host writes)."""
    return np.array(array, copy=True).view(StandInArray)


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, StandInArray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return _to_device(np.asarray(a, dtype=dtype, order=order))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, **kwargs):
    if isinstance(obj, StandInArray):
        return np.array(obj, dtype=dtype, copy=copy, order=order, subok=True, ndmin=ndmin)
    return _to_device(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    """``a`` itself when C-contiguous already (and of ``dtype``), else a contiguous device copy; numpy's own
    drops the subclass, making a host array."""
    if not isinstance(a, StandInArray):
        return asarray(np.ascontiguousarray(a, dtype=dtype))
    if a.flags.c_contiguous and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return np.ascontiguousarray(a.view(np.ndarray), dtype=dtype).view(StandInArray)


def asanyarray(a, dtype=None, order=None):
    return asarray(a, dtype=dtype, order=order)


def as_strided(x, shape=None, strides=None, subok=False, writeable=True):
    """numpy's ``as_strided`` (which gives a host view) as a device view, as CuPy's is."""
    view = np.lib.stride_tricks.as_strided(x.view(np.ndarray), shape, strides, writeable=writeable)
    return view.view(StandInArray) if isinstance(x, StandInArray) else view


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A host array holding ``a`` (CuPy's ``asnumpy``)."""
    return a.get(order=order, out=out) if isinstance(a, StandInArray) else np.asarray(a, order=order)


def _creating(function):
    def create(*args, **kwargs):
        return _on_device(function(*args, **kwargs))

    create.__name__ = create.__qualname__ = function.__name__
    create.__doc__ = f"numpy.{function.__name__}, on the stand-in device."
    return create


# Functions that take no array to dispatch on: their results are made on the device here.
_CREATION = ("empty", "zeros", "ones", "full", "arange", "linspace", "logspace", "geomspace", "eye", "identity",
             "tri", "indices", "tril_indices", "triu_indices", "diag_indices", "frombuffer", "fromiter")


def _build_namespace() -> types.SimpleNamespace:
    ns = types.ModuleType("chainrule.backend.standin.namespace",
                          "numpy's namespace with CuPy's habits, for the stand-in cuda device")
    ns.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    for name in _CREATION:
        ns.__dict__[name] = _creating(getattr(np, name))
    ns.asarray, ns.array, ns.asnumpy, ns.ndarray = asarray, array, asnumpy, StandInArray
    ns.ascontiguousarray, ns.asanyarray = ascontiguousarray, asanyarray
    stride_tricks = types.SimpleNamespace(as_strided=as_strided,
                                          sliding_window_view=np.lib.stride_tricks.sliding_window_view)
    ns.lib = types.SimpleNamespace(stride_tricks=stride_tricks)
    return ns


namespace = _build_namespace()

_STATE = {"installed": False}


def install():
    """Register the stand-in as the ``cuda`` device (unless a real GPU backend holds that name already);
    returns the device."""
    from chainrule.backend import _DEVICE_OF_TYPE, Device, register_device

    for device in _DEVICE_OF_TYPE.values():
        if device.type == "cuda":
            return device
    device = Device("cuda", namespace)
    register_device(device, StandInArray)
    _STATE["installed"] = True
    return device


def uninstall() -> None:
    """Remove the stand-in device again (tests that install it for themselves); the default device
    returns to the CPU if it was the stand-in. Tensors on it keep their arrays but no longer say cuda."""
    from chainrule.backend import _DEVICE_OF_TYPE, ARRAY_TYPES, get_default_device, set_default_device

    if not _STATE["installed"]:
        return
    if get_default_device() is _DEVICE_OF_TYPE[StandInArray]:
        set_default_device(None)
    del _DEVICE_OF_TYPE[StandInArray]
    ARRAY_TYPES.discard(StandInArray)
    _STATE["installed"] = False


def installed() -> bool:
    """Whether the stand-in is the ``cuda`` device of this process."""
    return _STATE["installed"]
