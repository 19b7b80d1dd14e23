"""RMSprop: ``torch.optim.RMSprop``'s update, step for step.

For each parameter ``p`` with gradient ``g``::

    g = -g if maximize
    g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    centered:  a = lerp(a, g, 1 - alpha);  denom = sqrt(v - a * a) + eps
    else:      denom = sqrt(v) + eps
    momentum:  b = momentum * b + g / denom;  p = p - lr * b
    else:      p = p - lr * g / denom
"""

from __future__ import annotations

from typing import Any

from chainrule.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_non_negative,
    check_speed_flags,
    counted_state,
    effective_grad,
    group_scalar,
    lerp_,
)
from chainrule.tensor import wrap

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance instead of its second moment.
        maximize: maximize the objective instead of minimizing it.
        capturable, foreach: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step`` (a float), ``square_avg``, ``momentum_buffer`` (momentum > 0) and
    ``grad_avg`` (centered).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "epsilon value", "eps", group.get("eps", 0))
        check_non_negative(self, "momentum value", "momentum", group.get("momentum", 0))
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))
        check_non_negative(self, "alpha value", "alpha", group.get("alpha", 0))

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        momentum = group["momentum"]
        centered = group["centered"]
        hyper = (lr, group["alpha"], group["eps"], momentum, group["weight_decay"], group["maximize"])
        for p in params:
            arr = p._data
            state = counted_state(self, p, square_avg=0)
            if momentum > 0 and "momentum_buffer" not in state:  # (a group's momentum may be set later)
                state["momentum_buffer"] = wrap(p.xp.zeros_like(arr))
            if centered and "grad_avg" not in state:
                state["grad_avg"] = wrap(p.xp.zeros_like(arr))
            buf = state["momentum_buffer"]._data if momentum > 0 else None
            grad_avg = state["grad_avg"]._data if centered else None
            self._for_blocks(_rmsprop_block, (arr, p._grad._data, state["square_avg"]._data, grad_avg, buf), *hyper)
            p._bump_version()


def _rmsprop_block(xp, p, g, square_avg, grad_avg, buf, tmp0, tmp1, lr: float, alpha: float, eps: float,
                   momentum: float, weight_decay: float, maximize: bool) -> None:
    """One RMSprop update of the arrays in place (``grad_avg`` None unless centered, ``buf`` None
    without momentum)."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    square_avg *= alpha
    xp.multiply(d, 1 - alpha, out=tmp1)
    tmp1 *= d
    square_avg += tmp1
    if grad_avg is not None:
        lerp_(xp, grad_avg, d, 1 - alpha, tmp1)
        xp.multiply(grad_avg, grad_avg, out=tmp1)
        xp.subtract(square_avg, tmp1, out=tmp1)
        xp.sqrt(tmp1, out=tmp1)
    else:
        xp.sqrt(square_avg, out=tmp1)
    tmp1 += eps
    xp.divide(d, tmp1, out=tmp1)
    if buf is not None:
        buf *= momentum
        buf += tmp1
        xp.multiply(buf, lr, out=tmp1)
    else:
        tmp1 *= lr
    p -= tmp1

