"""Padding layers: ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad in 1, 2 and 3 dims,
each a call of F.pad with its mode."""

from __future__ import annotations

from chainrule.nn import functional as F
from chainrule.nn.module import Module

__all__ = [f"{kind}Pad{n}d" for kind in ("Zero", "Constant", "Reflection", "Replication", "Circular") for n in (1, 2, 3)]


class _PadNd(Module):
    _dims: int = 1
    _mode: str = "constant"

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        self.padding = (padding,) * (2 * self._dims) if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 2 * self._dims:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a {2 * self._dims}-tuple, "
                             f"got {padding!r}")
        self.value = value

    def forward(self, x):
        if self._mode == "constant":
            return F.pad(x, self.padding, "constant", self.value)
        return F.pad(x, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}, value={self.value}" if type(self).__name__.startswith("Constant") else f"{self.padding}"


def _make(kind: str, mode: str, n: int):
    if kind == "Constant":
        def init(self, padding, value: float):
            _PadNd.__init__(self, padding, value)
    else:
        def init(self, padding):
            _PadNd.__init__(self, padding)
    return type(f"{kind}Pad{n}d", (_PadNd,), {
        "__init__": init, "_dims": n, "_mode": mode, "__module__": __name__,
        "__doc__": f"Pads the last {n} dim(s) of the input ({mode!r} mode), as torch.nn.{kind}Pad{n}d."})


for _kind, _mode in (("Zero", "constant"), ("Constant", "constant"), ("Reflection", "reflect"),
                     ("Replication", "replicate"), ("Circular", "circular")):
    for _n in (1, 2, 3):
        globals()[f"{_kind}Pad{_n}d"] = _make(_kind, _mode, _n)
