"""Custom differentiable operations: subclass :class:`Function`, write ``forward(ctx, ...)`` on
tensors (run without recording) and ``backward(ctx, *grad_outputs)``, call ``MyOp.apply(...)``."""

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

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: expected tensors or None, got {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self._saved


class Function:
    """Base class for custom operations with a hand-written backward (single tensor output)."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Tensor):
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run ``forward`` without recording and record one node whose rule calls ``backward``."""
        recording = GRAD_ENABLED[0]
        ctx = FunctionCtx(tuple(recording and isinstance(a, Tensor) and a._rg for a in args))
        with no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"{cls.__name__}.forward must return a single Tensor, got {type(out).__name__}; "
                "return several results as separate Functions"
            )
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        inputs = tuple(args[i] for i in positions)

        def rule(g, _):
            grads = cls.backward(ctx, g)
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
        result = record(out._data, cls.__name__, inputs, rule, saved)
        if result._node is not None and any(t is out for t in saved):
            result._vc = out._shared_version()  # an in-place change to the result invalidates the saved output
        return result


def _checked_grad(name: str, i: int, grad, arg: Tensor, held: tuple):
    """A gradient from a user's ``backward``, made safe to accumulate: summed down when it is
    broadcast over ``arg``'s shape, cast to its dtype, and copied when it is a tensor the user holds
    (an input or a saved tensor: accumulating into ``.grad`` in place must not change it)."""
    if grad is None:
        return None
    if not isinstance(grad, Tensor):
        raise TypeError(f"{name}.backward: gradient {i} must be a Tensor or None, got {type(grad).__name__}")
    if grad.shape != arg.shape:
        if not _broadcasts_to(arg.shape, grad.shape):
            raise RuntimeError(
                f"{name}.backward returned a gradient of shape {tuple(grad.shape)} for input {i}, "
                f"which has shape {tuple(arg.shape)}; return a gradient of the input's shape"
            )
        grad = grad.sum_to(arg.shape)
    if grad.dtype is not arg.dtype:
        grad = grad.to(arg.dtype)
    if any(grad is t for t in held):
        grad = grad.clone()
    return grad


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    if len(shape) > len(target):
        return False
    return all(s == t or s == 1 for s, t in zip(shape[::-1], target[::-1]))
