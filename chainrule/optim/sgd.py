"""Stochastic gradient descent, with optional momentum (heavy-ball or Nesterov), dampening, L2 weight
decay and maximization: ``torch.optim.SGD``'s update, step for step.

For each parameter ``p`` with gradient ``g``::

    g = -g if maximize
    g = g + weight_decay * p
    if momentum:  b = g (first step) else b = momentum * b + (1 - dampening) * g
                  g = g + momentum * b if nesterov else b
    p = p - lr * g
"""

from __future__ import annotations

from typing import Any

from chainrule.optim.optimizer import Optimizer, ParamsT, check_non_negative, check_speed_flags, effective_grad, group_scalar
from chainrule.tensor import wrap

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``momentum_buffer`` (when momentum is non-zero).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        check_speed_flags(self, foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "momentum value", "momentum", group.get("momentum", 0))
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))
        if group.get("nesterov") and (group.get("momentum", 0) <= 0 or group.get("dampening", 0) != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires a momentum and zero dampening (got momentum="
                f"{group.get('momentum', 0)}, dampening={group.get('dampening', 0)})"
            )

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        momentum = group["momentum"]
        hyper = (lr, momentum, group["dampening"], group["weight_decay"], group["nesterov"], group["maximize"])
        for p in params:
            arr = p._data
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = wrap(p.xp.empty_like(arr))
                    first = True
                buf = state["momentum_buffer"]._data
            self._for_blocks(_sgd_block, (arr, p._grad._data, buf), first, *hyper)
            p._bump_version()


def _sgd_block(xp, p, g, buf, tmp0, tmp1, first: bool, lr: float, momentum: float, dampening: float,
               weight_decay: float, nesterov: bool, maximize: bool) -> None:
    """One SGD update of the arrays ``p`` (and momentum buffer ``buf``) in place."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    if buf is not None:
        if first:
            xp.copyto(buf, d)  # the buffer starts as the first gradient (no dampening)
        else:
            buf *= momentum
            if dampening == 0:
                buf += d
            else:
                xp.multiply(d, 1 - dampening, out=tmp1)
                buf += tmp1
        if nesterov:
            xp.multiply(buf, momentum, out=tmp1)
            d = xp.add(d, tmp1, out=tmp1)
        else:
            d = buf
    xp.multiply(d, lr, out=tmp1)
    p -= tmp1
