"""KL divergences between different families, for the pairs PyTorch has (ContinuousBernoulli's aside):
KL(p || q) = E_p[log p] - E_p[log q] = -H(p) + CE(p, q), with the cross-entropy CE read off q's log density from
the moments of p it needs (E x, Var x, E log x, E log(1 - x), or p's moment generating function for a Gumbel
q). Where p puts mass outside q's support the divergence is infinite."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule import ops as _ops
from chainrule.distributions.continuous import Laplace
from chainrule.distributions.continuous_bernoulli import ContinuousBernoulli
from chainrule.distributions.derived import EULER_GAMMA, Gumbel, Pareto
from chainrule.distributions.discrete import Binomial, Poisson
from chainrule.distributions.families import Bernoulli, Exponential, Normal, Uniform
from chainrule.distributions.gamma import Beta, Gamma
from chainrule.distributions.kl import register_kl

_INF = float("inf")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _infinite(p, q):
    """Infinite over the broadcast batch of p and q."""
    parameter = _parameter(p)
    return creation.full(_batch(p, q), _INF, dtype=parameter.dtype, device=parameter.device)


def _batch(p, q):
    from chainrule.backend import np

    return tuple(np.broadcast_shapes(tuple(p.batch_shape), tuple(q.batch_shape)))


def _parameter(d):
    """A parameter tensor of ``d``, whose dtype and device its KL results take."""
    for name in ("loc", "rate", "concentration", "concentration1", "low", "scale", "probs"):
        value = getattr(d, name, None)
        if value is not None and hasattr(value, "dtype"):
            return value
    raise TypeError(f"kl_divergence: {type(d).__name__} has none of the parameters a KL result takes its dtype from")


def _mean_log(p):
    """E_p[log x] for p on the positive reals (or [0, 1])."""
    if isinstance(p, Exponential):
        return -EULER_GAMMA - p.rate.log()
    if isinstance(p, Gamma):
        return p.concentration.digamma() - p.rate.log()
    if isinstance(p, Beta):
        return p.concentration1.digamma() - (p.concentration1 + p.concentration0).digamma()
    if isinstance(p, Pareto):
        return p.scale.log() + p.alpha.reciprocal()
    if isinstance(p, Uniform):  # (b log b - a log a) / (b - a) - 1
        a, b = p.low, p.high
        return (_ops.xlogy(b, b) - _ops.xlogy(a, a)) / (b - a) - 1
    raise NotImplementedError(type(p).__name__)


def _mean_log_complement(p: Uniform):
    """E_p[log(1 - x)] for a uniform p inside [0, 1]."""
    a, b = 1 - p.high, 1 - p.low
    return (_ops.xlogy(b, b) - _ops.xlogy(a, a)) / (b - a) - 1


def _log_mgf(p, t):
    """log E_p[exp(t x)] for t < 0."""
    if isinstance(p, Normal):
        return p.loc * t + 0.5 * (p.scale * t) ** 2
    if isinstance(p, Exponential):
        return (p.rate / (p.rate - t)).log()
    if isinstance(p, Gamma):
        return -p.concentration * (1 - t / p.rate).log()
    if isinstance(p, Uniform):
        a, b = p.low, p.high
        return (((t * b).exp() - (t * a).exp()) / (t * (b - a))).log()
    raise NotImplementedError(type(p).__name__)


def _where_outside(outside, p, q, value):
    """value, or infinity where p has mass outside q's support (``outside`` a bool tensor or None)."""
    if outside is None:
        return value
    return _ops.where(outside, _INF, value)


# ---- q Normal: CE = log sigma + log sqrt(2 pi) + (Var + (E x - mu)^2) / (2 sigma^2) -------------------------------

def _to_normal(p, q):
    cross = q.scale.log() + _HALF_LOG_2PI + (p.variance + (p.mean - q.loc) ** 2) / (2 * q.scale ** 2)
    return -p.entropy() + cross


# ---- q Exponential: CE = -log rate + rate E x (p on the non-negative reals) ----------------------------------------

def _to_exponential(p, q):
    value = -p.entropy() - q.rate.log() + q.rate * p.mean
    return _where_outside(p.low.detach() < 0 if isinstance(p, Uniform) else None, p, q, value)


# ---- q Gamma: CE = -a log r + lgamma(a) - (a - 1) E log x + r E x -------------------------------------------------

def _to_gamma(p, q):
    a, r = q.concentration, q.rate
    value = -p.entropy() - a * r.log() + a.lgamma() - (a - 1) * _mean_log(p) + r * p.mean
    return _where_outside(p.low.detach() < 0 if isinstance(p, Uniform) else None, p, q, value)


# ---- q Gumbel: CE = log b + (E x - mu) / b + E exp(-(x - mu) / b) --------------------------------------------------

def _to_gumbel(p, q):
    t = -q.scale.reciprocal()
    cross = q.scale.log() + (p.mean - q.loc) / q.scale + (q.loc / q.scale + _log_mgf(p, t)).exp()
    return -p.entropy() + cross


# ---- q Uniform, Beta, Pareto: bounded supports -------------------------------------------------------------------------

def _beta_to_uniform(p, q):
    outside = (q.low.detach() > 0) | (q.high.detach() < 1)
    return _where_outside(outside, p, q, -p.entropy() + (q.high - q.low).log())


def _uniform_to_beta(p, q):
    a, b = q.concentration1, q.concentration0
    log_beta = a.lgamma() + b.lgamma() - (a + b).lgamma()
    cross = log_beta - (a - 1) * _mean_log(p) - (b - 1) * _mean_log_complement(p)
    outside = (p.low.detach() < 0) | (p.high.detach() > 1)
    return _where_outside(outside, p, q, -p.entropy() + cross)


def _uniform_to_pareto(p, q):
    cross = -q.alpha.log() - q.alpha * q.scale.log() + (q.alpha + 1) * _mean_log(p)
    return _where_outside(p.low.detach() < q.scale.detach(), p, q, -p.entropy() + cross)


def _normal_to_laplace(p, q):
    """CE = log(2 b) + E|x - m| / b, E|x - m| = s sqrt(2/pi) exp(-d^2 / 2s^2) + d erf(d / (s sqrt 2)), d = mu - m."""
    d, s = p.loc - q.loc, p.scale
    mean_abs = s * math.sqrt(2 / math.pi) * (-(d ** 2) / (2 * s ** 2)).exp() + d * (d / (s * math.sqrt(2))).erf()
    return -p.entropy() + (2 * q.scale).log() + mean_abs / q.scale


def _bernoulli_to_poisson(p, q):
    """CE = -(p log rate - rate): both outcomes 0 and 1 have log k! = 0."""
    return -p.entropy() - (p.probs * q.rate.log() - q.rate)


def _to_continuous_bernoulli(p, q):
    """CE = -(log C(lambda) + E x log lambda + (1 - E x) log(1 - lambda)) for p inside [0, 1]."""
    mean = p.mean
    cross = -(q._log_norm() + mean * q.probs.log() + (1 - mean) * (-q.probs).log1p())
    outside = (p.low.detach() < 0) | (p.high.detach() > 1) if isinstance(p, Uniform) else None
    return _where_outside(outside, p, q, -p.entropy() + cross)


def _continuous_bernoulli_to_uniform(p, q):
    outside = (q.low.detach() > 0) | (q.high.detach() < 1)
    return _where_outside(outside, p, q, -p.entropy() + (q.high - q.low).log())


def _register(pairs, fn):
    for p_type, q_type in pairs:
        register_kl(p_type, q_type)(fn)


_register([(P, Normal) for P in (Uniform, Exponential, Gamma, Laplace, Gumbel, Beta, Pareto, ContinuousBernoulli)],
          _to_normal)
_register([(P, Exponential) for P in (Uniform, Gamma, Beta, Pareto, ContinuousBernoulli)], _to_exponential)
_register([(Beta, ContinuousBernoulli), (Uniform, ContinuousBernoulli)], _to_continuous_bernoulli)
register_kl(ContinuousBernoulli, Uniform)(_continuous_bernoulli_to_uniform)
_register([(P, Gamma) for P in (Uniform, Exponential, Beta, Pareto)], _to_gamma)
_register([(P, Gumbel) for P in (Uniform, Exponential, Gamma, Normal)], _to_gumbel)
register_kl(Beta, Uniform)(_beta_to_uniform)
register_kl(Uniform, Beta)(_uniform_to_beta)
register_kl(Uniform, Pareto)(_uniform_to_pareto)
register_kl(Normal, Laplace)(_normal_to_laplace)
register_kl(Bernoulli, Poisson)(_bernoulli_to_poisson)
# p with mass where q has none: real-line p against positive or bounded q, positive p against bounded q, ...
_register([(P, Q) for P in (Normal, Laplace, Gumbel) for Q in (Exponential, Gamma, Beta, Pareto, Uniform)]
          + [(P, Q) for P in (Exponential, Gamma, Pareto) for Q in (Beta, Uniform, Pareto) if P is not Q]
          + [(P, ContinuousBernoulli) for P in (Normal, Laplace, Gumbel, Exponential, Gamma, Pareto)]
          + [(Beta, Pareto), (ContinuousBernoulli, Pareto), (Poisson, Bernoulli), (Poisson, Binomial)], _infinite)
