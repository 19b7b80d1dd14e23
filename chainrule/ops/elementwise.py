"""Elementwise primitives: arithmetic, unary math, activations, comparisons.

Each primitive is its forward on backend arrays and its backward rule ``rule(g, out)`` side by side.
Binary operations broadcast; the engine sums each gradient back to its input's shape. A Python number
as an operand takes a scalar path (no tensor is made for it, nothing is saved for it).

Policy for kinks and ties (tested): relu'(0) = 0, leaky_relu'(0) = negative_slope, abs'(0) = 0,
clamp passes the gradient at its bounds, maximum/minimum split the gradient evenly between tied
inputs, sign/floor/ceil/round have zero gradient.
"""

from __future__ import annotations

import math
from numbers import Number

from chainrule import dtypes as _dt
from chainrule.backend import gpu, kernels, special, xp_of
from chainrule.ops._helpers import (
    Tensor,
    binary_operands,
    describe,
    float_operand,
    record,
    refuse_complex,
    scalar_operand,
    tensor_operand,
    untracked,
)

__all__ = [
    "add", "sub", "mul", "div", "true_divide", "neg", "pow", "abs", "exp", "log", "log1p", "expm1", "log2",
    "log10", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu",
    "silu", "softplus", "clamp", "clip", "maximum", "minimum", "where", "sign", "reciprocal", "square",
    "erf", "floor", "ceil", "round", "trunc", "remainder", "floor_divide", "eq", "ne", "lt", "le", "gt",
    "ge", "logical_and", "logical_or", "logical_not", "logical_xor", "isnan", "isinf", "isfinite",
    "to_dtype", "to_device", "atan2", "lerp", "mish", "hardtanh", "relu6", "logit", "sinh", "cosh", "asin", "acos", "atan",
    "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift",
    "fmod", "nan_to_num", "addcmul", "addcdiv", "conj_physical", "sgn",
]


_PYTHON_NUMBERS = frozenset((int, float, bool))


def _is_number(x) -> bool:
    """A plain Python number: it takes the scalar path and adopts the tensor's dtype. numpy scalars are not:
    they become 0-d tensors, whose dtype then follows PyTorch's promotion (np.float64 never up-casts float32)."""
    return type(x) in _PYTHON_NUMBERS


def _broadcast_error(op: str, a: Tensor, b: Tensor) -> RuntimeError:
    return RuntimeError(
        f"{op}: the shapes {tuple(a.shape)} ({a.dtype}) and {tuple(b.shape)} ({b.dtype}) cannot be "
        "broadcast together: each dimension, compared from the right, must be equal or 1"
    )


def _apply2(op: str, fn, a: Tensor, b: Tensor):
    try:
        return fn(a._data, b._data)
    except ValueError:
        raise _broadcast_error(op, a, b) from None


# ----- dtype conversion -----------------------------------------------------------------------------

def to_dtype(a: Tensor, dtype) -> Tensor:
    """``a`` converted to ``dtype``; differentiable (the gradient is converted back)."""
    dtype = _dt.to_dtype(dtype)
    if a._data.dtype == dtype.np:
        return a
    data = a._data
    if data.dtype.kind == "c" and not dtype.is_complex:
        data = data.real  # complex to real keeps the real part, as PyTorch does (numpy would warn)
    if a._rg and dtype._kind < 2:
        return untracked(data.astype(dtype.np), a, "to")  # integer results never carry a graph
    return record(data.astype(dtype.np), "to", (a,), lambda g, out: (g.to(a.dtype),))


def to_device(a: Tensor, device, non_blocking: bool = False) -> Tensor:
    """``a`` copied to ``device`` (asynchronously from pinned memory with ``non_blocking``, see
    ``backend.gpu.copy_to_device``); differentiable (the gradient is copied back)."""
    source = a.device
    moved = gpu.copy_to_device(a._data, device, non_blocking)
    return record(moved, "to_device", (a,), lambda g, _: (to_device(g, source),))


def conj_physical(a) -> Tensor:
    """The complex conjugate (a real tensor is its own); the gradient is conjugated back."""
    a = tensor_operand(a, "conj_physical")
    if a._data.dtype.kind != "c":
        return a
    return record(a._data.conj(), "conj", (a,), _conj_rule)


def _conj_rule(g, out):
    return (conj_physical(g),)


def _conj(t: Tensor) -> Tensor:
    """conj(t) for the rules of holomorphic functions: PyTorch's gradient of a real loss with respect to a
    complex z is dL/dRe(z) + i dL/dIm(z), so a rule multiplies the incoming gradient by conj(f'(z))."""
    return conj_physical(t) if t._data.dtype.kind == "c" else t


# ----- arithmetic -----------------------------------------------------------------------------------

def _grad_g(g, out):
    return (g,)


def _grad_neg_g(g, out):
    return (-g,)


def _result_dtype(a, b) -> _dt.DType:
    """The dtype PyTorch gives ``a op b`` (tensors or numbers)."""
    if not isinstance(a, Tensor):
        a, b = b, a
    if not isinstance(b, Tensor):
        return _dt.scalar_result_type(a.dtype, b)
    return _dt.result_type(a.dtype, a.ndim, b.dtype, b.ndim)


def _check_alpha(op: str, a, b, alpha) -> None:
    """A float alpha would be truncated on an integral result: PyTorch refuses it, and so do we."""
    if isinstance(alpha, float) and not _result_dtype(a, b).is_floating_point:
        raise RuntimeError(
            f"{op}: for integral input tensors, argument alpha must not be a floating point number "
            f"(got alpha={alpha} for a {_result_dtype(a, b)} result); convert the inputs to float first"
        )


def add(a, b, alpha: Number = 1) -> Tensor:
    """``a + alpha * b``, broadcasting."""
    if alpha == 1 and isinstance(a, Tensor) and isinstance(b, Tensor):
        x, y = a._data, b._data
        if x.dtype is y.dtype and type(x) is type(y):  # the common case, without the operand checks below
            try:
                out = x + y
            except ValueError:
                raise _broadcast_error("add", a, b) from None
            return record(out, "add", (a, b), _grad_g_g)
    if alpha != 1:
        _check_alpha("add", a, b, alpha)
        b = mul(b, alpha)
    if _is_number(b) and isinstance(a, Tensor):
        a = scalar_operand(a, b, "add")
        return record(a._data + b, "add", (a,), _grad_g)
    if _is_number(a) and isinstance(b, Tensor):
        return add(b, a)
    a, b = binary_operands(a, b, "add")
    out = _apply2("add", _np_add, a, b)
    return record(out, "add", (a, b), _grad_g_g)


def _grad_g_g(g, out):
    return g, g


def _np_add(x, y):
    return x + y


def _np_sub(x, y):
    return x - y


def _np_mul(x, y):
    return x * y


def _np_div(x, y):
    return x / y



def sub(a, b, alpha: Number = 1) -> Tensor:
    """``a - alpha * b``, broadcasting; bool operands are refused, as in PyTorch."""
    for x in (a, b):
        if isinstance(x, bool) or (isinstance(x, Tensor) and x._data.dtype.kind == "b"):
            raise RuntimeError(
                "sub: subtraction, the `-` operator, with a bool tensor is not supported; to invert a mask "
                "use ~ or logical_not(), or convert to an integer or float dtype first"
            )
    if alpha != 1:
        _check_alpha("sub", a, b, alpha)
        b = mul(b, alpha)
    if _is_number(b) and isinstance(a, Tensor):
        a = scalar_operand(a, b, "sub")
        return record(a._data - b, "sub", (a,), _grad_g)
    if _is_number(a) and isinstance(b, Tensor):
        b = scalar_operand(b, a, "sub")
        return record(a - b._data, "rsub", (b,), _grad_neg_g)
    a, b = binary_operands(a, b, "sub")
    out = _apply2("sub", _np_sub, a, b)
    return record(out, "sub", (a, b), _sub_rule, fast=_sub_fast)


def _sub_rule(g, out):
    return g, -g


def _sub_fast(g, out):
    return g, -g


def mul(a, b) -> Tensor:
    """``a * b``, broadcasting."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        x, y = a._data, b._data
        if x.dtype is y.dtype and type(x) is type(y):  # the common case, without the operand checks below
            try:
                out = x * y
            except ValueError:
                raise _broadcast_error("mul", a, b) from None
            operands = (a, b)
            if x.dtype.kind == "c":
                return record(out, "mul", operands, _mul_complex_rule, operands, args=operands)
            return record(out, "mul", operands, _mul_rule, operands, args=operands, fast=_mul_fast)
    if _is_number(b) and isinstance(a, Tensor):
        a = scalar_operand(a, b, "mul")
        return record(a._data * b, "mul", (a,), _mul_number_rule, args=(b,), fast=_mul_number_rule)
    if _is_number(a) and isinstance(b, Tensor):
        return mul(b, a)
    a, b = binary_operands(a, b, "mul")
    out = _apply2("mul", _np_mul, a, b)
    operands = (a, b)
    if out.dtype.kind == "c":
        return record(out, "mul", operands, _mul_complex_rule, operands, args=operands)
    return record(out, "mul", operands, _mul_rule, operands, args=operands, fast=_mul_fast)


def _mul_rule(g, _, a: Tensor, b: Tensor):
    return (g * b if a._rg else None,
            g * a if b._rg else None)


def _mul_fast(g, _, a: Tensor, b: Tensor):
    return (g * b._data if a._rg else None,
            g * a._data if b._rg else None)


def _mul_complex_rule(g, _, a: Tensor, b: Tensor):
    return (g * _conj(b) if a._rg else None,
            g * _conj(a) if b._rg else None)


def _mul_number_rule(g, _, number):
    return (g * number,)


def div(a, b, rounding_mode: str | None = None) -> Tensor:
    """True division ``a / b`` (integers give floats), or ``rounding_mode='floor'``/``'trunc'``."""
    if rounding_mode is not None:
        return _rounded_div(a, b, rounding_mode)
    if _is_number(b) and isinstance(a, Tensor):
        a = float_operand(a, "div")
        return record(a._data / b, "div", (a,), lambda g, _: (g / b,))
    if _is_number(a) and isinstance(b, Tensor):
        b = float_operand(b, "div")
        # d(c / b)/db = -c / b**2 = -out / b
        return record(a / b._data, "rdiv", (b,), lambda g, out: (-(g * _conj(out / b)),), (b,), True)
    a, b = binary_operands(a, b, "div")
    if a._data.dtype.kind != "f":
        a, b = float_operand(a, "div"), float_operand(b, "div")
    out = _apply2("div", _np_div, a, b)

    def rule(g, _):
        return (g / _conj(b) if a._rg else None,
                -(g * _conj(a / (b * b))) if b._rg else None)

    return record(out, "div", (a, b), rule, (a, b))


true_divide = div


def _rounded_div(a, b, mode: str) -> Tensor:
    a, b = binary_operands(a, b, "div")
    xp = xp_of(a._data)
    if mode == "floor":
        out = xp.floor_divide(a._data, b._data) if a._data.dtype.kind != "f" else xp.floor(a._data / b._data)
    elif mode == "trunc":
        out = xp.trunc(a._data / b._data).astype(a._data.dtype) if a._data.dtype.kind != "f" else xp.trunc(a._data / b._data)
    else:
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {mode!r}")
    return _zero_grad_result(out, "div", (a, b))


def floor_divide(a, b) -> Tensor:
    return _rounded_div(a, b, "floor")


def remainder(a, b) -> Tensor:
    """Python-style remainder (sign of the divisor); d/da = 1, d/db = -floor(a / b)."""
    a, b = binary_operands(a, b, "remainder")
    xp = xp_of(a._data)
    out = _apply2("remainder", xp.remainder, a, b)
    return record(out, "remainder", (a, b),
                  lambda g, _: (g, -(g * floor(a / b))), (a, b))


def fmod(a, b) -> Tensor:
    """C-style remainder (sign of the dividend); d/da = 1, d/db = -trunc(a / b)."""
    a, b = binary_operands(a, b, "fmod")
    xp = xp_of(a._data)
    out = _apply2("fmod", xp.fmod, a, b)
    return record(out, "fmod", (a, b),
                  lambda g, _: (g, -(g * trunc(a / b))), (a, b))


def neg(a) -> Tensor:
    a = tensor_operand(a, "neg")
    if a._data.dtype.kind == "b":
        raise RuntimeError("neg: negation, the `-` operator, on a bool tensor is not supported; use ~ or logical_not")
    return record(-a._data, "neg", (a,), _grad_neg_g)


def pow(a, exponent) -> Tensor:
    """``a ** exponent``: tensor or number base and exponent, broadcasting."""
    if _is_number(exponent) and isinstance(a, Tensor):
        return _pow_scalar_exponent(a, exponent)
    if _is_number(a) and isinstance(exponent, Tensor):
        return _pow_scalar_base(a, exponent)
    a, b = binary_operands(a, exponent, "pow")
    if a._data.dtype.kind not in "fc" and bool((b._data < 0).any()):
        _refuse_negative_integer_power(a, "tensor with negative values")
    xp = xp_of(a._data)
    out = _apply2("pow", xp.power, a, b)

    if out.dtype.kind == "c":  # holomorphic in both: no special points to mask
        return record(out, "pow", (a, b), _complex_pow_rule, (a, b), keep_output=True, args=(a, b))

    def rule(g, out):
        grad_a = grad_b = None
        if a._rg:
            # b * a**(b - 1), taken as 0 where b == 0 (not 0 * inf at a == 0), as PyTorch does
            grad_a = where(eq(b, 0), 0.0, g * b * a ** (b - 1))
        if b._rg:
            # d(a**b)/db = a**b log(a), taken as 0 where a == 0 and b >= 0 (the limit), as PyTorch does
            grad_b = g * where(logical_and(eq(a, 0), ge(b, 0)), 0.0, out * log(a))
        return grad_a, grad_b

    return record(out, "pow", (a, b), rule, (a, b), keep_output=True)


def _complex_pow_rule(g, out, a: Tensor, b: Tensor):
    return (g * _conj(b * a ** (b - 1)) if a._rg else None,
            g * _conj(out * log(a)) if b._rg else None)


def _refuse_negative_integer_power(a: Tensor, exponent) -> None:
    raise RuntimeError(
        f"pow: integers to negative integer powers are not allowed (base {describe(a)}, exponent {exponent}); "
        "convert the base to float first"
    )


def _pow_scalar_exponent(a: Tensor, c: Number) -> Tensor:
    if a._data.dtype.kind not in "fc":
        if isinstance(c, float):
            a = float_operand(a, "pow")
        elif c < 0:
            _refuse_negative_integer_power(a, c)
        elif a._data.dtype.kind == "b":
            if isinstance(c, bool):  # bool ** True is the tensor, bool ** False all True
                return untracked(a._data | (not c), a)
            a = a.to(_dt.int64)  # bool ** int is int64, as in PyTorch
    if c == 2:
        return square(a)
    data = _power(a._data, c)

    def rule(g, _):
        if c == 0:
            return (g * 0.0,)
        if c == 1:
            return (g,)
        return (g * _conj(a ** (c - 1) * c),)

    return record(data, "pow", (a,), rule, (a,))


def _power(x, c):
    """x ** c, with the common exponents done by multiplication or sqrt: numpy's general power is
    several times slower, and these give the same floats as PyTorch's special cases."""
    xp = xp_of(x)
    if c == 3:
        return x * x * x
    if c == 0.5 and x.dtype.kind == "f":
        return xp.sqrt(x)
    if c == -1 and x.dtype.kind == "f":
        return 1.0 / x
    return x ** c


def _pow_scalar_base(c: Number, b: Tensor) -> Tensor:
    b = scalar_operand(b, c, "pow")  # an int base keeps an integer exponent tensor integral
    if b._data.dtype.kind not in "fc" and bool((b._data < 0).any()):
        _refuse_negative_integer_power(b, "tensor with negative values")
    xp = xp_of(b._data)
    out = xp.power(xp.asarray(c, dtype=b._data.dtype), b._data)
    log_c = math.log(c) if c > 0 else (float("-inf") if c == 0 else float("nan"))
    return record(out, "rpow", (b,), lambda g, out: (g * _conj(out) * log_c,), keep_output=True)


def square(a) -> Tensor:
    a = tensor_operand(a, "square")
    if a._data.dtype.kind == "b":
        a = a.to(_dt.int64)  # as PyTorch: bool ** 2 is int64
    return record(a._data * a._data, "square", (a,), lambda g, _: (g * _conj(a) * 2.0,), (a,))


def reciprocal(a) -> Tensor:
    a = float_operand(a, "reciprocal")
    return record(1.0 / a._data, "reciprocal", (a,), lambda g, out: (-(g * _conj(out.square())),), keep_output=True)


def abs(a) -> Tensor:
    a = tensor_operand(a, "abs")
    xp = xp_of(a._data)
    return record(xp.abs(a._data), "abs", (a,), lambda g, _: (g * sgn(a),), (a,))


def sgn(a) -> Tensor:
    """a / |a| (0 at 0): sign for real tensors, the unit phase of complex ones."""
    a = tensor_operand(a, "sgn")
    if a._data.dtype.kind != "c":
        return sign(a)
    size = abs(a)
    at_zero = eq(size, 0)
    return where(at_zero, 0.0, a / where(at_zero, 1.0, size))


def sign(a) -> Tensor:
    a = tensor_operand(a, "sign")
    if a._data.dtype.kind == "c":
        raise RuntimeError(f"sign: not supported for complex input ({describe(a)}); use sgn, which gives a / |a|")
    if a._data.dtype.kind == "b":
        return untracked(a._data.copy(), a)  # sign(True) = True
    return _zero_grad_result(xp_of(a._data).sign(a._data), "sign", (a,))


def _zero_grad_result(out, op: str, inputs: tuple) -> Tensor:
    """A result whose gradient is zero everywhere (piecewise-constant functions)."""
    def rule(g, _):
        return tuple(g * 0.0 for _ in inputs)

    if out.dtype.kind != "f":
        return untracked(out, inputs[0])
    return record(out, op, inputs, rule)


def floor(a) -> Tensor:
    a = tensor_operand(a, "floor")
    refuse_complex("floor", a)
    return _zero_grad_result(xp_of(a._data).floor(a._data), "floor", (a,))


def ceil(a) -> Tensor:
    a = tensor_operand(a, "ceil")
    refuse_complex("ceil", a)
    return _zero_grad_result(xp_of(a._data).ceil(a._data), "ceil", (a,))


def trunc(a) -> Tensor:
    a = tensor_operand(a, "trunc")
    refuse_complex("trunc", a)
    return _zero_grad_result(xp_of(a._data).trunc(a._data), "trunc", (a,))


def round(a, decimals: int = 0) -> Tensor:
    """Round half to even, as PyTorch does."""
    a = tensor_operand(a, "round")
    refuse_complex("round", a)
    return _zero_grad_result(xp_of(a._data).round(a._data, decimals), "round", (a,))


# ----- unary math -----------------------------------------------------------------------------------

def exp(a) -> Tensor:
    a = float_operand(a, "exp")
    return record(kernels.exp(a._data), "exp", (a,), lambda g, out: (g * _conj(out),), keep_output=True)


def expm1(a) -> Tensor:
    a = float_operand(a, "expm1")
    return record(xp_of(a._data).expm1(a._data), "expm1", (a,),
                  lambda g, out: (g * _conj(out + 1.0),), keep_output=True)


def log(a) -> Tensor:
    a = float_operand(a, "log")
    return record(xp_of(a._data).log(a._data), "log", (a,), lambda g, _: (g / _conj(a),), (a,))


def log2(a) -> Tensor:
    a = float_operand(a, "log2")
    return record(xp_of(a._data).log2(a._data), "log2", (a,), lambda g, _: (g / (a * math.log(2.0)),), (a,))


def log10(a) -> Tensor:
    a = float_operand(a, "log10")
    return record(xp_of(a._data).log10(a._data), "log10", (a,),
                  lambda g, _: (g / (a * math.log(10.0)),), (a,))


def log1p(a) -> Tensor:
    a = float_operand(a, "log1p")
    return record(xp_of(a._data).log1p(a._data), "log1p", (a,), lambda g, _: (g / _conj(a + 1.0),), (a,))


def sqrt(a) -> Tensor:
    a = float_operand(a, "sqrt")
    return record(xp_of(a._data).sqrt(a._data), "sqrt", (a,),
                  lambda g, out: (g / _conj(out * 2.0),), keep_output=True)


def rsqrt(a) -> Tensor:
    a = float_operand(a, "rsqrt")
    xp = xp_of(a._data)
    return record(1.0 / xp.sqrt(a._data), "rsqrt", (a,),
                  lambda g, out: (g * out ** 3 * -0.5,), keep_output=True)


def sin(a) -> Tensor:
    a = float_operand(a, "sin")
    return record(xp_of(a._data).sin(a._data), "sin", (a,), lambda g, _: (g * _conj(cos(a)),), (a,))


def cos(a) -> Tensor:
    a = float_operand(a, "cos")
    return record(xp_of(a._data).cos(a._data), "cos", (a,), lambda g, _: (-(g * _conj(sin(a))),), (a,))


def tan(a) -> Tensor:
    a = float_operand(a, "tan")
    return record(xp_of(a._data).tan(a._data), "tan", (a,),
                  lambda g, out: (g * _conj(out.square() + 1.0),), keep_output=True)


def sinh(a) -> Tensor:
    a = float_operand(a, "sinh")
    return record(xp_of(a._data).sinh(a._data), "sinh", (a,), lambda g, _: (g * _conj(cosh(a)),), (a,))


def cosh(a) -> Tensor:
    a = float_operand(a, "cosh")
    return record(xp_of(a._data).cosh(a._data), "cosh", (a,), lambda g, _: (g * _conj(sinh(a)),), (a,))


def asin(a) -> Tensor:
    a = float_operand(a, "asin")
    return record(xp_of(a._data).arcsin(a._data), "asin", (a,),
                  lambda g, _: (g * rsqrt(1.0 - a.square()),), (a,))


def acos(a) -> Tensor:
    a = float_operand(a, "acos")
    return record(xp_of(a._data).arccos(a._data), "acos", (a,),
                  lambda g, _: (-(g * rsqrt(1.0 - a.square())),), (a,))


def atan(a) -> Tensor:
    a = float_operand(a, "atan")
    return record(xp_of(a._data).arctan(a._data), "atan", (a,),
                  lambda g, _: (g / (a.square() + 1.0),), (a,))


def atan2(a, b) -> Tensor:
    a, b = binary_operands(a, b, "atan2")  # promote first: atan2(bool, float16) is float16
    if a._data.dtype.kind != "f":
        a, b = float_operand(a, "atan2"), float_operand(b, "atan2")
    out = _apply2("atan2", xp_of(a._data).arctan2, a, b)

    def rule(g, _):
        denom = square(a) + square(b)
        return g * b / denom, -(g * a) / denom

    return record(out, "atan2", (a, b), rule, (a, b))


def erf(a) -> Tensor:
    a = float_operand(a, "erf")
    xp = xp_of(a._data)
    return record(special.erf(a._data, xp), "erf", (a,),
                  lambda g, _: (g * ((-a.square()).exp() * (2.0 / math.sqrt(math.pi))),), (a,))


def tanh(a) -> Tensor:
    a = float_operand(a, "tanh")
    if a._data.dtype.kind == "c":
        return record(kernels.tanh(a._data), "tanh", (a,), lambda g, out: (g * _conj(1.0 - out * out),),
                      keep_output=True)
    return record(kernels.tanh(a._data), "tanh", (a,), _tanh_rule, keep_output=True, fast=_tanh_fast)


def _tanh_rule(g, out):
    return (_tanh_backward(g, out),)


def _tanh_fast(g, out):
    return (g * (1 - out * out),)


def _tanh_backward(g: Tensor, out: Tensor) -> Tensor:
    """g * (1 - out**2) as one primitive (one node instead of three in every tanh's backward); its own
    rule makes double backward work."""
    o = out._data
    return record(g._data * (1 - o * o), "tanh_backward", (g, out),
                  lambda gg, _: (_tanh_backward(gg, out), gg * g * out * -2.0), (g, out))


def _sigmoid_array(x, xp):
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x| (complex x: the formula as written)."""
    if x.dtype.kind == "c":
        return 1.0 / (1.0 + xp.exp(-x))
    e = kernels.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def sigmoid(a) -> Tensor:
    a = float_operand(a, "sigmoid")
    return record(_sigmoid_array(a._data, xp_of(a._data)), "sigmoid", (a,),
                  lambda g, out: (g * _conj(out * (1.0 - out)),), keep_output=True)


def logit(a, eps: float | None = None) -> Tensor:
    a = float_operand(a, "logit")
    if eps is not None:
        a = clamp(a, eps, 1 - eps)
    return log(div(a, sub(1.0, a)))


# ----- activations ----------------------------------------------------------------------------------

def _refuse_bool(op: str, a: Tensor) -> None:
    if a._data.dtype.kind == "b":
        raise RuntimeError(f"{op}: bool inputs are not supported ({describe(a)}); convert first, e.g. x.float()")


def relu(a) -> Tensor:
    """max(a, 0); relu'(0) = 0."""
    a = tensor_operand(a, "relu")
    _refuse_bool("relu", a)
    refuse_complex("relu", a)
    return record(kernels.relu(a._data), "relu", (a,), _relu_rule, keep_output=True, fast=_relu_fast)


def _relu_rule(g, out):
    return (where(out > 0, g, 0.0),)


def _relu_fast(g, out):
    return (kernels.relu_grad(out, g),)


def relu6(a) -> Tensor:
    return hardtanh(a, 0.0, 6.0)


def hardtanh(a, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clamp to [min_val, max_val] with zero gradient at and beyond the bounds, as PyTorch's;
    integer input stays integral."""
    a = tensor_operand(a, "hardtanh")
    _refuse_bool("hardtanh", a)
    xp = xp_of(a._data)
    out = xp.clip(a._data, min_val, max_val).astype(a._data.dtype, copy=False)
    return record(out, "hardtanh", (a,), lambda g, _: (where(logical_and(a > min_val, a < max_val), g, 0.0),), (a,))


def leaky_relu(a, negative_slope: float = 0.01) -> Tensor:
    a = float_operand(a, "leaky_relu")
    xp = xp_of(a._data)
    out = xp.where(a._data > 0, a._data, a._data * negative_slope)
    return record(out, "leaky_relu", (a,), lambda g, _: (where(a > 0, g, g * negative_slope),), (a,))


def elu(a, alpha: float = 1.0) -> Tensor:
    a = float_operand(a, "elu")
    xp = xp_of(a._data)
    out = xp.where(a._data > 0, a._data, alpha * xp.expm1(xp.minimum(a._data, 0)))
    return record(out, "elu", (a,), lambda g, out: (where(a > 0, g, g * (out + alpha)),), (a,), keep_output=True)


def gelu(a, approximate: str = "none") -> Tensor:
    """x * Phi(x) (``approximate='none'``) or its tanh approximation (``'tanh'``). A primitive (one pass, where
    the composite takes a dozen): its rule multiplies by the primitive ``_gelu_slope``, whose own rule gives
    every higher order. The forward keeps x, and the erf or tanh values when numpy computed them
    (:func:`chainrule.backend.kernels.gelu`)."""
    a = float_operand(a, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    out, inner = kernels.gelu(a._data, approximate)
    return record(out, "gelu", (a,), lambda g, _: (g * _gelu_slope(a, approximate, inner),), (a,),
                  fast=lambda g, _: (kernels.gelu_grad(a._data, g, approximate, inner),))


def _gelu_slope(a: Tensor, approximate: str, inner) -> Tensor:
    """d gelu(x) / dx, reusing the forward's erf or tanh values ``inner`` (or None)."""
    return record(kernels.gelu_grad(a._data, None, approximate, inner), "gelu_slope", (a,),
                  lambda g, _: (g * _gelu_curvature(a, approximate),), (a,))


def _gelu_curvature(a: Tensor, approximate: str) -> Tensor:
    """d2 gelu(x) / dx2, composed of primitives (so every higher order works too)."""
    if approximate == "tanh":
        k, c = math.sqrt(2.0 / math.pi), 0.044715
        t = ((a + a.square() * a * c) * k).tanh()
        du = (a.square() * (3 * c) + 1.0) * k  # u'
        d2u = a * (6 * c * k)  # u''
        # (1 - t**2) (u' + x (u'' - 2 t u'**2) / 2)
        return (1.0 - t.square()) * (du + a * 0.5 * (d2u - t * du.square() * 2.0))
    pdf = (a.square() * -0.5).exp() * (1.0 / math.sqrt(2.0 * math.pi))
    return pdf * (2.0 - a.square())


def silu(a) -> Tensor:
    """x * sigmoid(x)."""
    a = float_operand(a, "silu")
    xp = xp_of(a._data)
    out = a._data * _sigmoid_array(a._data, xp)

    def rule(g, _):
        s = sigmoid(a)
        return (g * (s * (a * (1.0 - s) + 1.0)),)

    return record(out, "silu", (a,), rule, (a,))


def mish(a) -> Tensor:
    a = float_operand(a, "mish")
    return mul(a, tanh(softplus(a)))


def softplus(a, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as PyTorch)."""
    a = float_operand(a, "softplus")
    xp = xp_of(a._data)
    z = a._data * beta
    soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
    out = xp.where(z > threshold, a._data, soft).astype(a._data.dtype, copy=False)
    return record(out, "softplus", (a,),
                  lambda g, _: (where(a * beta > threshold, g, g * sigmoid(a * beta)),), (a,))


def clamp(a, min=None, max=None) -> Tensor:
    """Limit ``a`` to [min, max] (numbers or tensors); the gradient passes where min <= a <= max."""
    a = tensor_operand(a, "clamp")
    refuse_complex("clamp", a, min, max)
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return _clamp_tensor(a, min, max)
    xp = xp_of(a._data)
    for bound in (min, max):
        if bound is not None:
            a = scalar_operand(a, bound, "clamp")  # int tensor, float bound -> float; bool, int bound -> int64
    out = xp.clip(a._data, min, max).astype(a._data.dtype, copy=False)

    def rule(g, _):
        inside = a
        keep = None
        if min is not None:
            keep = ge(inside, min)
        if max is not None:
            upper = le(inside, max)
            keep = upper if keep is None else logical_and(keep, upper)
        return (where(keep, g, 0.0),)

    return record(out, "clamp", (a,), rule, (a,))


def _clamp_tensor(a: Tensor, lo, hi) -> Tensor:
    out = a
    if lo is not None:
        out = _bound(out, lo, "clamp_min")
    if hi is not None:
        out = _bound(out, hi, "clamp_max")
    return out


def _bound(a: Tensor, bound, op: str) -> Tensor:
    """max(a, bound) or min(a, bound) where ties send the gradient to ``a`` (clamp's convention)."""
    a, b = binary_operands(a, bound, op)
    xp = xp_of(a._data)
    fn = xp.maximum if op == "clamp_min" else xp.minimum
    out = _apply2(op, fn, a, b)

    def rule(g, _):
        beyond = lt(a, b) if op == "clamp_min" else gt(a, b)
        return where(beyond, 0.0, g), where(beyond, g, 0.0)

    return record(out, op, (a, b), rule, (a, b))


clip = clamp


def split_to_winner(g, a_wins, tie) -> tuple:
    """The gradients of a and b for an elementwise choice between them: all of ``g`` to the chosen one,
    half to each where they tie (maximum, minimum, fmax, fmin)."""
    half = g * 0.5
    return where(a_wins, g, where(tie, half, 0.0)), where(a_wins, 0.0, where(tie, half, g))


def _tie_split(op: str, a, b) -> Tensor:
    a, b = binary_operands(a, b, op)
    refuse_complex(op, a, b)
    xp = xp_of(a._data)
    out = _apply2(op, xp.maximum if op == "maximum" else xp.minimum, a, b)

    def rule(g, _):
        return split_to_winner(g, gt(a, b) if op == "maximum" else lt(a, b), eq(a, b))

    return record(out, op, (a, b), rule, (a, b))


def maximum(a, b) -> Tensor:
    """Elementwise max; tied elements share the gradient evenly."""
    return _tie_split("maximum", a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min; tied elements share the gradient evenly."""
    return _tie_split("minimum", a, b)


def where(condition, a=None, b=None) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``, broadcasting all three. ``where(condition)`` alone is
    ``nonzero(condition, as_tuple=True)``."""
    if a is None and b is None:
        from chainrule.ops.indexing import nonzero  # (indexing builds on where)

        return nonzero(condition, as_tuple=True)
    if a is None or b is None:
        raise TypeError("where: expected both x and y (or neither: where(condition) gives the indices)")
    cond = tensor_operand(condition, "where")
    if cond._data.dtype.kind != "b":
        raise RuntimeError(f"where: expected the condition to be a bool tensor, got {describe(cond)}; compare first, e.g. x > 0")
    if _is_number(b) and isinstance(a, Tensor):
        a = scalar_operand(a, b, "where")
        out = _where_arrays(cond, a._data, b, a.shape, ())
        return record(out, "where", (a,), lambda g, _: (where(cond, g, 0.0),))
    if _is_number(a) and isinstance(b, Tensor):
        b = scalar_operand(b, a, "where")
        out = _where_arrays(cond, a, b._data, (), b.shape)
        return record(out, "where", (b,), lambda g, _: (where(cond, 0.0, g),))
    a, b = binary_operands(a, b, "where")
    out = _where_arrays(cond, a._data, b._data, a.shape, b.shape)
    grad_a, grad_b = a._rg, b._rg  # flags, not the tensors: the rule need not keep them alive

    def rule(g, _):
        return where(cond, g, 0.0) if grad_a else None, where(cond, 0.0, g) if grad_b else None

    return record(out, "where", (a, b), rule)


def _where_arrays(cond: Tensor, x, y, x_shape: tuple, y_shape: tuple):
    """numpy's where on arrays (or numbers); a float array against a literal 0, as in masks and in relu's
    graph backward, is kernels.where_zero (a multiply by the mask)."""
    mask = cond._data
    try:
        if _is_zero(y) and _is_float_array(x):
            return kernels.where_zero(mask, x)
        if _is_zero(x) and _is_float_array(y):
            return kernels.where_zero(~mask, y)
        return xp_of(mask).where(mask, x, y)
    except ValueError:
        raise RuntimeError(
            f"where: the condition {tuple(cond.shape)}, x {tuple(x_shape)} and y {tuple(y_shape)} cannot be "
            "broadcast together: each dimension, compared from the right, must be equal or 1"
        ) from None


def _is_zero(value) -> bool:
    return type(value) in _PYTHON_NUMBERS and value == 0


def _is_float_array(value) -> bool:
    return getattr(value, "dtype", None) is not None and value.dtype.kind == "f"


def lerp(start, end, weight) -> Tensor:
    """start + weight * (end - start)."""
    return add(start, mul(weight, sub(end, start)))


def addcmul(a, t1, t2, value: Number = 1) -> Tensor:
    return add(a, mul(mul(t1, t2), value))


def addcdiv(a, t1, t2, value: Number = 1) -> Tensor:
    """``a + value * t1 / t2``. Integer t1 and t2 are refused, as in PyTorch: its old integer addcdiv
    floor-divided, so the result would be ambiguous."""
    t1, t2 = tensor_operand(t1, "addcdiv"), tensor_operand(t2, "addcdiv")
    if t1._data.dtype.kind != "f" and t2._data.dtype.kind != "f":
        raise RuntimeError(
            f"addcdiv: integer division with addcdiv is not supported (tensor1 {describe(t1)}, tensor2 "
            f"{describe(t2)}); use a + value * div(t1, t2, rounding_mode=...) or float inputs"
        )
    return add(a, mul(div(t1, t2), value))


def nan_to_num(a, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    a = tensor_operand(a, "nan_to_num")
    xp = xp_of(a._data)
    out = xp.nan_to_num(a._data, nan=nan, posinf=posinf, neginf=neginf)
    return record(out, "nan_to_num", (a,), lambda g, _: (where(isfinite(a), g, 0.0),), (a,))


# ----- comparisons and logic (no gradient) ----------------------------------------------------------

def _compare(op: str, fn_name: str, a, b) -> Tensor:
    if _is_number(b) and isinstance(a, Tensor):
        return untracked(getattr(xp_of(a._data), fn_name)(a._data, b), a, op)
    if _is_number(a) and isinstance(b, Tensor):
        return untracked(getattr(xp_of(b._data), fn_name)(a, b._data), b, op)
    a, b = binary_operands(a, b, op)
    return untracked(_apply2(op, getattr(xp_of(a._data), fn_name), a, b), a, op, (a, b))


def eq(a, b) -> Tensor:
    return _compare("eq", "equal", a, b)


def ne(a, b) -> Tensor:
    return _compare("ne", "not_equal", a, b)


def lt(a, b) -> Tensor:
    refuse_complex("lt", a, b)
    return _compare("lt", "less", a, b)


def le(a, b) -> Tensor:
    refuse_complex("le", a, b)
    return _compare("le", "less_equal", a, b)


def gt(a, b) -> Tensor:
    refuse_complex("gt", a, b)
    return _compare("gt", "greater", a, b)


def ge(a, b) -> Tensor:
    refuse_complex("ge", a, b)
    return _compare("ge", "greater_equal", a, b)


def logical_and(a, b) -> Tensor:
    return _compare("logical_and", "logical_and", a, b)


def logical_or(a, b) -> Tensor:
    return _compare("logical_or", "logical_or", a, b)


def logical_xor(a, b) -> Tensor:
    return _compare("logical_xor", "logical_xor", a, b)


def logical_not(a) -> Tensor:
    a = tensor_operand(a, "logical_not")
    return untracked(xp_of(a._data).logical_not(a._data), a)


def _integer_operands(op: str, a, b):
    a, b = binary_operands(a, b, op)
    if a._data.dtype.kind == "f":
        raise TypeError(f"{op}: bitwise operations need integer or bool tensors, got {a.dtype} and {b.dtype}")
    return a, b


def bitwise_not(a) -> Tensor:
    a = tensor_operand(a, "bitwise_not")
    if a._data.dtype.kind == "f":
        raise TypeError(f"bitwise_not: the ~ operator needs an integer or bool tensor, got {a.dtype}")
    return untracked(xp_of(a._data).invert(a._data), a)


def bitwise_and(a, b) -> Tensor:
    a, b = _integer_operands("bitwise_and", a, b)
    return untracked(_apply2("bitwise_and", xp_of(a._data).bitwise_and, a, b), a)


def bitwise_or(a, b) -> Tensor:
    a, b = _integer_operands("bitwise_or", a, b)
    return untracked(_apply2("bitwise_or", xp_of(a._data).bitwise_or, a, b), a)


def bitwise_xor(a, b) -> Tensor:
    a, b = _integer_operands("bitwise_xor", a, b)
    return untracked(_apply2("bitwise_xor", xp_of(a._data).bitwise_xor, a, b), a)


def bitwise_left_shift(a, b) -> Tensor:
    a, b = _integer_operands("bitwise_left_shift", a, b)
    return untracked(_apply2("bitwise_left_shift", xp_of(a._data).left_shift, a, b), a)


def bitwise_right_shift(a, b) -> Tensor:
    a, b = _integer_operands("bitwise_right_shift", a, b)
    return untracked(_apply2("bitwise_right_shift", xp_of(a._data).right_shift, a, b), a)


def isnan(a) -> Tensor:
    a = tensor_operand(a, "isnan")
    return untracked(xp_of(a._data).isnan(a._data), a)


def isinf(a) -> Tensor:
    a = tensor_operand(a, "isinf")
    return untracked(xp_of(a._data).isinf(a._data), a)


def isfinite(a) -> Tensor:
    a = tensor_operand(a, "isfinite")
    return untracked(xp_of(a._data).isfinite(a._data), a)


# ----- more elementwise and special functions (issue 16) ---------------------------------------------

__all__ += [
    "logaddexp", "logaddexp2", "hypot", "copysign", "exp2", "asinh", "acosh", "atanh", "arcsinh", "arccosh",
    "arctanh", "lgamma", "digamma", "polygamma", "erfinv", "erfc", "xlogy", "sinc", "isclose", "allclose",
    "equal", "deg2rad", "rad2deg", "frac", "float_power",
]


def _float_pair(a, b, op: str):
    """Two operands promoted together, then to the default float when integral (as PyTorch's float ops)."""
    a, b = binary_operands(a, b, op)
    if a._data.dtype.kind != "f":
        a, b = float_operand(a, op), float_operand(b, op)
    return a, b


def logaddexp(a, b) -> Tensor:
    """log(exp(a) + exp(b)) without overflow."""
    a, b = binary_operands(a, b, "logaddexp")
    _refuse_integral("logaddexp", a)
    out = _apply2("logaddexp", xp_of(a._data).logaddexp, a, b)
    return record(out, "logaddexp", (a, b), lambda g, _: (g * sigmoid(a - b), g * sigmoid(b - a)), (a, b))


def logaddexp2(a, b) -> Tensor:
    """log2(2**a + 2**b) without overflow."""
    a, b = binary_operands(a, b, "logaddexp2")
    _refuse_integral("logaddexp2", a)
    out = _apply2("logaddexp2", xp_of(a._data).logaddexp2, a, b)
    ln2 = math.log(2.0)
    return record(out, "logaddexp2", (a, b),
                  lambda g, _: (g * sigmoid((a - b) * ln2), g * sigmoid((b - a) * ln2)), (a, b))


def _refuse_integral(op: str, a: Tensor) -> None:
    if a._data.dtype.kind != "f":
        raise NotImplementedError(f"{op}: not implemented for {a.dtype} inputs, as in PyTorch; convert to float first")


def hypot(a, b) -> Tensor:
    """sqrt(a**2 + b**2) without overflow."""
    a, b = binary_operands(a, b, "hypot")
    _refuse_integral("hypot", a)
    out = _apply2("hypot", xp_of(a._data).hypot, a, b)
    return record(out, "hypot", (a, b), lambda g, out: (g * a / out, g * b / out), (a, b), keep_output=True)


def copysign(a, b) -> Tensor:
    """|a| with the sign of b; the gradient flows to ``a`` only (0 where a == 0)."""
    a, b = _float_pair(a, b, "copysign")
    out = _apply2("copysign", xp_of(a._data).copysign, a, b)

    def rule(g, out):
        return g * where(eq(a, 0), 0.0, out / a), g * 0.0

    return record(out, "copysign", (a, b), rule, (a,), keep_output=True)


def exp2(a) -> Tensor:
    a = float_operand(a, "exp2")
    ln2 = math.log(2.0)
    return record(xp_of(a._data).exp2(a._data), "exp2", (a,), lambda g, out: (g * out * ln2,), keep_output=True)


def asinh(a) -> Tensor:
    a = float_operand(a, "asinh")
    return record(xp_of(a._data).arcsinh(a._data), "asinh", (a,), lambda g, _: (g * rsqrt(a.square() + 1.0),), (a,))


def acosh(a) -> Tensor:
    a = float_operand(a, "acosh")
    return record(xp_of(a._data).arccosh(a._data), "acosh", (a,), lambda g, _: (g * rsqrt(a.square() - 1.0),), (a,))


def atanh(a) -> Tensor:
    a = float_operand(a, "atanh")
    return record(xp_of(a._data).arctanh(a._data), "atanh", (a,), lambda g, _: (g / (1.0 - a.square()),), (a,))


arcsinh, arccosh, arctanh = asinh, acosh, atanh


def lgamma(a) -> Tensor:
    """log|Gamma(a)|; its derivative is digamma."""
    a = float_operand(a, "lgamma")
    return record(special.lgamma(a._data, xp_of(a._data)), "lgamma", (a,), lambda g, _: (g * digamma(a),), (a,))


def digamma(a) -> Tensor:
    """The logarithmic derivative of Gamma; its derivative is polygamma(1, a) (trigamma)."""
    a = float_operand(a, "digamma")
    return record(special.digamma(a._data, xp_of(a._data)), "digamma", (a,),
                  lambda g, _: (g * polygamma(1, a),), (a,))


def polygamma(n: int, a) -> Tensor:
    """The n-th derivative of digamma (PyTorch's argument order: ``polygamma(n, input)``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RuntimeError(f"polygamma: n must be a non-negative integer, got {n!r}")
    a = float_operand(a, "polygamma")
    return record(special.polygamma(n, a._data, xp_of(a._data)), "polygamma", (a,),
                  lambda g, _: (g * polygamma(n + 1, a),), (a,))


def erfinv(a) -> Tensor:
    """The inverse of erf on [-1, 1]; d/dx erfinv(x) = sqrt(pi) / 2 * exp(erfinv(x)**2)."""
    a = float_operand(a, "erfinv")
    half_sqrt_pi = math.sqrt(math.pi) / 2
    return record(special.erfinv(a._data, xp_of(a._data)), "erfinv", (a,),
                  lambda g, out: (g * (out.square().exp() * half_sqrt_pi),), keep_output=True)


def erfc(a) -> Tensor:
    """1 - erf(a), accurate where erf is close to 1."""
    a = float_operand(a, "erfc")
    return record(special.erfc(a._data, xp_of(a._data)), "erfc", (a,),
                  lambda g, _: (g * ((-a.square()).exp() * (-2.0 / math.sqrt(math.pi))),), (a,))


def _xlog(op: str, a, b, log_fn, shift: float):
    a, b = _float_pair(a, b, op)
    xp = xp_of(a._data)
    with special._quiet(xp):
        logs = log_fn(xp)(b._data)
        out = _apply2(op, lambda x, y: xp.where((x == 0) & ~xp.isnan(y), 0.0, x * logs).astype(x.dtype, copy=False),
                      a, b)

    def rule(g, _):
        # as PyTorch: log(b), but 0 where b is log's pole
        grad_a = g * _xlog(op, ne(b, -shift).to(a.dtype), b, log_fn, shift) if a._rg else None
        grad_b = g * a / (b + shift) if shift else g * a / b
        return grad_a, grad_b

    return record(out, op, (a, b), rule, (a, b))


def xlogy(a, b) -> Tensor:
    """a * log(b), taken as 0 where a == 0 (unless b is nan)."""
    return _xlog("xlogy", a, b, lambda xp: xp.log, 0.0)


def xlog1py(a, b) -> Tensor:
    """a * log1p(b), taken as 0 where a == 0 (unless b is nan)."""
    return _xlog("xlog1py", a, b, lambda xp: xp.log1p, 1.0)


def sinc(a) -> Tensor:
    """sin(pi a) / (pi a), 1 at 0."""
    a = float_operand(a, "sinc")
    xp = xp_of(a._data)
    with special._quiet(xp):
        pa = a._data * math.pi
        out = xp.where(a._data == 0, 1.0, xp.sin(pa) / xp.where(a._data == 0, 1.0, pa)).astype(a._data.dtype, copy=False)

    def rule(g, out):
        zero = eq(a, 0)
        safe = where(zero, 1.0, a)
        return (g * where(zero, 0.0, (cos(a * math.pi) - out) / safe),)

    return record(out, "sinc", (a,), rule, (a,), keep_output=True)


def deg2rad(a) -> Tensor:
    return mul(float_operand(a, "deg2rad"), math.pi / 180.0)


def rad2deg(a) -> Tensor:
    return mul(float_operand(a, "rad2deg"), 180.0 / math.pi)


def frac(a) -> Tensor:
    """a - trunc(a) (the gradient passes unchanged); floats only, as in PyTorch."""
    a = tensor_operand(a, "frac")
    _refuse_integral("frac", a)
    return sub(a, trunc(a))


def float_power(a, exponent) -> Tensor:
    """``a ** exponent`` computed in float64, as PyTorch's float_power (the gradient returns in a's dtype)."""
    if isinstance(a, Tensor):
        a = to_dtype(a, _dt.float64)
    if isinstance(exponent, Tensor):
        exponent = to_dtype(exponent, _dt.float64)
    elif _is_number(exponent) and not isinstance(a, Tensor):
        raise TypeError("float_power: expected at least one tensor operand")
    if _is_number(exponent):
        exponent = float(exponent)
    elif _is_number(a):
        a = float(a)
    return pow(a, exponent)


def isclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|a - b| <= atol + rtol * |b| elementwise (a == b always counts, so equal infinities are close)."""
    a, b = tensor_operand(a, "isclose"), tensor_operand(b, "isclose", like=a)
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"isclose: expected both inputs to have the same dtype, got {a.dtype} and {b.dtype}")
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"isclose: rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    x, y = a._data, b._data
    xp = xp_of(x)
    try:
        close = x == y
    except ValueError:
        raise _broadcast_error("isclose", a, b) from None
    if equal_nan and x.dtype.kind in "fc":
        close = close | (xp.isnan(x) & xp.isnan(y))
    if rtol or atol:
        if x.dtype.kind not in "fc":  # complex numbers: |a - b| is their distance
            x, y = x.astype("float64"), y.astype("float64")
        with special._quiet(xp):
            error = xp.abs(x - y)
            close = close | (xp.isfinite(error) & (error <= atol + xp.abs(rtol * y)))
    return untracked(close, a, "isclose", (a, b))


def allclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether every element of ``a`` is close to ``b`` (see :func:`isclose`), as a Python bool."""
    return bool(isclose(a, b, rtol, atol, equal_nan)._data.all())


def equal(a, b) -> bool:
    """True when ``a`` and ``b`` have the same shape and the same elements (nan is never equal)."""
    a, b = tensor_operand(a, "equal"), tensor_operand(b, "equal")
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool((a._data == b._data).all())


def _polygamma_method(self: Tensor, n: int) -> Tensor:
    """``x.polygamma(n)``: the method takes n after self, the function before input, as in PyTorch."""
    return polygamma(n, self)


Tensor.polygamma = _polygamma_method  # (not in _methods' same-name table: the argument order differs)
