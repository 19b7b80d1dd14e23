"""Checkpoints: a model's tensors, optimizer and scheduler state, RNG state and run metadata in ONE
safetensors file, written atomically and read back without pickle.

What goes where in the file:

- the model's tensors, under their own ``state_dict`` names, so any safetensors tool reads the weights;
- every other tensor under a reserved prefix: optimizer state as ``__optim__.state.3.exp_avg``, and
  ``__sched__.``, ``__config__.``, ``__extra__.``, ``__rng__.``, ``__step__.``, ``__epoch__.`` for tensors
  found in those parts (model keys may not start with these);
- one JSON document, in the safetensors ``__metadata__`` map under the key ``"chainrule"``::

      {"format_version": 1, "chainrule_version": "0.1.0", "model_keys": ["fc.weight", ...],
       "step": 1200, "epoch": 3, "config": {...}, "extra": {...},
       "optimizer": {"class": "AdamW", "state_dict": {... param_groups, scalar state ...}},
       "scheduler": {"class": "StepLR", "state_dict": {...}}, "rng": {...}}

  Tensors inside it appear as ``{"__tensor__": "<entry name>"}``; tuples, non-finite floats and dicts
  with non-string keys have tagged forms too (see ``chainrule.io._codec``), so the JSON stays strict.

Typical use::

    cr.io.save(model, "ckpt.safetensors", optimizer=opt, scheduler=sched, config={"width": 256}, step=step)
    ckpt = cr.io.load("ckpt.safetensors")
    model = Net(**ckpt.config)
    ckpt.restore(model, optimizer=opt, scheduler=sched)   # checks everything first, then applies

``load_state_dict(path)`` reads the model tensors of any safetensors file (for instance one written by
``safetensors.torch.save_file``) as chainrule tensors.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from chainrule import dtypes as _dt
from chainrule._version import __version__
from chainrule.backend import np, to_host
from chainrule.creation import from_numpy
from chainrule.io._codec import decode, encode, tensor_names
from chainrule.io.errors import CheckpointError
from chainrule.io.safetensors import read_safetensors, write_safetensors
from chainrule.random import Generator, get_rng_state, set_rng_state
from chainrule.tensor import Tensor

__all__ = ["save", "load", "load_state_dict", "Checkpoint", "FORMAT_VERSION", "METADATA_KEY", "RESERVED_PREFIXES"]

FORMAT_VERSION = 1
METADATA_KEY = "chainrule"
_PREFIXES = {"optimizer": "__optim__", "scheduler": "__sched__", "config": "__config__", "extra": "__extra__",
             "rng": "__rng__", "step": "__step__", "epoch": "__epoch__"}
RESERVED_PREFIXES = tuple(f"{prefix}." for prefix in _PREFIXES.values())


# ----- saving ----------------------------------------------------------------------------------------------

def save(obj, path: str | os.PathLike, *, optimizer=None, scheduler=None, config: Any = None, step: Any = None,
         epoch: Any = None, extra: Any = None, include_rng: bool = True) -> None:
    """Write a checkpoint of ``obj`` (a Module, i.e. anything with ``state_dict()``, or a dict of tensors)
    to ``path`` as one safetensors file, atomically: the file at ``path`` is the old one or the complete
    new one, never a mix, whatever happens during the write.

    ``optimizer`` and ``scheduler`` (anything with ``state_dict()``) are saved for ``restore``; ``config``
    (e.g. the architecture's settings), ``step``, ``epoch`` and ``extra`` are any plain data (numbers,
    strings, bools, None, tensors, and lists/tuples/dicts of these). ``include_rng`` saves chainrule's
    random generator state so a resumed run draws the same numbers. All input is checked before the file
    is touched.
    """
    arrays = _model_arrays(obj)
    document: dict[str, Any] = {"format_version": FORMAT_VERSION, "chainrule_version": __version__,
                                "model_keys": list(arrays)}
    for key, value in (("step", step), ("epoch", epoch), ("config", config), ("extra", extra)):
        document[key] = encode(value, _PREFIXES[key], arrays, where=key)
    for key, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is not None:
            state = _state_dict_of(target, key)
            document[key] = {"class": type(target).__name__, "state_dict": encode(state, _PREFIXES[key], arrays, key)}
    if include_rng:
        document["rng"] = encode(get_rng_state(), _PREFIXES["rng"], arrays, where="rng")
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    write_safetensors(path, arrays, {METADATA_KEY: text}, op="save")


def _model_arrays(obj) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        state = obj
    elif callable(getattr(obj, "state_dict", None)):
        state = obj.state_dict()
    else:
        raise TypeError(f"save: expected a Module (anything with state_dict()) or a dict of tensors, "
                        f"got {type(obj).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise TypeError(f"save: state_dict keys must be strings, got {name!r} ({type(name).__name__})")
        reserved = next((p for p in RESERVED_PREFIXES if name.startswith(p)), None)
        if reserved is not None:
            raise ValueError(f"save: the state_dict key '{name}' starts with '{reserved}', which chainrule "
                             "checkpoints reserve for non-model tensors; rename that parameter or buffer")
        arrays[name] = _tensor_array(value, name)
    return arrays


def _tensor_array(value, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return to_host(value.detach()._data)  # the tensor's own buffer (copied to the host for GPU tensors)
    if isinstance(value, np.ndarray):
        try:
            _dt.from_np(value.dtype)
        except TypeError as err:
            raise TypeError(f"save: state_dict['{name}'] (shape {value.shape}): {err}") from None
        return value
    raise TypeError(f"save: state_dict['{name}'] is a {type(value).__name__}, expected a Tensor; keep other "
                    "values in config= or extra=")


def _state_dict_of(target, what: str) -> dict:
    if not callable(getattr(target, "state_dict", None)):
        raise TypeError(f"save: {what}= must have a state_dict() method, got {type(target).__name__}")
    return target.state_dict()


# ----- loading ---------------------------------------------------------------------------------------------

def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint (or any safetensors file) fully validated; see :class:`Checkpoint`.

    Raises :class:`CheckpointError` naming the file and the problem when it is truncated, corrupted, or
    written by a newer chainrule checkpoint format.
    """
    arrays, file_metadata = read_safetensors(path)
    return Checkpoint(os.fspath(path), arrays, file_metadata)


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The model tensors of a safetensors file as a dict of chainrule tensors, in the saved order.

    Works on any safetensors file (e.g. from ``safetensors.torch.save_file``); on a chainrule checkpoint
    it leaves out the optimizer/scheduler/other entries. The result feeds ``module.load_state_dict``.
    """
    return load(path).state_dict


class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: the file it was read from.
        state_dict: the model's tensors (a dict of chainrule tensors, in the saved order).
        metadata: the chainrule JSON document as stored (``{}`` for files chainrule did not write).
        file_metadata: the raw safetensors ``__metadata__`` map (str -> str).

    ``config``, ``step``, ``epoch``, ``extra``, ``optimizer_state_dict``, ``scheduler_state_dict`` and
    ``rng_state`` give the saved values (``None`` when not saved); tensors among them are fresh copies on
    every access. :meth:`restore` puts it all back into live objects.
    """

    def __init__(self, path: str, arrays: dict[str, np.ndarray], file_metadata: dict[str, str]):
        self.path = path
        self.file_metadata = file_metadata
        self.metadata = _parse_document(file_metadata.get(METADATA_KEY), path)
        self._arrays = arrays
        missing = [name for name in tensor_names(self.metadata) if name not in arrays]
        if missing:
            raise self._error(f"its metadata refers to tensors the file does not hold: {missing}")
        self.state_dict: dict[str, Tensor] = {name: self._tensor(name, arrays[name]) for name in self._model_keys()}

    # ----- saved values ------------------------------------------------------------------------------------
    @property
    def format_version(self) -> int | None:
        return self.metadata.get("format_version")

    @property
    def chainrule_version(self) -> str | None:
        """The chainrule version that wrote the checkpoint."""
        return self.metadata.get("chainrule_version")

    @property
    def step(self) -> Any:
        return self._decoded(self.metadata.get("step"))

    @property
    def epoch(self) -> Any:
        return self._decoded(self.metadata.get("epoch"))

    @property
    def config(self) -> Any:
        return self._decoded(self.metadata.get("config"))

    @property
    def extra(self) -> Any:
        return self._decoded(self.metadata.get("extra"))

    @property
    def rng_state(self) -> dict | None:
        return self._decoded(self.metadata.get("rng"))

    @property
    def optimizer_state_dict(self) -> dict | None:
        section = self.metadata.get("optimizer")
        return None if section is None else self._decoded(section["state_dict"])

    @property
    def scheduler_state_dict(self) -> dict | None:
        section = self.metadata.get("scheduler")
        return None if section is None else self._decoded(section["state_dict"])

    def __repr__(self) -> str:
        parts = [f"'{self.path}'", f"tensors={len(self.state_dict)}"]
        parts += [f"{key}={self.metadata[key]!r}" for key in ("step", "epoch") if self.metadata.get(key) is not None]
        parts += [key for key in ("optimizer", "scheduler", "rng") if key in self.metadata]
        return f"Checkpoint({', '.join(parts)})"

    # ----- restoring ---------------------------------------------------------------------------------------
    def restore(self, model=None, optimizer=None, scheduler=None, rng: bool = True, *, strict: bool = True) -> None:
        """Load the saved state into ``model``, ``optimizer`` and ``scheduler`` (each optional), and the
        random generator when ``rng`` is true and the checkpoint holds its state.

        Everything is checked before anything changes: the model's keys (all of them when ``strict``) and
        shapes, the optimizer's parameter groups and that its state fits their parameters (as the optimizer
        judges it), that the optimizer and scheduler are of the saved classes, and the RNG state. The model
        is loaded last, through its own ``load_state_dict(strict=...)``; should any load fail, the optimizer
        and scheduler are put back, so a checkpoint that does not fit leaves every object as it was. Raises
        :class:`CheckpointError`.
        """
        optimizer_state = self._state_for("optimizer", optimizer)
        scheduler_state = self._state_for("scheduler", scheduler)
        rng_state = self.rng_state if rng else None
        if model is not None:
            self._check_model(model, strict)
        if optimizer is not None:
            self._check_optimizer(optimizer, optimizer_state)
        if rng_state is not None:
            self._check_rng(rng_state)
        self._apply(model, strict, [(optimizer, optimizer_state), (scheduler, scheduler_state)])
        if rng_state is not None:
            set_rng_state(rng_state)

    def _state_for(self, key: str, target) -> dict | None:
        if target is None:
            return None
        if not (callable(getattr(target, "state_dict", None)) and callable(getattr(target, "load_state_dict", None))):
            raise TypeError(f"restore: {key}= must have state_dict() and load_state_dict(), got {type(target).__name__}")
        section = self.metadata.get(key)
        if section is None:
            raise self._error(f"it holds no {key} state (it was saved without {key}=...); leave out {key}=")
        if not isinstance(section, dict):
            raise self._error(f"its {key} metadata is a {type(section).__name__}, expected an object (corrupted metadata)")
        if section.get("class") != type(target).__name__:
            raise self._error(f"its {key} state is from a {section.get('class')}, not a {type(target).__name__}; "
                              f"build a {section.get('class')} to restore into")
        state = self._decoded(section.get("state_dict"))
        if not isinstance(state, dict):
            raise self._error(f"its {key} state_dict is a {type(state).__name__}, expected a dict (corrupted metadata)")
        return state

    def _check_model(self, model, strict: bool) -> None:
        if not (callable(getattr(model, "state_dict", None)) and callable(getattr(model, "load_state_dict", None))):
            raise TypeError(f"restore: model= must have state_dict() and load_state_dict(), got {type(model).__name__}")
        current = model.state_dict()
        problems = []
        if strict:
            missing = [key for key in current if key not in self.state_dict]
            unexpected = [key for key in self.state_dict if key not in current]
            if missing:
                problems.append("missing key(s) in the checkpoint: " + ", ".join(f'"{key}"' for key in missing))
            if unexpected:
                problems.append("unexpected key(s) in the checkpoint: " + ", ".join(f'"{key}"' for key in unexpected))
        for key, saved in self.state_dict.items():
            if key in current and tuple(saved.shape) != tuple(current[key].shape):
                problems.append(f"size mismatch for {key}: shape {list(saved.shape)} in the checkpoint, "
                                f"{list(current[key].shape)} in the model")
        if problems:
            raise self._error(f"it does not fit {type(model).__name__} (strict={strict}); nothing was changed:\n\t"
                              + "\n\t".join(problems))

    def _check_optimizer(self, optimizer, saved: dict) -> None:
        groups, state = saved.get("param_groups"), saved.get("state")
        if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
                and isinstance(state, dict)):
            raise self._error("its optimizer state_dict lacks 'state' and 'param_groups' with 'params' lists")
        current = optimizer.state_dict()["param_groups"]
        if len(groups) != len(current):
            raise self._error(f"it has {len(groups)} optimizer parameter group(s), the optimizer has {len(current)}")
        for index, (ours, theirs) in enumerate(zip(groups, current)):
            if len(ours["params"]) != len(theirs["params"]):
                raise self._error(f"optimizer parameter group {index} has {len(ours['params'])} parameters in the "
                                  f"checkpoint but {len(theirs['params'])} in the optimizer")
        saved_ids = [pid for group in groups for pid in group["params"]]
        strays = [pid for pid in state if pid not in saved_ids]
        if strays:
            raise self._error(f"its optimizer state names parameter ids {strays} that are in no parameter group")
        params = _live_params(optimizer, len(saved_ids))
        if params is not None:
            self._check_state_shapes(optimizer, state, dict(zip(saved_ids, params)))

    def _check_state_shapes(self, optimizer, state: dict, param_of: dict) -> None:
        """Every saved state entry must fit its parameter. A chainrule optimizer is asked, through the
        ``_restore_state_value`` its ``load_state_dict`` uses (the result is dropped), for its state need
        not have the parameter's shape (Adafactor's row and column factors, L-BFGS's flat history); of any
        other optimizer, every state tensor but a 0-d one (a step count) must have its parameter's shape."""
        restore = getattr(optimizer, "_restore_state_value", None)
        name = type(optimizer).__name__
        for pid, entries in state.items():
            param = param_of[pid]
            for key, value in (entries.items() if isinstance(entries, dict) else ()):
                if callable(restore):
                    try:
                        restore(param, key, value, pid, f"{name}.load_state_dict")
                    except (ValueError, TypeError) as err:
                        raise self._error(f"its optimizer state does not fit the {name}: {err}") from None
                elif isinstance(value, Tensor) and value.ndim and tuple(value.shape) != tuple(param.shape):
                    raise self._error(f"optimizer state '{key}' of parameter {pid} has shape {list(value.shape)} in the "
                                      f"checkpoint, but that parameter has shape {list(param.shape)} in the optimizer")

    def _check_rng(self, state) -> None:
        try:
            Generator(0).set_state(state)  # a throwaway generator: the real one changes only after all checks
        except (ValueError, KeyError, TypeError) as err:
            raise self._error(f"its RNG state is invalid ({err}); pass rng=False to skip it") from None

    def _apply(self, model, strict: bool, stateful: list) -> None:
        undo: list = []
        try:
            for target, state in stateful:
                if target is not None:
                    before = copy.deepcopy(target.state_dict())
                    undo.append(lambda target=target, before=before: target.load_state_dict(before))
                    target.load_state_dict(state)
            if model is not None:
                model.load_state_dict(self.state_dict, strict=strict)
        except Exception as err:
            for step in reversed(undo):
                step()
            raise self._error(f"loading it failed, so nothing was changed: {type(err).__name__}: {err}") from err

    # ----- helpers -----------------------------------------------------------------------------------------
    def _model_keys(self) -> list[str]:
        keys = self.metadata.get("model_keys")
        if keys is None:  # a file chainrule did not write: every entry outside the reserved prefixes
            return [name for name in self._arrays if not name.startswith(RESERVED_PREFIXES)]
        if not (isinstance(keys, list) and all(isinstance(key, str) and key in self._arrays for key in keys)):
            raise self._error("its 'model_keys' metadata does not match the tensors it holds (corrupted metadata)")
        return keys

    def _tensor(self, name: str, array: np.ndarray) -> Tensor:
        try:
            return from_numpy(array)
        except TypeError:
            supported = ", ".join(d.name for d in _dt._ALL)
            raise self._error(f"tensor '{name}' has dtype {array.dtype}, which chainrule does not support "
                              f"({supported}); convert it before saving") from None

    def _decoded(self, data: Any) -> Any:
        try:
            return decode(data, self._arrays, lambda name, array: self._tensor(name, array.copy()))
        except (KeyError, TypeError, ValueError) as err:
            raise self._error(f"its metadata is malformed ({type(err).__name__}: {err})") from None

    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint '{self.path}': {what}")


def _parse_document(text: str | None, path: str) -> dict:
    if text is None:
        return {}
    try:
        document = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"checkpoint '{path}': its '{METADATA_KEY}' metadata is not valid JSON ({err})") from None
    if not isinstance(document, dict) or not isinstance(document.get("format_version"), int):
        raise CheckpointError(f"checkpoint '{path}': its '{METADATA_KEY}' metadata is not a chainrule checkpoint "
                              "document (no integer 'format_version')")
    if document["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint '{path}' was written by chainrule {document.get('chainrule_version')} in "
                              f"checkpoint format {document['format_version']}; this chainrule ({__version__}) reads "
                              f"formats up to {FORMAT_VERSION}: upgrade chainrule to load it")
    return document


def _live_params(optimizer, count: int) -> list | None:
    """The optimizer's parameters in ``state_dict`` id order, when it exposes PyTorch's ``param_groups``."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "params" in g for g in groups):
        return None
    params = [p for group in groups for p in group["params"]]
    if len(params) != count or not all(hasattr(p, "shape") for p in params):
        return None
    return params
