"""ExponentialFamily: densities p(x) = h(x) exp(<eta, T(x)> - A(eta)). From the natural parameters eta and the
log normaliser A alone, the entropy is A - <eta, grad A> - E[log h(x)] and the KL between two members of the
same family is the Bregman divergence of A; grad A comes from autograd, kept differentiable."""

from __future__ import annotations

from chainrule import autograd
from chainrule.distributions.distribution import Distribution

__all__ = ["ExponentialFamily"]


class ExponentialFamily(Distribution):
    """Subclasses give ``_natural_params`` (a tuple of tensors), ``_log_normalizer(*natural_params)`` and
    ``_mean_carrier_measure`` (E[log h(x)])."""

    @property
    def _natural_params(self) -> tuple:
        raise NotImplementedError

    def _log_normalizer(self, *natural_params):
        raise NotImplementedError

    @property
    def _mean_carrier_measure(self):
        raise NotImplementedError

    def _log_normalizer_and_gradients(self):
        """(eta, A(eta), grad A(eta), whether any eta carries a graph); such eta is used as it is, so the
        results stay differentiable in the distribution's parameters (the others get throwaway leaves)."""
        natural = self._natural_params
        tracked = any(p.requires_grad for p in natural)
        params = [p if p.requires_grad else p.detach().requires_grad_(True) for p in natural]
        with autograd.enable_grad():
            log_normalizer = self._log_normalizer(*params)
            gradients = autograd.grad(log_normalizer.sum(), params, create_graph=True, retain_graph=True)
        return params, log_normalizer, gradients, tracked

    def entropy(self):
        params, log_normalizer, gradients, tracked = self._log_normalizer_and_gradients()
        result = log_normalizer - self._mean_carrier_measure
        for eta, g in zip(params, gradients):
            result = result - (eta * g).reshape(*(tuple(self._batch_shape) + (-1,))).sum(-1)
        return result if tracked else result.detach()
