"""The Tensor: an array, its dtype and device, whether it requires grad, its gradient, and the
graph node that made it.

Differentiable operations live in ``chainrule.ops`` and are bound onto Tensor as methods and
operators by ``chainrule.ops._methods``; this module holds only what a tensor *is*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from chainrule import dtypes as _dt
from chainrule.backend import Device, device_of, get_device, is_host, np, to_host

__all__ = ["Tensor", "wrap"]

_DTYPE_OF_NP = _dt._BY_NP
_new = object.__new__

# How many in-place changes any tensor has had (every version-counter bump adds one). A graph node
# remembers the value when it is made; backward checks the versions of the node's saved tensors only
# when this has moved since, so the usual training step (no in-place change between forward and
# backward) skips those checks altogether.
INPLACE_EPOCH = [0]

# Bumped by every change to what a compiled program (chainrule.compiler) bakes in about its state: a
# tensor's ``.grad`` set, its ``requires_grad`` changed or its array swapped for another (``.data =``,
# ``set_``, ``Module.to``), a hook registered or removed, a module's training mode or its parameters,
# buffers or submodules replaced. While it has not moved since a compiled call replayed, the next call
# skips the per-tensor part of its signature and its identity guards: O(1) instead of O(state tensors).
# Code that writes ``_grad``, ``_rg`` or ``_data`` of an existing tensor directly must bump it.
STATE_EPOCH = [0]


class Tensor:
    """An n-dimensional array that can record the operations applied to it for backpropagation.

    ``_data`` is the backend array; ``_node`` is the graph node that produced the tensor (``None`` for
    leaves); ``_rg`` says whether it requires grad; ``_vc`` is the version counter, a one-item list
    shared with views and created on first need; ``_base`` is the tensor a view looks into;
    ``_views`` holds weak references to the recorded views of a non-leaf tensor, which an in-place
    change to it makes stale.
    """

    __slots__ = ("_data", "_rg", "_grad", "_node", "_vc", "_base", "_hooks", "_views", "__weakref__")

    # numpy must defer to our reflected operators (ndarray + Tensor -> Tensor.__radd__)
    __array_priority__ = 1000
    __hash__ = object.__hash__

    def __init__(self, data: Any, dtype=None, device=None, requires_grad: bool = False):
        from chainrule.creation import _array_from

        self._data = _array_from(data, dtype, get_device(device))
        self._node = None
        self._vc = None
        self._base = None
        self._hooks = None
        self._views = None
        self._grad = None
        self._rg = False
        if requires_grad:
            self.requires_grad_(True)

    # ----- identity -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> _dt.DType:
        return _DTYPE_OF_NP[self._data.dtype]

    @property
    def device(self) -> Device:
        return device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def xp(self):
        """The array namespace (numpy or cupy) that computes on this tensor's data."""
        return device_of(self._data).xp

    def size(self, dim: int | None = None):
        if dim is None:
            return self._data.shape
        return self._data.shape[_check_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.dtype.is_complex

    # ----- autograd state -----------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._node is not None:
            if requires_grad:
                return self
            raise RuntimeError(
                "requires_grad_: you can only change requires_grad of leaf tensors; this tensor "
                f"was made by {self._node.name()}. Use .detach() to get a tensor outside the graph."
            )
        if requires_grad and self.dtype._kind < 2:
            raise RuntimeError(
                f"requires_grad_: only floating-point tensors can require gradients, got {self.dtype} "
                f"(shape {self.shape}); complex ones can too; convert first, e.g. x.float().requires_grad_()"
            )
        self._rg = bool(requires_grad)
        STATE_EPOCH[0] += 1
        return self

    @property
    def grad(self) -> Tensor | None:
        """The gradient ``backward()`` accumulated into this tensor (None until then)."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        self._grad = value
        STATE_EPOCH[0] += 1

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def _version(self) -> int:
        return self._vc[0] if self._vc is not None else 0

    def _bump_version(self) -> None:
        if self._vc is None:
            self._vc = [0]
        self._vc[0] += 1
        INPLACE_EPOCH[0] += 1

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves keep it anyway)."""
        if self._node is None:
            if not self._rg:
                raise RuntimeError("retain_grad: can't retain_grad on a tensor that does not require grad")
            return
        self._node.retain(self)

    @property
    def retains_grad(self) -> bool:
        return self._node is not None and self._node.retains(self)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces
        the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not self._rg:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require grad")
        from chainrule.autograd.graph import HookHandle

        if self._node is not None:
            return self._node.add_hook(hook)
        if self._hooks is None:
            self._hooks = {}
        return HookHandle(self._hooks, hook)

    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Backpropagate from this tensor: add d(self)/d(leaf) (times ``gradient``) to every leaf's ``.grad``."""
        from chainrule.autograd.engine import backward

        if gradient is not None and not isinstance(gradient, Tensor):
            from chainrule.creation import as_tensor

            gradient = as_tensor(gradient, dtype=self.dtype, device=self.device)
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside the graph (in-place changes show in both)."""
        out = wrap(self._data)
        out._vc = self._shared_version()
        return out

    def detach_(self) -> Tensor:
        if self._base is not None and self._base._rg:
            raise RuntimeError("detach_: can't detach a view of a tensor that requires grad in place; use detach()")
        self._node = None
        self._rg = False
        STATE_EPOCH[0] += 1
        return self

    def _shared_version(self) -> list:
        if self._vc is None:
            self._vc = [0]
        return self._vc

    @property
    def data(self) -> Tensor:
        """PyTorch's ``.data``: a tensor sharing this one's array, untracked by autograd (and by its
        version counter). Prefer ``detach()`` or ``no_grad()`` in new code."""
        return wrap(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f".data = ...: expected a Tensor, got {type(value).__name__}")
        self._swap_data(value._data)

    def _swap_data(self, array) -> None:
        """Make ``array`` this tensor's array (the same tensor object, new memory), telling compiled
        programs that read the old array (``STATE_EPOCH``)."""
        self._data = array
        STATE_EPOCH[0] += 1

    # ----- conversion ---------------------------------------------------------------------------
    def numpy(self, *, force: bool = False):
        """The data as a numpy array, sharing memory on the CPU. As in PyTorch, a tensor that requires
        grad (or lives on a GPU) is refused unless ``force=True``, which detaches (and copies to the host)."""
        if force:
            return to_host(self._data)
        if self._rg:
            raise RuntimeError(
                "numpy: can't call numpy() on a tensor that requires grad; use tensor.detach().numpy() "
                "or numpy(force=True)"
            )
        if not is_host(self._data):
            raise TypeError(f"numpy: tensor is on {self.device}; call .cpu() first (or numpy(force=True))")
        return self._data

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The DLPack protocol (the array API's data interchange): a capsule that lends this tensor's
        memory to another library (``torch.from_dlpack(t)``, ``np.from_dlpack(t)``) without a copy.

        Writes the other library makes through the shared memory bypass chainrule's version counter,
        so changing a tensor there that autograd saved for backward gives silently wrong gradients."""
        if self._rg:
            raise BufferError("__dlpack__: can't export a tensor that requires grad; use tensor.detach()")
        data = self._data
        if any(s < 0 for s in data.strides):
            # PyTorch up to 2.13 aborts the process importing negative strides (a flip such as t[::-1]
            # makes them), so hand out a copy with positive strides instead.
            if copy is False:
                raise BufferError(f"__dlpack__: a tensor with negative strides {data.strides} (shape {self.shape}) "
                                  "can only be exported as a copy, but copy=False")
            data, copy = data.copy(), None
        if stream == -1 and is_host(data):
            stream = None  # -1 means "no synchronisation"; numpy accepts only None
        options = {"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy}
        return data.__dlpack__(**{k: v for k, v in options.items() if v is not None})

    def __dlpack_device__(self):
        """DLPack's (device type, device id) of this tensor's memory: (1, 0) on the CPU, (2, 0) on a GPU
        (CuPy's arrays answer; the stand-in device has none and says so)."""
        return self._data.__dlpack_device__()

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise RuntimeError(
                f"item: a Tensor with {self._data.size} elements (shape {self.shape}) cannot be "
                "converted to a Python scalar; index one element first"
            )
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        """numpy's conversion protocol: ``np.asarray(t)`` shares memory on the CPU, ``np.array(t)``
        copies (``copy=True``), as numpy's own arrays do."""
        on_host = is_host(self._data)
        if copy is False and not on_host:
            raise ValueError(f"__array__: a tensor on {self.device} can only be converted with a copy, but copy=False")
        arr = to_host(self._data)
        if dtype is not None and arr.dtype != np.dtype(dtype):
            if copy is False:
                raise ValueError(f"__array__: converting {self.dtype} to {dtype} needs a copy, but copy=False")
            return arr.astype(dtype)
        return arr.copy() if copy and on_host else arr

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def _scalar(self, op: str):
        if self._data.size != 1:
            raise RuntimeError(
                f"{op}: only a one-element tensor can be converted to a Python scalar, "
                f"got shape {self.shape}"
            )
        return self._data.item()

    def __bool__(self) -> bool:
        return bool(self._scalar("bool"))

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self._data.size != 1:
            raise TypeError(f"only one-element integer tensors can be used as an index, got {self.dtype} {self.shape}")
        return int(self._data.item())

    def __complex__(self) -> complex:
        return complex(self._scalar("complex"))

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0 and spec:
            return format(self._data.item(), spec)
        return super().__format__(spec) if spec else repr(self)

    def __reduce_ex__(self, protocol):
        raise TypeError(
            "chainrule tensors are not pickled (checkpoints are data, never code); "
            "use chainrule.io.save / chainrule.io.load (safetensors)"
        )

    def __repr__(self) -> str:
        return _format_tensor(self)

    def __deepcopy__(self, memo):
        if self._node is not None:
            raise RuntimeError("deepcopy: only leaf tensors can be deep-copied (detach() first)")
        out = wrap(self._data.copy(), self._rg)
        out.__class__ = type(self)  # a Parameter stays a Parameter
        if self.grad is not None:
            out.grad = wrap(self.grad._data.copy())
        memo[id(self)] = out
        return out


def wrap(data, requires_grad: bool = False, node=None) -> Tensor:
    """A Tensor around an existing backend array, with no checks: the hot path of every op."""
    t = _new(Tensor)
    t._data = data
    t._rg = requires_grad
    t._grad = None
    t._node = node
    t._vc = None
    t._base = None
    t._hooks = None
    t._views = None
    return t


def _check_dim(dim: int, ndim: int, op: str) -> int:
    lo = -max(ndim, 1)
    hi = max(ndim, 1) - 1
    if not (lo <= dim <= hi):
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return dim % max(ndim, 1)


# ----- printing, laid out as PyTorch lays out its tensors -----------------------------------------
# threshold: more elements than this show only the first and last ``edgeitems`` per dimension;
# sci_mode None chooses per tensor (see _ElementFormat)
_PRINT_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80, "sci_mode": None},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80, "sci_mode": None},
}
_PRINT = dict(_PRINT_PROFILES["default"])


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None) -> None:
    """How tensors print, as ``torch.set_printoptions``: a ``profile`` ("default", "short", "full") first,
    then each option given; ``sci_mode`` True or False forces or forbids scientific notation (None: chosen
    per tensor)."""
    if profile is not None:
        if profile not in _PRINT_PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PRINT_PROFILES)}, got {profile!r}")
        _PRINT.update(_PRINT_PROFILES[profile])
    given = {"precision": precision, "threshold": threshold, "edgeitems": edgeitems, "linewidth": linewidth}
    _PRINT.update({key: value for key, value in given.items() if value is not None})
    _PRINT["sci_mode"] = sci_mode


class _ElementFormat:
    """How every element of one tensor is written: one mode and one width for all of them.

    Floats print as integers with a trailing dot when all are whole ('2.'), in scientific notation
    when their magnitudes span more than 1000x or exceed 1e8 (or, for non-whole values, fall
    below 1e-4), else with four decimals. Elements are right-aligned to the widest.
    """

    def __init__(self, arr):
        self.floating = arr.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        if not self.floating:
            self.width = max((len(str(v)) for v in arr.ravel().tolist()), default=1)
            return
        values = arr.astype(np.float64).ravel()
        values = values[np.isfinite(values) & (values != 0)]
        if values.size == 0:
            return
        magnitudes = np.abs(values)
        lo, hi = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(values == np.ceil(values)))
        if self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        if _PRINT["sci_mode"] is not None:
            self.sci_mode = bool(_PRINT["sci_mode"])
        self.width = max(len(self._plain(v)) for v in values.tolist())

    def _plain(self, value) -> str:
        if not self.floating:
            return str(value)
        if self.sci_mode:
            return f"{value:.{_PRINT['precision']}e}"
        if self.int_mode:
            text = f"{value:.0f}"
            return text if math.isnan(value) or math.isinf(value) else text + "."
        return f"{value:.{_PRINT['precision']}f}"

    def __call__(self, value) -> str:
        return self._plain(value).rjust(self.width)


class _ComplexFormat:
    """Complex elements as PyTorch writes them: the real parts in one element format, the imaginary parts
    in another, joined by their sign and followed by 'j' ('1.0000+2.0000j')."""

    def __init__(self, arr):
        self.real = _ElementFormat(arr.real)
        self.imag = _ElementFormat(arr.imag)
        self.width = self.real.width + self.imag.width + 1

    def __call__(self, value) -> str:
        imag = self.imag._plain(value.imag) + "j"
        return self.real(value.real) + (imag if imag[0] in "+-" else "+" + imag)


def _summarized(arr):
    """Only the edge items of every long dimension: what the element format is chosen from."""
    for axis, size in enumerate(arr.shape):
        if size > 2 * _PRINT["edgeitems"]:
            keep = list(range(_PRINT["edgeitems"])) + list(range(size - _PRINT["edgeitems"], size))
            arr = np.take(arr, keep, axis=axis)
    return arr


def _format_block(arr, indent: int, summarize: bool, fmt: _ElementFormat) -> str:
    """The bracketed text of ``arr`` (ndim >= 1); nested rows are indented under their bracket."""
    long_rows = summarize and arr.shape[0] > 2 * _PRINT["edgeitems"]
    if arr.ndim == 1:
        items = arr.tolist()
        if long_rows:
            edge = _PRINT["edgeitems"]
            words = [fmt(v) for v in items[:edge]] + [" ..."] + [fmt(v) for v in items[-edge:]]
        else:
            words = [fmt(v) for v in items]
        per_line = max(1, (_PRINT["linewidth"] - indent) // (fmt.width + 2))
        lines = [", ".join(words[i:i + per_line]) for i in range(0, len(words), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(arr.shape[0])
    if long_rows:
        rows = [*range(_PRINT["edgeitems"]), None, *range(arr.shape[0] - _PRINT["edgeitems"], arr.shape[0])]
    parts = ["..." if i is None else _format_block(arr[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _format_array(arr, indent: int) -> str:
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    summarize = arr.size > _PRINT["threshold"]
    fmt = (_ComplexFormat if arr.dtype.kind == "c" else _ElementFormat)(_summarized(arr) if summarize else arr)
    if arr.ndim == 0:
        return fmt(arr.item())
    return _format_block(arr, indent, summarize, fmt)


def _add_suffixes(text: str, suffixes: list, indent: int) -> str:
    """Append ``, dtype=...`` etc., starting a new line when the current one would pass the width."""
    parts = [text]
    line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if line_len + len(suffix) + 2 > _PRINT["linewidth"]:
            parts.append(",\n" + " " * indent + suffix)
            line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            line_len += len(suffix) + 2
    return "".join(parts) + ")"


def _format_tensor(t: Tensor) -> str:
    arr = to_host(t._data)
    prefix = "tensor("
    suffixes = []
    dtype = t.dtype
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    if arr.size == 0:
        body = "[]"
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dtype is not _dt.get_default_dtype():
            suffixes.append(f"dtype={dtype!r}")
    else:
        if dtype not in (_dt.get_default_dtype(), _dt.get_default_complex_dtype(), _dt.int64, _dt.bool_):
            suffixes.append(f"dtype={dtype!r}")
        body = _format_array(arr, len(prefix))
    if t._node is not None:
        suffixes.append(f"grad_fn=<{t._node.name()}>")
    elif t._rg:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, len(prefix))


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)

