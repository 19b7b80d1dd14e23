"""Transforms, as ``torch.distributions.transforms``: invertible (mostly) maps y = t(x) with ``inv``,
``log_abs_det_jacobian(x, y)`` (log |dy/dx|, summed over the transform's event dimensions), ``domain`` and
``codomain`` constraints, ``sign`` for monotone ones, and shape maps. They build TransformedDistribution and
``biject_to``/``transform_to``; every formula is chainrule ops, so gradients flow through them."""

from __future__ import annotations

import math

from chainrule import creation, linalg
from chainrule import ops as _ops
from chainrule.distributions import constraints
from chainrule.distributions.independent import _sum_rightmost
from chainrule.distributions.utils import _softplus, tril_matrix_to_vec, vec_to_tril_matrix
from chainrule.tensor import Tensor

__all__ = ["AbsTransform", "AffineTransform", "CatTransform", "ComposeTransform", "CorrCholeskyTransform",
           "CumulativeDistributionTransform",
           "ExpTransform", "IndependentTransform", "LowerCholeskyTransform", "PositiveDefiniteTransform",
           "PowerTransform", "ReshapeTransform", "SigmoidTransform", "SoftmaxTransform", "SoftplusTransform",
           "StackTransform", "StickBreakingTransform", "TanhTransform", "Transform", "identity_transform"]


class Transform:
    """y = t(x). ``cache_size=1`` remembers the last pair, so ``t.inv(t(x))`` returns x itself (no numeric
    inverse, and gradients reach x through it)."""

    bijective = False
    domain: constraints.Constraint = constraints.real
    codomain: constraints.Constraint = constraints.real

    def __init__(self, cache_size: int = 0):
        if cache_size not in (0, 1):
            raise ValueError("cache_size must be 0 or 1")
        self._cache_size = cache_size
        self._cached = None  # (x, y)

    @property
    def event_dim(self) -> int:
        if self.domain.event_dim != self.codomain.event_dim:
            raise ValueError("Please use either .domain.event_dim or .codomain.event_dim")
        return self.domain.event_dim

    @property
    def sign(self):
        raise NotImplementedError(f"{type(self).__name__} is not monotone: it has no sign")

    @property
    def inv(self) -> Transform:
        return _InverseTransform(self)

    def with_cache(self, cache_size: int = 1) -> Transform:
        if cache_size == self._cache_size:
            return self
        raise NotImplementedError(f"{type(self).__name__}.with_cache is not implemented")

    def __call__(self, x):
        if self._cache_size and self._cached is not None and self._cached[0] is x:
            return self._cached[1]
        y = self._call(x)
        if self._cache_size:
            self._cached = (x, y)
        return y

    def _inv_call(self, y):
        if self._cache_size and self._cached is not None and self._cached[1] is y:
            return self._cached[0]
        x = self._inverse(y)
        if self._cache_size:
            self._cached = (x, y)
        return x

    def _call(self, x):
        raise NotImplementedError

    def _inverse(self, y):
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def log_abs_det_jacobian(self, x, y):
        raise NotImplementedError(f"{type(self).__name__} has no log_abs_det_jacobian")

    def forward_shape(self, shape):
        return shape

    def inverse_shape(self, shape):
        return shape

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = object.__hash__

    def __repr__(self):
        return type(self).__name__ + "()"


class _InverseTransform(Transform):
    """The inverse of a transform (what ``t.inv`` returns)."""

    def __init__(self, transform: Transform):
        super().__init__(transform._cache_size)
        self._inv = transform

    domain = property(lambda self: self._inv.codomain)
    codomain = property(lambda self: self._inv.domain)
    bijective = property(lambda self: self._inv.bijective)
    sign = property(lambda self: self._inv.sign)
    inv = property(lambda self: self._inv)

    def __call__(self, x):
        return self._inv._inv_call(x)

    def log_abs_det_jacobian(self, x, y):
        return -self._inv.log_abs_det_jacobian(y, x)

    def forward_shape(self, shape):
        return self._inv.inverse_shape(shape)

    def inverse_shape(self, shape):
        return self._inv.forward_shape(shape)

    def __eq__(self, other):
        return isinstance(other, _InverseTransform) and self._inv == other._inv

    __hash__ = object.__hash__

    def __repr__(self):
        return f"{type(self).__name__}({self._inv!r})"


class ComposeTransform(Transform):
    """parts[-1](... parts[0](x)): the Jacobian terms summed over the event dimensions each part leaves."""

    def __init__(self, parts, cache_size: int = 0):
        super().__init__(cache_size)
        self.parts = [part.with_cache(cache_size) if cache_size else part for part in parts]

    def __eq__(self, other):
        return isinstance(other, ComposeTransform) and self.parts == other.parts

    __hash__ = object.__hash__

    @property
    def domain(self):
        if not self.parts:
            return constraints.real
        domain = self.parts[0].domain
        event_dim = self.parts[-1].codomain.event_dim  # walk back: the event dimensions the input needs
        for part in reversed(self.parts):
            event_dim = max(event_dim + part.domain.event_dim - part.codomain.event_dim, part.domain.event_dim)
        return constraints.independent(domain, event_dim - domain.event_dim) if event_dim > domain.event_dim \
            else domain

    @property
    def codomain(self):
        if not self.parts:
            return constraints.real
        codomain = self.parts[-1].codomain
        event_dim = self.parts[0].domain.event_dim
        for part in self.parts:
            event_dim = max(event_dim + part.codomain.event_dim - part.domain.event_dim, part.codomain.event_dim)
        return constraints.independent(codomain, event_dim - codomain.event_dim) \
            if event_dim > codomain.event_dim else codomain

    bijective = property(lambda self: all(p.bijective for p in self.parts))

    @property
    def sign(self):
        sign = 1
        for part in self.parts:
            sign = sign * part.sign
        return sign

    @property
    def inv(self):
        return ComposeTransform([part.inv for part in reversed(self.parts)])

    def with_cache(self, cache_size=1):
        return self if cache_size == self._cache_size else ComposeTransform(self.parts, cache_size)

    def _call(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def _inverse(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        if not self.parts:
            return creation.zeros_like(x)
        values = [x]
        for part in self.parts[:-1]:
            values.append(part(values[-1]))
        values.append(y)
        total = 0
        event_dim = self.domain.event_dim
        for part, a, b in zip(self.parts, values[:-1], values[1:]):
            total = total + _sum_rightmost(part.log_abs_det_jacobian(a, b), event_dim - part.domain.event_dim)
            event_dim += part.codomain.event_dim - part.domain.event_dim
        return total

    def forward_shape(self, shape):
        for part in self.parts:
            shape = part.forward_shape(shape)
        return shape

    def inverse_shape(self, shape):
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return shape

    def __repr__(self):
        inner = ",\n    ".join(repr(p) for p in self.parts)
        return f"{type(self).__name__}(\n    {inner}\n)"


identity_transform = ComposeTransform([])


class IndependentTransform(Transform):
    """``base_transform`` with ``reinterpreted_batch_ndims`` more dimensions in each event."""

    def __init__(self, base_transform: Transform, reinterpreted_batch_ndims: int, cache_size: int = 0):
        super().__init__(cache_size)
        self.base_transform = base_transform.with_cache(cache_size) if cache_size else base_transform
        self.reinterpreted_batch_ndims = int(reinterpreted_batch_ndims)

    domain = property(lambda self: constraints.independent(self.base_transform.domain,
                                                           self.reinterpreted_batch_ndims))
    codomain = property(lambda self: constraints.independent(self.base_transform.codomain,
                                                             self.reinterpreted_batch_ndims))
    bijective = property(lambda self: self.base_transform.bijective)
    sign = property(lambda self: self.base_transform.sign)

    def _call(self, x):
        return self.base_transform(x)

    def _inverse(self, y):
        return self.base_transform.inv(y)

    def log_abs_det_jacobian(self, x, y):
        return _sum_rightmost(self.base_transform.log_abs_det_jacobian(x, y), self.reinterpreted_batch_ndims)

    def forward_shape(self, shape):
        return self.base_transform.forward_shape(shape)

    def inverse_shape(self, shape):
        return self.base_transform.inverse_shape(shape)

    def __repr__(self):
        return f"{type(self).__name__}({self.base_transform!r}, {self.reinterpreted_batch_ndims})"


class ReshapeTransform(Transform):
    """Reshapes the rightmost ``in_shape`` dimensions to ``out_shape`` (same number of elements)."""

    bijective = True

    def __init__(self, in_shape, out_shape, cache_size: int = 0):
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError("in_shape, out_shape have different numbers of elements")
        super().__init__(cache_size)

    domain = property(lambda self: constraints.independent(constraints.real, len(self.in_shape)))
    codomain = property(lambda self: constraints.independent(constraints.real, len(self.out_shape)))

    def _call(self, x):
        return x.reshape(*(tuple(x.shape[:x.dim() - len(self.in_shape)]) + self.out_shape))

    def _inverse(self, y):
        return y.reshape(*(tuple(y.shape[:y.dim() - len(self.out_shape)]) + self.in_shape))

    def log_abs_det_jacobian(self, x, y):
        return creation.zeros(tuple(x.shape[:x.dim() - len(self.in_shape)]), dtype=x.dtype, device=x.device)

    def forward_shape(self, shape):
        return tuple(shape[:len(shape) - len(self.in_shape)]) + self.out_shape

    def inverse_shape(self, shape):
        return tuple(shape[:len(shape) - len(self.out_shape)]) + self.in_shape


class ExpTransform(Transform):
    """y = exp(x)."""

    domain, codomain, bijective, sign = constraints.real, constraints.positive, True, 1

    def _call(self, x):
        return x.exp()

    def _inverse(self, y):
        return y.log()

    def log_abs_det_jacobian(self, x, y):
        return x

    def __eq__(self, other):
        return isinstance(other, ExpTransform)

    __hash__ = object.__hash__


class PowerTransform(Transform):
    """y = x ** exponent on the positive reals."""

    domain, codomain, bijective = constraints.positive, constraints.positive, True

    def __init__(self, exponent, cache_size: int = 0):
        super().__init__(cache_size)
        self.exponent = exponent

    @property
    def sign(self):
        return self.exponent.sign() if isinstance(self.exponent, Tensor) else math.copysign(1, self.exponent)

    def _call(self, x):
        return x ** self.exponent

    def _inverse(self, y):
        return y ** (1 / self.exponent)

    def log_abs_det_jacobian(self, x, y):
        return (self.exponent * y / x).abs().log()

    def forward_shape(self, shape):
        return tuple(_broadcast(shape, getattr(self.exponent, "shape", ())))

    inverse_shape = forward_shape


def _broadcast(*shapes):
    from chainrule.backend import np

    return np.broadcast_shapes(*(tuple(s) for s in shapes))


def _clamp_unit(y: Tensor) -> Tensor:
    """Into (0, 1) by the dtype's resolution, so that logit/log stay finite."""
    from chainrule.backend import np

    fi = np.finfo(y._data.dtype)
    return y.clamp(min=float(fi.tiny), max=1.0 - float(fi.eps))


class SigmoidTransform(Transform):
    """y = 1 / (1 + exp(-x))."""

    domain, codomain, bijective, sign = constraints.real, constraints.unit_interval, True, 1

    def _call(self, x):
        return _clamp_unit(x.sigmoid())

    def _inverse(self, y):
        y = _clamp_unit(y)
        return y.log() - (-y).log1p()

    def log_abs_det_jacobian(self, x, y):
        return -_softplus(-x) - _softplus(x)

    def __eq__(self, other):
        return isinstance(other, SigmoidTransform)

    __hash__ = object.__hash__


class TanhTransform(Transform):
    """y = tanh(x)."""

    domain, codomain, bijective, sign = constraints.real, constraints.interval(-1.0, 1.0), True, 1

    def _call(self, x):
        return x.tanh()

    def _inverse(self, y):
        return y.atanh()

    def log_abs_det_jacobian(self, x, y):
        # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), stable for large |x|
        return 2.0 * (math.log(2.0) - x - _softplus(-2.0 * x))

    def __eq__(self, other):
        return isinstance(other, TanhTransform)

    __hash__ = object.__hash__


class SoftplusTransform(Transform):
    """y = log(1 + exp(x))."""

    domain, codomain, bijective, sign = constraints.real, constraints.positive, True, 1

    def _call(self, x):
        return _softplus(x)

    def _inverse(self, y):
        return y + (-(-y).expm1()).log()  # log(exp(y) - 1), without overflow

    def log_abs_det_jacobian(self, x, y):
        return -_softplus(-x)

    def __eq__(self, other):
        return isinstance(other, SoftplusTransform)

    __hash__ = object.__hash__


class AbsTransform(Transform):
    """y = |x| (not invertible: ``inv`` gives the non-negative preimage)."""

    domain, codomain = constraints.real, constraints.positive

    def _call(self, x):
        return x.abs()

    def _inverse(self, y):
        return y

    def __eq__(self, other):
        return isinstance(other, AbsTransform)

    __hash__ = object.__hash__


class AffineTransform(Transform):
    """y = loc + scale * x, over ``event_dim`` rightmost dimensions per event."""

    bijective = True

    def __init__(self, loc, scale, event_dim: int = 0, cache_size: int = 0):
        super().__init__(cache_size)
        self.loc, self.scale, self._event_dim = loc, scale, int(event_dim)

    @property
    def event_dim(self):
        return self._event_dim

    @property
    def domain(self):
        return constraints.real if self._event_dim == 0 else constraints.independent(constraints.real,
                                                                                     self._event_dim)

    codomain = domain

    @property
    def sign(self):
        return self.scale.sign() if isinstance(self.scale, Tensor) else math.copysign(1, self.scale)

    def _call(self, x):
        return self.loc + self.scale * x

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        shape = tuple(x.shape)
        if isinstance(self.scale, Tensor):
            result = self.scale.abs().log()
            result = result.expand(*_broadcast(shape, result.shape)) if tuple(result.shape) != shape else result
        else:
            result = creation.full_like(x, math.log(abs(self.scale)))
        if self._event_dim:
            result = result.reshape(*(tuple(result.shape[:result.dim() - self._event_dim]) + (-1,))).sum(-1)
        return result

    def forward_shape(self, shape):
        return tuple(_broadcast(shape, getattr(self.loc, "shape", ()), getattr(self.scale, "shape", ())))

    inverse_shape = forward_shape

    def __eq__(self, other):
        if not isinstance(other, AffineTransform):
            return False
        return all(a is b or (not isinstance(a, Tensor) and not isinstance(b, Tensor) and a == b)
                   for a, b in ((self.loc, other.loc), (self.scale, other.scale)))

    __hash__ = object.__hash__


class SoftmaxTransform(Transform):
    """Unconstrained vectors to the simplex by exp and normalising (not bijective; ``inv`` is log)."""

    domain, codomain = constraints.real_vector, constraints.simplex

    def _call(self, x):
        logprobs = x - x.amax(-1, keepdim=True).detach()
        probs = logprobs.exp()
        return probs / probs.sum(-1, keepdim=True)

    def _inverse(self, y):
        return y.log()

    def __eq__(self, other):
        return isinstance(other, SoftmaxTransform)

    __hash__ = object.__hash__


class StickBreakingTransform(Transform):
    """R^(K-1) to the K-simplex bijectively: z_i = sigmoid(x_i - log(K - 1 - i)) breaks off that fraction of
    the stick left, y_i = z_i prod_{j<i} (1 - z_j), the last coordinate takes the rest."""

    domain, codomain, bijective = constraints.real_vector, constraints.simplex, True

    @staticmethod
    def _offset(x: Tensor) -> Tensor:
        k = x.shape[-1]
        return creation.arange(k, 0, -1, dtype=x.dtype, device=x.device).log()  # log(K - i) for the K - 1 = k inputs

    def _call(self, x):
        z = _clamp_unit((x - self._offset(x)).sigmoid())
        left = (1 - z).cumprod(-1)
        pad_one = creation.ones(*(tuple(x.shape[:-1]) + (1,)), dtype=x.dtype, device=x.device)
        return _ops.cat([z, pad_one], -1) * _ops.cat([pad_one, left], -1)

    def _inverse(self, y):
        head = y[..., :-1]
        k = head.shape[-1]
        left = (1 - head.cumsum(-1))  # the stick remaining after each piece
        left = _ops.cat([creation.ones(*(tuple(head.shape[:-1]) + (1,)), dtype=y.dtype, device=y.device), left[..., :-1]], -1)
        z = _clamp_unit(head / left)
        return z.log() - (-z).log1p() + creation.arange(k, 0, -1, dtype=y.dtype, device=y.device).log()

    def log_abs_det_jacobian(self, x, y):
        # triangular Jacobian: dy_i/dx_i = z_i (1 - z_i) (stick left before i) = y_i (1 - z_i),
        # and log(1 - z_i) = -softplus(x_i - offset_i)
        return (y[..., :-1].log() - _softplus(x - self._offset(x))).sum(-1)

    def forward_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)

    def __eq__(self, other):
        return isinstance(other, StickBreakingTransform)

    __hash__ = object.__hash__


class LowerCholeskyTransform(Transform):
    """Square matrices to lower triangular ones with a positive diagonal: the strict lower part kept, the
    diagonal exponentiated (not bijective: the upper part is dropped)."""

    domain, codomain = constraints.independent(constraints.real, 2), constraints.lower_cholesky

    def _call(self, x):
        return x.tril(-1) + x.diagonal(dim1=-2, dim2=-1).exp().diag_embed()

    def _inverse(self, y):
        return y.tril(-1) + y.diagonal(dim1=-2, dim2=-1).log().diag_embed()

    def __eq__(self, other):
        return isinstance(other, LowerCholeskyTransform)

    __hash__ = object.__hash__


class PositiveDefiniteTransform(Transform):
    """Square matrices to positive definite ones: L L^T for L = LowerCholeskyTransform(x)."""

    domain, codomain = constraints.independent(constraints.real, 2), constraints.positive_definite

    def _call(self, x):
        L = LowerCholeskyTransform()(x)
        return L @ L.mT

    def _inverse(self, y):
        return LowerCholeskyTransform().inv(linalg.cholesky(y))

    def __eq__(self, other):
        return isinstance(other, PositiveDefiniteTransform)

    __hash__ = object.__hash__


class CumulativeDistributionTransform(Transform):
    """y = distribution.cdf(x): a univariate distribution's CDF, to the unit interval."""

    bijective, codomain, sign = True, constraints.unit_interval, 1

    def __init__(self, distribution, cache_size: int = 0):
        super().__init__(cache_size)
        self.distribution = distribution

    domain = property(lambda self: self.distribution.support)

    def _call(self, x):
        return self.distribution.cdf(x)

    def _inverse(self, y):
        return self.distribution.icdf(y)

    def log_abs_det_jacobian(self, x, y):
        return self.distribution.log_prob(x)


class CatTransform(Transform):
    """Each of ``tseq`` on its slice (of ``lengths``) along ``dim``."""

    def __init__(self, tseq, dim: int = 0, lengths=None, cache_size: int = 0):
        super().__init__(cache_size)
        self.transforms = list(tseq)
        self.lengths = list(lengths) if lengths is not None else [1] * len(self.transforms)
        self.dim = dim

    bijective = property(lambda self: all(t.bijective for t in self.transforms))
    domain = property(lambda self: constraints.cat([t.domain for t in self.transforms], self.dim, self.lengths))
    codomain = property(lambda self: constraints.cat([t.codomain for t in self.transforms], self.dim,
                                                     self.lengths))
    event_dim = property(lambda self: max(t.event_dim for t in self.transforms))

    def _pieces(self, value, fn):
        out, start = [], 0
        for transform, length in zip(self.transforms, self.lengths):
            out.append(fn(transform, value.narrow(self.dim, start, length)))
            start += length
        return out

    def _call(self, x):
        return _ops.cat(self._pieces(x, lambda t, v: t(v)), self.dim)

    def _inverse(self, y):
        return _ops.cat(self._pieces(y, lambda t, v: t.inv(v)), self.dim)

    def log_abs_det_jacobian(self, x, y):
        ys = self._pieces(y, lambda t, v: v)
        xs = self._pieces(x, lambda t, v: v)
        terms = [t.log_abs_det_jacobian(a, b) for t, a, b in zip(self.transforms, xs, ys)]
        return _ops.cat(terms, self.dim)


class StackTransform(Transform):
    """Each of ``tseq`` on its index along ``dim``."""

    def __init__(self, tseq, dim: int = 0, cache_size: int = 0):
        super().__init__(cache_size)
        self.transforms = list(tseq)
        self.dim = dim

    bijective = property(lambda self: all(t.bijective for t in self.transforms))
    domain = property(lambda self: constraints.stack([t.domain for t in self.transforms], self.dim))
    codomain = property(lambda self: constraints.stack([t.codomain for t in self.transforms], self.dim))

    def _map(self, value, fn):
        return _ops.stack([fn(t, value.select(self.dim, i)) for i, t in enumerate(self.transforms)], self.dim)

    def _call(self, x):
        return self._map(x, lambda t, v: t(v))

    def _inverse(self, y):
        return self._map(y, lambda t, v: t.inv(v))

    def log_abs_det_jacobian(self, x, y):
        return _ops.stack([t.log_abs_det_jacobian(x.select(self.dim, i), y.select(self.dim, i))
                           for i, t in enumerate(self.transforms)], self.dim)


class CorrCholeskyTransform(Transform):
    """Unconstrained vectors of length d(d-1)/2 to Cholesky factors of d x d correlation matrices: tanh gives
    partial correlations r in (-1, 1), and row i of the factor is r_ij times the length left by the entries
    before it, the diagonal taking the rest, so every row has unit length."""

    domain, codomain, bijective = constraints.real_vector, constraints.corr_cholesky, True

    @staticmethod
    def _dimension(n: int) -> int:
        d = round((1 + math.sqrt(1 + 8 * n)) / 2)
        if d * (d - 1) // 2 != n:
            raise ValueError("Input is not a flattend lower-diagonal number")
        return d

    def _call(self, x):
        from chainrule.backend import np

        eps = float(np.finfo(x._data.dtype).eps)
        r = x.tanh().clamp(min=-1 + eps, max=1 - eps)
        d = self._dimension(x.shape[-1])
        r = vec_to_tril_matrix(r, diag=-1) + creation.eye(d, dtype=x.dtype, device=x.device)
        # the length left in each row before column j: prod_{k<j} sqrt(1 - r_ik^2)
        left = (1 - r.tril(-1) ** 2).sqrt().cumprod(-1)
        pad = creation.ones(*(tuple(left.shape[:-1]) + (1,)), dtype=x.dtype, device=x.device)
        return r * _ops.cat([pad, left[..., :-1]], -1)

    def _inverse(self, y):
        remaining = 1 - (y * y).cumsum(-1)
        pad = creation.ones(*(tuple(remaining.shape[:-1]) + (1,)), dtype=y.dtype, device=y.device)
        before = _ops.cat([pad, remaining[..., :-1]], -1)  # squared length left before each column
        t = tril_matrix_to_vec(y, diag=-1) / tril_matrix_to_vec(before, diag=-1).sqrt()
        return t.atanh()

    def log_abs_det_jacobian(self, x, y):
        # the row scalings: 1/2 sum log(length left) over the entries below the first subdiagonal, and tanh's
        # derivative 1 - tanh^2 = 4 / (e^x + e^-x)^2 for each input
        remaining = 1 - (y * y).cumsum(-1)
        stick_breaking = 0.5 * tril_matrix_to_vec(remaining, diag=-2).log().sum(-1)
        tanh = -2 * (x + _softplus(-2 * x) - math.log(2.0)).sum(-1)
        return stick_breaking + tanh

    def forward_shape(self, shape):
        d = self._dimension(shape[-1])
        return tuple(shape[:-1]) + (d, d)

    def inverse_shape(self, shape):
        d = shape[-1]
        return tuple(shape[:-2]) + (d * (d - 1) // 2,)

    def __eq__(self, other):
        return isinstance(other, CorrCholeskyTransform)

    __hash__ = object.__hash__
