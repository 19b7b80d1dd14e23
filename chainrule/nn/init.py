"""Parameter initialisation, as ``torch.nn.init``: each function fills its tensor in place (without
recording) from chainrule's seeded generator and returns it. Inside ``skipping_init()`` they leave tensors
as they are (``chainrule.nn.utils.skip_init`` builds modules whose weights are about to be loaded that way)."""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager

from chainrule.autograd.grad_mode import no_grad
from chainrule.backend import np
from chainrule.random import default_generator
from chainrule.tensor import Tensor

__all__ = ["default_layer_init_", "calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_", "eye_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "orthogonal_"]

_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
          "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation (PyTorch's table)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; known: {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


_SKIPPING = [False]


@contextmanager
def skipping_init():
    """Within this block the initialisers leave tensors untouched (and draw no random numbers)."""
    before, _SKIPPING[0] = _SKIPPING[0], True
    try:
        yield
    finally:
        _SKIPPING[0] = before


def _skippable(init):
    @functools.wraps(init)
    def maybe_init(*args, **kwargs):
        if _SKIPPING[0]:
            return args[0] if args else kwargs["tensor"]
        return init(*args, **kwargs)
    return maybe_init


def _fill(tensor: Tensor, values) -> Tensor:
    with no_grad():
        tensor._data[...] = tensor.xp.asarray(values, dtype=tensor._data.dtype)
        tensor._bump_version()
    return tensor


def _rng(generator):
    return (generator or default_generator).numpy


@_skippable
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape))


@_skippable
def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape))


@_skippable
def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


@_skippable
def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


@_skippable
def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


@_skippable
def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, tensor.xp.eye(*tensor.shape))


def _fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (shape {tuple(tensor.shape)})"
        )
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


@_skippable
def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Normal(mean, std) samples redrawn until they fall in [a, b] (rejection; exact truncated normal)."""
    rng = _rng(generator)
    n = tensor.numel()
    kept = np.empty(0)
    while kept.size < n:
        draw = rng.normal(mean, std, max(2 * (n - kept.size), 16))
        kept = np.concatenate([kept, draw[(draw >= a) & (draw <= b)]])
    return _fill(tensor, kept[:n].reshape(tensor.shape))


@_skippable
def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one (sign-corrected so it is uniform)."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got {tuple(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def default_layer_init_(weight: Tensor, bias: Tensor | None = None) -> None:
    """PyTorch's default for Linear and Conv layers: weight kaiming_uniform_(a=sqrt(5)), i.e. uniform in
    +-1/sqrt(fan_in), and the bias uniform in +-1/sqrt(fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = _fan_in_and_fan_out(weight)[0]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
