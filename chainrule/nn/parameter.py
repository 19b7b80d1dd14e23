"""Parameter: a leaf tensor that a Module registers as learnable."""

from __future__ import annotations

from chainrule.tensor import Tensor, wrap


class Parameter(Tensor):
    """A tensor that requires grad by default and is registered by ``Module.__setattr__``."""

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        from chainrule.creation import empty

        source = empty(0) if data is None else data
        if not isinstance(source, Tensor):
            from chainrule.creation import tensor

            source = tensor(source)
        param = wrap(source._data)
        param.__class__ = cls
        if requires_grad:
            param.requires_grad_(True)
        return param

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass  # everything happens in __new__

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
