"""``Distribution``: shapes (batch and event), sampling shapes, argument validation, ``expand``."""

from __future__ import annotations

import math

from chainrule import creation
from chainrule.autograd import no_grad
from chainrule.backend import np
from chainrule.distributions import constraints
from chainrule.tensor import Tensor

__all__ = ["Distribution", "broadcast_all", "as_size"]


class Size(tuple):
    """A shape, printed as PyTorch's ``torch.Size([...])`` is in messages."""

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    def __add__(self, other) -> Size:  # batch_shape + event_shape stays a Size, as torch.Size's
        return Size(tuple(self) + tuple(other))

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item


def as_size(shape) -> Size:
    if isinstance(shape, int):
        shape = (shape,)
    return Size(int(s) for s in shape)


def broadcast_all(*values) -> tuple[Tensor, ...]:
    """Numbers become tensors of the first tensor's dtype (the default dtype if none), all broadcast together."""
    ref = next((v for v in values if isinstance(v, Tensor)), None)
    if ref is None:
        values = tuple(creation.tensor(float(v)) for v in values)
    else:
        values = tuple(v if isinstance(v, Tensor) else creation.tensor(float(v), dtype=ref.dtype, device=ref.device)
                       for v in values)
    shape = tuple(np.broadcast_shapes(*(v.shape for v in values)))
    return tuple(v if tuple(v.shape) == shape else v.expand(*shape) for v in values)


class Distribution:
    """Base of every distribution: ``batch_shape`` (independent, differently parameterised draws),
    ``event_shape`` (the shape of one draw), ``sample``/``rsample``, ``log_prob``, ``entropy``, moments."""

    has_rsample = False
    has_enumerate_support = False
    arg_constraints: dict = {}  # parameter name -> constraints.Constraint
    support = constraints.real
    _validate_default = True

    def __init__(self, batch_shape=(), event_shape=(), validate_args: bool | None = None):
        self._batch_shape = as_size(batch_shape)
        self._event_shape = as_size(event_shape)
        self._validate_args = Distribution._validate_default if validate_args is None else bool(validate_args)
        if self._validate_args:
            for name, constraint in self.arg_constraints.items():
                value = self.__dict__.get(name)
                if value is None and isinstance(getattr(type(self), name, None), property):
                    value = getattr(self, name)  # a parameter kept elsewhere (a transformed family's base)
                if value is None or not isinstance(value, Tensor) or constraints.is_dependent(constraint):
                    continue
                if not bool(constraint.check(value.detach()).all()):
                    raise ValueError(
                        f"Expected parameter {name} (Tensor of shape {tuple(value.shape)}) of distribution "
                        f"{self!r} to satisfy the constraint {constraint!r}, but found invalid values:\n{value}")

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        Distribution._validate_default = bool(value)

    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> Size:
        return Size(as_size(sample_shape) + self._batch_shape + self._event_shape)

    # the moments and the rest: each family fills in what it has
    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mean")

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mode")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no variance")

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def entropy(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no entropy")

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no log_prob")

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no cdf")

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no icdf")

    def enumerate_support(self, expand: bool = True) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no enumerate_support (its support is not finite)")

    def perplexity(self) -> Tensor:
        return self.entropy().exp()

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (rsample); use sample")

    def sample(self, sample_shape=()) -> Tensor:
        """A draw with no graph behind it (``rsample`` detached where the family has one)."""
        with no_grad():
            return self.rsample(sample_shape).detach()

    def sample_n(self, n: int) -> Tensor:
        return self.sample((n,))

    def _validate_sample(self, value) -> None:
        if not isinstance(value, Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")
        event_dim = len(self._event_shape)
        if tuple(value.shape[len(value.shape) - event_dim:]) != tuple(self._event_shape):
            raise ValueError(f"The right-most size of value must match event_shape: {as_size(value.shape)} vs "
                             f"{self._event_shape}.")
        try:
            np.broadcast_shapes(tuple(value.shape), tuple(self._batch_shape + self._event_shape))
        except ValueError:
            raise ValueError(f"Value is not broadcastable with batch_shape+event_shape: {as_size(value.shape)} vs "
                             f"{self._batch_shape + self._event_shape}.") from None
        support = self.support
        if constraints.is_dependent(support):
            return
        if not bool(support.check(value.detach()).all()):
            raise ValueError(
                f"Expected value argument (Tensor of shape {as_size(value.shape)}) to be within the support "
                f"({support!r}) of the distribution {self!r}, but found invalid values:\n{value}")

    _param_names: tuple[str, ...] = ()

    def expand(self, batch_shape, _instance=None) -> Distribution:
        """The same distribution with its parameters broadcast to ``batch_shape`` (views, no copies)."""
        batch_shape = as_size(batch_shape)
        new = type(self).__new__(type(self)) if _instance is None else _instance
        new.__dict__.update(self.__dict__)
        for name in self._param_names:
            value = self.__dict__.get(name)
            if value is not None:
                tail = tuple(value.shape[len(self._batch_shape):])
                new.__dict__[name] = value.expand(*(batch_shape + tail))
        new._batch_shape = batch_shape
        return new

    def __repr__(self) -> str:
        params = ", ".join(f"{k}: {as_size(self.__dict__[k].shape) if self.__dict__[k].numel() != 1 else self.__dict__[k]}"
                           for k in self._param_names if self.__dict__.get(k) is not None
                           and k in self._shown_params())
        return f"{type(self).__name__}({params})"

    def _shown_params(self) -> tuple[str, ...]:
        return tuple(self.arg_constraints)


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
