"""``chainrule.save`` / ``chainrule.load``: ``torch.save``/``torch.load`` for data (state dicts and the
like), in safetensors + JSON instead of pickle.

    cr.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.pt")
    state = cr.load("ckpt.pt", map_location="cpu", weights_only=True)

Tensors on a GPU are written from host copies, and the document remembers where they were (``"devices":
{entry: "cuda:0"}``), so ``load`` puts them back there unless ``map_location`` says otherwise, as PyTorch's
does: a checkpoint saved on a GPU loads on a machine without one with ``map_location="cpu"``.

Any nesting of dicts, lists and tuples of tensors, numpy arrays, numbers, strings, bools and None is
stored: each tensor as a safetensors entry named by its path (``model.fc.weight``,
``optimizer.state.0.exp_avg``), the structure as JSON in the file's ``__metadata__`` (key
``"chainrule.save"``; tags as in :mod:`chainrule.io._codec`). The file name is the caller's
(``.pt`` too); the content is always safetensors, written atomically. A plain safetensors file (e.g.
from ``safetensors.torch.save_file``) loads as a dict of tensors. PyTorch's own ``.pt`` files are
pickles (code, not data) and are refused; ``weights_only`` is accepted and always in effect.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chainrule.backend import get_device
from chainrule.creation import from_numpy
from chainrule.io._codec import _Encoder, decode, tensor_names
from chainrule.io.errors import CheckpointError
from chainrule.io.safetensors import read_safetensors, write_safetensors

__all__ = ["save", "load", "METADATA_KEY"]

METADATA_KEY = "chainrule.save"
FORMAT_VERSION = 1


class _PathEncoder(_Encoder):
    """Entries named by their path alone (``model.fc.weight``), so a saved state dict reads as one."""

    def _store(self, array, path: tuple) -> str:
        name = ".".join(map(str, path)) or "tensor"
        unique, n = name, 1
        while unique in self.arrays:
            unique, n = f"{name}~{n}", n + 1
        self.arrays[unique] = array
        return unique


def save(obj: Any, f: str | os.PathLike, pickle_module=None, pickle_protocol=None, **_: Any) -> None:
    """Write ``obj`` (tensors, numbers, strings, bools, None, and dicts/lists/tuples of these) to the file
    ``f`` atomically, as safetensors + JSON. Objects other than data (a whole Module, a function) are
    refused with an error naming where they are: save ``model.state_dict()`` instead."""
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"save: expected a file path, got {type(f).__name__}; chainrule.save writes files atomically "
                        "and needs their path")
    if pickle_module is not None:
        raise ValueError("save: chainrule never pickles; pickle_module is not supported")
    arrays: dict = {}
    devices: dict = {}
    document = {"format_version": FORMAT_VERSION, "object": _PathEncoder("", arrays, "obj", devices).encode(obj, ())}
    if devices:
        document["devices"] = devices
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    write_safetensors(f, arrays, {METADATA_KEY: text}, op="save")


def load(f: str | os.PathLike, map_location=None, pickle_module=None, *, weights_only: bool | None = None,
         mmap: bool | None = None, **_: Any) -> Any:
    """Read what :func:`save` wrote (or any safetensors file, as a dict of tensors). Each tensor goes back to
    the device it was saved from unless ``map_location`` says otherwise, as in PyTorch: a device or its name
    (all tensors there), a dict from saved locations to devices (``{"cuda:0": "cpu"}``), or a callable
    ``map_location(tensor, location)`` given the tensor on the CPU and its saved location (``"cpu"``,
    ``"cuda:0"``), returning the tensor to use, or None for the default placement. ``weights_only`` is
    accepted: nothing but data is ever read. PyTorch pickle/zip files are refused."""
    path = os.fspath(f)
    _refuse_pickle(path)
    arrays, metadata = read_safetensors(path)
    text = metadata.get(METADATA_KEY)
    if text is None:  # any other safetensors file: its tensors by name
        place = _placement(map_location, {})
        return {name: place(name, from_numpy(array.copy())) for name, array in arrays.items()}
    try:
        document = json.loads(text)
        data = document["object"]
        devices = document.get("devices", {})
        if not isinstance(devices, dict):
            raise TypeError("devices")
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"load: '{path}' has a corrupted '{METADATA_KEY}' document") from None
    place = _placement(map_location, devices)

    def make_tensor(name, array):
        return place(name, from_numpy(array.copy()))

    if document.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"load: '{path}' was written by a newer chainrule (format {document['format_version']}"
                              f" > {FORMAT_VERSION}); upgrade chainrule to read it")
    missing = [name for name in tensor_names(data) if name not in arrays]
    if missing:
        raise CheckpointError(f"load: '{path}' refers to tensors it does not hold: {missing[:5]}")
    return decode(data, arrays, make_tensor)


def _refuse_pickle(path: str) -> None:
    with open(path, "rb") as stream:
        magic = stream.read(4)
    if magic[:1] == b"\x80" or magic == b"PK\x03\x04":
        kind = "zip archive of pickles" if magic.startswith(b"PK") else "pickle"
        raise CheckpointError(
            f"load: '{path}' is a PyTorch {kind} (torch.save's format), which can run code when read, so chainrule "
            "never opens it; convert it once in PyTorch: safetensors.torch.save_file(torch.load(path), "
            "'model.safetensors'), then chainrule.load('model.safetensors')")


def _placement(map_location, devices: dict):
    """``place(name, tensor_on_cpu)``: the loaded tensor on the device ``map_location`` picks for the location
    ``devices`` records for entry ``name`` (the CPU when none is recorded)."""
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        target = get_device(map_location)
        return lambda _name, t: t.to(target)

    def place(name, t):
        location = devices.get(name, "cpu")
        if callable(map_location):
            moved = map_location(t, location)
            if moved is not None:
                return moved
        elif isinstance(map_location, dict):
            location = map_location.get(location, location)
        return t.to(_restore_device(location))

    return place


def _restore_device(location):
    """The device a saved location names; PyTorch's message when it is a GPU this machine lacks."""
    if str(location) == "cpu":
        return get_device("cpu")
    try:
        return get_device(location)
    except RuntimeError:
        raise RuntimeError(f"load: attempting to deserialize a tensor saved on {location}, but that device is not "
                           "available here. If you are running on a CPU-only machine, please use load with "
                           "map_location='cpu' (or map_location=chainrule.device('cpu')) to map the tensors to "
                           "the CPU.") from None
