"""MixtureSameFamily: a Categorical choice among the components of one batched distribution (a Gaussian
mixture is Categorical weights with a Normal or MultivariateNormal of component batch dimension K)."""

from __future__ import annotations

from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution
from chainrule.distributions.families import Categorical
from chainrule.tensor import Tensor

__all__ = ["MixtureSameFamily"]


class MixtureSameFamily(Distribution):
    """MixtureSameFamily(mixture_distribution, component_distribution): the rightmost batch dimension of the
    components (size K) is what the Categorical chooses among."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, mixture_distribution, component_distribution, validate_args=None):
        if not isinstance(mixture_distribution, Categorical):
            raise ValueError(" The Mixture distribution needs to be an instance of torch.distributions.Categorical")
        if not isinstance(component_distribution, Distribution):
            raise ValueError("The Component distribution need to be an instance of torch.distributions.Distribution")
        mix_batch = tuple(mixture_distribution.batch_shape)
        comp_batch = tuple(component_distribution.batch_shape[:-1])
        for size1, size2 in zip(reversed(mix_batch), reversed(comp_batch)):
            if size1 != 1 and size2 != 1 and size1 != size2:
                raise ValueError(f"`mixture_distribution.batch_shape` ({mixture_distribution.batch_shape}) is not "
                                 f"compatible with `component_distribution.batch_shape`({comp_batch})")
        k_mix = mixture_distribution.logits.shape[-1]
        k_comp = component_distribution.batch_shape[-1]
        if k_mix != k_comp:
            raise ValueError(f"`mixture_distribution component` ({k_mix}) does not equal "
                             f"`component_distribution.batch_shape[-1]` ({k_comp})")
        self._mixture_distribution = mixture_distribution
        self._component_distribution = component_distribution
        self._num_component = k_mix
        self._event_ndims = len(component_distribution.event_shape)
        super().__init__(comp_batch, component_distribution.event_shape, validate_args)

    mixture_distribution = property(lambda self: self._mixture_distribution)
    component_distribution = property(lambda self: self._component_distribution)

    @constraints.dependent_property
    def support(self):
        return self._component_distribution.support

    def expand(self, batch_shape, _instance=None):
        batch_shape = tuple(batch_shape)
        return MixtureSameFamily(self._mixture_distribution.expand(batch_shape),
                                 self._component_distribution.expand(batch_shape + (self._num_component,)),
                                 validate_args=False)

    def _pad(self, x: Tensor) -> Tensor:
        """x with a size-1 component dimension where the components' batch keeps K."""
        return x.unsqueeze(-1 - self._event_ndims)

    def _weights(self) -> Tensor:
        """Mixture probabilities, shaped to multiply the components' (..., K, *event) values."""
        probs = self._mixture_distribution.probs
        for _ in range(self._event_ndims):
            probs = probs.unsqueeze(-1)
        return probs

    @property
    def mean(self):
        return (self._weights() * self._component_distribution.mean).sum(-1 - self._event_ndims)

    @property
    def variance(self):
        """The mean of the components' variances plus the variance of their means (law of total variance)."""
        weights, dim = self._weights(), -1 - self._event_ndims
        mean_of_variances = (weights * self._component_distribution.variance).sum(dim)
        spread = (self._component_distribution.mean - self._pad(self.mean)) ** 2
        return mean_of_variances + (weights * spread).sum(dim)

    def cdf(self, x):
        return (self._component_distribution.cdf(self._pad(x)) * self._mixture_distribution.probs).sum(-1)

    def log_prob(self, x):
        if self._validate_args:
            self._validate_sample(x)
        component_log_probs = self._component_distribution.log_prob(self._pad(x))  # (..., K)
        log_weights = self._mixture_distribution.logits.log_softmax(-1)
        return (component_log_probs + log_weights).logsumexp(-1)

    def sample(self, sample_shape=()):
        from chainrule.autograd import no_grad

        with no_grad():
            choice = self._mixture_distribution.sample(sample_shape)  # (S, B)
            draws = self._component_distribution.sample(sample_shape)  # (S, B, K, *event)
            index = choice.reshape(*(tuple(choice.shape) + (1,) * (self._event_ndims + 1)))
            index = index.expand(*(tuple(choice.shape) + (1,) + tuple(self.event_shape)))
            return draws.gather(len(choice.shape), index).squeeze(len(choice.shape))

    def __repr__(self):
        return (f"MixtureSameFamily(\n  {self._mixture_distribution!r},\n  {self._component_distribution!r})")
