"""Custom differentiable operations: subclass :class:`Function`, write ``forward(ctx, ...)`` on
tensors (run without recording) and ``backward(ctx, *grad_outputs)``, call ``MyOp.apply(...)``.

``forward`` may return one tensor or a tuple of them. With several, the floating-point outputs not
marked with ``ctx.mark_non_differentiable`` are differentiable: ``backward`` receives one gradient per
output (zeros for an output that got none, None for a non-differentiable one), as in PyTorch. They are
recorded as one node whose output packs them end to end; each returned tensor is a slice of it.
"""

from __future__ import annotations

from typing import Any

from chainrule.autograd.grad_mode import GRAD_ENABLED, no_grad
from chainrule.autograd.graph import record
from chainrule.tensor import Tensor

__all__ = ["Function", "FunctionCtx"]


class FunctionCtx:
    """What ``forward`` passes to ``backward``: saved tensors and any attributes set on it."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self._saved: tuple = ()
        self._non_differentiable: tuple = ()

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Outputs of ``forward`` that get no gradient (e.g. indices): returned without a graph."""
        self._non_differentiable = tensors

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: expected tensors or None, got {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self._saved


class Function:
    """Base class for custom operations with a hand-written backward (one or several tensor outputs)."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Tensor | tuple:
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Tensor):
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor | tuple:
        """Run ``forward`` without recording and record one node whose rule calls ``backward``."""
        recording = GRAD_ENABLED[0]
        ctx = FunctionCtx(tuple(recording and isinstance(a, Tensor) and a._rg for a in args))
        with no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        several = isinstance(out, tuple)
        outputs = out if several else (out,)
        for i, t in enumerate(outputs):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"{cls.__name__}.forward must return a Tensor or a tuple of Tensors, got "
                    f"{type(out).__name__ if not several else f'{type(t).__name__} as output {i}'}"
                )
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        inputs = tuple(args[i] for i in positions)

        def input_grads(grad_outputs: tuple) -> tuple:
            grads = cls.backward(ctx, *grad_outputs)
            if not isinstance(grads, tuple):
                grads = (grads,)
            if len(grads) != len(args):
                raise RuntimeError(
                    f"{cls.__name__}.backward returned {len(grads)} gradients, but forward took {len(args)} "
                    "arguments: return one per argument (None for non-tensors)"
                )
            held = ctx._saved + inputs
            return tuple(_checked_grad(cls.__name__, i, grads[i], args[i], held) for i in positions)

        saved = tuple(t for t in ctx._saved if t is not None)
        if several:
            return _record_outputs(cls.__name__, outputs, ctx, inputs, input_grads, saved)
        result = record(out._data, cls.__name__, inputs, lambda g, _: input_grads((g,)), saved)
        if result._node is not None and any(t is out for t in saved):
            result._vc = out._shared_version()  # an in-place change to the result invalidates the saved output
        return result


def _record_outputs(name: str, outputs: tuple, ctx: FunctionCtx, inputs: tuple, input_grads, saved: tuple) -> tuple:
    """Several outputs as one recorded node: its output is the differentiable outputs flattened end to end,
    each returned tensor a slice of it; the rule cuts the packed gradient back into one per output."""
    marked = ctx._non_differentiable
    differentiable = [i for i, t in enumerate(outputs)
                      if t.dtype.is_floating_point and not any(t is m for m in marked)]
    if not differentiable or not any(t._rg for t in inputs) or not GRAD_ENABLED[0]:
        return outputs
    dtypes = {outputs[i].dtype for i in differentiable}
    if len(dtypes) > 1:
        raise TypeError(
            f"{name}.forward returned differentiable outputs of several dtypes ({', '.join(sorted(map(str, dtypes)))}); "
            "give them one dtype, or mark the others with ctx.mark_non_differentiable"
        )
    xp = outputs[differentiable[0]].xp
    spans, start = {}, 0
    for i in differentiable:
        spans[i] = (start, start + outputs[i].numel())
        start += outputs[i].numel()
    packed = xp.concatenate([outputs[i]._data.reshape(-1) for i in differentiable])

    def rule(g, _):
        grad_outputs = tuple(g[spans[i][0]:spans[i][1]].reshape(t.shape) if i in spans else None
                             for i, t in enumerate(outputs))
        return input_grads(grad_outputs)

    whole = record(packed, name, inputs, rule, saved)
    return tuple(whole[spans[i][0]:spans[i][1]].reshape(t.shape) if i in spans else t for i, t in enumerate(outputs))


def _checked_grad(name: str, i: int, grad, arg: Tensor, held: tuple):
    """A gradient from a user's ``backward``, made safe to accumulate: refused when its shape is not the
    input's nor broadcast over it (the engine sums a broadcast one down and casts it), and copied when it
    is a tensor the user holds (an input or a saved tensor: accumulating into ``.grad`` in place must not
    change it)."""
    if grad is None:
        return None
    if not isinstance(grad, Tensor):
        raise TypeError(f"{name}.backward: gradient {i} must be a Tensor or None, got {type(grad).__name__}")
    if grad.shape != arg.shape and not _broadcasts_to(arg.shape, grad.shape):
        raise RuntimeError(
            f"{name}.backward returned a gradient of shape {tuple(grad.shape)} for input {i}, "
            f"which has shape {tuple(arg.shape)}; return a gradient of the input's shape"
        )
    if any(grad is t for t in held):
        grad = grad.clone()
    return grad


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    if len(shape) > len(target):
        return False
    return all(s == t or s == 1 for s, t in zip(shape[::-1], target[::-1]))
