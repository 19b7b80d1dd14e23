"""Gradient clipping and flat-vector views of parameters, following ``torch.nn.utils``.

    loss.backward()
    total = clip_grad_norm_(model.parameters(), max_norm=1.0)   # rescales .grad in place
    opt.step()

- :func:`clip_grad_norm_`: scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``, where
  ``total_norm`` is the p-norm of all gradients taken together; returns ``total_norm``.
  (:func:`get_total_norm` and :func:`clip_grads_with_norm_` are its two halves.)
- :func:`clip_grad_value_`: clamp every gradient element to ``[-clip_value, clip_value]``.
- :func:`parameters_to_vector` / :func:`vector_to_parameters`: all parameters as one 1-D tensor, and back.

Gradients are changed in place on their backend arrays; nothing is recorded on the graph.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable

from chainrule.backend import cpu, xp_of
from chainrule.dtypes import get_default_dtype
from chainrule.tensor import Tensor, wrap

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters", "skip_init"]

TensorOrTensors = Tensor | Iterable[Tensor]


def _as_list(tensors: TensorOrTensors, op: str) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        return [tensors]
    is_generator = isinstance(tensors, types.GeneratorType)
    tensors = list(tensors)
    if is_generator and not tensors:
        warnings.warn(f"{op}: `parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors (parameters), but element {i} is {type(t).__name__}")
    return tensors


def _norm_type(norm_type, op: str) -> float:
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        return math.inf
    try:
        return float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: norm_type must be a number or 'inf', got {norm_type!r}") from None


def _array_norm(arr, p: float):
    """The p-norm of all elements of ``arr`` as a 0-d array of its dtype (as ``torch.linalg.vector_norm``)."""
    xp = xp_of(arr)
    flat = arr.reshape(-1)
    if flat.size == 0:
        return xp.zeros((), dtype=arr.dtype)
    if p == 2:
        return xp.sqrt(xp.dot(flat, flat))  # one BLAS pass, no temporary
    mag = xp.abs(flat)
    if p == math.inf:
        return mag.max()
    if p == -math.inf:
        return mag.min()
    if p == 0:
        return xp.asarray(xp.count_nonzero(flat), dtype=arr.dtype)
    if p == 1:
        return mag.sum()
    return (mag**p).sum() ** (1.0 / p)


def get_total_norm(tensors: TensorOrTensors, norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The ``norm_type``-norm of ``tensors`` taken together, as if concatenated into one vector: the norm
    of their individual norms. Returns a 0-d tensor (``tensor(0.)`` for no tensors). ``foreach`` is
    accepted for PyTorch compatibility and ignored."""
    op = "get_total_norm"
    tensors = _as_list(tensors, op)
    p = _norm_type(norm_type, op)
    if not tensors:
        return wrap(cpu.xp.zeros((), dtype=get_default_dtype().np))
    first = tensors[0]._data
    xp = xp_of(first)
    norms = [_array_norm(t._data, p) for t in tensors]
    total = _array_norm(xp.stack([xp.asarray(n, dtype=first.dtype) for n in norms]), p)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it cannot be clipped. "
            "To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return wrap(xp.asarray(total, dtype=first.dtype))


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm + 1e-6))``
    (a pre-computed ``total_norm``, e.g. from :func:`get_total_norm`)."""
    grads = [p.grad for p in _as_list(parameters, "clip_grads_with_norm_") if p.grad is not None]
    if not grads:
        return
    total = total_norm._data if isinstance(total_norm, Tensor) else total_norm
    coef = float(max_norm) / (total + 1e-6)
    xp = xp_of(grads[0]._data)
    coef = xp.minimum(xp.asarray(coef), 1.0)
    for g in grads:
        arr = g._data
        xp_of(arr).multiply(arr, coef.astype(arr.dtype), out=arr)
        g._bump_version()


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Clip the gradient norm of ``parameters`` (a tensor or an iterable of them) in place.

    The norm is taken over all gradients together, as if concatenated into one vector; every
    gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``. Parameters without a
    gradient are skipped. Returns the total norm (before clipping) as a 0-d tensor.

    Args:
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm; ``float('inf')`` or ``'inf'`` for the max-norm.
        error_if_nonfinite: raise a RuntimeError (changing no gradient) when the total norm is nan
            or infinite, instead of scaling by it.
        foreach: accepted for PyTorch compatibility and ignored.
    """
    params = _as_list(parameters, "clip_grad_norm_")
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element of ``parameters`` to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters, "clip_grad_value_"):
        g = p.grad
        if g is None:
            continue
        arr = g._data
        xp_of(arr).clip(arr, -clip_value, clip_value, out=arr)
        g._bump_version()


def parameters_to_vector(parameters: TensorOrTensors) -> Tensor:
    """All ``parameters`` flattened and concatenated into one 1-D tensor (differentiable, like
    PyTorch's). All must be on one device."""
    from chainrule.ops.shape import cat

    params = _as_list(parameters, "parameters_to_vector")
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    device = params[0].device
    for i, p in enumerate(params):
        if p.device != device:
            raise TypeError(f"parameters_to_vector: found two parameters on different devices: parameter 0 on "
                            f"{device}, parameter {i} on {p.device}; move them to one device first")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: TensorOrTensors) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters`` (in their order and shapes).

    Unlike PyTorch, which rebinds each parameter's ``.data`` to a view of ``vec``, the values are written
    into the parameters' own memory (keeping their dtype and any optimizer state tied to them); the
    resulting values are the same. ``vec`` must have exactly as many elements as the parameters."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, but got {type(vec).__name__}")
    params = _as_list(parameters, "vector_to_parameters")
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: vec has shape {tuple(vec.shape)} but the parameters hold {total} "
                         f"elements in all; pass a 1-D tensor of {total} elements (e.g. from parameters_to_vector)")
    src = vec._data
    offset = 0
    for p in params:
        n = p.numel()
        piece = src[offset:offset + n].reshape(p.shape)
        if xp_of(piece) is not p.xp:
            raise TypeError(f"vector_to_parameters: vec is on {vec.device} but a parameter is on {p.device}")
        p._data[...] = piece
        p._bump_version()
        offset += n

from chainrule.nn.utils import parametrizations, parametrize, rnn  # noqa: E402  (package submodules, as torch.nn.utils's)
from chainrule.nn.utils.parametrizations import legacy_weight_norm as weight_norm  # noqa: E402,F401
from chainrule.nn.utils.parametrizations import remove_weight_norm  # noqa: E402,F401


def skip_init(module_cls, *args, **kwargs):
    """``module_cls(*args, **kwargs)`` with its parameters left uninitialised (no random draws), for a module
    whose weights are loaded next, as ``torch.nn.utils.skip_init``."""
    from chainrule.nn.init import skipping_init

    with skipping_init():
        return module_cls(*args, **kwargs)
