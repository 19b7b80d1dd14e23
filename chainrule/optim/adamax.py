"""Adamax: ``torch.optim.Adamax``'s update, step for step.

For each parameter ``p`` with gradient ``g``, at step ``t`` (counted per parameter)::

    g = -g if maximize
    g = g + weight_decay * p
    m = lerp(m, g, 1 - beta1)
    u = max(beta2 * u, |g| + eps)                     exp_inf, the decayed infinity norm
    p = p - lr / (1 - beta1**t) * m / u
"""

from __future__ import annotations

from typing import Any

from chainrule.optim.adam import AdamFamily, _betas
from chainrule.optim.optimizer import ParamsT, check_speed_flags, counted_state, effective_grad, group_scalar, lerp_

__all__ = ["Adamax"]


class Adamax(AdamFamily):
    """Adamax (Kingma & Ba), Adam with the infinity norm in place of the second moment, as
    ``torch.optim.Adamax``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 2e-3).
        betas: decay rates of the first moment and of the infinity norm (default (0.9, 0.999)).
        eps: added to ``|g|`` before the maximum (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step`` (a float), ``exp_avg``, ``exp_inf``.
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, betas=_betas(self, betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        beta1, beta2 = group["betas"]
        for p in params:
            state = counted_state(self, p, exp_avg=0, exp_inf=0)
            hyper = (beta1, beta2, lr / (1 - beta1 ** state["step"]), group["eps"], group["weight_decay"],
                     group["maximize"])
            arrays = (p._data, p._grad._data, state["exp_avg"]._data, state["exp_inf"]._data)
            self._for_blocks(_adamax_block, arrays, *hyper)
            p._bump_version()


def _adamax_block(xp, p, g, exp_avg, exp_inf, tmp0, tmp1, beta1: float, beta2: float, clr: float, eps: float,
                  weight_decay: float, maximize: bool) -> None:
    """One Adamax update of the arrays ``p``, ``exp_avg`` and ``exp_inf`` in place."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    lerp_(xp, exp_avg, d, 1 - beta1, tmp1)
    exp_inf *= beta2
    xp.abs(d, out=tmp1)
    tmp1 += eps
    xp.maximum(exp_inf, tmp1, out=exp_inf)
    xp.divide(exp_avg, exp_inf, out=tmp1)
    tmp1 *= clr
    p -= tmp1
