"""More continuous families: Laplace, LogNormal and StudentT, reparameterised (StudentT through a gamma draw,
so gradients reach its degrees of freedom too)."""

from __future__ import annotations

import math

from chainrule import creation, special
from chainrule import ops as _ops
from chainrule.backend import np, to_host
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, broadcast_all
from chainrule.distributions.families import Normal, _draw, _finfo
from chainrule.distributions.gamma import _standard_gamma

__all__ = ["Laplace", "LogNormal", "StudentT", "Cauchy", "GeneralizedPareto", "VonMises"]


class Laplace(Distribution):
    """Laplace(loc, scale): density exp(-|x - loc| / scale) / (2 scale); ``rsample`` inverts the CDF."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    _param_names = ("loc", "scale")
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, (), validate_args)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)
    variance = property(lambda self: 2 * self.scale ** 2)
    stddev = property(lambda self: math.sqrt(2) * self.scale)

    def rsample(self, sample_shape=()):
        # u uniform on (-1, 1) (the open end keeps log1p(-|u|) finite)
        u = 2 * _draw("random", self._extended_shape(sample_shape), self.loc) - 1
        u = u.clamp(min=float(_finfo(u).eps) - 1)
        return self.loc - self.scale * u.sign() * (-u.abs()).log1p()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -(2 * self.scale).log() - (value - self.loc).abs() / self.scale

    def cdf(self, value):
        z = (value - self.loc) / self.scale
        return 0.5 - 0.5 * z.sign() * (-z.abs()).expm1()

    def icdf(self, value):
        centred = value - 0.5
        return self.loc - self.scale * centred.sign() * (-2 * centred.abs()).log1p()

    def entropy(self):
        return 1 + (2 * self.scale).log()


class LogNormal(Distribution):
    """LogNormal(loc, scale): exp of a Normal(loc, scale) draw."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    _param_names = ("loc", "scale")
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.base_dist = Normal(loc, scale, validate_args=validate_args)
        self.loc, self.scale = self.base_dist.loc, self.base_dist.scale
        super().__init__(self.loc.shape, (), validate_args)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.base_dist = self.base_dist.expand(batch_shape)
        return new

    mean = property(lambda self: (self.loc + self.scale ** 2 / 2).exp())
    mode = property(lambda self: (self.loc - self.scale ** 2).exp())
    variance = property(lambda self: (self.scale ** 2).expm1() * (2 * self.loc + self.scale ** 2).exp())

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape).exp()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_value = value.log()
        return self.base_dist.log_prob(log_value) - log_value

    def cdf(self, value):
        return self.base_dist.cdf(value.log())

    def entropy(self):
        return self.base_dist.entropy() + self.loc


class StudentT(Distribution):
    """StudentT(df, loc=0, scale=1); ``rsample`` is loc + scale * N / sqrt(G / df) with N standard normal and
    G a chi-square(df) draw, 2 * Gamma(df / 2, 1)."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    _param_names = ("df", "loc", "scale")
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        super().__init__(self.df.shape, (), validate_args)

    mode = property(lambda self: self.loc)

    @property
    def mean(self):
        return _ops.where(self.df.detach() > 1, self.loc, float("nan"))

    @property
    def variance(self):
        df = self.df.detach()
        finite = self.scale ** 2 * self.df / _ops.where(df > 2, self.df - 2, 1.0)
        return _ops.where(df > 2, finite, _ops.where(df > 1, float("inf"), float("nan")))

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        normal = _draw("standard_normal", shape, self.df)
        chi2 = 2 * _standard_gamma(0.5 * self.df.expand(*shape))
        return self.loc + self.scale * normal * (self.df / chi2).sqrt()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        df = self.df
        y = (value - self.loc) / self.scale
        log_norm = (self.scale.log() + 0.5 * df.log() + 0.5 * math.log(math.pi) + (0.5 * df).lgamma()
                    - (0.5 * (df + 1)).lgamma())
        return -0.5 * (df + 1) * (y ** 2 / df).log1p() - log_norm

    def entropy(self):
        df = self.df
        log_beta = (0.5 * df).lgamma() + math.lgamma(0.5) - (0.5 * (df + 1)).lgamma()
        return (self.scale.log() + 0.5 * (df + 1) * ((0.5 * (df + 1)).digamma() - (0.5 * df).digamma())
                + 0.5 * df.log() + log_beta)


class Cauchy(Distribution):
    """Cauchy(loc, scale): density 1 / (pi scale (1 + ((x - loc) / scale)^2)); no mean, infinite variance."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    _param_names = ("loc", "scale")
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, (), validate_args)

    mean = property(lambda self: creation.full_like(self.loc, float("nan")))
    mode = property(lambda self: self.loc)
    variance = property(lambda self: creation.full_like(self.loc, float("inf")))

    def rsample(self, sample_shape=()):
        return self.loc + _draw("standard_cauchy", self._extended_shape(sample_shape), self.loc) * self.scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -math.log(math.pi) - self.scale.log() - (((value - self.loc) / self.scale) ** 2).log1p()

    def cdf(self, value):
        return ((value - self.loc) / self.scale).atan() / math.pi + 0.5

    def icdf(self, value):
        return (math.pi * (value - 0.5)).tan() * self.scale + self.loc

    def entropy(self):
        return math.log(4 * math.pi) + self.scale.log()


class GeneralizedPareto(Distribution):
    """GeneralizedPareto(loc, scale, concentration = xi): survival (1 + xi z)^(-1/xi) for z = (x - loc) / scale
    (exp(-z) at xi = 0); support [loc, loc - scale / xi] for xi < 0, else [loc, inf). ``rsample`` inverts the CDF."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive, "concentration": constraints.real}
    _param_names = ("loc", "scale", "concentration")
    has_rsample = True

    def __init__(self, loc, scale, concentration, validate_args=None):
        self.loc, self.scale, self.concentration = broadcast_all(loc, scale, concentration)
        super().__init__(self.loc.shape, (), validate_args)

    def _xi(self):
        """(xi is 0, xi with 0 replaced by 1): the xi = 0 limit is taken separately, never divided by."""
        at_zero = self.concentration.detach().abs() < 1e-8
        return at_zero, _ops.where(at_zero, 1.0, self.concentration)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        xi = self.concentration.detach()
        upper = _ops.where(xi < 0, self.loc.detach() - self.scale.detach() / _ops.where(xi < 0, xi, -1.0),
                           float("inf"))
        return constraints.interval(self.loc.detach(), upper)

    def rsample(self, sample_shape=()):
        return self.icdf(_draw("random", self._extended_shape(sample_shape), self.loc))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        at_zero, xi = self._xi()
        z = (value - self.loc) / self.scale
        power = (1 / xi + 1) * (xi * z).log1p()
        return -self.scale.log() - _ops.where(at_zero, z, power)

    def log_survival_function(self, value):
        at_zero, xi = self._xi()
        z = (value - self.loc) / self.scale
        return _ops.where(at_zero, -z, -(xi * z).log1p() / xi)

    def log_cdf(self, value):
        return (-self.log_survival_function(value).exp()).log1p()

    def cdf(self, value):
        return self.log_cdf(value).exp()

    def icdf(self, value):
        at_zero, xi = self._xi()
        log_survival = (-value).log1p()
        return self.loc + self.scale * _ops.where(at_zero, -log_survival, (-xi * log_survival).expm1() / xi)

    @property
    def mean(self):
        xi = self.concentration
        finite = xi.detach() < 1
        return _ops.where(finite, self.loc + self.scale / (1 - _ops.where(finite, xi, 0.5)), float("nan"))

    @property
    def variance(self):
        xi = self.concentration
        finite = xi.detach() < 0.5
        safe = _ops.where(finite, xi, 0.25)
        return _ops.where(finite, self.scale ** 2 / ((1 - safe) ** 2 * (1 - 2 * safe)), float("nan"))

    mode = property(lambda self: self.loc)

    def entropy(self):
        return self.scale.log() + self.concentration + 1


class VonMises(Distribution):
    """VonMises(loc, concentration): the circular normal on [-pi, pi), density exp(k cos(x - loc)) / (2 pi I0(k)).
    Draws come from numpy's von Mises sampler on chainrule's generator (not reparameterised, as PyTorch's)."""

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    _param_names = ("loc", "concentration")
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, concentration, validate_args=None):
        self.loc, self.concentration = broadcast_all(loc, concentration)
        super().__init__(self.loc.shape, (), validate_args)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        k = self.concentration
        log_i0 = special.i0e(k).log() + k  # log I0(k), without overflow for large k
        return k * (value - self.loc).cos() - math.log(2 * math.pi) - log_i0

    def sample(self, sample_shape=()):
        from chainrule.random import default_generator

        shape = tuple(self._extended_shape(sample_shape))
        loc = np.broadcast_to(to_host(self.loc.detach()._data), shape)
        kappa = np.broadcast_to(to_host(self.concentration.detach()._data), shape)
        draws = default_generator.numpy.vonmises(loc.astype(np.float64), kappa.astype(np.float64))
        return creation.tensor(draws, dtype=self.loc.dtype, device=self.loc.device)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)

    @property
    def variance(self):
        """The circular variance 1 - I1(k) / I0(k)."""
        k = self.concentration
        return 1 - special.i1e(k) / special.i0e(k)
