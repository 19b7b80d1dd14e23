"""What a compiled function touches: discovery of its modules, optimizers and tensors, and snapshots of
that state (for verification, and to undo a capture that must be redone)."""

from __future__ import annotations

import types

import numpy as np

from chainrule import random as _random
from chainrule.nn.module import TREE_EPOCH, Module
from chainrule.optim.lr_scheduler import LRScheduler
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import Tensor


class State:
    """The modules, optimizers and tensors a function reaches (arguments, closure, bound ``self``, the
    globals its code names, one attribute level of plain objects among those, and ``state=``)."""

    def __init__(self, fn, args: tuple, kwargs: dict, extra=()):
        self.modules: list = []
        self.optimizers: list = []
        self.schedulers: list = []
        self.tensors: list = []
        self._seen: set = set()
        self.bindings = _bindings_of(fn)
        for obj in _roots_of(fn) + list(extra):
            self._visit(obj, depth=2)
        for obj in list(args) + list(kwargs.values()):  # tensor arguments are inputs, not state
            if not isinstance(obj, Tensor):
                self._visit(obj, depth=2)
        for m in self.modules:
            for t in list(m.parameters()) + list(m.buffers()):
                self._add_tensor(t)
        seen: set = set()  # every module of the trees, each once: their training flags are baked in
        self.submodules = [s for m in self.modules for s in m.modules() if not (id(s) in seen or seen.add(id(s)))]
        self.tree, self.members = TREE_EPOCH[0], self._members()
        for opt in self.optimizers:
            for group in opt.param_groups:
                for t in group["params"]:
                    self._add_tensor(t)

    def rebound(self) -> str | None:
        """What changed since discovery that the programs would miss, as a phrase, or None: the closure
        variable or global the function names that now holds another tensor, module, optimizer or
        scheduler, or a parameter, buffer or submodule added, replaced or removed in any module."""
        for get, name, obj in self.bindings:
            if get() is not obj:
                return f"'{name}' now names another object"
        if TREE_EPOCH[0] != self.tree:  # some module somewhere changed: are these trees still as found?
            self.tree = TREE_EPOCH[0]
            if self._members() != self.members:
                return "a parameter, buffer or submodule was added, replaced or removed"
        return None

    def seen_tree(self) -> None:
        """Accept the module trees as they are now (what the function's own calls changed in them)."""
        if TREE_EPOCH[0] != self.tree:
            self.tree, self.members = TREE_EPOCH[0], self._members()

    def _members(self) -> list:
        """The identities of every module, parameter and buffer of the trees, in order."""
        return [id(x) for m in self.modules for x in (*m.modules(), *m.parameters(), *m.buffers())]

    def _visit(self, obj, depth: int) -> None:
        if id(obj) in self._seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, type)):
            return
        self._seen.add(id(obj))
        if isinstance(obj, Tensor):
            self._add_tensor(obj)
        elif isinstance(obj, Module):
            self.modules.append(obj)
        elif isinstance(obj, Optimizer):
            self.optimizers.append(obj)
        elif isinstance(obj, LRScheduler):
            self.schedulers.append(obj)
        elif isinstance(obj, (list, tuple)) and depth > 0:
            for v in obj:
                self._visit(v, depth - 1)
        elif isinstance(obj, dict) and depth > 0:
            for v in obj.values():
                self._visit(v, depth - 1)
        elif depth > 0 and hasattr(obj, "__dict__") and not isinstance(obj, (types.ModuleType, types.FunctionType)):
            for v in vars(obj).values():
                self._visit(v, depth - 1)

    def _add_tensor(self, t: Tensor) -> None:
        if all(t is not s for s in self.tensors):
            self.tensors.append(t)

    def snapshot(self) -> dict:
        """Copies of everything a step may change: tensor values and gradients, optimizer and scheduler
        states, the default generator."""
        return {
            "tensors": [(t, t._data.copy(), t.grad, None if t.grad is None else t.grad._data.copy())
                        for t in self.tensors],
            "optimizers": [(o, o.state_dict()) for o in self.optimizers],
            "schedulers": [(s, s.state_dict()) for s in self.schedulers],
            "rng": _random.default_generator.get_state(),
        }

    def restore(self, snap: dict) -> None:
        for t, data, grad, grad_data in snap["tensors"]:
            np.copyto(t._data, data)
            t.grad = grad
            if grad is not None:
                np.copyto(grad._data, grad_data)
        for o, sd in snap["optimizers"]:
            o.load_state_dict(sd)
        for s, sd in snap["schedulers"]:
            s.load_state_dict(sd)
        _random.default_generator.set_state(snap["rng"])


def _roots_of(fn) -> list:
    """The objects a function can reach without arguments: its bound ``self``, closure cells, and the
    globals its code (and the code nested in it) names."""
    found = []
    if isinstance(fn, Module):
        return [fn]
    self_obj = getattr(fn, "__self__", None)
    if self_obj is not None:
        found.append(self_obj)
        fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return found + [fn]
    found.extend(fn.__defaults__ or ())
    found.extend((fn.__kwdefaults__ or {}).values())
    for cell in fn.__closure__ or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    names = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    glob = getattr(fn, "__globals__", {})
    found.extend(glob[n] for n in sorted(names) if n in glob)
    return found


def _bindings_of(fn) -> list:
    """(getter, name, object) for each closure cell and global of ``fn`` holding state (a tensor, module,
    optimizer or scheduler): rebinding one between calls must not leave the program on the old object."""
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    kinds = (Tensor, Module, Optimizer, LRScheduler)
    found = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, kinds):
            found.append((lambda cell=cell: cell.cell_contents, name, value))
    glob = getattr(fn, "__globals__", {})
    for name in code.co_names:
        value = glob.get(name)
        if isinstance(value, kinds):
            found.append((lambda name=name: glob.get(name), name, value))
    return found


def first_difference(a: dict, b: dict, outputs_a, outputs_b, equal=None) -> str | None:
    """Where two post-step states (and outputs) differ, or None: bit for bit, or by ``equal`` (:func:`close`
    for ``fuse="fast"`` programs)."""
    equal = equal or same
    for i, (x, y) in enumerate(zip(outputs_a, outputs_b)):
        if not equal(x, y):
            return f"output {i} (or an argument's gradient)"
    for (t, data, _grad, gdata), (_, data2, _grad2, gdata2) in zip(a["tensors"], b["tensors"]):
        if not equal(data, data2):
            return f"the value of a state tensor of shape {tuple(t.shape)}"
        if (gdata is None) != (gdata2 is None) or (gdata is not None and not equal(gdata, gdata2)):
            return f"the gradient of a state tensor of shape {tuple(t.shape)}"
    for (o, sd), (_, sd2) in zip(a["optimizers"], b["optimizers"]):
        if not _same_tree(sd, sd2, equal):
            return f"the state of {type(o).__name__}"
    for (s, sd), (_, sd2) in zip(a["schedulers"], b["schedulers"]):
        if not _same_tree(sd, sd2, equal):
            return f"the state of {type(s).__name__}"
    if a["rng"] != b["rng"]:
        return "the random generator's state"
    return None


def same(x, y) -> bool:
    """Bitwise equality of two arrays (NaNs included), or equality of anything else."""
    if isinstance(x, Tensor):
        x = x._data
    if isinstance(y, Tensor):
        y = y._data
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
    return x == y or (x != x and y != y)


# fuse="fast" replaces numpy's exp, tanh, ... by numba's, a few ulps apart; verification then accepts
# differences of this relative size (an untraced computation or a frozen value is far larger).
FAST_RTOL = 1e-4


def close(x, y) -> bool:
    """``same`` for integer and boolean arrays and other values; floating arrays within FAST_RTOL of each
    other's scale (the largest magnitude), NaNs in the same places."""
    if isinstance(x, Tensor):
        x = x._data
    if isinstance(y, Tensor):
        y = y._data
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype.kind == "f"):
        return same(x, y)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    scale = float(np.nanmax(np.abs(x), initial=0.0))
    return bool(np.allclose(x, y, rtol=FAST_RTOL, atol=FAST_RTOL * scale, equal_nan=True))


def _same_tree(a, b, equal) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tree(a[k], b[k], equal) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_tree(x, y, equal) for x, y in zip(a, b))
    return equal(a, b)
