"""Binds the operations onto Tensor as methods, properties and Python operators, in one table, so
``x.exp()``, ``cr.exp(x)`` and ``x @ w`` all reach the same primitive."""

from __future__ import annotations

from chainrule import dtypes as _dt
from chainrule.backend import get_device, gpu
from chainrule.ops import complex as cx
from chainrule.ops import elementwise as ew
from chainrule.ops import elementwise_more as em
from chainrule.ops import indexing as ix
from chainrule.ops import linalg as la
from chainrule.ops import linalg_more as lm
from chainrule.ops import logits as sm
from chainrule.ops import reduction as rd
from chainrule.ops import search as se
from chainrule.ops import shape as sh
from chainrule.ops import sorting as so
from chainrule.ops._helpers import norm_dim, record
from chainrule.ops._spellings import with_numpy_spellings
from chainrule.ops.inplace import apply_inplace, inplace_method, inplace_ops, inplace_view, setitem
from chainrule.tensor import Tensor, wrap

_SAME_NAME = {
    ew: ["add", "sub", "mul", "div", "true_divide", "neg", "pow", "abs", "exp", "log", "log1p", "expm1", "log2",
         "log10", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "sign", "reciprocal",
         "square", "erf", "floor", "ceil", "round", "trunc", "remainder", "fmod", "floor_divide", "eq", "ne", "lt",
         "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "logical_xor", "isnan", "isinf",
         "isfinite", "maximum", "minimum", "clamp", "clip", "atan2", "lerp", "sinh", "cosh", "asin", "acos",
         "atan", "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift",
         "nan_to_num", "addcmul",
         "addcdiv", "logit",
         "logaddexp", "logaddexp2", "hypot", "copysign", "exp2", "asinh", "acosh", "atanh", "arcsinh", "arccosh",
         "arctanh", "lgamma", "digamma", "erfinv", "erfc", "xlogy", "sinc", "isclose", "allclose", "equal",
         "deg2rad", "rad2deg", "frac", "float_power", "conj_physical", "sgn"],
    cx: ["conj", "resolve_conj", "resolve_neg", "is_conj", "angle"],
    em: em.__all__,
    rd: ["sum", "sum_to", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "logsumexp", "norm",
         "cumsum", "cumprod", "argmax", "argmin", "all", "any", "count_nonzero", "median",
         "cummax", "cummin", "logcumsumexp", "diff", "aminmax", "nansum", "nanmean", "mode", "kthvalue",
         "quantile", "nanquantile"],
    sh: ["reshape", "view", "flatten", "unflatten", "permute", "transpose", "swapaxes", "t", "squeeze",
         "unsqueeze", "expand", "expand_as", "broadcast_to", "repeat", "tile", "split", "chunk", "unbind",
         "narrow", "flip", "roll", "tril", "triu", "movedim", "clone", "contiguous", "select",
         "diag", "diagonal", "diag_embed", "fliplr", "flipud", "rot90", "repeat_interleave", "tensor_split",
         "hsplit", "vsplit", "dsplit", "kron"],
    ix: ["gather", "scatter", "scatter_add", "index_select", "index_add", "masked_fill", "masked_select",
         "take_along_dim", "nonzero", "scatter_reduce", "index_copy", "index_fill", "index_reduce", "masked_scatter",
         "take", "put", "argwhere"],
    se: ["unique", "unique_consecutive", "bincount", "histc"],
    la: ["matmul", "mm", "bmm", "dot", "vdot", "outer", "inner"],
    lm: lm.METHODS,
    sm: ["softmax", "log_softmax"],
    so: ["sort", "argsort", "topk", "msort"],
}

_ALIASES = {
    "subtract": ew.sub, "multiply": ew.mul, "divide": ew.div, "negative": ew.neg, "absolute": ew.abs,
    "greater": ew.gt, "greater_equal": ew.ge, "less": ew.lt, "less_equal": ew.le, "not_equal": ew.ne,
    "arctan2": ew.atan2, "clamp_min": lambda a, m: ew.clamp(a, min=m),
    "clamp_max": lambda a, m: ew.clamp(a, max=m), "swapdims": sh.transpose,
    "where": lambda self, condition, other: ew.where(condition, self, other),
    "index_put": lambda self, indices, values, accumulate=False: ix.index_put(self, tuple(indices), values, accumulate),
}


def _to(self: Tensor, *args, dtype=None, device=None, copy: bool = False, non_blocking: bool = False) -> Tensor:
    """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
    for arg in args:
        if isinstance(arg, Tensor):
            dtype, device = arg.dtype, arg.device
        elif isinstance(arg, _dt.DType) or (isinstance(arg, str) and arg.split(":")[0] not in ("cpu", "cuda")):
            dtype = arg
        elif arg is not None:
            try:
                dtype = _dt.to_dtype(arg)
            except TypeError:
                device = arg
    out = self
    if device is not None and get_device(device) != self.device:
        out = ew.to_device(out, get_device(device), non_blocking)
    if dtype is not None:
        out = ew.to_dtype(out, dtype)
    if copy and out is self:
        out = sh.clone(self)
    return out


def _pin_memory(self: Tensor, device=None) -> Tensor:
    """A copy in page-locked host memory, from which ``to("cuda", non_blocking=True)`` copies asynchronously
    (``backend.gpu.pinned_copy``); the tensor itself when it is pinned already. PyTorch's errors for a tensor
    not on the CPU, and without a GPU."""
    if self.device.type != "cpu":
        raise RuntimeError(f"pin_memory: cannot pin a tensor on {self.device}: only dense CPU tensors can be pinned")
    if gpu.is_pinned(self._data):
        return self
    pinned = gpu.pinned_copy(self._data)
    if pinned is None:
        raise RuntimeError("pin_memory: Cannot access accelerator device when none is available.")
    return record(pinned, "pin_memory", (self,), lambda g, _: (g,))


def _new_filled(fill):
    def method(self, *size, dtype=None, device=None, requires_grad: bool = False):
        from chainrule import creation

        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else device
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        if fill is None:
            return creation.empty(size, dtype=dtype, device=device, requires_grad=requires_grad)
        return creation.full(size, fill, dtype=dtype, device=device, requires_grad=requires_grad)

    return method


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False):
    from chainrule import creation

    return creation.full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                         requires_grad=requires_grad)


def _new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False):
    from chainrule import creation

    return creation.tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _random_fill(sampler: str):
    """``uniform_(a, b)`` / ``normal_(mean, std)``: fill in place from the seeded generator."""
    def method(self, a: float = 0.0, b: float = 1.0, generator=None):
        from chainrule.random import default_generator

        gen = (generator or default_generator).numpy
        if sampler == "uniform":
            sample = gen.uniform(a, b, self.shape)
        else:
            sample = gen.normal(a, b, self.shape)
        return apply_inplace(self, f"{sampler}_", lambda t: wrap(t.xp.asarray(sample, dtype=t._data.dtype)))

    method.__name__ = f"{sampler}_"
    return method


def _sampling_methods() -> dict:
    """``bernoulli_``, ``exponential_``, ``random_``, ``multinomial``...: defined beside the random creation functions."""
    from chainrule.creation import tensor_sampling_methods

    return tensor_sampling_methods()


def _comparison(fn):
    """``==`` / ``!=`` against something that is no number, array or tensor (None, a string) is not
    an elementwise comparison: Python's fallback answers (``x == None`` is False, as in PyTorch)."""
    def method(self, other):
        if other is None or isinstance(other, str):
            return NotImplemented
        return fn(self, other)

    method.__name__ = f"__{fn.__name__}__"
    return method


def _operator_table() -> dict:
    rev = lambda fn: lambda self, other: fn(other, self)  # noqa: E731 (reflected operators)
    inplace = lambda name, fn: lambda self, other: apply_inplace(self, name, fn, other)  # noqa: E731
    return {
        "__add__": ew.add, "__radd__": rev(ew.add), "__sub__": ew.sub, "__rsub__": rev(ew.sub),
        "__mul__": ew.mul, "__rmul__": rev(ew.mul), "__truediv__": ew.div, "__rtruediv__": rev(ew.div),
        "__floordiv__": ew.floor_divide, "__rfloordiv__": rev(ew.floor_divide), "__mod__": ew.remainder,
        "__rmod__": rev(ew.remainder), "__pow__": ew.pow, "__rpow__": rev(ew.pow), "__matmul__": la.matmul,
        "__rmatmul__": rev(la.matmul), "__neg__": ew.neg, "__pos__": lambda self: self, "__abs__": ew.abs,
        "__invert__": ew.bitwise_not, "__and__": ew.bitwise_and, "__rand__": rev(ew.bitwise_and),
        "__or__": ew.bitwise_or, "__ror__": rev(ew.bitwise_or), "__xor__": ew.bitwise_xor,
        "__rxor__": rev(ew.bitwise_xor), "__lshift__": ew.bitwise_left_shift, "__rlshift__": rev(ew.bitwise_left_shift),
        "__rshift__": ew.bitwise_right_shift, "__rrshift__": rev(ew.bitwise_right_shift),
        "__ilshift__": inplace("bitwise_left_shift_", ew.bitwise_left_shift),
        "__irshift__": inplace("bitwise_right_shift_", ew.bitwise_right_shift),
        "__eq__": _comparison(ew.eq), "__ne__": _comparison(ew.ne),
        "__lt__": ew.lt, "__le__": ew.le,
        "__gt__": ew.gt, "__ge__": ew.ge, "__getitem__": ix.getitem, "__setitem__": setitem,
        "__iadd__": inplace("add_", ew.add), "__isub__": inplace("sub_", ew.sub),
        "__imul__": inplace("mul_", ew.mul), "__itruediv__": inplace("div_", ew.div),
        "__ipow__": inplace("pow_", ew.pow), "__imatmul__": inplace("matmul_", la.matmul),
        "__ifloordiv__": inplace("floor_divide_", ew.floor_divide), "__imod__": inplace("remainder_", ew.remainder),
        "__iand__": inplace("bitwise_and_", ew.bitwise_and), "__ior__": inplace("bitwise_or_", ew.bitwise_or),
        "__ixor__": inplace("bitwise_xor_", ew.bitwise_xor),
    }


def _conversions() -> dict:
    return {
        "to": _to, "float": lambda self: ew.to_dtype(self, _dt.float32),
        "double": lambda self: ew.to_dtype(self, _dt.float64), "half": lambda self: ew.to_dtype(self, _dt.float16),
        "long": lambda self: ew.to_dtype(self, _dt.int64), "int": lambda self: ew.to_dtype(self, _dt.int32),
        "bool": lambda self: ew.to_dtype(self, _dt.bool_), "type_as": lambda self, other: ew.to_dtype(self, other.dtype),
        "cpu": lambda self: _to(self, device="cpu"),
        "cuda": lambda self, device=None, non_blocking=False: _to(self, device="cuda", non_blocking=non_blocking),
        "pin_memory": _pin_memory, "is_pinned": lambda self, device=None: gpu.is_pinned(self._data),
        "view_as": lambda self, other: sh.reshape(self, other.shape),
        "reshape_as": lambda self, other: sh.reshape(self, other.shape),
        "new_zeros": _new_filled(0), "new_ones": _new_filled(1), "new_empty": _new_filled(None),
        "new_full": _new_full, "new_tensor": _new_tensor,
        "zero_": lambda self: INPLACE_OPS_TABLE["fill_"](self, 0),
        "uniform_": _random_fill("uniform"), "normal_": _random_fill("normal"),
        **_sampling_methods(),
        "masked_fill_": lambda self, mask, value: apply_inplace(self, "masked_fill_", ix.masked_fill, mask, value),
        "index_put_": lambda self, index, value: apply_inplace(self, "index_put_", ix.index_put, index, value),
        "scatter_add_": lambda self, dim, index, src: apply_inplace(self, "scatter_add_", ix.scatter_add, dim, index, src),
        "scatter_": lambda self, dim, index, src=None, value=None, *, reduce=None: apply_inplace(
            self, "scatter_", ix.scatter, dim, index, src, value, reduce=reduce),
        "index_add_": lambda self, dim, index, source, alpha=1: apply_inplace(
            self, "index_add_", ix.index_add, dim, index, source, alpha),
    }


def _stride(self: Tensor, dim: int | None = None):
    """Strides in elements, as PyTorch counts them (numpy counts bytes)."""
    strides = tuple(s // self._data.itemsize for s in self._data.strides)
    return strides if dim is None else strides[norm_dim(dim, self.ndim, "stride")]


def _type(self: Tensor, dtype=None):
    """``x.type()``: the legacy type name ('chainrule.FloatTensor', 'chainrule.cuda.FloatTensor' on the GPU);
    ``x.type(dtype)``: ``x.to(dtype)``."""
    if dtype is None:
        module = "chainrule" if self.device.type == "cpu" else f"chainrule.{self.device.type}"
        return f"{module}.{_LEGACY_TYPE_NAMES.get(self.dtype.name, self.dtype.name)}"
    return ew.to_dtype(self, dtype)


_LEGACY_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                      "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                      "uint8": "ByteTensor", "bool": "BoolTensor", "complex64": "ComplexFloatTensor",
                      "complex128": "ComplexDoubleTensor"}


def _is_nonzero(self: Tensor) -> bool:
    if self.numel() != 1:
        raise RuntimeError(f"is_nonzero: a tensor with {self.numel()} values is ambiguous; it needs exactly one")
    return bool(self._data.reshape(()))


def _new_legacy(self: Tensor, *args, **kwargs) -> Tensor:
    """``x.new(sizes...)`` (uninitialised, x's dtype) or ``x.new(data)``: the legacy constructor."""
    from chainrule import creation

    kwargs.setdefault("device", self.device)  # on x's device, as PyTorch's
    if len(args) == 1 and not isinstance(args[0], int):
        return creation.tensor(args[0], dtype=self.dtype, **kwargs)
    return creation.empty(args or (0,), dtype=self.dtype, **kwargs)


def _elementwise_python(op: str, fn, *others: Tensor):
    """``apply_`` / ``map_`` / ``map2_``: a Python function on each element (with the matching elements of
    ``others``, broadcast to this tensor), written in place; not recorded, as in PyTorch."""
    def method(self: Tensor) -> Tensor:
        if self._rg:
            raise RuntimeError(f"{op}: can't call a Python function on the elements of a tensor that requires grad")
        arrays = [self._data] + [self.xp.broadcast_to(o._data, self.shape) for o in others]
        values = [fn(*items) for items in zip(*(a.reshape(-1).tolist() for a in arrays))]
        self._data[...] = self.xp.asarray(values, dtype=self._data.dtype).reshape(self.shape)
        self._bump_version()
        return self
    return method


def _fill_diagonal_(self: Tensor, fill_value, wrap: bool = False) -> Tensor:
    """Fill the main diagonal (all dims equal, or a tall 2-d matrix, wrapping every columns+1 rows with ``wrap``)."""
    if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
        raise RuntimeError(f"fill_diagonal_: needs a 2-d tensor or all dimensions of equal length, got {self.shape}")
    mask = self.xp.zeros(self.shape, dtype=bool)
    if self.ndim == 2:
        rows, cols = self.shape
        limit = rows if wrap else min(rows, cols)
        positions = self.xp.arange(limit)
        positions = positions[positions % (cols + 1) < cols] if wrap else positions
        mask[positions, positions % (cols + 1) if wrap else positions] = True
    else:
        index = self.xp.arange(self.shape[0])
        mask[(index,) * self.ndim] = True
    return apply_inplace(self, "fill_diagonal_", ix.masked_fill, mask, fill_value)


def _sum_to_size(self: Tensor, *size) -> Tensor:
    """``x.sum_to_size(2, 1)`` or ``x.sum_to_size((2, 1))``: summed down to a shape it broadcasts from."""
    return rd.sum_to(self, size[0] if len(size) == 1 and not isinstance(size[0], int) else size)


def _functional():
    from chainrule.nn import functional  # the nn layer sits above the ops: imported when first called

    return functional


def _spectral():
    from chainrule import spectral  # above the ops, as nn is

    return spectral


def _queries_and_forms() -> dict:
    """Questions about a tensor's layout and kind, legacy spellings, and the view forms (see ops.view_forms)."""
    from chainrule.ops import statistics as st
    from chainrule.ops import view_forms as vf

    return {
        "ndimension": Tensor.dim, "nelement": Tensor.numel, "nbytes": property(lambda self: int(self._data.nbytes)),
        "itemsize": property(lambda self: self._data.itemsize), "stride": _stride,
        "is_contiguous": lambda self, memory_format=None: bool(self._data.flags.c_contiguous),
        "is_cpu": property(lambda self: self.device.type == "cpu"), "is_signed": lambda self: self.dtype.is_signed,
        "is_same_size": lambda self, other: tuple(self.shape) == tuple(other.shape), "is_nonzero": _is_nonzero,
        "get_device": lambda self: -1 if self.device.type == "cpu" else self.device.index or 0, "type": _type,
        "byte": lambda self: ew.to_dtype(self, _dt.uint8), "char": lambda self: ew.to_dtype(self, _dt.int8),
        "short": lambda self: ew.to_dtype(self, _dt.int16), "new": _new_legacy,
        "apply_": lambda self, fn: _elementwise_python("apply_", fn)(self),
        "map_": lambda self, other, fn: _elementwise_python("map_", fn, other)(self),
        "map2_": lambda self, x, y, fn: _elementwise_python("map2_", fn, x, y)(self),
        "fill_diagonal_": _fill_diagonal_, "arccos": ew.acos, "arcsin": ew.asin, "arctan": ew.atan,
        "sum_to_size": _sum_to_size,
        **{f"{name}_": inplace_view(f"{name}_", getattr(sh, name)) for name in (
            "squeeze", "unsqueeze", "t", "transpose", "swapaxes")},
        "swapdims_": inplace_view("swapdims_", sh.transpose),
        "cfloat": lambda self: ew.to_dtype(self, _dt.complex64), "cdouble": lambda self: ew.to_dtype(self, _dt.complex128),
        "hardshrink": lambda self, lambd=0.5: _functional().hardshrink(self, lambd),
        "prelu": lambda self, weight: _functional().prelu(self, weight),
        "stft": lambda self, *args, **kwargs: _spectral().stft(self, *args, **kwargs),
        "istft": lambda self, *args, **kwargs: _spectral().istft(self, *args, **kwargs),
        "nanmedian": st.nanmedian, "histogram": st.histogram,
        **{name: getattr(vf, name) for name in (
            "moveaxis", "ravel", "narrow_copy", "split_with_sizes", "unsafe_chunk", "unsafe_split",
            "unsafe_split_with_sizes", "unfold", "select_scatter", "slice_scatter", "diagonal_scatter")},
    }


# out-of-place methods whose in-place form ``name_`` PyTorch has: bound as ``apply_inplace`` of the method
# (a name whose method does not exist, or whose in-place form is bound elsewhere, is skipped)
_INPLACE_FROM_METHODS = (
    "absolute", "acos", "acosh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "asin",
    "asinh", "atan", "atan2", "atanh", "bitwise_and", "bitwise_left_shift", "bitwise_not", "bitwise_or",
    "bitwise_right_shift", "bitwise_xor", "clamp_max", "clamp_min", "copysign", "cos", "cosh", "cumprod", "cumsum",
    "deg2rad", "digamma", "divide", "eq", "erf", "erfc", "erfinv", "exp2", "expm1", "fix", "float_power", "fmod",
    "frac", "gcd", "ge", "greater", "greater_equal", "gt", "heaviside", "hypot", "i0", "lcm", "ldexp", "le", "less",
    "less_equal", "lgamma", "log10", "log1p", "log2", "logical_and", "logical_not", "logical_or", "logical_xor",
    "logit", "lt", "multiply", "mvlgamma", "ne", "negative", "nextafter", "not_equal", "polygamma", "rad2deg",
    "remainder", "rsqrt", "sgn", "sin", "sinc", "sinh", "subtract", "tan", "trunc", "true_divide", "xlogy", "tril",
    "triu", "renorm", "floor_divide", "conj_physical", "igamma", "igammac", "masked_scatter", "index_fill",
    "index_copy", "put", "scatter_reduce", "index_reduce", "addmm", "addmv", "addr", "addbmm", "baddbmm",
)


def _inplace_forms() -> dict:
    return {f"{name}_": inplace_method(f"{name}_", getattr(Tensor, name))
            for name in _INPLACE_FROM_METHODS if hasattr(Tensor, name) and not hasattr(Tensor, f"{name}_")}


INPLACE_OPS_TABLE = inplace_ops()


def bind() -> None:
    for module, names in _SAME_NAME.items():
        for name in names:
            setattr(Tensor, name, getattr(module, name))
    for name, fn in _ALIASES.items():
        setattr(Tensor, name, fn)
    for table in (_operator_table(), _conversions(), INPLACE_OPS_TABLE, _queries_and_forms()):
        for name, fn in table.items():
            setattr(Tensor, name, fn)
    for name, fn in _inplace_forms().items():  # last: from the methods bound above
        setattr(Tensor, name, fn)
    for name, fn in list(vars(Tensor).items()):  # x.max(axis=0), x.softmax(axis=-1): see ops._spellings
        if callable(fn) and not name.startswith("_") and name not in ("size", "stride"):
            setattr(Tensor, name, with_numpy_spellings(fn))
    Tensor.T = property(sh.T)
    Tensor.mT = property(sh.mT)
    Tensor.real = property(cx.real)
    Tensor.imag = property(cx.imag)
    Tensor.mH = Tensor.H = property(lambda self: sh.mT(self).conj_physical())
    Tensor.adjoint = lambda self: sh.mT(self).conj_physical()
    Tensor.__hash__ = object.__hash__  # defining __eq__ above must not make tensors unhashable


bind()
