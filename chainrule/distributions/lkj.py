"""LKJCholesky (Lewandowski, Kurowicka and Joe, 2009): a distribution over Cholesky factors L of d x d
correlation matrices with density proportional to det(L L^T)^(concentration - 1), drawn by the onion
method."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule import ops as _ops
from chainrule.autograd import no_grad
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, broadcast_all
from chainrule.distributions.families import _draw, _finfo
from chainrule.distributions.gamma import Beta

__all__ = ["LKJCholesky"]


class LKJCholesky(Distribution):
    """LKJCholesky(dim, concentration=1.0)."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dim: int, concentration=1.0, validate_args=None):
        if dim < 2:
            raise ValueError(f"Expected dim to be an integer greater than or equal to 2. Found dim={dim}.")
        self.dim = dim
        (self.concentration,) = broadcast_all(concentration)
        super().__init__(self.concentration.shape, (dim, dim), validate_args)
        # onion method: row i >= 1 has i entries off the diagonal, their squared length is Beta(i / 2,
        # c + (d - 2) / 2 - (i - 1) / 2) (row 0 has none: its Beta is a placeholder). PyTorch 2.13 uses
        # i - 1/2 for the first parameter, which gives rows i >= 2 too much correlation (too long off-diagonal parts).
        rows = creation.tensor([1.0] + [float(i) for i in range(1, dim)], dtype=self.concentration.dtype,
                               device=self.concentration.device)
        marginal = self.concentration + 0.5 * (dim - 2)
        self._beta = Beta(0.5 * rows, marginal.unsqueeze(-1) - 0.5 * (rows - 1), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        return LKJCholesky(self.dim, self.concentration.expand(*batch_shape), validate_args=False)

    def sample(self, sample_shape=()):
        """Row i: a uniform direction in the first i coordinates, scaled to a Beta-distributed squared length
        y_i; the diagonal entry completes the row to unit length."""
        with no_grad():
            y = self._beta.sample(sample_shape).unsqueeze(-1)  # (..., d, 1)
            normal = _draw("standard_normal", self._extended_shape(sample_shape), self.concentration).tril(-1)
            norms = normal.norm(dim=-1, keepdim=True)
            direction = normal / _ops.where(norms == 0, 1.0, norms)  # row 0 has no entries below the diagonal
            w = y.sqrt() * direction
            diagonal = (1 - (w ** 2).sum(-1)).clamp(min=float(_finfo(w).tiny)).sqrt()
            return w + diagonal.diag_embed()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        d = self.dim
        c = self.concentration
        diagonal = value.diagonal(dim1=-2, dim2=-1)[..., 1:]
        # density in L: prod_{i>=2} L_ii^(d - i + 2(c - 1)) (the Jacobian of L -> L L^T included)
        exponents = 2 * (c - 1).unsqueeze(-1) + d - creation.arange(2, d + 1, dtype=c.dtype, device=c.device)
        unnormalised = (exponents * diagonal.log()).sum(-1)
        return unnormalised - self._log_normalizer(c)

    def _log_normalizer(self, c):
        """log of the normalising constant: (d - 1)/2 log(pi) + log Gamma_(d-1)(alpha - 1/2) - (d - 1) lgamma(alpha)
        with alpha = c + (d - 1)/2 and Gamma_p the multivariate gamma function."""
        p = self.dim - 1
        alpha = c + 0.5 * p
        multivariate_lgamma = 0.25 * p * (p - 1) * math.log(math.pi) + sum(
            (alpha - 0.5 - 0.5 * j).lgamma() for j in range(p))
        return 0.5 * p * math.log(math.pi) + multivariate_lgamma - p * alpha.lgamma()

    def __repr__(self):
        return f"LKJCholesky(concentration: {self.concentration})"
