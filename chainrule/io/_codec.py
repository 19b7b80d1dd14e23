"""Plain Python data <-> strict JSON, with tensors moved out into the safetensors part of the file.

What JSON cannot say directly is written as a one-key tagged object:

    (1, 2)             -> {"__tuple__": [1, 2]}
    float("inf")       -> {"__float__": "inf"}                 (also "-inf", "nan")
    {3: x}             -> {"__dict__": [[3, x]]}               (any dict whose keys are not all plain strings)
    Counter({3: 1})    -> {"__counter__": [[3, 1]]}            (MultiStepLR keeps its milestones in one)
    a Tensor           -> {"__tensor__": "__optim__.state.3.exp_avg"}   (the bytes live in that safetensors entry)
    a numpy array      -> {"__array__": "..."}                 (same, but comes back as a numpy array)

Everything else must be None, bool, int, float, str, or a list/tuple/dict of these: a checkpoint is data,
never code, so objects are refused with an error naming where they are.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from chainrule.backend import is_host, np, to_host
from chainrule.tensor import Tensor

__all__ = ["encode", "decode", "tensor_names"]

_TAGS = ("__tuple__", "__float__", "__dict__", "__counter__", "__tensor__", "__array__")
_SPECIAL_FLOATS = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def encode(value: Any, prefix: str, arrays: dict[str, np.ndarray], where: str) -> Any:
    """``value`` as JSON-ready data; its tensors and arrays are added to ``arrays`` under names starting
    with ``prefix`` + "." (the path to them, e.g. ``__optim__.state.3.exp_avg``). ``where`` names the
    value in error messages."""
    return _Encoder(prefix, arrays, where).encode(value, ())


def decode(data: Any, arrays: Mapping[str, np.ndarray], make_tensor: Callable[[str, np.ndarray], Tensor]) -> Any:
    """The inverse of :func:`encode`. ``make_tensor(name, array)`` builds each tensor; arrays come back as
    copies, so the caller's data never aliases ``arrays``."""
    if isinstance(data, list):
        return [decode(item, arrays, make_tensor) for item in data]
    if not isinstance(data, dict):
        return data
    tag = _tag_of(data)
    if tag is None:
        return {key: decode(item, arrays, make_tensor) for key, item in data.items()}
    body = data[tag]
    if tag == "__tuple__":
        return tuple(decode(item, arrays, make_tensor) for item in body)
    if tag == "__float__":
        return _SPECIAL_FLOATS[body]
    if tag in ("__dict__", "__counter__"):
        pairs = {decode(key, arrays, make_tensor): decode(item, arrays, make_tensor) for key, item in body}
        return Counter(pairs) if tag == "__counter__" else pairs
    if tag == "__tensor__":
        return make_tensor(body, arrays[body])
    return arrays[body].copy()


def tensor_names(data: Any) -> list[str]:
    """The safetensors entries that encoded ``data`` refers to (to check they exist before decoding)."""
    found: list[str] = []
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            tag = _tag_of(item)
            if tag in ("__tensor__", "__array__"):
                found.append(item[tag])
            elif tag != "__float__":
                pending.extend(item.values())
    return found


def _tag_of(data: dict) -> str | None:
    if len(data) == 1:
        (key,) = data
        if key in _TAGS:
            return key
    return None


class _Encoder:
    """``devices``, when given, collects the entry name of every tensor that was not on the CPU and the
    location it was on (``"cuda:0"``), so a loader can put it back there; the bytes are always host copies."""

    def __init__(self, prefix: str, arrays: dict[str, np.ndarray], where: str, devices: dict[str, str] | None = None):
        self.prefix = prefix
        self.arrays = arrays
        self.where = where
        self.devices = devices

    def encode(self, value: Any, path: tuple) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": _float_name(value)}
        if isinstance(value, np.generic):
            return self.encode(value.item(), path)
        if isinstance(value, Tensor):
            return {"__tensor__": self._store_tensor(value, path)}
        if isinstance(value, np.ndarray):
            return {"__array__": self._store(value, path)}
        if isinstance(value, (list, tuple)):
            items = [self.encode(item, (*path, i)) for i, item in enumerate(value)]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, Mapping):
            return self._encode_mapping(value, path)
        raise TypeError(f"save: can't store {self._describe(path)} of type {type(value).__name__}; checkpoints hold "
                        "only data: tensors, numpy arrays, numbers, strings, bools, None, and lists, tuples and "
                        "dicts of these (convert it, e.g. to a dict of its settings)")

    def _encode_mapping(self, value: Mapping, path: tuple) -> Any:
        """Other mapping types (OrderedDict, defaultdict) come back as plain dicts, in the same order."""
        is_counter = isinstance(value, Counter)
        if not is_counter and all(isinstance(key, str) for key in value) and not (len(value) == 1 and next(iter(value)) in _TAGS):
            return {key: self.encode(item, (*path, key)) for key, item in value.items()}
        pairs = []
        for key, item in value.items():
            if not (key is None or isinstance(key, (bool, int, float, str, tuple))):
                raise TypeError(f"save: {self._describe(path)} has a key of type {type(key).__name__}; dict keys must "
                                "be strings, numbers, bools, None or tuples of these")
            pairs.append([self.encode(key, (*path, "key")), self.encode(item, (*path, key))])
        return {"__counter__" if is_counter else "__dict__": pairs}

    def _store_tensor(self, tensor: Tensor, path: tuple) -> str:
        data = tensor.detach()._data
        name = self._store(to_host(data), path)  # a file holds host bytes, whatever the tensor's device
        if self.devices is not None and not is_host(data):
            self.devices[name] = location_of(tensor.device)
        return name

    def _store(self, array: np.ndarray, path: tuple) -> str:
        name = ".".join([self.prefix, *map(str, path)])
        unique, n = name, 1
        while unique in self.arrays:  # keys holding "." could collide: "a.b" vs ("a", "b")
            unique, n = f"{name}~{n}", n + 1
        self.arrays[unique] = array
        return unique

    def _describe(self, path: tuple) -> str:
        return self.where + "".join(f"[{key!r}]" for key in path)


def location_of(device) -> str:
    """A device as PyTorch's serialization names locations: ``"cpu"``, ``"cuda:0"``."""
    return "cpu" if device.type == "cpu" else f"{device.type}:0"


def _float_name(value: float) -> str:
    if value != value:
        return "nan"
    return "inf" if value > 0 else "-inf"
