"""What the optimizers share beyond the base class: PyTorch's switches for its own kernels, and the
per-parameter state created at a parameter's first step.

The switches: ``foreach`` (one multi-tensor kernel per group), ``fused`` (one fused kernel per step),
``capturable`` (state kept on the device for CUDA graph capture) and ``differentiable`` (the step recorded on
the autograd graph). chainrule has one update path (in place, in cache-sized blocks), so the first three are
accepted, so that PyTorch programs run unchanged, and ignored; the combinations PyTorch refuses are refused
with its messages. ``differentiable=True`` is refused: a chainrule step is never recorded on the graph, and
ignoring the flag would hand a program that differentiates through its steps silently wrong gradients
(PyTorch itself fails at the first step of a differentiable optimizer over leaf parameters, the only kind
chainrule optimizes).
"""

from __future__ import annotations

from typing import Any

from chainrule.tensor import Tensor, wrap

__all__ = ["check_speed_flags", "counted_state"]


def check_speed_flags(opt, *, foreach: bool | None = None, fused: bool | None = None,
                      differentiable: bool = False) -> None:
    """Refuse what PyTorch refuses (``fused`` with ``foreach`` or ``differentiable``) and
    ``differentiable=True``; accept everything else, for the caller to ignore."""
    name = type(opt).__name__
    if fused:
        if differentiable:
            raise RuntimeError(f"{name}: `fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")
    if differentiable:
        raise NotImplementedError(
            f"{name}: differentiable=True is not supported: chainrule's optimizer steps update the parameters in "
            "place without recording a graph, so a step cannot be differentiated; leave differentiable=False"
        )


def counted_state(opt, p: Tensor, **fills: float) -> dict[str, Any]:
    """``opt.state[p]`` with this step counted: at the parameter's first step it is created as ``step``
    (a float) and one array per keyword, of the parameter's shape, dtype and device, filled with its value;
    then ``step`` goes up by one."""
    state = opt.state[p]
    if not state:
        state["step"] = 0.0
        for key, value in fills.items():
            state[key] = wrap(p.xp.full_like(p._data, value))
    state["step"] += 1
    return state
