"""Rprop, resilient backpropagation: ``torch.optim.Rprop``'s update, step for step.

Each element of each parameter ``p`` has its own step size ``s`` (starting at ``lr``); only the sign of the
gradient ``g`` is used::

    g = -g if maximize
    f = etaplus   where g * prev > 0                 the same sign as last step: grow the step
        etaminus  where g * prev < 0                 the sign flipped: shrink it ...
        1         where g * prev == 0
    s = clamp(s * f, step_size_min, step_size_max)
    g = 0 where f == etaminus                        ... and skip this step there
    p = p - sign(g) * s
    prev = g
"""

from __future__ import annotations

from numbers import Real
from typing import Any

from chainrule.optim.optimizer import Optimizer, ParamsT, check_speed_flags, counted_state, group_scalar

__all__ = ["Rprop"]


class Rprop(Optimizer):
    """Rprop (Riedmiller & Braun), as ``torch.optim.Rprop``. Meant for full-batch training: the step sizes
    adapt to sign agreements between consecutive gradients, which minibatch noise defeats.

    Args:
        params: parameters or param-group dicts to optimize.
        lr: the initial step size of every element (default 1e-2).
        etas: ``(etaminus, etaplus)``, the factors that shrink and grow a step size, with
            ``0 < etaminus < 1 < etaplus`` (default (0.5, 1.2)).
        step_sizes: ``(min, max)``, the bounds of a step size, with ``0 <= min <= max`` (default (1e-6, 50)).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for PyTorch compatibility and ignored (there is one in-place path);
            ``differentiable=True`` is refused (a step is never recorded on the graph).

    State per parameter: ``step`` (a float), ``prev`` (the last gradient used) and ``step_size``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        check_speed_flags(self, differentiable=differentiable)
        defaults = dict(lr=lr, etas=_pair(self, "etas", etas), step_sizes=_pair(self, "step_sizes", step_sizes),
                        maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        if "etas" in group:
            etaminus, etaplus = _pair(self, "etas", group["etas"])
            if not 0.0 < etaminus < 1.0 < etaplus:
                raise ValueError(f"Rprop: Invalid eta values: {etaminus}, {etaplus} (need 0 < etaminus < 1 < etaplus)")
        if "step_sizes" in group:
            low, high = _pair(self, "step_sizes", group["step_sizes"])
            if not 0.0 <= low <= high:
                raise ValueError(f"Rprop: Invalid step_sizes: {low}, {high} (need 0 <= min <= max)")

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        etaminus, etaplus = group["etas"]
        hyper = (etaminus, etaplus, *group["step_sizes"], group["maximize"])
        for p in params:
            state = counted_state(self, p, prev=0, step_size=group_scalar(group["lr"]))
            arrays = (p._data, p._grad._data, state["prev"]._data, state["step_size"]._data)
            self._for_blocks(_rprop_block, arrays, *hyper)
            p._bump_version()


def _rprop_block(xp, p, g, prev, step_size, tmp0, tmp1, etaminus: float, etaplus: float, step_size_min: float,
                 step_size_max: float, maximize: bool) -> None:
    """One Rprop update of the arrays ``p``, ``prev`` and ``step_size`` in place."""
    d = xp.negative(g, out=tmp1) if maximize else g
    xp.multiply(d, prev, out=tmp0)  # the product, not the signs' product: as PyTorch, an underflow to 0 counts as 0
    xp.sign(tmp0, out=tmp0)
    xp.copyto(tmp0, etaplus, where=tmp0 > 0)  # the factor f (NaN stays NaN)
    xp.copyto(tmp0, etaminus, where=tmp0 < 0)
    xp.copyto(tmp0, 1, where=tmp0 == 0)
    step_size *= tmp0
    xp.clip(step_size, step_size_min, step_size_max, out=step_size)
    xp.copyto(prev, d)
    xp.copyto(prev, 0, where=tmp0 == tmp0.dtype.type(etaminus))  # etaminus as stored in f
    xp.sign(prev, out=tmp0)
    tmp0 *= step_size
    p -= tmp0


def _pair(opt, what: str, value) -> tuple[float, float]:
    try:
        first, second = value
    except (TypeError, ValueError):
        raise ValueError(f"{type(opt).__name__}: {what} must be a pair, got {value!r}") from None
    for x in (first, second):
        if not isinstance(x, Real) or isinstance(x, bool):
            raise ValueError(f"{type(opt).__name__}: {what} must be a pair of numbers, got {value!r}")
    return (first, second)
