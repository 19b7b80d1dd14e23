"""Adam and AdamW: ``torch.optim.Adam`` / ``torch.optim.AdamW``'s updates, step for step.

For each parameter ``p`` with gradient ``g``, at step ``t`` (counted per parameter)::

    g = -g if maximize
    p = p * (1 - lr * weight_decay)      if decoupled (AdamW)
    g = g + weight_decay * p             otherwise (Adam's L2 penalty)
    m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
    v_hat = max(v_hat, v) if amsgrad else v
    p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)
"""

from __future__ import annotations

from typing import Any

from chainrule.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_non_negative,
    check_range,
    check_speed_flags,
    counted_state,
    effective_grad,
    group_scalar,
    lerp_,
)
from chainrule.tensor import wrap

__all__ = ["Adam", "AdamW", "AdamFamily", "adam_moments_"]


class AdamFamily(Optimizer):
    """What Adam, NAdam and RAdam share: betas, eps and weight decay checks, and the decay split."""

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "epsilon value", "eps", group.get("eps", 0))
        if "betas" in group:
            beta1, beta2 = _betas(self, group["betas"])
            check_range(self, "beta parameter at index 0", beta1, 0.0, 1.0)
            check_range(self, "beta parameter at index 1", beta2, 0.0, 1.0)
        check_non_negative(self, "weight_decay value", "weight_decay", group.get("weight_decay", 0))

    @staticmethod
    def _decay(group: dict[str, Any], lr: float) -> tuple[float | None, float]:
        """(multiplier of p for decoupled decay, or None; L2 coefficient added to the gradient)."""
        weight_decay = group["weight_decay"]
        if group["decoupled_weight_decay"]:
            return (1 - lr * weight_decay if weight_decay != 0 else None), 0
        return None, weight_decay


class Adam(AdamFamily):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment estimates (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of through the gradient.
        foreach, fused, capturable: accepted for PyTorch compatibility and ignored (there is one in-place
            path); ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step`` (a float), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        check_speed_flags(self, foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = dict(lr=lr, betas=_betas(self, betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        decay, coupled_decay = self._decay(group, lr)
        for p in params:
            arr = p._data
            state = counted_state(self, p, exp_avg=0, exp_avg_sq=0)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = wrap(p.xp.zeros_like(arr))
            step = state["step"]
            hyper = (beta1, beta2, lr / (1 - beta1**step), (1 - beta2**step) ** 0.5, group["eps"], decay,
                     coupled_decay, group["maximize"])
            second_max = state["max_exp_avg_sq"]._data if amsgrad else None
            moments = (state["exp_avg"]._data, state["exp_avg_sq"]._data, second_max)
            self._for_blocks(_adam_block, (arr, p._grad._data, *moments), *hyper)
            p._bump_version()


def _adam_block(xp, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, tmp0, tmp1, beta1: float, beta2: float,
                step_size: float, bias_correction2_sqrt: float, eps: float, decay: float | None,
                weight_decay: float, maximize: bool) -> None:
    """One Adam/AdamW update of the arrays ``p`` and its moments in place (``max_exp_avg_sq`` is None
    without amsgrad; ``decay`` is AdamW's ``1 - lr * weight_decay`` or None)."""
    adam_moments_(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1, beta2, decay, weight_decay, maximize)
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        second = xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    xp.sqrt(second, out=tmp1)
    tmp1 /= bias_correction2_sqrt
    tmp1 += eps
    xp.divide(exp_avg, tmp1, out=tmp1)
    tmp1 *= step_size
    p -= tmp1


def adam_moments_(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1, beta2, decay, weight_decay, maximize):
    """Apply decoupled decay, form the effective gradient and update both moments in place; returns the
    gradient used (``g`` itself or ``tmp0``)."""
    if decay is not None:
        p *= decay
    d = effective_grad(xp, p, g, weight_decay, maximize, tmp0)
    lerp_(xp, exp_avg, d, 1 - beta1, tmp1)
    exp_avg_sq *= beta2
    xp.multiply(d, 1 - beta2, out=tmp1)
    tmp1 *= d
    exp_avg_sq += tmp1
    return d


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Same arguments as :class:`Adam` except that ``weight_decay`` defaults to 1e-2 and is always
    decoupled: each step multiplies the parameters by ``1 - lr * weight_decay``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def _restore_group(self, group: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
        restored = super()._restore_group(group, saved)
        restored["decoupled_weight_decay"] = True  # as PyTorch: AdamW always decouples
        return restored


def _betas(opt: Optimizer, betas) -> tuple[float, float]:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{type(opt).__name__}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    return (group_scalar(beta1), group_scalar(beta2))

