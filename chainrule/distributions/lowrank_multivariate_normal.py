"""LowRankMultivariateNormal: covariance cov_factor cov_factor^T + diag(cov_diag), handled through the
capacitance matrix C = I + W^T D^-1 W (rank x rank), so log_prob and entropy cost O(n rank^2), never O(n^3)."""

from __future__ import annotations

import math

from chainrule import creation, linalg
from chainrule.backend import np
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, as_size
from chainrule.distributions.families import _draw
from chainrule.tensor import Tensor

__all__ = ["LowRankMultivariateNormal"]

_LOG_2PI = math.log(2 * math.pi)


class LowRankMultivariateNormal(Distribution):
    """LowRankMultivariateNormal(loc, cov_factor, cov_diag): loc (..., n), cov_factor (..., n, rank), cov_diag
    (..., n); ``rsample`` is loc + W eps_rank + sqrt(D) eps_n."""

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}
    _param_names = ("loc", "cov_factor", "cov_diag")
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        if not isinstance(loc, Tensor) or loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        n = loc.shape[-1]
        if not isinstance(cov_factor, Tensor) or cov_factor.dim() < 2:
            raise ValueError("cov_factor must be at least two-dimensional, with optional leading batch dimensions")
        if cov_factor.shape[-2] != n:
            raise ValueError(f"cov_factor must be a batch of matrices with shape {n} x m")
        if not isinstance(cov_diag, Tensor) or tuple(cov_diag.shape[-1:]) != (n,):
            raise ValueError(f"cov_diag must be a batch of vectors with shape {as_size((n,))}")
        batch = tuple(np.broadcast_shapes(tuple(loc.shape[:-1]), tuple(cov_factor.shape[:-2]),
                                          tuple(cov_diag.shape[:-1])))
        self.loc = loc.expand(*(batch + (n,)))
        self.cov_factor = cov_factor.expand(*(batch + tuple(cov_factor.shape[-2:])))
        self.cov_diag = cov_diag.expand(*(batch + (n,)))
        super().__init__(batch, (n,), validate_args)
        self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag = cov_factor, cov_diag
        self._capacitance_tril = self._capacitance_cholesky(cov_factor, cov_diag)

    @staticmethod
    def _capacitance_cholesky(W: Tensor, D: Tensor) -> Tensor:
        """cholesky(I + W^T D^-1 W)."""
        Wt_Dinv = W.mT / D.unsqueeze(-2)
        C = Wt_Dinv @ W
        eye = creation.eye(W.shape[-1], dtype=W.dtype, device=W.device)
        return linalg.cholesky(C + eye)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)

    @property
    def variance(self):
        W, D = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        return ((W ** 2).sum(-1) + D).expand(*(self._batch_shape + self._event_shape))

    def _full(self, matrix: Tensor) -> Tensor:
        return matrix.expand(*(self._batch_shape + self._event_shape * 2))

    @property
    def covariance_matrix(self):
        W, D = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        return self._full(W @ W.mT + D.diag_embed())

    @property
    def precision_matrix(self):
        """Woodbury: D^-1 - D^-1 W C^-1 W^T D^-1, with C = L_C L_C^T."""
        W, D = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        A = linalg.solve_triangular(self._capacitance_tril, W.mT / D.unsqueeze(-2), upper=False)
        return self._full(D.reciprocal().diag_embed() - A.mT @ A)

    @property
    def scale_tril(self):
        return self._full(self._unbroadcasted_scale_tril)

    @property
    def _unbroadcasted_scale_tril(self) -> Tensor:
        """The dense Cholesky factor (what a MultivariateNormal of this covariance keeps; used by KL)."""
        W, D = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        return linalg.cholesky(W @ W.mT + D.diag_embed())

    def _half_log_det(self) -> Tensor:
        """0.5 log det(W W^T + D) = sum log diag(L_C) + 0.5 sum log D (matrix determinant lemma)."""
        return (self._capacitance_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                + 0.5 * self._unbroadcasted_cov_diag.log().sum(-1))

    def _mahalanobis(self, diff: Tensor) -> Tensor:
        """diff^T (W W^T + D)^-1 diff = diff^T D^-1 diff - |L_C^-1 W^T D^-1 diff|^2."""
        W, D = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        scaled = diff / D
        projected = (W.mT @ scaled.unsqueeze(-1))  # (..., rank, 1)
        z = linalg.solve_triangular(self._capacitance_tril, projected, upper=False).squeeze(-1)
        return (diff * scaled).sum(-1) - (z * z).sum(-1)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        rank = self._unbroadcasted_cov_factor.shape[-1]
        eps_rank = _draw("standard_normal", tuple(shape[:-1]) + (rank,), self.loc)
        eps_n = _draw("standard_normal", shape, self.loc)
        low_rank = (self._unbroadcasted_cov_factor @ eps_rank.unsqueeze(-1)).squeeze(-1)
        return self.loc + low_rank + self._unbroadcasted_cov_diag.sqrt() * eps_n

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        m = self._mahalanobis(value - self.loc)
        return -0.5 * (self._event_shape[0] * _LOG_2PI + m) - self._half_log_det()

    def entropy(self):
        H = 0.5 * self._event_shape[0] * (1.0 + _LOG_2PI) + self._half_log_det()
        return H.expand(*self._batch_shape) if self._batch_shape else H
