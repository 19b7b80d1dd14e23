"""Complex numbers: the parts of a complex tensor (``real``, ``imag``, ``angle``, ``abs`` is elementwise's),
conjugation, and building complex tensors (``complex``, ``polar``, ``view_as_complex``/``view_as_real``).

Gradients follow PyTorch's convention: for a real loss L and a complex tensor z, ``z.grad`` is
dL/dRe(z) + i dL/dIm(z). So a holomorphic f(z) sends ``g * conj(f'(z))`` back (elementwise's rules do
this), ``real`` sends g, ``imag`` sends i g, and a real input of a complex operation receives the real
part of its complex gradient (the engine casts it).

Unlike PyTorch, ``real``, ``imag``, ``view_as_real`` and ``view_as_complex`` return copies, not views
sharing memory; ``conj`` conjugates at once (PyTorch sets a lazy conjugate bit), so ``is_conj`` is
always False and ``resolve_conj`` returns its input.
"""

from __future__ import annotations

from chainrule import dtypes as _dt
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, binary_operands, describe, record, tensor_operand
from chainrule.ops.elementwise import _apply2, conj_physical, cos, eq, sin, where

__all__ = ["real", "imag", "conj", "conj_physical", "resolve_conj", "resolve_neg", "is_conj", "is_complex",
           "angle", "view_as_real", "view_as_complex", "complex", "polar"]


def is_complex(a: Tensor) -> bool:
    return tensor_operand(a, "is_complex").dtype.is_complex


def is_conj(a: Tensor) -> bool:
    """Always False: chainrule conjugates at once instead of setting PyTorch's lazy conjugate bit."""
    return False


def conj(a) -> Tensor:
    """The complex conjugate (a real tensor is returned as it is)."""
    return conj_physical(a)


def resolve_conj(a) -> Tensor:
    return tensor_operand(a, "resolve_conj")


def resolve_neg(a) -> Tensor:
    return tensor_operand(a, "resolve_neg")


def real(a) -> Tensor:
    """The real part: a float tensor (a real tensor is returned as it is)."""
    a = tensor_operand(a, "real")
    if not a.dtype.is_complex:
        return a
    return record(a._data.real.copy(), "real", (a,), _real_rule)


def _real_rule(g, _):
    return (g,)  # the engine casts it to the input's complex dtype


def imag(a) -> Tensor:
    """The imaginary part of a complex tensor, as a float tensor."""
    a = tensor_operand(a, "imag")
    if not a.dtype.is_complex:
        raise RuntimeError(f"imag: not implemented for tensors with non-complex dtypes ({describe(a)})")
    return record(a._data.imag.copy(), "imag", (a,), _imag_rule)


def _imag_rule(g, _):
    return (g * 1j,)


def angle(a) -> Tensor:
    """The argument in (-pi, pi]: atan2(imag, real); for a real tensor pi where negative, else 0.
    Its gradient is g * i z / |z|^2, 0 at z = 0 (as PyTorch)."""
    a = tensor_operand(a, "angle")
    xp = xp_of(a._data)
    if not a.dtype.is_complex:
        out = xp.where(a._data < 0, xp.pi, 0.0).astype(_float_dtype(a).np)
        out = xp.where(xp.isnan(a._data), a._data, out) if a.dtype.is_floating_point else out
        return record(out, "angle", (a,), lambda g, _: (g * 0.0,))
    return record(xp.angle(a._data), "angle", (a,), _angle_rule, (a,), args=(a,))


def _angle_rule(g, _, z: Tensor):
    size2 = z.real.square() + z.imag.square()
    at_zero = eq(size2, 0)
    return (where(at_zero, 0.0, g * z * 1j / where(at_zero, 1.0, size2)),)


def _float_dtype(a: Tensor) -> _dt.DType:
    return a.dtype if a.dtype.is_floating_point else _dt.get_default_dtype()


def view_as_real(a) -> Tensor:
    """A complex tensor of shape S as a float tensor of shape S + (2,): (real, imag) pairs."""
    a = tensor_operand(a, "view_as_real")
    if not a.dtype.is_complex:
        raise RuntimeError(f"view_as_real: only supported for complex tensors, got {describe(a)}")
    xp = xp_of(a._data)
    out = xp.stack([a._data.real, a._data.imag], axis=-1)
    return record(out, "view_as_real", (a,), lambda g, _: (view_as_complex(g),))


def view_as_complex(a) -> Tensor:
    """A float tensor of shape S + (2,) as a complex tensor of shape S (the last dim is (real, imag))."""
    a = tensor_operand(a, "view_as_complex")
    if a.dtype not in (_dt.float32, _dt.float64):
        raise RuntimeError(f"view_as_complex: only float32 and float64 tensors are supported, got {describe(a)}")
    if a.ndim == 0 or a.shape[-1] != 2:
        raise RuntimeError(f"view_as_complex: Tensor must have a last dimension of size 2, got {describe(a)}")
    out = (a._data[..., 0] + 1j * a._data[..., 1]).astype(_dt.to_complex(a.dtype).np, copy=False)
    return record(out, "view_as_complex", (a,), lambda g, _: (view_as_real(g),))


def complex(real, imag) -> Tensor:  # noqa: A001  (torch.complex)
    """The complex tensor real + i imag; both float tensors of one dtype, broadcast together."""
    real, imag = _parts(real, imag, "complex")
    real, imag = binary_operands(real, imag, "complex")
    out = _apply2("complex", _complex_array, real, imag).astype(_dt.to_complex(real.dtype).np, copy=False)
    return record(out, "complex", (real, imag), _complex_rule)


def _parts(a, b, op: str) -> tuple[Tensor, Tensor]:
    """Two float32 or two float64 tensors, as PyTorch's complex and polar require."""
    a, b = tensor_operand(a, op), tensor_operand(b, op)
    for part in (a, b):
        if part.dtype not in (_dt.float32, _dt.float64):
            raise RuntimeError(f"{op}: expected both inputs to be float32 or float64 tensors, got "
                               f"{describe(a)} and {describe(b)}")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{op}: expected both inputs of the same dtype, got {describe(a)} and {describe(b)}; "
                           "convert one with .to(dtype)")
    return a, b


def _complex_array(re, im):
    return re + 1j * im


def _complex_rule(g, _):
    return real(g), imag(g)


def polar(abs, angle) -> Tensor:  # noqa: A002  (PyTorch's argument names)
    """abs * (cos(angle) + i sin(angle)); gradients by composition."""
    abs, angle = _parts(abs, angle, "polar")
    return complex(abs * cos(angle), abs * sin(angle))
