"""``chainrule.special``: the functions of ``torch.special``, under their PyTorch (and scipy) names.

Each is the same primitive as at the top level (``cr.special.gammaln`` is ``cr.lgamma``), so gradients
and double gradients come with it; ``ndtr`` is composite (from erfc), ``ndtri`` a primitive of its own.
"""

from __future__ import annotations

import math

from chainrule.backend import special as _special
from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, float_operand, record
from chainrule.ops.elementwise import (
    digamma,
    erf,
    erfc,
    erfinv,
    exp2,
    expm1,
    lgamma,
    log1p,
    logit,
    polygamma,
    sigmoid,
    sinc,
    xlog1py,
    xlogy,
)
from chainrule.ops.elementwise_more import (
    _BESSEL,
    bessel,
    erfcx,
    i0,
    i0e,
    i1,
    i1e,
    igamma,
    igammac,
    mvlgamma,
    orthogonal_polynomial,
    spherical_bessel_j0,
    zeta,
)
from chainrule.ops.logits import log_softmax as _log_softmax
from chainrule.ops.logits import softmax as _softmax
from chainrule.ops.reduction import logsumexp

_POLYNOMIALS = ("chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
                "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
                "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he",
                "laguerre_polynomial_l", "legendre_polynomial_p")

__all__ = [
    "expit", "logit", "erf", "erfc", "erfinv", "gammaln", "digamma", "psi", "polygamma", "multigammaln",
    "xlogy", "xlog1py", "log1p", "expm1", "exp2", "sinc", "logsumexp", "softmax", "log_softmax", "ndtr",
    "ndtri", "log_ndtr", "entr", "round", "i0", "i0e", "i1", "i1e", "modified_bessel_i0", "modified_bessel_i1",
    "gammainc", "gammaincc", "erfcx", "zeta", "spherical_bessel_j0", *_POLYNOMIALS, *_BESSEL,
]

expit = sigmoid
gammaln = lgamma
psi = digamma
gammainc, gammaincc = igamma, igammac
modified_bessel_i0, modified_bessel_i1 = i0, i1


def softmax(input, dim: int, dtype=None) -> Tensor:
    return _softmax(input if dtype is None else input.to(dtype), dim)


def log_softmax(input, dim: int, dtype=None) -> Tensor:
    return _log_softmax(input if dtype is None else input.to(dtype), dim)


def ndtr(x) -> Tensor:
    """The standard normal CDF, 0.5 erfc(-x / sqrt 2) (composite: accurate in the lower tail)."""
    return erfc(float_operand(x, "ndtr") * (-1.0 / math.sqrt(2.0))) * 0.5


def log_ndtr(x) -> Tensor:
    """log(ndtr(x)) (composite; in the far lower tail it is -inf where ndtr underflows)."""
    return ndtr(x).log()


def ndtri(p) -> Tensor:
    """The inverse of ndtr on [0, 1]; d/dp ndtri(p) = sqrt(2 pi) exp(ndtri(p)**2 / 2)."""
    p = float_operand(p, "ndtri")
    root = math.sqrt(2 * math.pi)
    return record(_special.ndtri(p._data, xp_of(p._data)), "ndtri", (p,),
                  lambda g, out: (g * ((out.square() * 0.5).exp() * root),), keep_output=True)


def entr(x) -> Tensor:
    """-x log(x) for x > 0, 0 at 0, -inf for x < 0."""
    from chainrule.ops.elementwise import where

    x = float_operand(x, "entr")
    return where(x < 0, float("-inf"), -xlogy(x, x))


def multigammaln(a, p: int) -> Tensor:
    """The log of the multivariate gamma function of dimension ``p`` (``torch.mvlgamma``)."""
    return mvlgamma(a, p)


def round(input, decimals: int = 0) -> Tensor:  # noqa: A001
    from chainrule.ops.elementwise import round as _round

    return _round(input, decimals)



def _polynomial(name: str):
    def polynomial(input, n) -> Tensor:
        return orthogonal_polynomial(name, input, n)

    polynomial.__name__ = polynomial.__qualname__ = name
    polynomial.__doc__ = f"``torch.special.{name}(input, n)``: see chainrule.ops.elementwise_more.orthogonal_polynomial."
    return polynomial


globals().update({_name: _polynomial(_name) for _name in _POLYNOMIALS})


def _bessel(name: str):
    def function(input) -> Tensor:
        return bessel(name, input)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``torch.special.{name}(input)``, computed in float64 (not differentiable, as in PyTorch)."
    return function


globals().update({_name: _bessel(_name) for _name in _BESSEL})
