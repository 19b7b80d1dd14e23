"""Tensor dtypes (``cr.float32`` ...) and PyTorch's type-promotion rules.

A :class:`DType` wraps the backend's dtype; ``Tensor.dtype`` returns one of the objects below, so
``x.dtype == cr.float32`` and ``x.dtype is cr.float32`` both hold.
"""

from __future__ import annotations

import numbers

from chainrule.backend import np

__all__ = [
    "DType", "float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64", "uint8",
    "bool_", "get_default_dtype", "get_default_complex_dtype", "set_default_dtype", "to_dtype", "result_type", "scalar_dtype",
]


class DType:
    __slots__ = ("name", "np", "is_floating_point", "is_complex", "is_signed", "itemsize", "_kind")

    def __init__(self, name: str, np_dtype, kind: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self._kind = kind  # 0 bool, 1 integer, 2 floating, 3 complex: the order type promotion follows
        self.is_floating_point = kind == 2
        self.is_complex = kind == 3
        self.is_signed = self.np.kind in "ifc"
        self.itemsize = self.np.itemsize

    def __repr__(self) -> str:
        return f"chainrule.{self.name}"

    def __reduce__(self):
        return (to_dtype, (self.name,))


float16 = DType("float16", "float16", 2)
float32 = DType("float32", "float32", 2)
float64 = DType("float64", "float64", 2)
uint8 = DType("uint8", "uint8", 1)
int8 = DType("int8", "int8", 1)
int16 = DType("int16", "int16", 1)
int32 = DType("int32", "int32", 1)
int64 = DType("int64", "int64", 1)
bool_ = DType("bool", "bool", 0)
complex64 = DType("complex64", "complex64", 3)
complex128 = DType("complex128", "complex128", 3)

_ALL = (float16, float32, float64, uint8, int8, int16, int32, int64, bool_, complex64, complex128)
_BY_NP = {d.np: d for d in _ALL}
_BY_NAME = {d.name: d for d in _ALL}
_BY_NAME.update(half=float16, float=float32, double=float64, long=int64, int=int32, cfloat=complex64,
                cdouble=complex128)
# a floating dtype's complex counterpart (its real and imaginary parts) and back; float16 has none here
# (PyTorch's complex32 is experimental), so it takes complex64
_COMPLEX_OF = {float16: complex64, float32: complex64, float64: complex128}
_REAL_OF = {complex64: float32, complex128: float64}

_default_float = [float32]


def get_default_dtype() -> DType:
    return _default_float[0]


def set_default_dtype(dtype) -> None:
    dtype = to_dtype(dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes can be the default, got {dtype}")
    _default_float[0] = dtype


def get_default_complex_dtype() -> DType:
    """The complex dtype of Python complex numbers: complex64 with float32 the default, else complex128."""
    return _COMPLEX_OF[get_default_dtype()]


def to_complex(dtype: DType) -> DType:
    """The complex dtype holding ``dtype``'s values: float64 -> complex128, complex stays, others complex64."""
    if dtype.is_complex:
        return dtype
    return _COMPLEX_OF.get(dtype, complex64) if dtype.is_floating_point else get_default_complex_dtype()


def to_real(dtype: DType) -> DType:
    """The real dtype of a complex dtype's parts (complex64 -> float32); real dtypes are their own."""
    return _REAL_OF.get(dtype, dtype)


def from_np(np_dtype) -> DType:
    """The DType of a backend dtype; refuses dtypes chainrule does not support."""
    try:
        return _BY_NP[np_dtype]
    except KeyError:
        pass
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        names = ", ".join(d.name for d in _ALL)
        raise TypeError(f"dtype {np_dtype} is not supported by chainrule (supported: {names})") from None


def to_dtype(dtype) -> DType:
    """Accept a DType, a name ('float32'), a numpy dtype or a Python type (``float`` is float64,
    ``int`` int64, ``bool`` bool, as in PyTorch)."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str):
        found = _BY_NAME.get(dtype.removeprefix("chainrule.").removeprefix("torch."))
        if found is None:
            raise TypeError(f"unknown dtype name {dtype!r}; known: {sorted(_BY_NAME)}")
        return found
    if dtype is float:
        return float64
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    return from_np(dtype)


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar gets on its own, as in ``cr.tensor(3.0)``."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    if isinstance(value, complex):
        return get_default_complex_dtype()
    return get_default_dtype()


def _promote_kinds(a: DType, b: DType) -> DType:
    """Promotion of two tensors of equal rank class: the higher kind wins outright (int32 + float16 ->
    float16, unlike numpy's float64); within a kind the wider type wins (uint8 + int8 -> int16)."""
    if a is b:
        return a
    if a._kind != b._kind:
        high, low = (a, b) if a._kind > b._kind else (b, a)
        if high.is_complex and low.is_floating_point:  # float64 + complex64 -> complex128, as in PyTorch
            return _complex_of_wider(high, low)
        return high
    return from_np(np.promote_types(a.np, b.np))


def _complex_of_wider(c: DType, f: DType) -> DType:
    return complex128 if complex128 in (c, _COMPLEX_OF[f]) else complex64


def result_type(a: DType, a_dim: int, b: DType, b_dim: int) -> DType:
    """PyTorch's promotion of two tensors: dimensioned tensors outrank 0-d ones within a kind.

    A 0-d tensor only decides the dtype when it is of a higher kind (bool < integer < float), and
    then it is its own dtype (int64 tensor + 0-d float64 -> float64, as in PyTorch).
    """
    if a is b:
        return a
    if (a_dim == 0) == (b_dim == 0):
        return _promote_kinds(a, b)
    big, small = (a, b) if a_dim else (b, a)
    if small.is_complex and big.is_floating_point:  # float32 tensor + 0-d complex128 -> complex64
        return _COMPLEX_OF[big]
    if small._kind > big._kind:
        return small
    if small._kind == big._kind:
        return big
    return big


def scalar_result_type(tensor_dtype: DType, value) -> DType:
    """The dtype of ``tensor op scalar`` for a Python (or numpy) number: the tensor's, unless the
    number is of a higher kind (an int with a bool tensor gives int64, a float with an integer
    tensor the default float)."""
    if isinstance(value, (bool, np.bool_)):
        return tensor_dtype
    if isinstance(value, numbers.Integral):
        return int64 if tensor_dtype is bool_ else tensor_dtype
    if isinstance(value, numbers.Real):
        return tensor_dtype if tensor_dtype._kind >= 2 else get_default_dtype()
    if isinstance(value, numbers.Complex):
        return to_complex(tensor_dtype)
    raise TypeError(f"expected a number, got {type(value).__name__}")
