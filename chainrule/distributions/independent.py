"""Independent: the rightmost batch dimensions of a distribution read as event dimensions (a diagonal
Normal as one multivariate draw): log_prob and entropy sum over them."""

from __future__ import annotations

from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, Size, as_size

__all__ = ["Independent"]


def _sum_rightmost(value, dims: int):
    """The sum over the rightmost ``dims`` dimensions. As PyTorch's, a reshape to (..., -1) summed: a value
    with fewer dimensions (Wishart's scalar natural parameter next to its matrix one) is summed whole."""
    if dims <= 0:
        return value
    return value.reshape(*(tuple(value.shape[:-dims]) + (-1,))).sum(-1)


class Independent(Distribution):
    """Independent(base_distribution, reinterpreted_batch_ndims)."""

    arg_constraints: dict = {}

    def __init__(self, base_distribution, reinterpreted_batch_ndims: int, validate_args=None):
        n = int(reinterpreted_batch_ndims)
        batch = tuple(base_distribution.batch_shape)
        if n > len(batch):
            raise ValueError(f"Expected reinterpreted_batch_ndims <= len(base_distribution.batch_shape), actual "
                             f"{n} vs {len(batch)}")
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = n
        split = len(batch) - n
        super().__init__(batch[:split], batch[split:] + tuple(base_distribution.event_shape), validate_args)

    has_rsample = property(lambda self: self.base_dist.has_rsample)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(self.base_dist.support, self.reinterpreted_batch_ndims)

    def expand(self, batch_shape, _instance=None):
        batch_shape = as_size(batch_shape)
        tail = Size(self.event_shape[:self.reinterpreted_batch_ndims])
        return Independent(self.base_dist.expand(batch_shape + tail), self.reinterpreted_batch_ndims,
                           validate_args=False)

    mean = property(lambda self: self.base_dist.mean)
    mode = property(lambda self: self.base_dist.mode)
    variance = property(lambda self: self.base_dist.variance)

    def sample(self, sample_shape=()):
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape)

    def log_prob(self, value):
        return _sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self):
        return _sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    def enumerate_support(self, expand: bool = True):
        if self.reinterpreted_batch_ndims > 0:
            raise NotImplementedError("Enumeration over cartesian product is not implemented")
        return self.base_dist.enumerate_support(expand=expand)

    def __repr__(self):
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"
