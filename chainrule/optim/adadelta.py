"""Adadelta: ``torch.optim.Adadelta``'s update, step for step.

For each parameter ``p`` with gradient ``g``::

    g = -g if maximize
    g = g + weight_decay * p
    v = rho * v + (1 - rho) * g * g                     square_avg
    delta = sqrt(u + eps) / sqrt(v + eps) * g          u: acc_delta, the average of past deltas squared
    u = rho * u + (1 - rho) * delta * delta
    p = p - lr * delta
"""

from __future__ import annotations

from numbers import Real
from typing import Any

from chainrule.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_non_negative,
    check_speed_flags,
    counted_state,
    effective_grad,
    group_scalar,
)

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as ``torch.optim.Adadelta``: steps scaled by the ratio of the running RMS of past
    steps to the running RMS of gradients, so ``lr`` is a plain multiplier (default 1.0).

    Args:
        params: parameters or param-group dicts to optimize.
        lr: multiplier of the step (default 1.0).
        rho: decay rate of both running averages, in [0, 1] (default 0.9).
        eps: added inside both square roots (default 1e-6).
        weight_decay: L2 penalty added to the gradient (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step`` (a float), ``square_avg``, ``acc_delta``.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        rho = group.get("rho", 0.9)
        if not isinstance(rho, Real) or isinstance(rho, bool) or not 0 <= rho <= 1:
            raise ValueError(f"Adadelta: Invalid rho value: {rho!r} (must be in [0, 1])")
        check_non_negative(self, "epsilon value", "eps", group.get("eps", 0))
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        hyper = (group_scalar(group["lr"]), group["rho"], group["eps"], group["weight_decay"], group["maximize"])
        for p in params:
            state = counted_state(self, p, square_avg=0, acc_delta=0)
            arrays = (p._data, p._grad._data, state["square_avg"]._data, state["acc_delta"]._data)
            self._for_blocks(_adadelta_block, arrays, *hyper)
            p._bump_version()


def _adadelta_block(xp, p, g, square_avg, acc_delta, tmp0, tmp1, lr: float, rho: float, eps: float,
                    weight_decay: float, maximize: bool) -> None:
    """One Adadelta update of the arrays in place. Two scratch buffers hold three values at the ratio's
    division (the gradient used and both square roots), so the gradient used is formed a second time
    (it depends only on ``p`` and ``g``, unchanged until the end) rather than kept."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    square_avg *= rho
    xp.multiply(d, 1 - rho, out=tmp1)
    tmp1 *= d
    square_avg += tmp1
    xp.add(acc_delta, eps, out=tmp0)
    xp.sqrt(tmp0, out=tmp0)
    xp.add(square_avg, eps, out=tmp1)
    xp.sqrt(tmp1, out=tmp1)
    tmp0 /= tmp1
    tmp0 *= effective_grad(xp, p, g, weight_decay, maximize, tmp1)  # delta
    acc_delta *= rho
    xp.multiply(tmp0, 1 - rho, out=tmp1)
    tmp1 *= tmp0
    acc_delta += tmp1
    tmp0 *= lr
    p -= tmp0
