"""The array backends: the only package that imports numpy (or cupy).

Everything above asks a tensor for its array namespace (``xp``) instead of importing numpy, so a
second backend (CuPy on a GPU) can drop in behind the same seam. Host-side code that genuinely
works on CPU arrays (data loading, checkpoint files) uses :data:`np` from here. Optional compiled
float32 kernels for the CPU (numba) sit behind :mod:`chainrule.backend.kernels`. Importing this
package changes nothing outside it: the glibc malloc tuning of :mod:`chainrule.backend.allocator` is
opt-in.
"""

from __future__ import annotations

import numpy as np

from chainrule.backend import allocator  # noqa: F401  (chainrule.backend.allocator.keep_freed_memory, opt-in)

__all__ = ["np", "Device", "cpu", "xp_of", "device_of", "get_device", "ARRAY_TYPES", "as_array", "to_host"]


class Device:
    """Where a tensor's array lives, and the array namespace that computes on it."""

    __slots__ = ("type", "xp")

    def __init__(self, type: str, xp):
        self.type = type
        self.xp = xp

    def __repr__(self) -> str:
        return f"device(type='{self.type}')"

    def __str__(self) -> str:
        return self.type

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return self.type == other
        return isinstance(other, Device) and other.type == self.type

    def __hash__(self) -> int:
        return hash(self.type)


cpu = Device("cpu", np)

# array type -> device; a GPU backend registers its array type here (register_device).
_DEVICE_OF_TYPE: dict[type, Device] = {np.ndarray: cpu}
# The array types of all backends: op results of other types (numpy scalars) get wrapped back.
ARRAY_TYPES: set[type] = {np.ndarray}


def register_device(device: Device, array_type: type) -> None:
    _DEVICE_OF_TYPE[array_type] = device
    ARRAY_TYPES.add(array_type)


def device_of(array) -> Device:
    return _DEVICE_OF_TYPE.get(type(array), cpu)


def xp_of(array):
    """The array namespace (numpy or cupy) that computes on ``array``."""
    return _DEVICE_OF_TYPE.get(type(array), cpu).xp


def get_device(device) -> Device:
    """Turn ``None``, ``"cpu"`` or a :class:`Device` into a Device, or say what is available."""
    if device is None:
        return cpu
    if isinstance(device, Device):
        return device
    name = str(device).split(":")[0]
    for dev in _DEVICE_OF_TYPE.values():
        if dev.type == name:
            return dev
    known = sorted({d.type for d in _DEVICE_OF_TYPE.values()})
    raise RuntimeError(f"device '{device}' is not available here; available devices: {known}")


def as_array(value, dtype=None, device: Device = cpu):
    """An array of the device's namespace holding ``value`` (no copy when it already is one)."""
    return device.xp.asarray(value, dtype=dtype)


def to_host(array):
    """``array`` as a numpy array: itself when it is one, else copied to the host (CuPy's ``.get()``)."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    return get() if get is not None else np.asarray(array)
