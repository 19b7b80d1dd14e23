"""``torch.utils.dlpack``'s import path: ``to_dlpack(tensor)`` makes a DLPack capsule, ``from_dlpack(obj)`` takes an
object with ``__dlpack__`` or a bare capsule (from ``torch.utils.dlpack.to_dlpack``, say). Both share memory."""

from __future__ import annotations

from chainrule.creation import from_dlpack as _from_dlpack
from chainrule.tensor import Tensor

__all__ = ["to_dlpack", "from_dlpack"]


def to_dlpack(tensor: Tensor):
    """A DLPack capsule lending ``tensor``'s memory; it can be consumed once."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dlpack: expected a chainrule Tensor, got {type(tensor).__name__}")
    return tensor.__dlpack__()


class _Capsule:
    """A bare CPU capsule dressed as a DLPack producer, for consumers that take only producers (numpy)."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **_):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)


def from_dlpack(ext_tensor) -> Tensor:
    """A tensor sharing memory with ``ext_tensor`` (a DLPack producer or a capsule holding CPU memory)."""
    if type(ext_tensor).__name__ == "PyCapsule":
        ext_tensor = _Capsule(ext_tensor)
    return _from_dlpack(ext_tensor)
