"""The families: Normal, Uniform, Exponential (reparameterised), Bernoulli, Categorical, OneHotCategorical.
Every formula is built from differentiable chainrule ops, so gradients reach the parameters."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule import dtypes as _dtypes
from chainrule import ops as _ops
from chainrule.autograd import no_grad
from chainrule.backend import np
from chainrule.distributions import constraints
from chainrule.distributions.distribution import LOG_SQRT_2PI, Distribution, as_size, broadcast_all
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.utils import clamp_probs, probs_to_logits
from chainrule.tensor import Tensor, wrap

__all__ = ["Normal", "Uniform", "Exponential", "Bernoulli", "Categorical", "OneHotCategorical",
           "OneHotCategoricalStraightThrough"]



def _draw(fn: str, shape, like: Tensor, generator=None) -> Tensor:
    """Standard draws (``standard_normal``, ``random``, ``standard_exponential``) in ``like``'s dtype/device."""
    from chainrule.random import default_generator

    gen = (generator or default_generator).numpy
    return wrap(like.xp.asarray(getattr(gen, fn)(tuple(shape)).astype(like._data.dtype, copy=False)))


def _finfo(t: Tensor):
    return np.finfo(t._data.dtype)


class Normal(ExponentialFamily):
    """Normal(loc, scale); ``rsample`` is ``loc + eps * scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    _param_names = ("loc", "scale")
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, (), validate_args)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)
    stddev = property(lambda self: self.scale)
    variance = property(lambda self: self.scale ** 2)

    def rsample(self, sample_shape=()) -> Tensor:
        eps = _draw("standard_normal", self._extended_shape(sample_shape), self.loc)
        return self.loc + eps * self.scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -((value - self.loc) ** 2) / (2 * self.variance) - self.scale.log() - LOG_SQRT_2PI

    def cdf(self, value):
        return 0.5 * (1 + ((value - self.loc) / (self.scale * math.sqrt(2))).erf())

    def icdf(self, value):
        return self.loc + self.scale * (2 * value - 1).erfinv() * math.sqrt(2)

    def entropy(self):
        return 0.5 + LOG_SQRT_2PI + self.scale.log()

    _natural_params = property(lambda self: (self.loc / self.scale ** 2, -0.5 / self.scale ** 2))
    _mean_carrier_measure = 0

    def _log_normalizer(self, x, y):
        return -0.25 * x ** 2 / y + 0.5 * (-math.pi / y).log()


class Uniform(Distribution):
    """Uniform on [low, high); ``rsample`` is ``low + u * (high - low)``."""

    _param_names = ("low", "high")
    has_rsample = True

    def __init__(self, low, high, validate_args=None):
        self.low, self.high = broadcast_all(low, high)
        super().__init__(self.low.shape, (), validate_args)

    @property
    def arg_constraints(self):
        """Each bound against the other, as PyTorch's."""
        return {"low": constraints.less_than(self.high.detach()), "high": constraints.greater_than(self.low.detach())}

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low.detach(), self.high.detach())

    mean = property(lambda self: (self.high + self.low) / 2)
    stddev = property(lambda self: (self.high - self.low) / 12 ** 0.5)
    variance = property(lambda self: (self.high - self.low) ** 2 / 12)

    def rsample(self, sample_shape=()):
        u = _draw("random", self._extended_shape(sample_shape), self.low)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        inside = ((self.low.detach() <= value) & (value < self.high.detach()))
        return _ops.where(inside, 0.0, float("-inf")) - (self.high - self.low).log()

    def cdf(self, value):
        return ((value - self.low) / (self.high - self.low)).clamp(0, 1)

    def icdf(self, value):
        return self.low + value * (self.high - self.low)

    def entropy(self):
        return (self.high - self.low).log()


class Exponential(ExponentialFamily):
    """Exponential(rate); ``rsample`` is ``E / rate`` with E standard exponential."""

    arg_constraints = {"rate": constraints.positive}
    _param_names = ("rate",)
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, (), validate_args)

    mean = property(lambda self: self.rate.reciprocal())
    stddev = property(lambda self: self.rate.reciprocal())
    variance = property(lambda self: self.rate ** -2)
    mode = property(lambda self: creation.zeros_like(self.rate))

    def rsample(self, sample_shape=()):
        return _draw("standard_exponential", self._extended_shape(sample_shape), self.rate) / self.rate

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self.rate.log() - self.rate * value

    def cdf(self, value):
        return 1 - (-self.rate * value).exp()

    def icdf(self, value):
        return -(-value).log1p() / self.rate

    def entropy(self):
        return 1.0 - self.rate.log()

    _natural_params = property(lambda self: (-self.rate,))
    _mean_carrier_measure = 0

    def _log_normalizer(self, x):
        return -(-x).log()


_clamp_probs = clamp_probs


class Bernoulli(ExponentialFamily):
    """Bernoulli(probs=...) or Bernoulli(logits=...): one of the two, the other derived."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}  # the given one is checked
    _param_names = ("probs", "logits")
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            self.logits = probs_to_logits(self.probs, is_binary=True)
            self.arg_constraints = {"probs": constraints.unit_interval}
        else:
            (self.logits,) = broadcast_all(logits)
            self.probs = self.logits.sigmoid()
            self.arg_constraints = {"logits": constraints.real}
        super().__init__(self.probs.shape, (), validate_args)

    mean = property(lambda self: self.probs)
    variance = property(lambda self: self.probs * (1 - self.probs))
    mode = property(lambda self: (self.probs >= 0.5).to(self.probs.dtype))
    param_shape = property(lambda self: self.probs.shape)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            return creation.bernoulli(self.probs.detach().expand(*shape))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        # -binary_cross_entropy_with_logits(logits, value), stable for large |logits|
        return -(logits.clamp(min=0) - logits * value + (-logits.abs()).exp().log1p())

    def entropy(self):
        logits, p = self.logits, self.probs
        return logits.clamp(min=0) - logits * p + (-logits.abs()).exp().log1p()

    _natural_params = property(lambda self: (self.logits,))
    _mean_carrier_measure = 0

    def _log_normalizer(self, x):
        return x.clamp(min=0) + (-x.abs()).exp().log1p()  # log(1 + e^x)

    def enumerate_support(self, expand: bool = True):
        values = creation.arange(2, dtype=self.probs.dtype, device=self.probs.device)
        values = values.reshape((2,) + (1,) * len(self._batch_shape))
        return values.expand(2, *self._batch_shape) if expand else values


class Categorical(Distribution):
    """Categorical(probs=...) or Categorical(logits=...) over the last dimension (normalised here)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}  # the given one is checked
    _param_names = ("probs", "logits")
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        given = probs if probs is not None else logits
        if not isinstance(given, Tensor) or given.dim() < 1:
            raise ValueError("`probs` or `logits` parameter must be at least one-dimensional.")
        if probs is not None:
            self.probs = probs / probs.sum(-1, keepdim=True)
            self.logits = _clamp_probs(self.probs).log()
            self.arg_constraints = {"probs": constraints.simplex}
            self._raw = probs
        else:
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
            self.probs = self.logits.softmax(-1)
            self.arg_constraints = {"logits": constraints.real_vector}
            self._raw = logits
        self._num_events = given.shape[-1]
        super().__init__(given.shape[:-1], (), validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    param_shape = property(lambda self: self.probs.shape)

    def _nan(self) -> Tensor:
        return creation.full(tuple(self._extended_shape()), float("nan"), dtype=self.probs.dtype,
                           device=self.probs.device)

    mean = property(lambda self: self._nan())
    variance = property(lambda self: self._nan())
    mode = property(lambda self: self.probs.argmax(-1))

    def sample(self, sample_shape=()):
        sample_shape = as_size(sample_shape)
        n = int(np.prod(sample_shape)) if sample_shape else 1
        probs_2d = self.probs.detach().reshape(-1, self._num_events)
        if probs_2d.shape[0] == 0:  # an empty batch draws nothing
            return creation.zeros(*(sample_shape + self._batch_shape), dtype=_dtypes.int64, device=self.probs.device)
        with no_grad():
            draws = creation.multinomial(probs_2d, n, True).t()  # (n, prod(batch))
        return draws.reshape(*(sample_shape + self._batch_shape))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.long()
        shape = tuple(np.broadcast_shapes(tuple(value.shape), tuple(self._batch_shape)))
        value = value.expand(*shape) if tuple(value.shape) != shape else value
        logits = self.logits.expand(*(shape + (self._num_events,)))
        return logits.gather(-1, value.unsqueeze(-1)).squeeze(-1)

    def entropy(self):
        min_real = float(_finfo(self.logits).min)
        return -(self.logits.clamp(min=min_real) * self.probs).sum(-1)

    def enumerate_support(self, expand: bool = True):
        values = creation.arange(self._num_events, device=self.probs.device).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand(self._num_events, *self._batch_shape) if expand else values


class OneHotCategorical(Distribution):
    """Categorical with one-hot draws: event_shape is (number of categories,)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    _param_names = ()
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args)
        self.arg_constraints = {}
        super().__init__(self._categorical.batch_shape, (self._categorical._num_events,), validate_args)

    probs = property(lambda self: self._categorical.probs)
    logits = property(lambda self: self._categorical.logits)
    mean = property(lambda self: self._categorical.probs)
    variance = property(lambda self: self._categorical.probs * (1 - self._categorical.probs))
    param_shape = property(lambda self: self._categorical.param_shape)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._categorical = self._categorical.expand(batch_shape)
        return new

    def sample(self, sample_shape=()):
        from chainrule.nn.functional import one_hot

        idx = self._categorical.sample(sample_shape)
        return one_hot(idx, self._categorical._num_events).to(self.probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand: bool = True):
        """The n one-hot vectors, shaped (n,) + (1,) * len(batch_shape) + (n,), or expanded over the batch."""
        n = self._categorical._num_events
        values = creation.eye(n, dtype=self.probs.dtype, device=self.probs.device)
        values = values.reshape((n,) + (1,) * len(self._batch_shape) + (n,))
        return values.expand(n, *self._batch_shape, n) if expand else values

    def __repr__(self):
        return "OneHotCategorical(" + repr(self._categorical).split("(", 1)[1]


class OneHotCategoricalStraightThrough(OneHotCategorical):
    """OneHotCategorical whose ``rsample`` is the one-hot draw in the forward pass and passes the gradient to
    the probabilities unchanged (the straight-through estimator: draw + probs - probs.detach())."""

    has_rsample = True

    def rsample(self, sample_shape=()):
        draws = self.sample(sample_shape)
        probs = self._categorical.probs
        return draws + (probs - probs.detach())
