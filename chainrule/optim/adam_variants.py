"""NAdam and RAdam: ``torch.optim.NAdam`` / ``torch.optim.RAdam``'s updates, step for step.

For each parameter ``p`` with gradient ``g`` (negated if maximize; ``weight_decay`` applied as in Adam:
added to ``g``, or with ``decoupled_weight_decay`` multiplied into ``p`` as ``1 - lr * weight_decay``),
at step ``t``, with ``m`` and ``v`` Adam's moments (``m = lerp(m, g, 1 - beta1)``,
``v = beta2 v + (1 - beta2) g g``) and ``b2 = 1 - beta2**t``::

    NAdam (Dozat): mu_t = beta1 (1 - 0.5 * 0.96**(t * momentum_decay)),  P_t = mu_1 ... mu_t
        d = sqrt(v / b2) + eps
        p = p - lr (1 - mu_t) / (1 - P_t) * g / d - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / d

    RAdam (Liu et al.): rho_inf = 2 / (1 - beta2) - 1,  rho_t = rho_inf - 2 t beta2**t / b2
        m_hat = m / (1 - beta1**t)
        p = p - lr * m_hat * sqrt(b2) / (sqrt(v) + eps) * r_t    if rho_t > 5, with the rectification
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        p = p - lr * m_hat                                         otherwise (too few steps for v)
"""

from __future__ import annotations

import math
from typing import Any

from chainrule.backend import np
from chainrule.optim.adam import AdamFamily, _betas, adam_moments_
from chainrule.optim.optimizer import ParamsT, check_non_negative, check_speed_flags, counted_state, group_scalar

__all__ = ["NAdam", "RAdam"]


class NAdam(AdamFamily):
    """Adam with Nesterov momentum (Dozat), as ``torch.optim.NAdam``.

    Args: ``lr`` (default 2e-3), ``betas``, ``eps``, ``weight_decay``, ``momentum_decay`` (default 4e-3),
    ``decoupled_weight_decay``, ``maximize``; ``foreach``, ``capturable`` accepted and ignored
    (``differentiable=True`` is refused: a step is never recorded on the graph). State per parameter: ``step``,
    ``mu_product`` (the product of the mu_t, rounded to float32 at each step as PyTorch's is), ``exp_avg``,
    ``exp_avg_sq``.
    """

    _scalar_state = ("step", "mu_product")

    def __init__(self, params: ParamsT, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, betas=_betas(self, betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        check_non_negative(self, "momentum_decay value", "momentum_decay", group.get("momentum_decay", 0))

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        beta1, beta2 = group["betas"]
        decay, weight_decay = self._decay(group, lr)
        for p in params:
            state = counted_state(self, p, exp_avg=0, exp_avg_sq=0)
            step = state["step"]
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
            # PyTorch keeps the product in a float32 scalar tensor (its default scalar dtype) and multiplies
            # in float32: do the same, so the updates (and state dicts) agree with its
            product = state["mu_product"] = float(np.float32(state.get("mu_product", 1.0)) * np.float32(mu))
            hyper = (beta1, beta2, 1 - beta2**step, group["eps"], -lr * (1.0 - mu) / (1.0 - product),
                     -lr * mu_next / (1.0 - product * mu_next), decay, weight_decay, group["maximize"])
            arrays = (p._data, p._grad._data, state["exp_avg"]._data, state["exp_avg_sq"]._data)
            self._for_blocks(_nadam_block, arrays, *hyper)
            p._bump_version()


def _nadam_block(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1: float, beta2: float, bias_correction2: float,
                 eps: float, grad_step: float, momentum_step: float, decay: float | None, weight_decay: float,
                 maximize: bool) -> None:
    d = adam_moments_(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1, beta2, decay, weight_decay, maximize)
    xp.divide(exp_avg_sq, bias_correction2, out=tmp1)  # the denominator, sqrt(v / b2) + eps
    xp.sqrt(tmp1, out=tmp1)
    tmp1 += eps
    xp.divide(d, tmp1, out=tmp0)  # d is g or tmp0 itself: not needed after this
    tmp0 *= grad_step
    p += tmp0
    xp.divide(exp_avg, tmp1, out=tmp0)
    tmp0 *= momentum_step
    p += tmp0


class RAdam(AdamFamily):
    """Rectified Adam (Liu et al.), as ``torch.optim.RAdam``: plain momentum steps until the second moment
    has seen enough steps (rho_t > 5), then Adam steps scaled by the variance rectification.

    Args: ``lr`` (default 1e-3), ``betas``, ``eps``, ``weight_decay``, ``decoupled_weight_decay``,
    ``maximize``; ``foreach``, ``capturable`` accepted and ignored (``differentiable=True`` is refused: a step is never
    recorded on the graph). State per parameter:
    ``step``, ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, betas=_betas(self, betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr = group_scalar(group["lr"])
        beta1, beta2 = group["betas"]
        decay, weight_decay = self._decay(group, lr)
        rho_inf = 2 / (1 - beta2) - 1
        for p in params:
            state = counted_state(self, p, exp_avg=0, exp_avg_sq=0)
            step = state["step"]
            bias_correction2 = 1 - beta2**step
            rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
            rect = None
            if rho_t > 5.0:
                rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            hyper = (beta1, beta2, 1 - beta1**step, bias_correction2**0.5, group["eps"], lr, rect, decay,
                     weight_decay, group["maximize"])
            arrays = (p._data, p._grad._data, state["exp_avg"]._data, state["exp_avg_sq"]._data)
            self._for_blocks(_radam_block, arrays, *hyper)
            p._bump_version()


def _radam_block(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1: float, beta2: float, bias_correction1: float,
                 bias_correction2_sqrt: float, eps: float, lr: float, rect: float | None, decay: float | None,
                 weight_decay: float, maximize: bool) -> None:
    adam_moments_(xp, p, g, exp_avg, exp_avg_sq, tmp0, tmp1, beta1, beta2, decay, weight_decay, maximize)
    xp.divide(exp_avg, bias_correction1, out=tmp0)  # m_hat (the gradient used is no longer needed)
    tmp0 *= lr
    if rect is not None:
        xp.sqrt(exp_avg_sq, out=tmp1)
        tmp1 += eps
        xp.divide(bias_correction2_sqrt, tmp1, out=tmp1)  # the adaptive lr
        tmp0 *= tmp1
        tmp0 *= rect
    p -= tmp0
