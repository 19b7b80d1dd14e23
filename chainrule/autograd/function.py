"""Custom differentiable operations: subclass :class:`Function`, write ``forward(ctx, ...)`` on
tensors (run without recording) and ``backward(ctx, *grad_outputs)``, call ``MyOp.apply(...)``."""

from __future__ import annotations

from typing import Any

from chainrule.autograd.grad_mode import no_grad
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
        ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a._rg for a in args))
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
            return tuple(grads[i] for i in positions)

        saved = tuple(t for t in ctx._saved if t is not None and t is not out)
        return record(out._data, cls.__name__, inputs, rule, saved)
