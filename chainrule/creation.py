"""Making tensors: from data (``tensor``, ``as_tensor``, ``from_numpy``), filled (``zeros``, ``ones``,
``full``, ``empty``, ``eye``), ranges (``arange``, ``linspace``), random (``rand``, ``randn``,
``randint``) and the ``*_like`` forms.

Float data defaults to ``get_default_dtype()`` (float32), Python ints to int64, bools to bool, as in
PyTorch; a numpy array keeps its dtype.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from numbers import Number
from typing import Any

from chainrule import dtypes as _dt
from chainrule.backend import ARRAY_TYPES, Device, device_of, get_device, np, to_host
from chainrule.random import default_generator
from chainrule.tensor import Tensor, wrap

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
    "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like", "empty_like",
    "rand_like", "randn_like", "randint_like", "normal", "is_tensor", "numel",
]


def _infer_dtype(data: Any) -> _dt.DType:
    """PyTorch's inference for Python data: any float -> default float, else any int -> int64, else bool."""
    try:
        kind = np.asarray(data).dtype.kind
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"tensor: can't build a tensor from this data: {err}") from None
    if kind == "f":
        return _dt.get_default_dtype()
    if kind in "iu":
        return _dt.int64
    if kind == "b":
        return _dt.bool_
    raise TypeError(
        f"tensor: can't convert data of type {type(data).__name__} (numpy kind '{kind}') to a tensor; "
        "expected numbers, nested lists of numbers, numpy arrays or tensors"
    )


def _array_from(data: Any, dtype, device: Device, copy: bool = True):
    """A backend array holding ``data`` with the dtype PyTorch would give it."""
    xp = device.xp
    want = None if dtype is None else _dt.to_dtype(dtype)
    if isinstance(data, Tensor):
        data = data._data
    if type(data) in ARRAY_TYPES:
        if want is None:
            _dt.from_np(data.dtype)  # refuses unsupported dtypes with a clear message
        if device_of(data) is not device:
            data = to_host(data)
        return xp.array(data, dtype=None if want is None else want.np, copy=copy or None)
    if isinstance(data, np.generic):  # a numpy scalar keeps its dtype, as a 0-d array does
        data = np.asarray(data)
        return _array_from(data, dtype, device, copy)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = _nested_tensors_to_lists(data)
    if want is None:
        want = _dt.scalar_dtype(data) if isinstance(data, Number) else _infer_dtype(data)
    try:
        return xp.array(data, dtype=want.np)
    except (ValueError, TypeError) as err:
        raise ValueError(f"tensor: can't build a tensor from this data: {err}") from None


def _nested_tensors_to_lists(data):
    if isinstance(data, Tensor):
        return data._data.tolist()
    if isinstance(data, (list, tuple)):
        return [_nested_tensors_to_lists(x) for x in data]
    return data


def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (nested lists, numbers, arrays or tensors)."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data: Any, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory with a numpy array or tensor when dtype and device allow."""
    if isinstance(data, Tensor):
        if (dtype is None or _dt.to_dtype(dtype) is data.dtype) and (device is None or get_device(device) == data.device):
            return data
        return data.to(dtype=dtype, device=device)
    out = wrap(_array_from(data, dtype, get_device(device), copy=False))
    return out


def from_numpy(array) -> Tensor:
    """A tensor sharing memory with the numpy array ``array`` (changes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    _dt.from_np(array.dtype)
    return wrap(array)


def _shape(size: Sequence, op: str = "size") -> tuple[int, ...]:
    """``(2, 3)``, ``((2, 3),)`` or ``([2, 3],)`` as a tuple of non-negative ints."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(operator.index(s) for s in size)
    except TypeError:
        raise TypeError(f"{op}: size must be a tuple of ints, got {tuple(size)!r}") from None
    if any(s < 0 for s in shape):
        raise RuntimeError(f"{op}: negative dimension in size {shape}; sizes must be non-negative")
    return shape


def _make(array, requires_grad: bool) -> Tensor:
    t = wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float_dtype(dtype) -> _dt.DType:
    return _dt.get_default_dtype() if dtype is None else _dt.to_dtype(dtype)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make(get_device(device).xp.zeros(_shape(size, "zeros"), dtype=_float_dtype(dtype).np), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make(get_device(device).xp.ones(_shape(size, "ones"), dtype=_float_dtype(dtype).np), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make(get_device(device).xp.empty(_shape(size, "empty"), dtype=_float_dtype(dtype).np), requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype = _dt.scalar_dtype(fill_value) if dtype is None else _dt.to_dtype(dtype)
    return _make(get_device(device).xp.full(_shape((size,), "full"), fill_value, dtype=dtype.np), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make(get_device(device).xp.eye(n, m, dtype=_float_dtype(dtype).np), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(
            f"arange: upper bound and lower bound inconsistent with step sign (start={start}, end={end}, "
            f"step={step}); use a negative step to count down"
        )
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = _dt.get_default_dtype() if is_float else _dt.int64
    dtype = _dt.to_dtype(dtype)
    # computed in float64/int64 then cast, so float32 ranges end where PyTorch's do
    xp = get_device(device).xp
    return _make(xp.arange(start, end, step).astype(dtype.np), requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    if operator.index(steps) < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    xp = get_device(device).xp
    return _make(xp.linspace(start, end, int(steps)).astype(_float_dtype(dtype).np), requires_grad)


def _random_floats(fn: str, size, dtype, device, generator) -> Tensor:
    gen = generator or default_generator
    dtype = _float_dtype(dtype)
    op = "rand" if fn == "random" else "randn"
    if not dtype.is_floating_point:
        raise TypeError(f"{op}: samples are floating point, got dtype={dtype}; use randint for integers")
    array = getattr(gen.numpy, fn)(_shape(size, op)).astype(dtype.np, copy=False)
    return wrap(get_device(device).xp.asarray(array))


def rand(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples in [0, 1) from the seeded generator."""
    t = _random_floats("random", size, dtype, device, generator)
    return t.requires_grad_(True) if requires_grad else t


def randn(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples from the seeded generator."""
    t = _random_floats("standard_normal", size, dtype, device, generator)
    return t.requires_grad_(True) if requires_grad else t


def normal(mean: float, std: float, size, dtype=None, device=None, generator=None) -> Tensor:
    t = _random_floats("standard_normal", (size,) if isinstance(size, int) else size, dtype, device, generator)
    t._data *= std
    t._data += mean
    return t


def randint(low: int, high: int | None = None, size=None, dtype=None, device=None, generator=None) -> Tensor:
    """Integers uniform in [low, high), int64 by default (``randint(high, size)`` also works)."""
    if size is None:
        if high is None or isinstance(high, int):
            raise TypeError("randint: size is required, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    gen = generator or default_generator
    dtype = _dt.int64 if dtype is None else _dt.to_dtype(dtype)
    array = gen.numpy.integers(low, high, size=_shape((size,), "randint")).astype(dtype.np)
    return wrap(get_device(device).xp.asarray(array))


def randperm(n: int, dtype=None, device=None, generator=None) -> Tensor:
    gen = generator or default_generator
    dtype = _dt.int64 if dtype is None else _dt.to_dtype(dtype)
    return wrap(get_device(device).xp.asarray(gen.numpy.permutation(n).astype(dtype.np)))


def _like(t: Tensor, dtype, device):
    return (t.dtype if dtype is None else _dt.to_dtype(dtype)), (t.device if device is None else device)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return empty(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randint_like(t: Tensor, low: int, high: int | None = None, dtype=None, device=None) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return randint(low, high, t.shape, dtype=dtype, device=device)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def numel(t: Tensor) -> int:
    return t.numel()
