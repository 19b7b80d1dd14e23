"""More elementwise functions (issue 16): NaN-ignoring fmax/fmin, floating-point bit helpers (ldexp, frexp,
nextafter, signbit), integer gcd/lcm, heaviside, the modified Bessel functions I0/I1, the regularised
incomplete gamma functions and the multivariate log-gamma, with PyTorch's dtype rules and gradients.

Where PyTorch defines no derivative (heaviside; igamma and igammac with respect to their first argument)
the result still records a node, and a backward that reaches it raises, naming the operation, as PyTorch's
does; nothing silently returns a zero gradient.

Policy for ties (tested): fmax/fmin split the gradient evenly between tied inputs, as maximum/minimum do
(PyTorch sends it all to the first input); where one input is NaN the other, non-NaN one is the result and
takes the gradient.
"""

from __future__ import annotations

import math
from collections import namedtuple

from chainrule.backend import special_more, xp_of
from chainrule.ops._helpers import (
    Tensor,
    binary_operands,
    describe,
    float_operand,
    record,
    refuse_complex,
    tensor_operand,
    untracked,
)
from chainrule.ops.elementwise import (
    _apply2,
    _float_pair,
    _refuse_integral,
    eq,
    exp2,
    gt,
    isnan,
    lgamma,
    logical_or,
    lt,
    mul,
    ne,
    sign,
    split_to_winner,
    trunc,
    where,
    xlogy,
)

__all__ = ["fmax", "fmin", "ldexp", "frexp", "nextafter", "heaviside", "gcd", "lcm", "signbit", "isneginf",
           "isposinf", "positive", "fix", "i0", "igamma", "igammac", "mvlgamma"]

FrexpResult = namedtuple("frexp", ["mantissa", "exponent"])


def _no_derivative(op: str, what: str) -> RuntimeError:
    return RuntimeError(f"{op}: the derivative with respect to {what} is not implemented (as in PyTorch); "
                        "detach that input if no gradient is needed for it")


# ----- NaN-ignoring maximum and minimum -------------------------------------------------------------------

def _nan_ignoring(op: str, a, b) -> Tensor:
    a, b = binary_operands(a, b, op)
    refuse_complex(op, a, b)
    xp = xp_of(a._data)
    out = _apply2(op, xp.fmax if op == "fmax" else xp.fmin, a, b)
    if out.dtype.kind != "f":
        return untracked(out, a, op, (a, b))

    def rule(g, _):
        beats = gt(a, b) if op == "fmax" else lt(a, b)
        return split_to_winner(g, logical_or(beats, isnan(b)), eq(a, b))  # both NaN: to a, as PyTorch

    return record(out, op, (a, b), rule, (a, b))


def fmax(a, b) -> Tensor:
    """Elementwise maximum that ignores NaN: where one input is NaN the other is the result."""
    return _nan_ignoring("fmax", a, b)


def fmin(a, b) -> Tensor:
    """Elementwise minimum that ignores NaN: where one input is NaN the other is the result."""
    return _nan_ignoring("fmin", a, b)


# ----- floating-point representation -----------------------------------------------------------------------

def ldexp(a, b) -> Tensor:
    """a * 2**b, in the promoted floating dtype of both (integers give the default float)."""
    a, b = _float_pair(a, b, "ldexp")
    return mul(a, exp2(b))


def frexp(a) -> FrexpResult:
    """(mantissa, exponent) with a = mantissa * 2**exponent, |mantissa| in [0.5, 1), exponent int32; the
    mantissa's gradient is g / 2**exponent."""
    a = tensor_operand(a, "frexp")
    if a._data.dtype.kind != "f":
        raise RuntimeError(f"frexp: only supports floating-point dtypes, got {describe(a)}")
    xp = xp_of(a._data)
    mantissa, exponent = xp.frexp(a._data)
    exponent = untracked(exponent.astype("int32"), a, "frexp")
    scale = xp.ldexp(xp.ones((), dtype=a._data.dtype), -exponent._data)
    return FrexpResult(record(mantissa, "frexp", (a,), lambda g, _: (g * scale,)), exponent)


def nextafter(a, b) -> Tensor:
    """The next floating-point value after ``a`` towards ``b``. The gradient passes to ``a`` (zero where
    a == b, and none to ``b``), as PyTorch's."""
    a, b = binary_operands(a, b, "nextafter")
    if a._data.dtype.kind != "f":
        raise RuntimeError(f"nextafter: not implemented for {a.dtype} inputs, only floating-point ones "
                           f"(got {describe(a)} and {describe(b)})")
    out = _apply2("nextafter", xp_of(a._data).nextafter, a, b)
    return record(out, "nextafter", (a, b), lambda g, _: (where(ne(a, b), g, 0.0), g * 0.0), (a, b))


def signbit(a) -> Tensor:
    """True where the sign bit is set (negative numbers and -0.0)."""
    a = tensor_operand(a, "signbit")
    refuse_complex("signbit", a)
    return untracked(xp_of(a._data).signbit(a._data), a, "signbit")


def isposinf(a) -> Tensor:
    a = tensor_operand(a, "isposinf")
    refuse_complex("isposinf", a)
    return untracked(xp_of(a._data).isposinf(a._data), a, "isposinf")


def isneginf(a) -> Tensor:
    a = tensor_operand(a, "isneginf")
    refuse_complex("isneginf", a)
    return untracked(xp_of(a._data).isneginf(a._data), a, "isneginf")


def positive(a) -> Tensor:
    """``a`` itself (unary plus); bool tensors are refused, as in PyTorch."""
    a = tensor_operand(a, "positive")
    if a._data.dtype.kind == "b":
        raise RuntimeError(f"positive: the `+` operator, on a bool tensor is not supported ({describe(a)})")
    return a


def fix(a) -> Tensor:
    """Rounds towards zero: ``trunc``."""
    return trunc(a)


def heaviside(a, values) -> Tensor:
    """0 where a < 0, ``values`` where a == 0, 1 where a > 0. Both inputs must have one dtype, as in PyTorch;
    it has no derivative (a backward through it raises)."""
    a, values = tensor_operand(a, "heaviside"), tensor_operand(values, "heaviside")
    if a._data.dtype != values._data.dtype:
        raise RuntimeError(f"heaviside: not implemented for tensors with different dtypes: input {describe(a)}, "
                           f"values {describe(values)}")
    refuse_complex("heaviside", a)
    xp = xp_of(a._data)
    out = _apply2("heaviside", lambda x, v: xp.where(x == 0, v, (x > 0).astype(x.dtype)), a, values)
    if out.dtype.kind != "f":
        return untracked(out, a, "heaviside", (a, values))

    def rule(g, _):
        raise _no_derivative("heaviside", "its inputs")

    return record(out, "heaviside", (a, values), rule)


# ----- integer functions -------------------------------------------------------------------------------------

def _integer_pair(op: str, a, b):
    a, b = binary_operands(a, b, op)
    if a._data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: not implemented for {a.dtype}, only for integer tensors "
                           f"(got {describe(a)} and {describe(b)})")
    return a, b


def gcd(a, b) -> Tensor:
    """The greatest common divisor, elementwise, of integer tensors (non-negative; gcd(0, 0) = 0)."""
    a, b = _integer_pair("gcd", a, b)
    return untracked(_apply2("gcd", xp_of(a._data).gcd, a, b), a, "gcd", (a, b))


def lcm(a, b) -> Tensor:
    """The least common multiple, elementwise, of integer tensors (non-negative; 0 when either is 0)."""
    a, b = _integer_pair("lcm", a, b)
    return untracked(_apply2("lcm", xp_of(a._data).lcm, a, b), a, "lcm", (a, b))


# ----- Bessel and gamma functions ---------------------------------------------------------------------------

def i0(a) -> Tensor:
    """The modified Bessel function of the first kind of order 0; its derivative is I1."""
    a = float_operand(a, "i0")
    refuse_complex("i0", a)
    return record(special_more.i0(a._data, xp_of(a._data)), "i0", (a,), lambda g, _: (g * i1(a),), (a,))


def i1(a) -> Tensor:
    """The modified Bessel function I1; I1'(x) = I0(x) - I1(x) / x (1/2 at 0)."""
    a = float_operand(a, "special.i1")
    refuse_complex("special.i1", a)

    def rule(g, out):
        zero = eq(a, 0)
        return (g * where(zero, 0.5, i0(a) - out / where(zero, 1.0, a)),)

    return record(special_more.i1(a._data, xp_of(a._data)), "i1", (a,), rule, (a,), keep_output=True)


def i0e(a) -> Tensor:
    """exp(-|x|) I0(x); its derivative is i1e(x) - sign(x) i0e(x)."""
    a = float_operand(a, "special.i0e")
    refuse_complex("special.i0e", a)
    return record(special_more.i0e(a._data, xp_of(a._data)), "i0e", (a,),
                  lambda g, out: (g * (i1e(a) - sign(a) * out),), (a,), keep_output=True)


def i1e(a) -> Tensor:
    """exp(-|x|) I1(x); its derivative is i0e(x) - i1e(x) (sign(x) + 1/x) (1/2 at 0)."""
    a = float_operand(a, "special.i1e")
    refuse_complex("special.i1e", a)

    def rule(g, out):
        zero = eq(a, 0)
        return (g * where(zero, 0.5, i0e(a) - out * (sign(a) + 1.0 / where(zero, 1.0, a))),)

    return record(special_more.i1e(a._data, xp_of(a._data)), "i1e", (a,), rule, (a,), keep_output=True)


def _incomplete_gamma(op: str, a, x, upper: bool) -> Tensor:
    a, x = binary_operands(a, x, op)
    refuse_complex(op, a, x)
    _refuse_integral(op, a)
    xp = xp_of(a._data)
    fn = special_more.gammaincc if upper else special_more.gammainc
    out = _apply2(op, lambda u, v: fn(u, v, xp), a, x)

    def rule(g, _):
        if a._rg:
            raise _no_derivative(op, "input (its first argument)")
        # d/dx P(a, x) = x^(a - 1) e^-x / Gamma(a); Q = 1 - P
        density = (xlogy(a - 1.0, x) - x - lgamma(a)).exp()
        return None, g * density * (-1.0 if upper else 1.0)

    return record(out, op, (a, x), rule, (a, x))


def igamma(input, other) -> Tensor:
    """The regularised lower incomplete gamma function P(input, other); differentiable in ``other`` only."""
    return _incomplete_gamma("igamma", input, other, upper=False)


def igammac(input, other) -> Tensor:
    """The regularised upper incomplete gamma function Q(input, other) = 1 - P; differentiable in ``other`` only."""
    return _incomplete_gamma("igammac", input, other, upper=True)


def erfcx(a) -> Tensor:
    """exp(x^2) erfc(x), accurate where erfc underflows; its derivative is 2 x erfcx(x) - 2 / sqrt(pi)."""
    a = float_operand(a, "special.erfcx")
    refuse_complex("special.erfcx", a)
    return record(special_more.erfcx(a._data, xp_of(a._data)), "erfcx", (a,),
                  lambda g, out: (g * (a * out * 2.0 - 2.0 / math.sqrt(math.pi)),), (a,), keep_output=True)


def mvlgamma(input, p: int) -> Tensor:
    """The log of the multivariate gamma function of dimension ``p``:
    p (p - 1) / 4 log(pi) + sum_{j < p} lgamma(input - j / 2) (composite: gradients from lgamma)."""
    from chainrule.creation import arange
    from chainrule.ops.reduction import sum as _sum

    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise RuntimeError(f"mvlgamma: p has to be greater than or equal to 1, got {p!r}")
    if isinstance(input, Tensor) and input._data.dtype.kind == "b":
        raise RuntimeError(f"mvlgamma: the input tensor may not be a boolean tensor ({describe(input)})")
    a = float_operand(input, "mvlgamma")
    refuse_complex("mvlgamma", a)
    shifts = arange(p, dtype=a.dtype, device=a.device) * -0.5
    return _sum(lgamma(a.unsqueeze(-1) + shifts), -1) + p * (p - 1) / 4 * math.log(math.pi)



def zeta(x, q) -> Tensor:
    """The Hurwitz zeta function sum_k (q + k)^-x (``torch.special.zeta``); differentiable in q only:
    d/dq zeta(x, q) = -x zeta(x + 1, q)."""
    x, q = _float_pair(x, q, "special.zeta")
    refuse_complex("special.zeta", x, q)
    xp = xp_of(x._data)
    out = _apply2("special.zeta", lambda u, v: special_more.zeta(u, v, xp).astype(u.dtype, copy=False), x, q)

    def rule(g, _):
        if x._rg:
            raise _no_derivative("special.zeta", "x (its first argument)")
        return None, g * -x * zeta(x + 1.0, q)

    return record(out, "zeta", (x, q), rule, (x, q))


def orthogonal_polynomial(name: str, x, n) -> Tensor:
    """``torch.special``'s polynomial ``name`` of degree n (a tensor or number, truncated to an integer; 0 for
    n < 0) at x, in the promoted floating dtype; not differentiable, as in PyTorch."""
    op = f"special.{name}"
    x, n = _float_pair(x, n, op)
    refuse_complex(op, x, n)
    xp = xp_of(x._data)
    out = _apply2(op, lambda u, v: special_more.orthogonal_polynomial(name, u, v, xp).astype(u.dtype, copy=False), x, n)
    return untracked(out, x, op, (x, n))


def spherical_bessel_j0(x) -> Tensor:
    """sin(x) / x; not differentiable, as in PyTorch."""
    x = float_operand(x, "special.spherical_bessel_j0")
    refuse_complex("special.spherical_bessel_j0", x)
    return untracked(special_more.spherical_bessel_j0(x._data, xp_of(x._data)), x, "special.spherical_bessel_j0")


# (name -> its float64 values from the backend's float64 array) for torch.special's Bessel functions of the
# first and second kinds and the Airy function, which PyTorch does not differentiate (neither does chainrule:
# untracked results)
_BESSEL = {
    "airy_ai": special_more.airy_ai,
    "bessel_j0": lambda x, xp: special_more.bessel_jy(x, xp)[0],
    "bessel_j1": lambda x, xp: special_more.bessel_jy(x, xp)[1],
    "bessel_y0": lambda x, xp: special_more.bessel_jy(x, xp)[2],
    "bessel_y1": lambda x, xp: special_more.bessel_jy(x, xp)[3],
    "modified_bessel_k0": lambda x, xp: special_more.bessel_k_scaled(0, x, xp) * xp.exp(-x),
    "modified_bessel_k1": lambda x, xp: special_more.bessel_k_scaled(1, x, xp) * xp.exp(-x),
    "scaled_modified_bessel_k0": lambda x, xp: special_more.bessel_k_scaled(0, x, xp),
    "scaled_modified_bessel_k1": lambda x, xp: special_more.bessel_k_scaled(1, x, xp),
}


def bessel(name: str, x) -> Tensor:
    """``torch.special.<name>(x)`` for the Bessel and Airy functions in ``_BESSEL``, computed in float64."""
    op = f"special.{name}"
    x = float_operand(x, op)
    refuse_complex(op, x)
    xp = xp_of(x._data)
    with special_more._quiet(xp):
        out = _BESSEL[name](x._data.astype("float64"), xp)
    return untracked(out.astype(x._data.dtype), x, op)
