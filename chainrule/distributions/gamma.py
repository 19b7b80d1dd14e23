"""The gamma family: Gamma, Dirichlet and Beta (a two-category Dirichlet), reparameterised through
``_standard_gamma``, whose gradient is the implicit one: a draw x of concentration a moves with a so that its
CDF value stays put, dx/da = -(dF/da) / f (``backend.special.standard_gamma_grad``)."""

from __future__ import annotations

from chainrule import creation
from chainrule import ops as _ops
from chainrule.autograd.graph import record
from chainrule.backend import special, to_host, xp_of
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, as_size, broadcast_all
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import _finfo
from chainrule.tensor import Tensor

__all__ = ["Gamma", "Chi2", "Dirichlet", "Beta", "FisherSnedecor"]


def _standard_gamma_grad(concentration: Tensor, sample: Tensor) -> Tensor:
    """d sample / d concentration at a fixed CDF value; a constant of the graph, as PyTorch's (whose second
    derivative is not implemented either)."""
    xp = xp_of(concentration._data)

    def rule(g, _):
        raise NotImplementedError("the derivative for '_standard_gamma_grad' is not implemented.")

    grad = special.standard_gamma_grad(concentration._data, sample._data, xp)
    return record(grad.astype(concentration._data.dtype, copy=False), "_standard_gamma_grad",
                  (concentration, sample), rule)


def _standard_gamma(concentration: Tensor, generator=None) -> Tensor:
    """Draws of Gamma(concentration, 1), one per element, from chainrule's generator; differentiable in the
    concentration. Draws that underflow are raised to the dtype's smallest normal number, as PyTorch's."""
    from chainrule.random import default_generator

    if not isinstance(concentration, Tensor) or not concentration.dtype.is_floating_point:
        raise RuntimeError(f"_standard_gamma: expected a floating point Tensor of concentrations, got "
                           f"{getattr(concentration, 'dtype', type(concentration).__name__)}")
    gen = (generator or default_generator).numpy
    dtype = concentration._data.dtype
    draws = gen.standard_gamma(to_host(concentration._data).astype("float64"))
    draws = concentration.xp.asarray(draws.astype(dtype).clip(min=_finfo(concentration).tiny))
    return record(draws, "_standard_gamma", (concentration,),
                  lambda g, out: (g * _standard_gamma_grad(concentration, out),), (concentration,),
                  keep_output=True)


class Gamma(ExponentialFamily):
    """Gamma(concentration, rate): density rate^a x^(a-1) e^(-rate x) / Gamma(a); ``rsample`` is a
    ``_standard_gamma`` draw over the rate."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    _param_names = ("concentration", "rate")
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.concentration.shape, (), validate_args)

    mean = property(lambda self: self.concentration / self.rate)
    mode = property(lambda self: ((self.concentration - 1) / self.rate).clamp(min=0))
    variance = property(lambda self: self.concentration / self.rate ** 2)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        draws = _standard_gamma(self.concentration.expand(*shape)) / self.rate.expand(*shape)
        return draws.clamp(min=float(_finfo(draws).tiny))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, rate = self.concentration, self.rate
        return _ops.xlogy(a, rate) + _ops.xlogy(a - 1, value) - rate * value - a.lgamma()

    def entropy(self):
        a = self.concentration
        return a - self.rate.log() + a.lgamma() + (1.0 - a) * a.digamma()

    _natural_params = property(lambda self: (self.concentration - 1, -self.rate))
    _mean_carrier_measure = 0

    def _log_normalizer(self, x, y):
        return (x + 1).lgamma() + (x + 1) * (-y.reciprocal()).log()


class Dirichlet(ExponentialFamily):
    """Dirichlet(concentration) over the probability simplex of the last dimension; ``rsample`` normalises
    independent gamma draws, so gradients reach the concentration through each draw."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    _param_names = ("concentration",)
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if not isinstance(concentration, Tensor) or concentration.dim() < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args)

    def _total(self) -> Tensor:
        return self.concentration.sum(-1, keepdim=True)

    mean = property(lambda self: self.concentration / self._total())
    variance = property(lambda self: self.concentration * (self._total() - self.concentration)
                        / (self._total() ** 2 * (self._total() + 1)))

    @property
    def mode(self):
        """(a - 1)+ normalised; where every a < 1 (density unbounded at the corners), the first corner, as
        PyTorch (the argmax of its 0 / 0 row)."""
        from chainrule.nn.functional import one_hot

        a = (self.concentration - 1).clamp(min=0.0)
        total = a.sum(-1, keepdim=True)
        mode = a / _ops.where(total == 0, 1.0, total)
        corner = one_hot(mode.detach().argmax(-1), a.shape[-1]).to(mode.dtype)
        return _ops.where((self.concentration < 1).all(-1, keepdim=True), corner, mode)

    def rsample(self, sample_shape=()):
        draws = _standard_gamma(self.concentration.expand(*self._extended_shape(sample_shape)))
        x = draws / draws.sum(-1, keepdim=True)
        fi = _finfo(x)
        return x.clamp(min=float(fi.tiny), max=1 - float(fi.eps))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a = self.concentration
        return _ops.xlogy(a - 1.0, value).sum(-1) + a.sum(-1).lgamma() - a.lgamma().sum(-1)

    _natural_params = property(lambda self: (self.concentration,))

    def _log_normalizer(self, x):
        return x.lgamma().sum(-1) - x.sum(-1).lgamma()

    def entropy(self):
        a = self.concentration
        k, a0 = a.shape[-1], a.sum(-1)
        return a.lgamma().sum(-1) - a0.lgamma() - (k - a0) * a0.digamma() - ((a - 1.0) * a.digamma()).sum(-1)


class Beta(ExponentialFamily):
    """Beta(concentration1, concentration0) on [0, 1]: the first coordinate of a two-category Dirichlet."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    _param_names = ("concentration1", "concentration0")
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        self._dirichlet = Dirichlet(_ops.stack([self.concentration1, self.concentration0], -1), validate_args=False)
        super().__init__(self.concentration1.shape, (), validate_args)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new._dirichlet = self._dirichlet.expand(as_size(batch_shape))
        return new

    def _total(self) -> Tensor:
        return self.concentration1 + self.concentration0

    mean = property(lambda self: self.concentration1 / self._total())
    mode = property(lambda self: self._dirichlet.mode.select(-1, 0))
    variance = property(lambda self: self.concentration1 * self.concentration0
                        / (self._total() ** 2 * (self._total() + 1)))

    def rsample(self, sample_shape=()):
        return self._dirichlet.rsample(sample_shape).select(-1, 0)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = broadcast_all(value, self.concentration1)[0] if not isinstance(value, Tensor) else value
        return self._dirichlet.log_prob(_ops.stack([value, 1.0 - value], -1))

    def entropy(self):
        return self._dirichlet.entropy()

    _natural_params = property(lambda self: (self.concentration1, self.concentration0))

    def _log_normalizer(self, x, y):
        return x.lgamma() + y.lgamma() - (x + y).lgamma()


class Chi2(Gamma):
    """Chi2(df): Gamma(df / 2, rate 1/2)."""

    arg_constraints = {"df": constraints.positive}
    _param_names = ("df", "concentration", "rate")

    def __init__(self, df, validate_args=None):
        (self.df,) = broadcast_all(df)
        super().__init__(0.5 * self.df, 0.5 * creation.ones_like(self.df), validate_args)

    def _shown_params(self):
        return ("df",)


class FisherSnedecor(Distribution):
    """FisherSnedecor(df1, df2): (X1 / df1) / (X2 / df2) for independent chi-square draws X1, X2, each drawn
    as a reparameterised gamma, so gradients reach both degrees of freedom."""

    arg_constraints = {"df1": constraints.positive, "df2": constraints.positive}
    _param_names = ("df1", "df2")
    support = constraints.positive
    has_rsample = True

    def __init__(self, df1, df2, validate_args=None):
        self.df1, self.df2 = broadcast_all(df1, df2)
        super().__init__(self.df1.shape, (), validate_args)

    @property
    def mean(self):
        return _ops.where(self.df2.detach() > 2, self.df2 / (self.df2 - 2), float("nan"))

    @property
    def mode(self):
        first = _ops.where(self.df1.detach() > 2, (self.df1 - 2) / self.df1, float("nan"))
        return first * self.df2 / (self.df2 + 2)

    @property
    def variance(self):
        df1, df2 = self.df1, self.df2
        finite = 2 * df2 ** 2 * (df1 + df2 - 2) / (df1 * (df2 - 2) ** 2 * (df2 - 4))
        return _ops.where(df2.detach() > 4, finite, float("nan"))

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        half1, half2 = 0.5 * self.df1.expand(*shape), 0.5 * self.df2.expand(*shape)
        x1 = _standard_gamma(half1) / half1  # chi2(df1) / df1
        x2 = _standard_gamma(half2) / half2
        tiny = float(_finfo(x1).tiny)
        return (x1 / x2).clamp(min=tiny)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        half1, half2 = 0.5 * self.df1, 0.5 * self.df2
        ratio = self.df1 / self.df2
        log_beta = half1.lgamma() + half2.lgamma() - (half1 + half2).lgamma()
        return half1 * ratio.log() + (half1 - 1) * value.log() - (half1 + half2) * (ratio * value).log1p() - log_beta
