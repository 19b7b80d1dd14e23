"""The array backends: the only package that imports numpy (or cupy).

Everything above asks a tensor for its array namespace (``xp``) instead of importing numpy, so a
second backend (CuPy on a GPU) can drop in behind the same seam. Host-side code that genuinely
works on CPU arrays (data loading, checkpoint files) uses :data:`np` from here. Optional compiled
float32 kernels for the CPU (numba) sit behind :mod:`chainrule.backend.kernels`. Importing this
package changes nothing outside it: the glibc malloc tuning of :mod:`chainrule.backend.allocator` is
opt-in.
"""

from __future__ import annotations

import os

import numpy as np

from chainrule.backend import allocator  # noqa: F401  (chainrule.backend.allocator.keep_freed_memory, opt-in)

__all__ = ["np", "Device", "cpu", "xp_of", "device_of", "get_device", "ARRAY_TYPES", "as_array", "to_host",
           "is_host", "set_default_device", "get_default_device"]


class Device:
    """Where a tensor's array lives, and the array namespace that computes on it.

    As in PyTorch, a tensor's ``cuda`` device carries its index (``device(type='cuda', index=0)``, printed
    ``cuda:0``) while ``cr.device("cuda")`` names the type alone (``device(type='cuda')``). chainrule has
    one device of each type, so unlike PyTorch the two compare equal (and equal the strings ``"cuda"`` and
    ``"cuda:0"``): an index left out means "the one there is"."""

    __slots__ = ("type", "xp", "index", "_home")

    def __init__(self, type: str, xp, index: int | None = None):
        self.type = type
        self.xp = xp
        self.index = index
        self._home = self  # the registered device of this type, which tensors report (get_device returns it)

    def named(self, index: int | None) -> Device:
        """This device as named with ``index`` (None: the type alone), as ``torch.device`` spells it."""
        if index == self.index:
            return self
        other = Device(self.type, self.xp, index)
        other._home = self._home
        return other

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            name, _, index = other.partition(":")
            return name == self.type and (not index or self.index is None or index == str(self.index))
        return (isinstance(other, Device) and other.type == self.type
                and (other.index is None or self.index is None or other.index == self.index))

    def __hash__(self) -> int:
        return hash(self.type)

    def __enter__(self) -> Device:
        """``with cr.device("cuda"):`` makes this the default device inside the block, as in PyTorch."""
        _ENTERED_DEFAULTS.append(_DEFAULT_DEVICE[0])
        _DEFAULT_DEVICE[0] = self._home
        return self

    def __exit__(self, *exc_info) -> None:
        _DEFAULT_DEVICE[0] = _ENTERED_DEFAULTS.pop()


cpu = Device("cpu", np)

# array type -> device; a GPU backend registers its array type here (register_device).
_DEVICE_OF_TYPE: dict[type, Device] = {np.ndarray: cpu}
# The array types of all backends: op results of other types (numpy scalars) get wrapped back.
ARRAY_TYPES: set[type] = {np.ndarray}


def register_device(device: Device, array_type: type) -> None:
    """``device`` holds the arrays of ``array_type``; it is the device those tensors report, indexed as
    PyTorch's are (``cuda:0``; the one index there is)."""
    if device.index is None:
        device.index = 0
    _DEVICE_OF_TYPE[array_type] = device
    ARRAY_TYPES.add(array_type)


def device_of(array) -> Device:
    return _DEVICE_OF_TYPE.get(type(array), cpu)


def xp_of(array):
    """The array namespace (numpy or cupy) that computes on ``array``."""
    return _DEVICE_OF_TYPE.get(type(array), cpu).xp


def get_device(device) -> Device:
    """Turn ``None`` (the default device), ``"cpu"``, ``"cuda"``, ``"cuda:0"`` or a :class:`Device` into a
    Device, or say what is available. The ``cuda`` backend (CuPy) loads on the first request for it."""
    if device is None:
        return _DEFAULT_DEVICE[0]
    if isinstance(device, Device):
        return device._home
    name, _, index = str(device).partition(":")
    if index not in ("", "0"):
        raise RuntimeError(f"device '{device}': chainrule uses one device of each type; only index 0 exists")
    for dev in _DEVICE_OF_TYPE.values():
        if dev.type == name:
            return dev
    if name == "cuda" and _load_gpu() is not None:
        return get_device(name)
    known = sorted({d.type for d in _DEVICE_OF_TYPE.values()})
    raise RuntimeError(f"device '{device}' is not available here; available devices: {known}")


def _load_gpu():
    """The ``cuda`` device: CuPy on a real GPU when both are present, else the NumPy stand-in when
    ``CHAINRULE_STANDIN_CUDA=1`` asks for it (see :mod:`chainrule.backend.standin`), else None."""
    from chainrule.backend import gpu

    device = gpu.install()
    if device is None and os.environ.get("CHAINRULE_STANDIN_CUDA", "") == "1":
        from chainrule.backend import standin

        device = standin.install()
    return device


# Where creation functions put tensors when no device is named (torch.set_default_device).
_DEFAULT_DEVICE = [cpu]
# The defaults that ``with device:`` blocks replaced, innermost last.
_ENTERED_DEFAULTS: list[Device] = []


def set_default_device(device) -> None:
    """The device that creation functions (``tensor``, ``zeros``, ``randn``, layers' parameters) use when
    none is named; ``None`` restores the CPU. As ``torch.set_default_device``."""
    _DEFAULT_DEVICE[0] = cpu if device is None else get_device(device)


def get_default_device() -> Device:
    return _DEFAULT_DEVICE[0]


def is_host(array) -> bool:
    """Whether ``array`` lives in host memory (a numpy array, not a device array that may subclass one)."""
    return _DEVICE_OF_TYPE.get(type(array), cpu) is cpu


def as_array(value, dtype=None, device: Device = cpu):
    """An array of the device's namespace holding ``value`` (no copy when it already is one)."""
    return device.xp.asarray(value, dtype=dtype)


def to_host(array):
    """``array`` as a numpy array: itself when it is one, else copied to the host (CuPy's ``.get()``)."""
    if isinstance(array, np.ndarray) and device_of(array) is cpu:
        return array
    get = getattr(array, "get", None)
    return get() if get is not None else np.asarray(array)
