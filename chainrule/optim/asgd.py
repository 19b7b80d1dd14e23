"""ASGD, averaged stochastic gradient descent: ``torch.optim.ASGD``'s update, step for step.

For each parameter ``p`` with gradient ``g``, at step ``t`` (counted per parameter), with ``eta`` starting
at ``lr`` and ``mu`` at 1::

    g = -g if maximize
    g = g + weight_decay * p
    p = p * (1 - lambd * eta)                          decay
    p = p - eta * g
    ax = ax + mu * (p - ax)     if mu != 1, else  ax = p        the running average of the iterates
    eta = lr / (1 + lambd * lr * t) ** alpha
    mu = 1 / max(1, t - t0)                            averaging starts after t0 steps

``ax`` is the averaged parameter, kept in the state (``optimizer.state[p]["ax"]``); the parameters
themselves follow plain SGD with a decaying step. As in PyTorch (whose ``eta`` and ``mu`` are float32
scalar tensors), ``eta`` and ``mu`` are rounded to float32 when they are stored.
"""

from __future__ import annotations

from typing import Any

from chainrule.backend import np
from chainrule.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_non_negative,
    check_speed_flags,
    counted_state,
    effective_grad,
    group_scalar,
)

__all__ = ["ASGD"]


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky), as ``torch.optim.ASGD``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power of the step-size decay (default 0.75).
        t0: the step after which averaging starts (default 1e6).
        weight_decay: L2 penalty added to the gradient (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step``, ``eta``, ``mu`` (floats; 0-d tensors in PyTorch) and ``ax``.
    ``lambd``, ``alpha`` and ``t0`` must be numbers >= 0 (PyTorch does not check them).
    """

    _scalar_state = ("step", "eta", "mu")

    def __init__(self, params: ParamsT, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))
        check_non_negative(self, "lambd value", "lambd", group.get("lambd", 0))
        check_non_negative(self, "alpha value", "alpha", group.get("alpha", 0))
        check_non_negative(self, "t0 value", "t0", group.get("t0", 0))

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        lambd, alpha, t0 = group["lambd"], group["alpha"], group["t0"]
        for p in params:
            state = counted_state(self, p, ax=0)
            step, eta, mu = state["step"], state.setdefault("eta", _float32(lr)), state.setdefault("mu", 1.0)
            hyper = (1 - lambd * eta, eta, mu, group["weight_decay"], group["maximize"])
            self._for_blocks(_asgd_block, (p._data, p._grad._data, state["ax"]._data), *hyper)
            state["eta"] = _float32(lr / ((1 + lambd * lr * step) ** alpha))
            state["mu"] = _float32(1 / max(1, step - t0))
            p._bump_version()


def _asgd_block(xp, p, g, ax, tmp0, tmp1, decay: float, eta: float, mu: float, weight_decay: float,
                maximize: bool) -> None:
    """One ASGD update of the arrays ``p`` and ``ax`` (the average of the iterates) in place."""
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    if decay != 1:
        p *= decay
    xp.multiply(d, eta, out=tmp1)
    p -= tmp1
    if mu != 1:
        xp.subtract(p, ax, out=tmp1)
        tmp1 *= mu
        ax += tmp1
    else:
        xp.copyto(ax, p)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as PyTorch stores ASGD's ``eta`` and ``mu``."""
    return float(np.float32(value))
