"""Adafactor: ``torch.optim.Adafactor``'s update, step for step.

For each parameter ``p`` with gradient ``g``, at step ``t`` (counted per parameter)::

    g = -g if maximize
    w = t ** beta2_decay                                  (1 - beta2_t)
    alpha = max(eps2, rms(p)) * min(lr, 1 / sqrt(t))      (before the decay below)
    p = p * (1 - lr * weight_decay)
    p is >= 2-d (factored over its last two dims, R x C):
        r = lerp(r, mean(g * g, over C), w)               row_var, shape (..., R, 1)
        c = lerp(c, mean(g * g, over R), w)               col_var, shape (..., 1, C)
        v = r * c / max(mean(r, over R), eps1)
    else:
        v = lerp(v, g * g, w)                             variance, the parameter's shape
    u = g / sqrt(max(v, eps1 * eps1))
    p = p - alpha / max(1, rms(u) / d) * u

``rms(a) = norm(a) / sqrt(a.size)``; ``eps1`` None means the machine epsilon of the parameters' dtype.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from chainrule.backend import np, xp_of
from chainrule.optim.optimizer import Optimizer, ParamsT, _restore_value, group_scalar, lerp_
from chainrule.tensor import wrap

__all__ = ["Adafactor"]


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern), as ``torch.optim.Adafactor``: second moments kept as a row and a
    column factor for every parameter of two or more dimensions, so their memory is O(R + C), not O(R * C).

    Args:
        params: parameters or param-group dicts to optimize.
        lr: the largest relative step size, and the coefficient of the decoupled weight decay (default 1e-2).
        beta2_decay: the exponent of ``1 - beta2_t = t ** beta2_decay`` (default -0.8; must be <= 0).
        eps: ``(eps1, eps2)``: eps1 floors the variance estimate (None: the dtype's machine epsilon);
            eps2 floors the parameter's RMS that scales the step (default (None, 1e-3)).
        d: the clipping threshold of the update's RMS (default 1.0; must be >= 1).
        weight_decay: decoupled weight decay, applied as ``p *= 1 - lr * weight_decay`` (default 0).
        foreach: accepted for PyTorch compatibility and ignored (there is one path).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (a float) and ``row_var`` (shape ``(..., R, 1)``) with ``col_var``
    (shape ``(..., 1, C)``) for parameters of two or more dimensions, ``variance`` for the others.
    As in PyTorch, a group's ``eps1 = None`` takes the dtype of the group's first stepped parameter.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 foreach: bool | None = None, maximize: bool = False) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=_eps_pair(self, eps), d=d, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if "beta2_decay" in group:
            _check(self, "beta2_decay", group["beta2_decay"], lambda v: v <= 0, "<= 0")
        if "eps" in group:
            eps1, eps2 = _eps_pair(self, group["eps"])
            if eps1 is not None:
                _check(self, "epsilon1 (eps[0])", eps1, lambda v: v >= 0, ">= 0 or None")
            _check(self, "epsilon2 (eps[1])", eps2, lambda v: v >= 0, ">= 0")
        if "d" in group:
            _check(self, "clipping threshold d", group["d"], lambda v: v >= 1, ">= 1")
        if "weight_decay" in group:
            _check(self, "weight_decay", group["weight_decay"], lambda v: v >= 0, ">= 0")

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        eps1, eps2 = group["eps"]
        if eps1 is None:
            eps1 = float(np.finfo(params[0]._data.dtype).eps)
        decay = 1 - lr * group["weight_decay"] if group["weight_decay"] != 0 else None
        for p in params:
            arr = p._data
            state = self.state[p]
            if not state:
                _init_state(state, arr)
            step = state["step"] = state["step"] + 1
            xp = xp_of(arr)
            g = p._grad._data
            if group["maximize"]:
                g = xp.negative(g, out=self._scratch(arr, 0))
            weight = step ** group["beta2_decay"]
            alpha = max(eps2, _rms(xp, arr)) * min(lr, 1 / step**0.5)
            if decay is not None:
                arr *= decay
            u = self._scratch(arr, 1)
            if arr.ndim > 1:
                _factored_variance(xp, g, state["row_var"]._data, state["col_var"]._data, weight, eps1, out=u)
            else:
                variance = state["variance"]._data
                grad_sq = xp.multiply(g, g, out=self._scratch(arr, 2))
                lerp_(xp, variance, grad_sq, weight, u)
                u[...] = variance
            xp.maximum(u, eps1 * eps1, out=u)
            xp.sqrt(u, out=u)
            xp.reciprocal(u, out=u)  # PyTorch's rsqrt, then the product: the same two roundings
            u *= g
            u *= -alpha / max(1.0, _rms(xp, u) / group["d"])
            arr += u
            p._bump_version()

    def _restore_state_value(self, param, key: str, value, index, where: str):
        """As :meth:`Optimizer._restore_state_value`; ``row_var``/``col_var`` are checked against the factor
        shapes ``(..., R, 1)``/``(..., 1, C)`` of their parameter instead of its own shape."""
        if key not in ("row_var", "col_var"):
            return super()._restore_state_value(param, key, value, index, where)
        if param.ndim < 2:
            raise ValueError(f"{where}: state '{key}' of parameter {index}, but the parameter has shape "
                             f"{tuple(param.shape)}; only parameters of two or more dimensions have factored second "
                             "moments")
        *batch, rows, cols = param.shape
        shape = (*batch, rows, 1) if key == "row_var" else (*batch, 1, cols)
        return _restore_value(param, key, value, index, where, self._scalar_state, shape=shape)

def _factored_variance(xp, g, row_var, col_var, weight: float, eps1: float, out) -> None:
    """Update the row and column factors of the second moment with ``g * g`` and write their estimate
    of it, ``r * c / max(mean(r), eps1)``, into ``out`` (the parameter's shape)."""
    sq = xp.multiply(g, g, out=out)
    for var, axis in ((row_var, -1), (col_var, -2)):
        mean = sq.sum(axis=axis, keepdims=True)
        mean /= g.shape[axis]
        lerp_(xp, var, mean, weight, xp.empty_like(var))
    xp.multiply(row_var, col_var, out=out)
    out /= xp.maximum(row_var.mean(axis=-2, keepdims=True), eps1)


def _rms(xp, a) -> float:
    return float(xp.linalg.norm(a.reshape(-1))) / a.size**0.5


def _init_state(state: dict[str, Any], arr) -> None:
    xp = xp_of(arr)
    state["step"] = 0.0
    if arr.ndim > 1:
        state["row_var"] = wrap(xp.zeros(arr.shape[:-1] + (1,), dtype=arr.dtype))
        state["col_var"] = wrap(xp.zeros(arr.shape[:-2] + (1, arr.shape[-1]), dtype=arr.dtype))
    else:
        state["variance"] = wrap(xp.zeros_like(arr))


def _eps_pair(opt: Optimizer, eps) -> tuple[float | None, float]:
    try:
        eps1, eps2 = eps
    except (TypeError, ValueError):
        raise ValueError(f"{type(opt).__name__}: eps must be a pair (eps1 or None, eps2), got {eps!r}") from None
    return eps1, eps2


def _check(opt: Optimizer, what: str, value, ok, rule: str) -> None:
    if not isinstance(value, Real) or isinstance(value, bool) or math.isnan(value) or not ok(value):
        raise ValueError(f"{type(opt).__name__}: Invalid {what}: {value!r} (must be a number {rule})")
