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
from chainrule.backend import ARRAY_TYPES, Device, device_of, get_device, is_host, np, to_host
from chainrule.random import default_generator
from chainrule.tensor import Tensor, wrap

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
    "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like", "empty_like",
    "rand_like", "randn_like", "randint_like", "normal", "is_tensor", "numel", "bernoulli", "multinomial",
    "poisson", "from_dlpack", "logspace", "range", "tril_indices", "triu_indices", "scalar_tensor", "asarray",
    "hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window",
]


def _infer_dtype(data: Any) -> _dt.DType:
    """PyTorch's inference for Python data: any complex -> default complex, else any float -> default float,
    else any int -> int64, else bool."""
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
    if kind == "c":
        return _dt.get_default_complex_dtype()
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
    if not (isinstance(array, np.ndarray) and is_host(array)):  # (a stand-in device array subclasses ndarray)
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    _dt.from_np(array.dtype)
    return wrap(array)


_DLPACK_DEVICES = {1: "cpu", 2: "cuda"}  # DLPack's device types kDLCPU, kDLCUDA -> chainrule's devices


def from_dlpack(ext_tensor, *, device=None, copy: bool | None = None) -> Tensor:
    """A tensor sharing memory with ``ext_tensor``, any object speaking DLPack (a PyTorch tensor, a numpy
    array, a JAX array...): changes show in both. ``copy=True`` copies; ``copy=False`` refuses to copy.

    The result is a leaf that does not require grad. Writes through the other library's view bypass
    chainrule's version counter: don't change the data there while autograd has it saved for backward.
    """
    if not hasattr(ext_tensor, "__dlpack__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ (a tensor or array), got {type(ext_tensor).__name__}")
    kind, _ = ext_tensor.__dlpack_device__()
    if kind not in _DLPACK_DEVICES:
        raise BufferError(f"from_dlpack: only CPU (DLPack device 1) and CUDA (2) memory can be imported, got device "
                          f"type {kind}")
    xp = get_device(_DLPACK_DEVICES[kind]).xp  # CUDA memory: CuPy's from_dlpack (loaded here, or said unavailable)
    try:
        array = xp.from_dlpack(ext_tensor) if copy is None else xp.from_dlpack(ext_tensor, copy=copy)  # copy= needs numpy 2.1
    except RuntimeError as err:  # bfloat16 and other dtypes numpy has no type for
        raise TypeError(f"from_dlpack: can't import {type(ext_tensor).__name__}: {err}") from None
    _dt.from_np(array.dtype)  # refuses dtypes chainrule does not support, naming them
    out = wrap(array)
    if device is not None and get_device(device) != out.device:
        out = out.to(device)
    return out


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


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    if operator.index(steps) < 0:
        raise RuntimeError(f"logspace: number of steps must be non-negative, got {steps}")
    xp = get_device(device).xp
    return _make(xp.logspace(start, end, int(steps), base=base).astype(_float_dtype(dtype).np), requires_grad)


def range(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:  # noqa: A001
    """PyTorch's deprecated ``torch.range``: like ``arange`` but ``end`` is included and the default dtype
    is the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0 or (end - start) * step < 0:
        raise RuntimeError(f"range: step {step} must be nonzero and lead from start {start} to end {end}")
    count = int((end - start) // step) + 1
    xp = get_device(device).xp
    dtype = _dt.get_default_dtype() if dtype is None else _dt.to_dtype(dtype)
    return _make((start + step * xp.arange(count, dtype="float64")).astype(dtype.np), requires_grad)


def _triangle_indices(op: str, numpy_fn: str, row: int, col: int, offset: int, dtype, device) -> Tensor:
    if row < 0 or col < 0:
        raise RuntimeError(f"{op}: row and col must be non-negative, got {row} and {col}")
    xp = get_device(device).xp
    rows, cols = getattr(xp, numpy_fn)(row, offset, col)
    dtype = _dt.int64 if dtype is None else _dt.to_dtype(dtype)
    return wrap(xp.stack([rows, cols]).astype(dtype.np))


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """The (2, N) row and column indices of the lower triangle of a row x col matrix, in row-major order."""
    return _triangle_indices("tril_indices", "tril_indices", row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """The (2, N) row and column indices of the upper triangle of a row x col matrix, in row-major order."""
    return _triangle_indices("triu_indices", "triu_indices", row, col, offset, dtype, device)


def scalar_tensor(s, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A 0-d tensor holding ``s`` (default float dtype, as PyTorch)."""
    return full((), s, dtype=_float_dtype(dtype) if dtype is None else dtype, device=device,
                requires_grad=requires_grad)


def asarray(obj, *, dtype=None, device=None, copy: bool | None = None, requires_grad: bool = False) -> Tensor:
    """``obj`` as a tensor, sharing its memory when it can (``copy=None``), always copying (``copy=True``) or
    refusing to copy (``copy=False``: an error when a copy is needed)."""
    result = tensor(obj, dtype=dtype, device=device) if copy else as_tensor(obj, dtype=dtype, device=device)
    if copy is False:
        source = obj._data if isinstance(obj, Tensor) else obj
        if not (type(source) in ARRAY_TYPES and device_of(source) is result.device
                and result.xp.shares_memory(result._data, source)):
            raise ValueError(f"asarray: copy=False, but a {type(obj).__name__} needs a copy to become a tensor "
                             f"of {result.dtype} on {result.device}")
    if requires_grad:
        result = result.detach().requires_grad_() if result is obj else result.requires_grad_()
    return result


# ----- window functions (signal processing) -------------------------------------------------------------

def _window(op: str, length: int, periodic: bool, dtype, device, shape_fn) -> Tensor:
    """``shape_fn(x)`` at ``x = n / (N - 1)`` for n = 0..N-1, where a periodic window is the symmetric one of
    length+1 with its last point dropped (so it tiles without a repeated sample)."""
    if operator.index(length) < 0:
        raise RuntimeError(f"{op}: window_length must be non-negative, got {length}")
    xp = get_device(device).xp
    dtype = _float_dtype(dtype)
    if length <= 1:
        return wrap(xp.ones(length, dtype=dtype.np))
    points = length + 1 if periodic else length
    x = xp.arange(points, dtype="float64") / (points - 1)
    return wrap(shape_fn(xp, x)[:length].astype(dtype.np))


def hann_window(window_length: int, periodic: bool = True, *, dtype=None, device=None) -> Tensor:
    return _window("hann_window", window_length, periodic, dtype, device,
                   lambda xp, x: 0.5 - 0.5 * xp.cos(2 * xp.pi * x))


def hamming_window(window_length: int, periodic: bool = True, alpha: float = 0.54, beta: float = 0.46, *,
                   dtype=None, device=None) -> Tensor:
    return _window("hamming_window", window_length, periodic, dtype, device,
                   lambda xp, x: alpha - beta * xp.cos(2 * xp.pi * x))


def blackman_window(window_length: int, periodic: bool = True, *, dtype=None, device=None) -> Tensor:
    return _window("blackman_window", window_length, periodic, dtype, device,
                   lambda xp, x: 0.42 - 0.5 * xp.cos(2 * xp.pi * x) + 0.08 * xp.cos(4 * xp.pi * x))


def bartlett_window(window_length: int, periodic: bool = True, *, dtype=None, device=None) -> Tensor:
    return _window("bartlett_window", window_length, periodic, dtype, device, lambda xp, x: 1 - xp.abs(2 * x - 1))


def kaiser_window(window_length: int, periodic: bool = True, beta: float = 12.0, *, dtype=None,
                  device=None) -> Tensor:
    return _window("kaiser_window", window_length, periodic, dtype, device,
                   lambda xp, x: xp.i0(beta * xp.sqrt(xp.clip(1 - (2 * x - 1) ** 2, 0, None))) / xp.i0(beta))


def _random_floats(fn: str, size, dtype, device, generator) -> Tensor:
    gen = generator or default_generator
    dtype = _float_dtype(dtype)
    op = "rand" if fn == "random" else "randn"
    if dtype._kind < 2:
        raise TypeError(f"{op}: samples are floating point, got dtype={dtype}; use randint for integers")
    shape = _shape(size, op)
    if dtype.is_complex:  # as PyTorch: both parts drawn, randn's scaled so that E|z|^2 = 1
        scale = 0.5 ** 0.5 if fn == "standard_normal" else 1.0
        parts = getattr(gen.numpy, fn)(shape + (2,)) * scale
        array = (parts[..., 0] + 1j * parts[..., 1]).astype(dtype.np)
    else:
        array = getattr(gen.numpy, fn)(shape).astype(dtype.np, copy=False)
    return wrap(get_device(device).xp.asarray(array))


def rand(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples in [0, 1) from the seeded generator."""
    t = _random_floats("random", size, dtype, device, generator)
    return t.requires_grad_(True) if requires_grad else t


def randn(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples from the seeded generator."""
    t = _random_floats("standard_normal", size, dtype, device, generator)
    return t.requires_grad_(True) if requires_grad else t


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Normal samples: ``normal(mean, std, size)`` with numbers, or elementwise with tensor ``mean`` and/or
    ``std`` (broadcast, as PyTorch). As in PyTorch the tensor forms pass a zero gradient to mean and std
    (use ``distributions.Normal(...).rsample()`` for the reparameterised draw)."""
    if not isinstance(mean, Tensor) and not isinstance(std, Tensor):
        if size is None:
            raise TypeError("normal: with a number mean and std, size is required, e.g. normal(0., 1., (3,))")
        t = _random_floats("standard_normal", (size,) if isinstance(size, int) else size, dtype, device, generator)
        t._data *= std
        t._data += mean
        return t.requires_grad_(True) if requires_grad else t
    ref = mean if isinstance(mean, Tensor) else std
    if not ref.dtype.is_floating_point:
        raise RuntimeError(f"normal expects floating point mean and std, got dtype={ref.dtype}")
    if isinstance(std, Tensor):
        if bool(to_host((std._data < 0).any())):
            raise RuntimeError("normal expects all elements of std >= 0.0")
    elif std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    shape = tuple(np.broadcast_shapes(*(t.shape for t in (mean, std) if isinstance(t, Tensor))))
    gen = generator or default_generator
    eps = ref.xp.asarray(gen.numpy.standard_normal(shape).astype(ref._data.dtype, copy=False))
    # mean * 0 + std * 0 + sample: the value is the sample, the graph sends zeros back, as torch.normal
    loc = mean._data if isinstance(mean, Tensor) else mean
    scale = std._data if isinstance(std, Tensor) else std
    out = wrap(ref.xp.asarray(loc + eps * scale).astype(ref._data.dtype, copy=False))  # (0-d: numpy gives a scalar)
    if (isinstance(mean, Tensor) and mean.requires_grad) or (isinstance(std, Tensor) and std.requires_grad):
        out = out + mean * 0 + std * 0
    return out


def _probabilities(input: Tensor, op: str) -> Any:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor of probabilities, got {type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected a floating point tensor of probabilities, got dtype={input.dtype}")
    return to_host(input._data)


def bernoulli(input: Tensor, p: float | None = None, *, generator=None, out=None) -> Tensor:
    """0/1 draws with probability ``input`` (or the number ``p``), in ``input``'s dtype and shape."""
    probs = _probabilities(input, "bernoulli")
    if p is not None:
        probs = np.full(probs.shape, p, dtype=probs.dtype)
    if not np.all((probs >= 0) & (probs <= 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (bernoulli: every "
                           "probability must lie in [0, 1])")
    gen = generator or default_generator
    sample = (gen.numpy.random(probs.shape) < probs).astype(probs.dtype)
    return wrap(input.xp.asarray(sample))


def poisson(input: Tensor, generator=None) -> Tensor:
    """Poisson draws with rates ``input``, in ``input``'s dtype."""
    rates = _probabilities(input, "poisson")
    if not np.all(rates >= 0):
        raise RuntimeError("invalid Poisson rate, expected rate to be non-negative")
    gen = generator or default_generator
    return wrap(input.xp.asarray(gen.numpy.poisson(rates).astype(rates.dtype)))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None, out=None) -> Tensor:
    """Category indices (int64) drawn from each row of non-negative weights; without replacement each row's
    draws are distinct, drawn in sequence with the remaining weights renormalised (PyTorch's semantics)."""
    weights = _probabilities(input, "multinomial").astype(np.float64)
    if weights.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got a {weights.ndim}-dim tensor")
    num_samples = operator.index(num_samples)
    if num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample n_sample <= 0 samples, got num_samples={num_samples}")
    rows = weights.reshape(-1, weights.shape[-1])
    n_cat = rows.shape[1]
    if not replacement and num_samples > n_cat:
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                           f"(num_samples={num_samples}, categories={n_cat})")
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or element < 0")
    if np.any(rows.sum(-1) <= 0):
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    gen = generator or default_generator
    if replacement:
        cdf = np.cumsum(rows, -1)
        cdf /= cdf[:, -1:]
        u = gen.numpy.random((rows.shape[0], num_samples))
        idx = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cdf, u)])
        idx = np.minimum(idx, n_cat - 1)
    else:
        # zero-weight categories come last, in index order, when a row has fewer positive ones (torch's CPU)
        # exponential race: the order of E_i / w_i is sequential sampling without replacement
        keys = gen.numpy.standard_exponential(rows.shape)
        with np.errstate(divide="ignore"):
            keys = np.where(rows > 0, keys / rows, np.inf)
        idx = np.argsort(keys, axis=-1, kind="stable")[:, :num_samples]
    idx = idx.astype(np.int64).reshape(weights.shape[:-1] + (num_samples,))
    return wrap(input.xp.asarray(idx))


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


def _fill_from(self: Tensor, op: str, sample) -> Tensor:
    from chainrule.ops.inplace import apply_inplace

    return apply_inplace(self, op, lambda t: wrap(t.xp.asarray(np.asarray(sample).astype(t._data.dtype))))


def _bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    probs = to_host(p._data) if isinstance(p, Tensor) else p
    if not np.all((np.asarray(probs) >= 0) & (np.asarray(probs) <= 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    gen = generator or default_generator
    return _fill_from(self, "bernoulli_", gen.numpy.random(self.shape) < np.broadcast_to(probs, self.shape))


def _exponential_(self: Tensor, lambd: float = 1.0, *, generator=None) -> Tensor:
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    gen = generator or default_generator
    return _fill_from(self, "exponential_", gen.numpy.standard_exponential(self.shape) / lambd)


def _geometric_(self: Tensor, p: float, *, generator=None) -> Tensor:
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    gen = generator or default_generator
    return _fill_from(self, "geometric_", gen.numpy.geometric(p, self.shape))


def _cauchy_(self: Tensor, median: float = 0.0, sigma: float = 1.0, *, generator=None) -> Tensor:
    gen = generator or default_generator
    return _fill_from(self, "cauchy_", median + sigma * gen.numpy.standard_cauchy(self.shape))


def _log_normal_(self: Tensor, mean: float = 1.0, std: float = 2.0, *, generator=None) -> Tensor:
    if not std > 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    gen = generator or default_generator
    return _fill_from(self, "log_normal_", np.exp(gen.numpy.normal(mean, std, self.shape)))


def _random_(self: Tensor, from_=0, to=None, *, generator=None) -> Tensor:
    """Integers uniform in [from, to); ``random_(to)`` is [0, to); ``random_()`` spans [0, 2**mantissa]
    for floats (so every value is exact) and [0, max] for integers, as PyTorch."""
    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        dt = np.dtype(self._data.dtype)
        if dt.kind == "f":
            to = 2 ** (np.finfo(dt).nmant + 1) + 1
        elif dt.kind == "b":
            to = 2
        else:
            to = int(np.iinfo(dt).max)
    if from_ >= to:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} >= to={to}")
    gen = generator or default_generator
    return _fill_from(self, "random_", gen.numpy.integers(from_, to, self.shape))


def _tensor_bernoulli(self: Tensor, p=None, *, generator=None) -> Tensor:
    return bernoulli(self, p, generator=generator)


def _tensor_multinomial(self: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    return multinomial(self, num_samples, replacement, generator=generator)


def tensor_sampling_methods() -> dict:
    """The Tensor methods that draw from the seeded generator (bound in ops/_methods.py)."""
    return {"bernoulli_": _bernoulli_, "exponential_": _exponential_, "geometric_": _geometric_,
            "cauchy_": _cauchy_, "log_normal_": _log_normal_, "random_": _random_,
            "bernoulli": _tensor_bernoulli, "multinomial": _tensor_multinomial}
