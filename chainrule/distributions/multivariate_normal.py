"""MultivariateNormal, parameterised by one of covariance_matrix, precision_matrix or scale_tril and kept as
the lower Cholesky factor ``scale_tril`` (every formula goes through ``chainrule.linalg``, so gradients reach
whichever matrix was given)."""

from __future__ import annotations

import math

from chainrule import creation, linalg
from chainrule.backend import np
from chainrule.distributions import constraints
from chainrule.distributions.distribution import Distribution, as_size
from chainrule.distributions.families import _draw
from chainrule.tensor import Tensor

__all__ = ["MultivariateNormal"]

_LOG_2PI = math.log(2 * math.pi)


def _batch_mahalanobis(L: Tensor, diff: Tensor) -> Tensor:
    """diff^T (L L^T)^-1 diff over the last dimension, broadcasting L's batch against diff's."""
    z = linalg.solve_triangular(L, diff.unsqueeze(-1), upper=False).squeeze(-1)
    return (z * z).sum(-1)


def _precision_to_scale_tril(P: Tensor) -> Tensor:
    """The lower Cholesky factor of P^-1 without forming P^-1: with flip reversing both axes,
    flip(P) = Lf Lf^T gives P^-1 = L L^T for L = (flip(Lf)^T)^-1 (lower triangular)."""
    Lf = linalg.cholesky(P.flip((-2, -1)))
    L_inv = Lf.flip((-2, -1)).mT
    eye = creation.eye(P.shape[-1], dtype=P.dtype, device=P.device).expand(*L_inv.shape)
    return linalg.solve_triangular(L_inv, eye, upper=False)


class MultivariateNormal(Distribution):
    """MultivariateNormal(loc, covariance_matrix=None, precision_matrix=None, scale_tril=None): exactly one of
    the three matrices; ``rsample`` is ``loc + scale_tril @ eps``."""

    _param_names = ("loc", "_unbroadcasted_scale_tril")
    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        if not isinstance(loc, Tensor) or loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        name = ("covariance_matrix" if covariance_matrix is not None else "precision_matrix"
                if precision_matrix is not None else "scale_tril")
        matrix = given[0]
        if not isinstance(matrix, Tensor) or matrix.dim() < 2:
            raise ValueError(f"{name} matrix must be at least two-dimensional, with optional leading batch "
                             f"dimensions")
        batch_shape = tuple(np.broadcast_shapes(tuple(matrix.shape[:-2]), tuple(loc.shape[:-1])))
        event_shape = tuple(loc.shape[-1:])
        if tuple(matrix.shape[-2:]) != event_shape * 2:
            raise ValueError(f"{name} must be a batch of square matrices of the size of loc's last dimension "
                             f"({event_shape[0]}), got shape {as_size(matrix.shape)}")
        self.loc = loc.expand(*(batch_shape + event_shape))
        self.__dict__[name] = matrix.expand(*(batch_shape + event_shape * 2))
        self.arg_constraints = {"loc": constraints.real_vector, name: type(self).arg_constraints[name]}
        super().__init__(batch_shape, event_shape, validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = linalg.cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(matrix)

    def _full(self, matrix: Tensor) -> Tensor:
        return matrix.expand(*(self._batch_shape + self._event_shape * 2))

    @property
    def scale_tril(self) -> Tensor:
        given = self.__dict__.get("scale_tril")
        return given if given is not None else self._full(self._unbroadcasted_scale_tril)

    @property
    def covariance_matrix(self) -> Tensor:
        given = self.__dict__.get("covariance_matrix")
        if given is not None:
            return given
        L = self._unbroadcasted_scale_tril
        return self._full(L @ L.mT)

    @property
    def precision_matrix(self) -> Tensor:
        given = self.__dict__.get("precision_matrix")
        if given is not None:
            return given
        L = self._unbroadcasted_scale_tril
        eye = creation.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand(*L.shape)
        L_inv = linalg.solve_triangular(L, eye, upper=False)
        return self._full(L_inv.mT @ L_inv)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)

    @property
    def variance(self) -> Tensor:
        return (self._unbroadcasted_scale_tril ** 2).sum(-1).expand(*(self._batch_shape + self._event_shape))

    def _half_log_det(self) -> Tensor:
        return self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def rsample(self, sample_shape=()):
        eps = _draw("standard_normal", self._extended_shape(sample_shape), self.loc)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        m = _batch_mahalanobis(self._unbroadcasted_scale_tril, value - self.loc)
        return -0.5 * (self._event_shape[0] * _LOG_2PI + m) - self._half_log_det()

    def entropy(self):
        H = 0.5 * self._event_shape[0] * (1.0 + _LOG_2PI) + self._half_log_det()
        return H.expand(*self._batch_shape) if self._batch_shape else H

    def expand(self, batch_shape, _instance=None):
        batch_shape = as_size(batch_shape)
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.loc = self.loc.expand(*(batch_shape + self._event_shape))
        for name in ("covariance_matrix", "precision_matrix", "scale_tril"):
            if self.__dict__.get(name) is not None:
                new.__dict__[name] = self.__dict__[name].expand(*(batch_shape + self._event_shape * 2))
        new._batch_shape = batch_shape
        return new

    def _shown_params(self):
        return tuple(k for k in ("loc", "covariance_matrix", "precision_matrix", "scale_tril") if k in self.__dict__)

    def __repr__(self):
        shown = ", ".join(f"{k}: {as_size(self.__dict__[k].shape)}" for k in self._shown_params())
        return f"MultivariateNormal({shown})"
