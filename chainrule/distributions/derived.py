"""Families that PyTorch defines as a base distribution pushed through transforms (TransformedDistribution
subclasses): HalfNormal, HalfCauchy, Gumbel, Pareto, Weibull, InverseGamma, Kumaraswamy, LogisticNormal,
RelaxedBernoulli, RelaxedOneHotCategorical; with their closed-form moments and entropies."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule import ops as _ops
from chainrule.distributions import constraints
from chainrule.distributions.continuous import Cauchy
from chainrule.distributions.discrete import _ProbsOrLogits
from chainrule.distributions.distribution import Distribution, broadcast_all
from chainrule.distributions.families import Categorical, Exponential, Normal, Uniform, _clamp_probs, _draw, _finfo
from chainrule.distributions.gamma import Gamma
from chainrule.distributions.transformed import TransformedDistribution
from chainrule.distributions.transforms import (
    AbsTransform,
    AffineTransform,
    ExpTransform,
    PowerTransform,
    SigmoidTransform,
    StickBreakingTransform,
)
from chainrule.distributions.utils import _softplus

__all__ = ["HalfNormal", "HalfCauchy", "Gumbel", "Pareto", "Weibull", "InverseGamma", "Kumaraswamy",
           "LogisticNormal", "LogitRelaxedBernoulli", "RelaxedBernoulli", "ExpRelaxedCategorical",
           "RelaxedOneHotCategorical"]

EULER_GAMMA = 0.5772156649015329
_INF = float("inf")
_LOG_2 = math.log(2.0)


def _full(like, value) -> object:
    return creation.full_like(like, value)


class _Folded(TransformedDistribution):
    """|X| for X symmetric about 0: twice the base density on [0, inf)."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    scale = property(lambda self: self.base_dist.scale)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        folded = self.base_dist.log_prob(value) + _LOG_2
        return _ops.where(value >= 0, folded, float("-inf"))

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob):
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self):
        return self.base_dist.entropy() - _LOG_2

    mode = property(lambda self: creation.zeros_like(self.scale))


class HalfNormal(_Folded):
    """HalfNormal(scale): |Normal(0, scale)|."""

    def __init__(self, scale, validate_args=None):
        (scale,) = broadcast_all(scale)
        super().__init__(Normal(creation.zeros_like(scale), scale, validate_args=False), AbsTransform(),
                         validate_args)

    mean = property(lambda self: self.scale * math.sqrt(2 / math.pi))
    variance = property(lambda self: self.scale ** 2 * (1 - 2 / math.pi))

    def __repr__(self):
        return f"HalfNormal(scale: {self.scale if self.scale.numel() == 1 else tuple(self.scale.shape)})"


class HalfCauchy(HalfNormal):
    """HalfCauchy(scale): |Cauchy(0, scale)|."""

    def __init__(self, scale, validate_args=None):
        (scale,) = broadcast_all(scale)
        _Folded.__init__(self, Cauchy(creation.zeros_like(scale), scale, validate_args=False), AbsTransform(),
                         validate_args)

    mean = property(lambda self: _full(self.scale, float("inf")))
    variance = property(lambda self: _full(self.scale, float("inf")))

    def __repr__(self):
        return f"HalfCauchy(scale: {self.scale if self.scale.numel() == 1 else tuple(self.scale.shape)})"


class Gumbel(TransformedDistribution):
    """Gumbel(loc, scale): loc - scale log(-log U) for U uniform."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    _param_names = ("loc", "scale")
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        fi = _finfo(self.loc)
        base = Uniform(creation.full_like(self.loc, float(fi.tiny)), creation.full_like(self.loc, 1 - float(fi.eps)),
                       validate_args=False)
        transforms = [ExpTransform().inv, AffineTransform(0, -1), ExpTransform().inv,
                      AffineTransform(self.loc, -self.scale)]
        super().__init__(base, transforms, validate_args)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (self.loc - value) / self.scale
        return z - z.exp() - self.scale.log()

    mean = property(lambda self: self.loc + self.scale * EULER_GAMMA)
    mode = property(lambda self: self.loc)
    stddev = property(lambda self: (math.pi / math.sqrt(6)) * self.scale)
    variance = property(lambda self: self.stddev ** 2)

    def entropy(self):
        return self.scale.log() + (1 + EULER_GAMMA)


class Pareto(TransformedDistribution):
    """Pareto(scale, alpha): scale * exp(E) for E ~ Exponential(alpha); support [scale, inf)."""

    arg_constraints = {"alpha": constraints.positive, "scale": constraints.positive}
    _param_names = ("scale", "alpha")
    has_rsample = True

    def __init__(self, scale, alpha, validate_args=None):
        self.scale, self.alpha = broadcast_all(scale, alpha)
        super().__init__(Exponential(self.alpha, validate_args=False), [ExpTransform(),
                                                                        AffineTransform(0, self.scale)],
                         validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.greater_than_eq(self.scale.detach())

    @property
    def mean(self):
        finite = self.alpha.detach() > 1  # infinite for alpha <= 1
        a = _ops.where(finite, self.alpha, 2.0)
        return _ops.where(finite, a * self.scale / (a - 1), _INF)

    mode = property(lambda self: self.scale)

    @property
    def variance(self):
        finite = self.alpha.detach() > 2  # infinite for alpha <= 2
        a = _ops.where(finite, self.alpha, 3.0)
        return _ops.where(finite, self.scale ** 2 * a / ((a - 1) ** 2 * (a - 2)), _INF)

    def entropy(self):
        return (self.scale / self.alpha).log() + self.alpha.reciprocal() + 1


class Weibull(TransformedDistribution):
    """Weibull(scale, concentration): scale * E^(1/concentration) for E standard exponential."""

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    _param_names = ("scale", "concentration", "concentration_reciprocal")
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale, concentration, validate_args=None):
        self.scale, self.concentration = broadcast_all(scale, concentration)
        self.concentration_reciprocal = self.concentration.reciprocal()
        super().__init__(Exponential(creation.ones_like(self.scale), validate_args=False),
                         [PowerTransform(self.concentration_reciprocal), AffineTransform(0, self.scale)],
                         validate_args)

    mean = property(lambda self: self.scale * (1 + self.concentration_reciprocal).lgamma().exp())

    @property
    def mode(self):
        """scale ((k - 1) / k)^(1/k); NaN for k < 1 (the density is unbounded at 0), as PyTorch."""
        k = self.concentration
        mode = self.scale * ((k - 1) / k).clamp(min=0) ** k.reciprocal()
        return _ops.where(k.detach() >= 1, mode, float("nan"))

    @property
    def variance(self):
        r = self.concentration_reciprocal
        return self.scale ** 2 * ((1 + 2 * r).lgamma().exp() - (2 * (1 + r).lgamma()).exp())

    def entropy(self):
        return EULER_GAMMA * (1 - self.concentration_reciprocal) + (self.scale / self.concentration).log() + 1


class InverseGamma(TransformedDistribution):
    """InverseGamma(concentration, rate): 1 / X for X ~ Gamma(concentration, rate)."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        base = Gamma(concentration, rate, validate_args=validate_args)
        super().__init__(base, PowerTransform(-creation.ones((), dtype=base.rate.dtype, device=base.rate.device)), validate_args)

    concentration = property(lambda self: self.base_dist.concentration)
    rate = property(lambda self: self.base_dist.rate)

    @property
    def mean(self):
        c = self.concentration
        return _ops.where(c.detach() > 1, self.rate / (c - 1), float("inf"))

    mode = property(lambda self: self.rate / (self.concentration + 1))

    @property
    def variance(self):
        c = self.concentration
        return _ops.where(c.detach() > 2, self.rate ** 2 / ((c - 1) ** 2 * (c - 2)), float("inf"))

    def entropy(self):
        c = self.concentration
        return c + self.rate.log() + c.lgamma() - (1 + c) * c.digamma()


def _kumaraswamy_moment(a, b, n: int):
    """E[X^n] = b B(1 + n/a, b) for Kumaraswamy(a, b)."""
    arg = 1 + n / a
    return b * (arg.lgamma() + b.lgamma() - (arg + b).lgamma()).exp()


class Kumaraswamy(TransformedDistribution):
    """Kumaraswamy(concentration1 = a, concentration0 = b): density a b x^(a-1) (1 - x^a)^(b-1) on (0, 1);
    draws (1 - U^(1/b))^(1/a)."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    _param_names = ("concentration1", "concentration0")
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        base = Uniform(creation.zeros_like(self.concentration0), creation.ones_like(self.concentration0),
                       validate_args=False)
        transforms = [PowerTransform(self.concentration0.reciprocal()), AffineTransform(1.0, -1.0),
                      PowerTransform(self.concentration1.reciprocal())]
        super().__init__(base, transforms, validate_args)

    mean = property(lambda self: _kumaraswamy_moment(self.concentration1, self.concentration0, 1))

    @property
    def mode(self):
        """((a - 1) / (a b - 1))^(1/a), undefined (NaN) when a < 1 or b < 1. (PyTorch 2.13's formula differs: it
        is NaN for every b > 1.)"""
        a, b = self.concentration1, self.concentration0
        inside = (a.detach() >= 1) & (b.detach() >= 1)
        safe_a = _ops.where(inside, a, 2.0)
        safe_b = _ops.where(inside, b, 2.0)
        mode = ((safe_a - 1) / (safe_a * safe_b - 1)) ** safe_a.reciprocal()
        return _ops.where(inside, mode, float("nan"))

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        return _kumaraswamy_moment(a, b, 2) - _kumaraswamy_moment(a, b, 1) ** 2

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        harmonic_b = (b + 1).digamma() + EULER_GAMMA
        return (1 - b.reciprocal()) + (1 - a.reciprocal()) * harmonic_b - a.log() - b.log()


class LogisticNormal(TransformedDistribution):
    """LogisticNormal(loc, scale): a Normal vector of K - 1 coordinates mapped onto the K-simplex by stick
    breaking."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        base = Normal(loc, scale, validate_args=validate_args)
        if not tuple(base.batch_shape):
            base = base.expand((1,))
        super().__init__(base, StickBreakingTransform(), validate_args)

    loc = property(lambda self: self.base_dist.base_dist.loc)
    scale = property(lambda self: self.base_dist.base_dist.scale)


class LogitRelaxedBernoulli(_ProbsOrLogits, Distribution):
    """The logit of a RelaxedBernoulli draw: (logit(U) + logits) / temperature for U uniform."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self.temperature = temperature
        self._set_probs_or_logits(probs, logits)  # and the given one's constraint
        super().__init__(self.probs.shape, (), validate_args)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.probs = self.probs.expand(*batch_shape)
        new.logits = self.logits.expand(*batch_shape)
        return new

    def rsample(self, sample_shape=()):
        u = _clamp_probs(_draw("random", self._extended_shape(sample_shape), self.probs))
        return (u.log() - (-u).log1p() + self.logits) / self.temperature

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return _log(self.temperature) + diff - 2 * _softplus(diff)


def _log(t):
    return t.log() if hasattr(t, "log") else math.log(t)


class RelaxedBernoulli(TransformedDistribution):
    """RelaxedBernoulli(temperature, probs=None, logits=None): the sigmoid of a LogitRelaxedBernoulli draw, a
    differentiable stand-in for a Bernoulli on (0, 1)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        super().__init__(LogitRelaxedBernoulli(temperature, probs, logits, validate_args), SigmoidTransform(),
                         validate_args)

    temperature = property(lambda self: self.base_dist.temperature)
    probs = property(lambda self: self.base_dist.probs)
    logits = property(lambda self: self.base_dist.logits)


class ExpRelaxedCategorical(Distribution):
    """The log of a RelaxedOneHotCategorical draw: log softmax((logits + Gumbel noise) / temperature)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args)
        self.temperature = temperature
        self.arg_constraints = {}
        super().__init__(self._categorical.batch_shape, (self._categorical._num_events,), validate_args)

    probs = property(lambda self: self._categorical.probs)
    logits = property(lambda self: self._categorical.logits)
    param_shape = property(lambda self: self._categorical.param_shape)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._categorical = self._categorical.expand(batch_shape)
        return new

    def rsample(self, sample_shape=()):
        u = _clamp_probs(_draw("random", self._extended_shape(sample_shape), self.logits))
        gumbels = -((-u.log()).log())
        scores = (self.logits + gumbels) / self.temperature
        return scores - scores.logsumexp(-1, keepdim=True)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        k = self._categorical._num_events
        log_scale = math.lgamma(k) + (k - 1) * _log(self.temperature)
        score = self.logits - value * self.temperature
        return (score - score.logsumexp(-1, keepdim=True)).sum(-1) + log_scale


class RelaxedOneHotCategorical(TransformedDistribution):
    """RelaxedOneHotCategorical(temperature, probs=None, logits=None): the Gumbel-softmax (Concrete)
    relaxation of a one-hot categorical draw, on the simplex."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        super().__init__(ExpRelaxedCategorical(temperature, probs, logits, validate_args), ExpTransform(),
                         validate_args)

    temperature = property(lambda self: self.base_dist.temperature)
    probs = property(lambda self: self.base_dist.probs)
    logits = property(lambda self: self.base_dist.logits)
