"""Adagrad: ``torch.optim.Adagrad``'s update, step for step.

For each parameter ``p`` with gradient ``g``, at step ``t`` (counted per parameter)::

    g = -g if maximize
    g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s = s + g * g                      (s starts at initial_accumulator_value)
    p = p - clr * g / (sqrt(s) + eps)
"""

from __future__ import annotations

from typing import Any

from chainrule.backend import xp_of
from chainrule.optim.optimizer import Optimizer, ParamsT, check_non_negative, check_speed_flags, effective_grad, group_scalar
from chainrule.tensor import wrap

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as ``torch.optim.Adagrad``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        initial_accumulator_value: starting value of the sum of squared gradients (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter, created with the optimizer (as PyTorch does): ``step`` (a float) and ``sum``.
    Each group's accumulators start at that group's ``initial_accumulator_value`` (PyTorch uses the
    constructor's value for every group, ignoring a per-group value).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        check_speed_flags(self, foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "lr_decay value", "lr_decay", group.get("lr_decay", 0))
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))
        check_non_negative(self, "initial_accumulator_value value", "initial_accumulator_value",
                            group.get("initial_accumulator_value", 0))
        check_non_negative(self, "epsilon value", "eps", group.get("eps", 0))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group and create its parameters' accumulators at once (PyTorch creates them in
        the constructor, so ``state_dict()`` has them before the first step)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            _init_state(self.state[p], p._data, group["initial_accumulator_value"])

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        for p in params:
            arr = p._data
            state = self.state[p]
            if not state:
                _init_state(state, arr, group["initial_accumulator_value"])
            step = state["step"] = state["step"] + 1
            clr = lr / (1 + (step - 1) * group["lr_decay"])
            hyper = (clr, group["eps"], group["weight_decay"], group["maximize"])
            self._for_blocks(_adagrad_block, (arr, p._grad._data, state["sum"]._data), *hyper)
            p._bump_version()


def _adagrad_block(xp, p, g, total, tmp0, tmp1, clr: float, eps: float, weight_decay: float,
                   maximize: bool) -> None:
    """One Adagrad update of the arrays ``p`` and ``total`` (the sum of squared gradients) in place."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    xp.multiply(d, d, out=tmp1)
    total += tmp1
    xp.sqrt(total, out=tmp1)
    tmp1 += eps
    xp.divide(d, tmp1, out=tmp1)
    tmp1 *= clr
    p -= tmp1


def _init_state(state: dict[str, Any], arr, initial_value: float) -> None:
    state["step"] = 0.0
    state["sum"] = wrap(xp_of(arr).full_like(arr, initial_value))
