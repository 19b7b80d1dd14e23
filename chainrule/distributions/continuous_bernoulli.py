"""ContinuousBernoulli (Loaiza-Ganem and Cunningham, 2019): density C(p) p^x (1 - p)^(1 - x) on [0, 1], with
C(p) = (log(1 - p) - log p) / (1 - 2p). Near p = 1/2 the closed forms are 0/0, so within ``lims`` of it each
quantity is its Taylor expansion about 1/2 instead."""

from __future__ import annotations

import math

from chainrule import ops as _ops
from chainrule.distributions import constraints
from chainrule.distributions.distribution import broadcast_all
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import _clamp_probs, _draw
from chainrule.distributions.utils import _softplus, probs_to_logits
from chainrule.tensor import Tensor

__all__ = ["ContinuousBernoulli"]


class ContinuousBernoulli(ExponentialFamily):
    """ContinuousBernoulli(probs=None, logits=None, lims=(0.499, 0.501))."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    _param_names = ("probs", "logits")
    support = constraints.unit_interval
    has_rsample = True
    _mean_carrier_measure = 0

    def __init__(self, probs=None, logits=None, lims=(0.499, 0.501), validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            self.logits = probs_to_logits(self.probs, is_binary=True)
            self.arg_constraints = {"probs": constraints.unit_interval}
        else:
            (self.logits,) = broadcast_all(logits)
            self.probs = _clamp_probs(self.logits.sigmoid())
            self.arg_constraints = {"logits": constraints.real}
        self._lims = lims
        super().__init__(self.probs.shape, (), validate_args)

    def _stable(self):
        """(outside the Taylor region, probs moved off 1/2 where inside so the closed forms stay finite)."""
        p = self.probs.detach()
        outside = (p <= self._lims[0]) | (p >= self._lims[1])
        return outside, _ops.where(outside, self.probs, self._lims[0])

    def _log_norm(self) -> Tensor:
        outside, p = self._stable()
        # log C = log|log(1 - p) - log p| - log|1 - 2p|, each absolute value taken on its side of 1/2
        below = (p.detach() <= 0.5)
        log_gap = ((-p).log1p() - p.log()).abs().log()
        log_denominator = _ops.where(below, (-2 * _ops.where(below, p, 0.0)).log1p(),
                                     (2 * _ops.where(below, 1.0, p) - 1).log())
        t = self.probs - 0.5
        taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * t ** 2) * t ** 2
        return _ops.where(outside, log_gap - log_denominator, taylor)

    @property
    def mean(self):
        outside, p = self._stable()
        closed = p / (2 * p - 1) + 1 / ((-p).log1p() - p.log())
        t = self.probs - 0.5
        return _ops.where(outside, closed, 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * t ** 2) * t)

    @property
    def variance(self):
        outside, p = self._stable()
        closed = p * (p - 1) / (1 - 2 * p) ** 2 + 1 / ((-p).log1p() - p.log()) ** 2
        t = self.probs - 0.5
        return _ops.where(outside, closed, 1.0 / 12.0 - (1.0 / 15.0 - 128.0 / 945.0 * t ** 2) * t ** 2)

    param_shape = property(lambda self: self.probs.shape)

    def rsample(self, sample_shape=()):
        return self.icdf(_draw("random", self._extended_shape(sample_shape), self.probs))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        # x log p + (1 - x) log(1 - p), written in the logits (minus binary cross-entropy with logits)
        return -(_softplus(logits) - logits * value) + self._log_norm()

    def cdf(self, value):
        outside, p = self._stable()
        closed = (p ** value * (1 - p) ** (1 - value) + p - 1) / (2 * p - 1)
        inside_value = _ops.where(outside, closed, value)
        return _ops.where(value <= 0, 0.0, _ops.where(value >= 1, 1.0, inside_value))

    def icdf(self, value):
        outside, p = self._stable()
        closed = ((-p + value * (2 * p - 1)).log1p() - (-p).log1p()) / (p.log() - (-p).log1p())
        return _ops.where(outside, closed, value)

    def entropy(self):
        log_p0, log_p1 = (-self.probs).log1p(), self.probs.log()
        return self.mean * (log_p0 - log_p1) - self._log_norm() - log_p0

    _natural_params = property(lambda self: (self.logits,))

    def _log_normalizer(self, x):
        """log((e^x - 1) / x) in the natural parameter (the logits), Taylor-expanded about 0."""
        outside = (x.detach() <= self._lims[0] - 0.5) | (x.detach() >= self._lims[1] - 0.5)
        safe = _ops.where(outside, x, self._lims[0] - 0.5)
        closed = safe.expm1().abs().log() - safe.abs().log()
        return _ops.where(outside, closed, 0.5 * x + x ** 2 / 24.0 - x ** 4 / 2880.0)
