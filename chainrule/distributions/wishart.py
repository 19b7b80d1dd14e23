"""Wishart(df, covariance_matrix | precision_matrix | scale_tril): the distribution of X = sum of df outer
products of Normal(0, Sigma) vectors, for real df > p - 1. Draws by the Bartlett decomposition, X = (L A)(L A)^T
with A lower triangular, chi-distributed diagonal (reparameterised gamma draws, so gradients reach df) and
standard normal entries below it."""

from __future__ import annotations

import math

from chainrule import creation, linalg
from chainrule import ops as _ops
from chainrule.backend import np
from chainrule.distributions import constraints
from chainrule.distributions.distribution import as_size
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import _draw
from chainrule.distributions.gamma import _standard_gamma
from chainrule.distributions.multivariate_normal import MultivariateNormal
from chainrule.tensor import Tensor

__all__ = ["Wishart"]

_LOG_2 = math.log(2.0)


def _mvlgamma(a: Tensor, p: int) -> Tensor:
    """log of the multivariate gamma function Gamma_p(a)."""
    return 0.25 * p * (p - 1) * math.log(math.pi) + sum((a - 0.5 * j).lgamma() for j in range(p))


def _mvdigamma(a: Tensor, p: int) -> Tensor:
    """d/da log Gamma_p(a) = sum_j digamma(a - j / 2)."""
    return sum((a - 0.5 * j).digamma() for j in range(p))


def _log_det_pd(m: Tensor) -> Tensor:
    return 2 * linalg.cholesky(m).diagonal(dim1=-2, dim2=-1).log().sum(-1)


class Wishart(ExponentialFamily):
    """Wishart(df, covariance_matrix=None, precision_matrix=None, scale_tril=None)."""

    support = constraints.positive_definite
    has_rsample = True
    _mean_carrier_measure = 0

    def __init__(self, df, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        matrix = given[0]
        if not isinstance(matrix, Tensor) or matrix.dim() < 2:
            raise ValueError("scale_tril must be at least two-dimensional, with optional leading batch dimensions")
        p = matrix.shape[-1]
        df = df if isinstance(df, Tensor) else creation.tensor(float(df), dtype=matrix.dtype, device=matrix.device)
        batch = tuple(np.broadcast_shapes(tuple(matrix.shape[:-2]), tuple(df.shape)))
        self.df = df.expand(*batch)
        # the matrix's parametrisation and checks are MultivariateNormal's (same three forms, same constraints)
        self._mvn = MultivariateNormal(creation.zeros(p, dtype=matrix.dtype, device=matrix.device), covariance_matrix,
                                       precision_matrix, scale_tril, validate_args=validate_args)
        self.arg_constraints = {"df": constraints.greater_than(p - 1)}
        super().__init__(batch, (p, p), validate_args)
        self._unbroadcasted_scale_tril = self._mvn._unbroadcasted_scale_tril

    def _full(self, m: Tensor) -> Tensor:
        return m.expand(*(tuple(self._batch_shape) + tuple(self._event_shape)))

    scale_tril = property(lambda self: self._full(self._unbroadcasted_scale_tril))
    covariance_matrix = property(lambda self: self._full(self._mvn.covariance_matrix))
    precision_matrix = property(lambda self: self._full(self._mvn.precision_matrix))

    def expand(self, batch_shape, _instance=None):
        batch_shape = tuple(as_size(batch_shape))
        return Wishart(self.df.expand(*batch_shape), scale_tril=self._unbroadcasted_scale_tril.expand(
            *(batch_shape + tuple(self._event_shape))), validate_args=False)

    def _df_matrix(self) -> Tensor:
        return self.df.reshape(*(tuple(self._batch_shape) + (1, 1)))

    mean = property(lambda self: self._df_matrix() * self.covariance_matrix)

    @property
    def mode(self):
        """(df - p - 1) Sigma where df > p + 1; NaN otherwise (no interior mode), as PyTorch."""
        factor = self._df_matrix() - self._event_shape[-1] - 1
        return _ops.where(factor.detach() > 0, factor * self.covariance_matrix, float("nan"))

    @property
    def variance(self):
        V = self.covariance_matrix
        d = V.diagonal(dim1=-2, dim2=-1)
        return self._df_matrix() * (V ** 2 + d.unsqueeze(-1) * d.unsqueeze(-2))

    def rsample(self, sample_shape=()):
        p = self._event_shape[-1]
        shape = tuple(self._extended_shape(sample_shape))  # (..., p, p)
        # A_ii = sqrt(chi2(df - i)) = sqrt(2 Gamma((df - i) / 2)), i = 0..p-1
        half_dof = 0.5 * (self.df.unsqueeze(-1) - creation.arange(p, dtype=self.df.dtype, device=self.df.device))
        chi = (2 * _standard_gamma(half_dof.expand(*shape[:-1]))).sqrt()
        noise = _draw("standard_normal", shape, self.df).tril(-1)
        A = noise + chi.diag_embed()
        LA = self._unbroadcasted_scale_tril @ A
        return LA @ LA.mT

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        nu, p, L = self.df, self._event_shape[-1], self._unbroadcasted_scale_tril
        # tr(Sigma^-1 X) = tr(L^-1 X L^-T)
        inner = linalg.solve_triangular(L, linalg.solve_triangular(L, value, upper=False).mT, upper=False)
        trace = inner.diagonal(dim1=-2, dim2=-1).sum(-1)
        half_log_det_sigma = L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return (0.5 * (nu - p - 1) * _log_det_pd(value) - 0.5 * trace - 0.5 * nu * p * _LOG_2
                - nu * half_log_det_sigma - _mvlgamma(0.5 * nu, p))

    def entropy(self):
        nu, p = self.df, self._event_shape[-1]
        half_log_det_sigma = self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return ((p + 1) * (0.5 * p * _LOG_2 + half_log_det_sigma) + _mvlgamma(0.5 * nu, p)
                - 0.5 * (nu - p - 1) * _mvdigamma(0.5 * nu, p) + 0.5 * nu * p)

    @property
    def _natural_params(self):
        p = self._event_shape[-1]
        return (-0.5 * self.precision_matrix, 0.5 * (self.df - p - 1))

    def _log_normalizer(self, x, y):
        """A(eta1, eta2) = -(eta2 + (p + 1)/2) log det(-eta1) + log Gamma_p(eta2 + (p + 1)/2)."""
        p = self._event_shape[-1]
        shifted = y + 0.5 * (p + 1)
        return -shifted * _log_det_pd(-x) + _mvlgamma(shifted, p)

    def __repr__(self):
        return f"Wishart(df: {self.df if self.df.numel() == 1 else tuple(self.df.shape)})"
