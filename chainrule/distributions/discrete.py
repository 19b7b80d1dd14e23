"""Counting distributions: Poisson, Binomial, Geometric. Draws come from chainrule's seeded generator; the
log-probabilities are differentiable in the parameters (not in the counts)."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule import ops as _ops
from chainrule.autograd import no_grad
from chainrule.backend import np, to_host
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, broadcast_all
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import _draw, _finfo
from chainrule.distributions.utils import _softplus, probs_to_logits
from chainrule.tensor import Tensor

__all__ = ["Poisson", "Binomial", "Geometric", "NegativeBinomial", "Multinomial"]


class _ProbsOrLogits:
    """The probs/logits pair of a success probability: one is given, the other derived."""

    def _set_probs_or_logits(self, probs, logits, *others):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        given = broadcast_all(*others, probs if probs is not None else logits)
        if probs is not None:
            self.probs = given[-1]
            self.logits = probs_to_logits(self.probs, is_binary=True)
            self.arg_constraints = {"probs": constraints.unit_interval}
        else:
            self.logits = given[-1]
            self.probs = self.logits.sigmoid()
            self.arg_constraints = {"logits": constraints.real}
        return given[:-1]


class Poisson(ExponentialFamily):
    """Poisson(rate): P(k) = rate^k e^-rate / k!."""

    arg_constraints = {"rate": constraints.nonnegative}
    _param_names = ("rate",)
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, (), validate_args)

    mean = property(lambda self: self.rate)
    mode = property(lambda self: self.rate.floor())
    variance = property(lambda self: self.rate)

    def sample(self, sample_shape=()):
        with no_grad():
            return creation.poisson(self.rate.detach().expand(*self._extended_shape(sample_shape)))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return _ops.xlogy(value, rate) - rate - (value + 1).lgamma()

    _natural_params = property(lambda self: (self.rate.log(),))

    def _log_normalizer(self, x):
        return x.exp()


class Binomial(_ProbsOrLogits, Distribution):
    """Binomial(total_count=1, probs=None, logits=None): successes in total_count independent trials."""

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}  # total_count and the given one of probs/logits are checked
    _param_names = ("total_count", "probs", "logits")
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        (total_count,) = self._set_probs_or_logits(probs, logits, total_count)
        self.total_count = total_count.to(self.probs.dtype)
        self.arg_constraints = {"total_count": constraints.nonnegative_integer, **self.arg_constraints}
        super().__init__(self.probs.shape, (), validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.total_count.detach())

    mean = property(lambda self: self.total_count * self.probs)
    mode = property(lambda self: ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count))
    variance = property(lambda self: self.total_count * self.probs * (1 - self.probs))
    param_shape = property(lambda self: self.probs.shape)

    def sample(self, sample_shape=()):
        from chainrule.random import default_generator

        shape = tuple(self._extended_shape(sample_shape))
        n = np.broadcast_to(to_host(self.total_count.detach()._data), shape).astype(np.int64)
        p = np.broadcast_to(to_host(self.probs.detach()._data), shape)
        draws = default_generator.numpy.binomial(n, p).astype(p.dtype)
        return creation.tensor(draws, dtype=self.probs.dtype, device=self.probs.device)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        # k log p + (n - k) log(1 - p) = k * logits - n * log(1 + e^logits)
        log_binomial = (n + 1).lgamma() - (value + 1).lgamma() - (n - value + 1).lgamma()
        return log_binomial + value * logits - n * _softplus(logits)

    def enumerate_support(self, expand: bool = True):
        top = to_host(self.total_count.detach()._data)
        if top.size and top.min() != top.max():
            raise NotImplementedError("Inhomogeneous total count not supported by `enumerate_support`.")
        count = int(top.max()) if top.size else 0
        values = creation.arange(count + 1, dtype=self.probs.dtype, device=self.probs.device)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(count + 1, *self._batch_shape) if expand else values

    def entropy(self):
        """Summed over the support; like PyTorch, only for a single total_count across the batch."""
        top = to_host(self.total_count.detach()._data)
        if top.size and top.min() != top.max():
            raise NotImplementedError("Inhomogeneous total count not supported by `entropy`.")
        log_prob = self.log_prob(self.enumerate_support(False))
        return -(log_prob.exp() * log_prob).sum(0)


class Geometric(_ProbsOrLogits, Distribution):
    """Geometric(probs=None, logits=None): the number of failures before the first success."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}  # the given one is checked
    _param_names = ("probs", "logits")
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._set_probs_or_logits(probs, logits)
        super().__init__(self.probs.shape, (), validate_args)

    mean = property(lambda self: self.probs.reciprocal() - 1)
    mode = property(lambda self: creation.zeros_like(self.probs))
    variance = property(lambda self: (self.probs.reciprocal() - 1) / self.probs)

    def sample(self, sample_shape=()):
        """Inversion: floor(log u / log(1 - p)) for u uniform on (0, 1]."""
        with no_grad():
            u = 1.0 - _draw("random", self._extended_shape(sample_shape), self.probs)  # in (0, 1]
            u = u.clamp(min=float(_finfo(u).tiny))
            return (u.log() / (-self.probs.detach()).log1p()).floor()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        probs, value = broadcast_all(self.probs, value)
        # at p = 1 only value 0 is possible, with log-probability 0: keep 0 * log(1 - 1) out of it
        safe = _ops.where((probs.detach() == 1) & (value == 0), 0.0, probs)
        return value * (-safe).log1p() + probs.log()

    def entropy(self):
        # (-(1 - p) log(1 - p) - p log p) / p, the binary entropy over p, written in the logits
        return (_softplus(self.logits) - self.logits * self.probs) / self.probs


def _log_sigmoid(x: Tensor) -> Tensor:
    return -_softplus(-x)


class NegativeBinomial(_ProbsOrLogits, Distribution):
    """NegativeBinomial(total_count, probs=None, logits=None): the number of successes (each of probability
    probs) before total_count failures; a Poisson draw whose rate is a Gamma(total_count, (1 - p) / p) draw."""

    arg_constraints = {"total_count": constraints.greater_than_eq(0),
                       "probs": constraints.half_open_interval(0.0, 1.0), "logits": constraints.real}
    _param_names = ("total_count", "probs", "logits")
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None, validate_args=None):
        (total_count,) = self._set_probs_or_logits(probs, logits, total_count)
        self.total_count = total_count.to(self.probs.dtype)
        given = "probs" if probs is not None else "logits"
        self.arg_constraints = {"total_count": type(self).arg_constraints["total_count"],
                                given: type(self).arg_constraints[given]}
        super().__init__(self.probs.shape, (), validate_args)

    mean = property(lambda self: self.total_count * self.logits.exp())
    mode = property(lambda self: ((self.total_count - 1) * self.logits.exp()).floor().clamp(min=0.0))
    variance = property(lambda self: self.mean / (-self.logits).sigmoid())
    param_shape = property(lambda self: self.probs.shape)

    def sample(self, sample_shape=()):
        from chainrule.distributions.gamma import Gamma

        with no_grad():
            rate = Gamma(self.total_count.detach(), (-self.logits.detach()).exp(),
                         validate_args=False).sample(sample_shape)
            return creation.poisson(rate)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        unnormalised = n * _log_sigmoid(-self.logits) + value * _log_sigmoid(self.logits)
        # total_count = value = 0 is the only outcome, of probability 1: there lgamma(0) - lgamma(0) is taken as
        # lgamma(1) - lgamma(1) = 0
        n_safe = _ops.where((n + value).detach() == 0, 1.0, n)
        log_norm = -(n_safe + value).lgamma() + (1.0 + value).lgamma() + n_safe.lgamma()
        return unnormalised - log_norm


class Multinomial(Distribution):
    """Multinomial(total_count=1, probs=None, logits=None): counts of total_count categorical draws over the
    last dimension's categories."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count: int = 1, probs=None, logits=None, validate_args=None):
        from chainrule.distributions.families import Categorical

        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits, validate_args=validate_args)
        self.arg_constraints = {}
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:], validate_args)

    probs = property(lambda self: self._categorical.probs)
    logits = property(lambda self: self._categorical.logits)
    param_shape = property(lambda self: self._categorical.param_shape)
    mean = property(lambda self: self.probs * self.total_count)
    variance = property(lambda self: self.total_count * self.probs * (1 - self.probs))

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.multinomial(self.total_count)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._categorical = self._categorical.expand(batch_shape)
        return new

    def sample(self, sample_shape=()):
        from chainrule.random import default_generator

        probs = to_host(self.probs.detach()._data).astype(np.float64)
        probs = probs / probs.sum(-1, keepdims=True)
        shape = tuple(self._extended_shape(sample_shape))
        draws = default_generator.numpy.multinomial(self.total_count, np.broadcast_to(probs, shape), size=shape[:-1])
        return creation.tensor(draws.astype(probs.dtype), dtype=self.probs.dtype, device=self.probs.device)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        # a category of probability 0 drawn 0 times contributes 0 (not 0 * -inf)
        logits = _ops.where((value == 0) & (logits.detach() == float("-inf")), 0.0, logits)
        log_factorials = (value.sum(-1) + 1).lgamma() - (value + 1).lgamma().sum(-1)
        return log_factorials + (logits * value).sum(-1)

    def entropy(self):
        """n H(categorical) - log n! + sum_k E[log x_k!], each count x_k being Binomial(n, p_k)."""
        n = self.total_count
        binomial = Binomial(creation.full_like(self.probs, float(n)), self.probs, validate_args=False)
        counts = binomial.enumerate_support(False)  # (n + 1, 1, ..., 1)
        weighted = binomial.log_prob(counts).exp() * (counts + 1).lgamma()
        return n * self._categorical.entropy() - math.lgamma(n + 1) + weighted.sum(0).sum(-1)
