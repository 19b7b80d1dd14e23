"""``torch.autograd.Variable``, kept by PyTorch for old programs: ``Variable(t)`` is a tensor sharing ``t``'s
data outside the graph (with ``requires_grad`` as asked), every tensor is an instance of it, and
``Variable._execution_engine.queue_callback(fn)`` is :func:`chainrule.autograd.queue_callback`, the spelling
DistributedDataParallel-style code uses."""

from __future__ import annotations

from chainrule.autograd.engine import queue_callback
from chainrule.tensor import Tensor

__all__ = ["Variable"]


class _VariableType(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor)


class _ExecutionEngine:
    """What programs call on PyTorch's autograd engine object."""

    @staticmethod
    def queue_callback(callback) -> None:
        queue_callback(callback)


class Variable(metaclass=_VariableType):
    _execution_engine = _ExecutionEngine()

    def __new__(cls, data: Tensor, requires_grad: bool = False, volatile: bool = False) -> Tensor:
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable: data must be a Tensor, got {type(data).__name__}")
        alias = data.detach()
        if requires_grad:
            alias.requires_grad_(True)
        return alias
