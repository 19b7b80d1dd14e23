"""Capturing one call: the state arrays swapped for traced views, chainrule's seams patched for the
duration (array namespace, kernels, ``.grad``, optimizer and scheduler steps, the generator), the real
eager step run once, everything put back, and the log built into a :class:`Variant`."""

from __future__ import annotations

import sys

import numpy as np

from chainrule import random as _random
from chainrule.backend import _DEVICE_OF_TYPE, ARRAY_TYPES, cpu
from chainrule.compiler import tracer as _tr
from chainrule.compiler.program import GradSetter, Program
from chainrule.compiler.tracer import ACTIVE, CompileError, Instr, TracedArray, Tracer, plain, root
from chainrule.optim.lr_scheduler import LRScheduler
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import INPLACE_EPOCH, Tensor, wrap

_BACKEND_FUNCTIONS = {
    "chainrule.backend.checks": ("indices_within",),
    "chainrule.nn.functional": ("_checked_labels",),
    "chainrule.ops.indexing": ("_add_rows_at",),
    "chainrule.backend.kernels": ("exp", "tanh", "relu", "relu_grad", "where_zero", "gelu", "gelu_grad"),
    "chainrule.backend.rows": ("softmax_rows", "softmax_vjp_rows", "layer_norm_rows", "layer_norm_vjp_rows",
                               "lstm_cell_rows", "lstm_cell_vjp_rows"),
    "chainrule.backend.windows": ("convolve", "convolve_transpose", "convolve_weight_grad", "window_gather",
                                  "window_scatter", "max_pool", "tie_shares", "max_pool_grad", "argmax_indices",
                                  "window_columns", "add_window_columns"),
}
_WRITE_FIRST_ARGUMENT = {"_add_rows_at"}  # in place, returning None; the others write only their results and out
_OPAQUE: dict = {}  # original function -> its opaque twin, made once


class Variant:
    """One captured program and what it was captured for: the input buffers, the state arrays it reads
    (guarded by identity), the output structure, and its stage (captured, verified, failed)."""

    def __init__(self, key):
        self.key = key
        self.stage = "warm-up"
        self.program: Program | None = None
        self.inputs: list = []  # (position path, buffer or None, slot or None): see capture()
        self.identity: list = []  # (tensor, of its gradient?, array) the program reads in place
        self.data_guards: list = []  # the same, split for the replay's check: (tensor, its array)
        self.grad_guards: list = []  # (tensor, its gradient's array)
        self.outputs = None
        self.written_inputs: list = []
        self.problems: list[str] = []
        self.misses: list[str] = []
        self.replays = 0
        self.current_args: list = [None]  # the (args, kwargs) of the replay in progress
        # After a replay: (the state half of the signature then, whether the identity guards hold then).
        # The same after every replay (a program sets the same gradients each time), so found once.
        self.after: tuple | None = None


def _swap(tensors: list, saved: dict) -> None:
    for t in tensors:
        if not isinstance(t._data, TracedArray):
            saved.setdefault(id(t), (t, t._data))
            t._data = t._data.view(TracedArray)
        g = t.grad
        if g is not None and not isinstance(g._data, TracedArray):
            saved.setdefault(id(g), (g, g._data))
            g._data = g._data.view(TracedArray)


def _unswap(tensors: list, saved: dict) -> None:
    """Put back the original arrays of swapped tensors; gradients made during the capture get plain views."""
    for t, original in saved.values():
        if isinstance(t._data, TracedArray):
            t._data = original if root(t._data) is root(original) else t._data.view(np.ndarray)
    for t in tensors:
        g = t.grad
        if g is not None and isinstance(g._data, TracedArray):
            g._data = g._data.view(np.ndarray)


class _Patches:
    """The seams a capture patches, and how to put each back."""

    def __init__(self, tracer: Tracer, tensors: list, saved: dict, arg_paths: dict, current_args: list):
        self.tracer, self.tensors, self.saved = tracer, tensors, saved
        self.arg_paths, self.current_args = arg_paths, current_args
        self.undo: list = []

    def __enter__(self):
        self._set(cpu, "xp", _tr.TRACED_NUMPY)
        _DEVICE_OF_TYPE[TracedArray] = cpu
        ARRAY_TYPES.add(TracedArray)
        self.undo.append(lambda: (ARRAY_TYPES.discard(TracedArray), _DEVICE_OF_TYPE.pop(TracedArray, None)))
        self._patch_backend_functions()
        self._patch_device_checks()
        self._patch_grad_attribute()
        for cls in [Optimizer, *_subclasses(Optimizer)] + [LRScheduler, *_subclasses(LRScheduler)]:
            if "step" in cls.__dict__:
                self._set(cls, "step", self._host(cls.__dict__["step"]))
        gen = _random.default_generator
        self._set(gen, "numpy", _RecordingGenerator(gen, gen.numpy))
        from chainrule.autograd import engine

        self._set(engine, "backward", _no_create_graph(engine.backward))
        ACTIVE[0] = self.tracer
        self.undo.append(lambda: ACTIVE.__setitem__(0, None))
        return self

    def __exit__(self, *exc):
        for undo in reversed(self.undo):
            undo()

    def _set(self, obj, name, value) -> None:
        had = name in obj.__dict__ if isinstance(obj, type) else True
        old = obj.__dict__.get(name) if isinstance(obj, type) else getattr(obj, name)
        setattr(obj, name, value)
        self.undo.append(lambda: setattr(obj, name, old) if had else delattr(obj, name))

    def _patch_backend_functions(self) -> None:
        originals = {}
        for module_name, names in _BACKEND_FUNCTIONS.items():
            module = sys.modules.get(module_name)
            for name in names:
                fn = getattr(module, name, None) if module else None
                if fn is not None and not hasattr(fn, "__wrapped_opaque__"):
                    originals[id(fn)] = fn
        from chainrule.backend import kernels

        for fn in originals.values():
            if fn not in _OPAQUE:
                elementwise = fn.__module__ == kernels.__name__
                _OPAQUE[fn] = _tr.opaque(fn, numpy_below=kernels.MIN_SIZE if elementwise else 0,
                                         in_place=fn.__name__ in _WRITE_FIRST_ARGUMENT)
        for module in list(sys.modules.values()):  # every module that imported one of them by name
            if not getattr(module, "__name__", "").startswith("chainrule"):
                continue
            for name, value in list(vars(module).items()):
                if id(value) in originals and originals[id(value)] is value:
                    self._set(module, name, _OPAQUE[value])

    def _patch_device_checks(self) -> None:
        """Ops refuse operands of two array types (two devices). A tensor the discovery did not find still
        holds a plain array: the checks swap its array for a traced view on first meeting (put back after
        the capture), so the capture mixes arrays exactly as eager does."""
        saved = self.saved
        for module_name, name in _DEVICE_CHECKS:
            module = sys.modules.get(module_name)
            check = getattr(module, name, None) if module else None
            if check is None:
                continue
            for holder in list(sys.modules.values()):
                if getattr(holder, "__name__", "").startswith("chainrule") and vars(holder).get(name) is check:
                    self._set(holder, name, _swapping_first(check, saved))

    def _patch_grad_attribute(self) -> None:
        """Log every gradient set while capturing: the ``_grad`` slot itself is swapped for a property (the
        engine and ``zero_grad`` write it directly; the public ``grad`` property goes through it too)."""
        slot = Tensor.__dict__["_grad"]
        tracer = self.tracer

        def set_grad(t, value):
            try:
                old = slot.__get__(t)
            except AttributeError:  # a tensor being made (wrap): not a gradient being set
                old = None
            slot.__set__(t, value)
            if ACTIVE[0] is None or tracer.paused or (old is None and value is None):
                return
            if value is not None and not isinstance(value, Tensor):
                return
            reads = () if value is None else tracer._roots([value._data])
            path = self.arg_paths.get(id(t))
            setter = GradSetter(t, value) if path is None else _arg_grad_setter(self.current_args, path, value)
            instr = tracer.add(Instr("grad", setter, reads=reads, name=f"{_shape(t)}.grad = ..."))
            instr.expected = (t, value, setter)

        self._set(Tensor, "_grad", property(slot.__get__, set_grad))

    def _host(self, step):
        patches = self

        def host_step(obj, *args, **kwargs):
            tracer = ACTIVE[0]
            if tracer is None or tracer.paused:
                return step(obj, *args, **kwargs)
            if args or kwargs:
                for value in list(args) + list(kwargs.values()):
                    if callable(value) or isinstance(value, Tensor):
                        tracer.note_problem(f"{type(obj).__name__}.step() with a closure or a tensor argument")
            _unswap(patches.tensors, patches.saved)
            tracer.paused += 1
            try:
                result = step(obj, *args, **kwargs)
            finally:
                tracer.paused -= 1
                _swap(patches.tensors, patches.saved)
            tracer.add(Instr("host", _host_call(step, obj, args, kwargs), name=f"{type(obj).__name__}.step()"))
            return result

        return host_step


_DEVICE_CHECKS = (("chainrule.ops._helpers", "binary_operands"), ("chainrule.ops.linalg", "_same_dtype"))


def _swapping_first(check, saved: dict):
    def checked(*args):
        for x in args:
            if isinstance(x, Tensor) and type(x._data) is np.ndarray:
                saved.setdefault(id(x), (x, x._data))
                x._data = x._data.view(TracedArray)
        return check(*args)
    return checked


def _host_call(step, obj, args, kwargs):
    def run():
        step(obj, *args, **kwargs)
    return run


def _arg_grad_setter(current_args: list, path: tuple, value):
    """``.grad`` of an argument: set on the tensor passed at replay (``current_args[0]``), not the capture's."""
    def run():
        _at(current_args[0], path).grad = value
    return run


def _shape(t: Tensor) -> str:
    return f"tensor{list(t.shape)}"


def _subclasses(cls) -> list:
    found, stack = [], list(cls.__subclasses__())
    while stack:
        c = stack.pop()
        found.append(c)
        stack.extend(c.__subclasses__())
    return found


def _no_create_graph(backward):
    def checked(*args, **kwargs):
        if kwargs.get("create_graph") or (len(args) > 3 and args[3]):
            tracer = ACTIVE[0]
            if tracer is not None:
                tracer.note_problem("backward(create_graph=True) (higher-order gradients are not compiled)")
        return backward(*args, **kwargs)
    return checked


class _RecordingGenerator:
    """Stands for a chainrule generator's numpy generator during a capture: each draw is an instruction
    that draws from the live generator at replay, as eager would, in eager's order."""

    def __init__(self, gen, real):
        self._gen, self._real = gen, real

    def __getattr__(self, name):
        method = getattr(self._real, name)
        if not callable(method):
            return method
        gen = self._gen

        def draw(*args, **kwargs):
            tracer = ACTIVE[0]
            args, kwargs = plain(args), {k: plain(v) for k, v in kwargs.items()}
            result = method(*args, **kwargs)
            if tracer is None or tracer.paused:
                return result
            if not isinstance(result, np.ndarray):
                tracer.note_problem(f"a random Python number drawn with {name}() (draw a tensor instead)")
                return result
            tracer._made(result)

            tracer.add(Instr("rng", _draw(gen, name, args, kwargs), (result,), writes=tracer._roots([result]),
                             name=f"{name}{list(result.shape)}"))
            return result.view(TracedArray)

        return draw


def _draw(gen, name: str, args: tuple, kwargs: dict):
    """A replayed draw: the same call on the generator's live numpy generator, into the buffer."""
    def draw(buffer):
        np.copyto(buffer, getattr(gen.numpy, name)(*args, **kwargs))
    return draw


def capture(fn, args: tuple, kwargs: dict, tensors: list, variant: Variant, modules=(), fuse: str | None = None,
            copy_outputs: bool = True):
    """Run ``fn(*args, **kwargs)`` once for real under the tracer; fill ``variant`` with its program.
    Returns the call's result (the capture is an eager step) and the same as the program's outputs (copies
    of its buffers, as a replay returns them)."""
    tracer = Tracer()
    saved: dict = {}
    arg_tensors = _tensors_in((args, kwargs))
    variant.current_args[0] = (args, kwargs)
    inputs = []
    bound: dict = {}  # id(tensor) -> its buffer: a tensor passed twice reads one buffer
    for path, t in arg_tensors:
        if id(t) in bound:
            inputs.append((path, t, None, bound[id(t)]))
            continue
        buffer = bound[id(t)] = np.array(t._data, copy=True, order="K")
        inputs.append((path, t, t._data, buffer))
        t._data = buffer.view(TracedArray)
    state = [t for t in tensors if all(t is not a for _, a in arg_tensors)]
    entry = [(t, t._data, t.grad, None if t.grad is None else t.grad._data) for t in state]
    _swap(state, saved)
    arg_paths = {id(t): path for path, t in arg_tensors}
    try:
        with _Patches(tracer, state, saved, arg_paths, variant.current_args):
            result = fn(*args, **kwargs)
        # (before the arguments get their own arrays back: an argument returned as it is reads its buffer)
        outputs, live = _outputs(result)
    finally:
        for _path, t, original, _buffer in inputs:
            if original is not None:
                t._data = original
        _unswap(state, saved)
    _untrace_module_attributes(modules)
    _check_result(result, tracer)
    variant.outputs = outputs
    variant.inputs = [(path, buffer) for path, _t, _o, buffer in inputs]
    variant.problems = tracer.problems
    names = {id(root(b)): f"in{i}" for i, (_p, b) in enumerate(variant.inputs)}
    for i, (_t, data, _g, _gd) in enumerate(entry):
        names.setdefault(id(root(data)), f"state{i}")
    entry_grads = {id(gd): (t, gd) for t, _d, _g, gd in entry if gd is not None and root(gd) is gd}
    first = rebuild(outputs, copy_outputs)
    whole = [root(p) for p in _output_arrays(outputs) if _whole(p)]
    program = Program(tracer.instrs, tracer.created, live, [root(b) for _p, b in variant.inputs], names, fuse,
                      entry_grads, whole)
    variant.program = program
    variant.outputs = _slotted_outputs(outputs, program.output_slots)
    read = set()
    for instr in program.instrs:
        read.update(id(a) for a in instr.reads + instr.writes)
    # Gradients the program reads from .grad at each replay need no identity guard.
    variant.identity = _identity_guards(entry, read - set(program.bound_grads))
    variant.data_guards = [(t, a) for t, of_grad, a in variant.identity if not of_grad]
    variant.grad_guards = [(t, a) for t, of_grad, a in variant.identity if of_grad]
    variant.written_inputs = [(path, b) for path, b in variant.inputs
                              if any(root(b) is w for instr in program.instrs for w in instr.writes)]
    for path, buffer in variant.written_inputs:  # the capture changed its copy: the caller's tensor too
        np.copyto(_at((args, kwargs), path)._data, buffer)
    # (path, buffer, None) for an argument copied into its buffer each replay; (path, None, slot) for one
    # the program reads in place (the capture's copy is then not kept).
    variant.inputs = [(path, None, program.bound_inputs[id(b)]) if id(b) in program.bound_inputs else (path, b, None)
                      for path, b in variant.inputs]
    return _plain_result(result), first


def _untrace_module_attributes(modules) -> None:
    """Tensors a module kept from the captured call (a recurrent state, a cache) hold traced views of the
    program's buffers: give them plain views, so later eager code mixes them with plain arrays."""
    for module in modules:
        for sub in module.modules():
            for value in list(vars(sub).values()):
                for v in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(v, Tensor) and isinstance(v._data, TracedArray):
                        v._data = v._data.view(np.ndarray)


def _identity_guards(entry: list, read: set) -> list:
    """The state arrays the program reads or writes in place: each must still be the same array at
    replay (``p.data = ...``, ``Module.to``, ``load_state_dict`` of an optimizer replace arrays)."""
    guards = []
    for t, data, grad, grad_data in entry:
        if id(root(data)) in read:
            guards.append((t, False, data))
        if grad is not None and id(root(grad_data)) in read:
            guards.append((t, True, grad_data))
    return guards


def _tensors_in(tree, path=()) -> list:
    if isinstance(tree, Tensor):
        return [(path, tree)]
    if isinstance(tree, (list, tuple)):
        return [x for i, v in enumerate(tree) for x in _tensors_in(v, path + (i,))]
    if isinstance(tree, dict):
        return [x for k, v in tree.items() for x in _tensors_in(v, path + (k,))]
    return []


def _check_result(result, tracer: Tracer) -> None:
    if isinstance(result, (float, int, complex, np.generic)) and not isinstance(result, bool):
        tracer.problems.append(f"the function returns a Python number ({result!r}): its value would be frozen; "
                               "return a tensor instead")


def _outputs(result):
    """The result's structure with each tensor replaced by its buffer (a plain array)."""
    live = []

    def walk(x):
        if isinstance(x, Tensor):
            p = plain(x._data)
            live.append(root(p))
            return ("tensor", p, x.dtype)
        if isinstance(x, (list, tuple)):
            return (type(x), [walk(v) for v in x])
        if isinstance(x, dict):
            return (dict, {k: walk(v) for k, v in x.items()})
        return ("const", x)

    return walk(result), live


def _whole(a) -> bool:
    """Whether ``a`` is all of its root, laid out as it (the root itself, or a plain view of all of it)."""
    r = root(a)
    return a.shape == r.shape and a.strides == r.strides and a.dtype == r.dtype \
        and a.__array_interface__["data"][0] == r.__array_interface__["data"][0]


def _output_arrays(outputs) -> list:
    kind, value = outputs[0], outputs[1]
    if kind == "tensor":
        return [value]
    if kind == "const":
        return []
    return [a for v in (value.values() if kind is dict else value) for a in _output_arrays(v)]


def _slotted_outputs(outputs, slots: dict):
    """The output structure with each output made per replay read from its slot (``("slot", slot, dtype)``):
    the result takes this replay's array instead of a copy of the capture's."""
    kind = outputs[0]
    if kind == "tensor":
        slot = slots.get(id(root(outputs[1]))) if _whole(outputs[1]) else None
        return outputs if slot is None else ("slot", slot, outputs[2])
    if kind == "const":
        return outputs
    if kind is dict:
        return (dict, {k: _slotted_outputs(v, slots) for k, v in outputs[1].items()})
    return (kind, [_slotted_outputs(v, slots) for v in outputs[1]])


def _plain_result(result):
    if isinstance(result, Tensor):
        if isinstance(result._data, TracedArray):
            result._data = result._data.view(np.ndarray)
        return result
    if isinstance(result, (list, tuple)):
        return type(result)(_plain_result(v) for v in result) if not hasattr(result, "_make") else result
    if isinstance(result, dict):
        return {k: _plain_result(v) for k, v in result.items()}
    return result


def rebuild(outputs, copy: bool):
    """The replayed call's result from the output structure: fresh tensors (copies of the buffers, or the
    arrays this replay made for them, taken from their slots, which are then emptied)."""
    taken: list = []
    result = _rebuilt(outputs, copy, taken)
    for slot in taken:
        slot.value = slot.flat = None
    return result


def _rebuilt(outputs, copy: bool, taken: list):
    kind = outputs[0]
    if kind == "slot":
        taken.append(outputs[1])
        return wrap(outputs[1].value)
    if kind == "tensor":
        return wrap(outputs[1].copy() if copy else outputs[1])
    if kind == "const":
        return outputs[1]
    if kind is dict:
        return {k: _rebuilt(v, copy, taken) for k, v in outputs[1].items()}
    return kind(_rebuilt(v, copy, taken) for v in outputs[1])


def replay(variant: Variant, args: tuple, kwargs: dict, copy_outputs: bool, guarded: bool = True):
    """One replay: identity guards (skipped when not ``guarded``: the caller knows that no state array was
    replaced since they last held), inputs copied into the buffers, the program, outputs copied out."""
    tree = _begin(variant, args, kwargs, guarded)
    _run_undoable(variant.program)
    for path, buffer in variant.written_inputs:
        np.copyto(_at(tree, path)._data, buffer)
    INPLACE_EPOCH[0] += 1
    variant.replays += 1
    return rebuild(variant.outputs, copy_outputs)


def _begin(variant: Variant, args: tuple, kwargs: dict, guarded: bool, skipped: tuple | None = None) -> tuple:
    """A replay's start: the identity guards (when ``guarded``), then each argument (but the one at
    ``skipped``) into its buffer or slot. Returns the (args, kwargs) tree."""
    if guarded and not guards_hold(variant):
        raise _tr.GuardMiss(_replaced(variant.identity))
    tree = (args, kwargs)
    variant.current_args[0] = tree
    for path, buffer, slot in variant.inputs:
        if path != skipped:
            _bind(buffer, slot, _at(tree, path)._data)
    return tree


def _bind(buffer, slot, array) -> None:
    if slot is None:
        np.copyto(buffer, array)
    else:
        slot.take_input(array)


def _run_undoable(program, stop: int | None = None) -> None:
    """The program's steps (up to ``stop``), undoing what they changed when a guard misses."""
    safety = program.guard_safety
    undo = _undo_point(safety) if safety and any(safety) else None
    try:
        if stop is None:
            program.run()
        else:
            program.run_steps(0, stop)
    except _tr.GuardMiss:
        if undo is not None:
            undo()
        raise


def replay_in_halves(variant: Variant, args: tuple, kwargs: dict, mark: str, path: tuple, guarded: bool = True):
    """A replay that stops at the ``mark`` (the end of a compiled module's forward) and goes on when the
    returned ``resume(array)`` is called with the array of the argument at ``path``, which the first half
    does not read (the module's output gradient, not known yet during its forward). What the halves
    share is kept for ``resume`` (the arrays in slots, copies of the program's own small buffers), so
    other replays may run in between (two forwards before one backward) and ``resume`` may run more than
    once. A guard that misses in the second half raises GuardMiss from ``resume`` (nothing that half wrote
    needs undoing). Returns ``resume`` and the generator's state before the first half when that half
    draws and a guard comes after it (for redoing the call eagerly), or None when the program cannot stop
    there (see ``Program.split``)."""
    program = variant.program
    _path, buffer, slot = next(entry for entry in variant.inputs if entry[0] == path)
    split = program.split(mark)
    if split is None or variant.written_inputs:
        return None
    start, slots, buffers, checked_after, draws_before = split
    tree = _begin(variant, args, kwargs, guarded, skipped=path)
    generator = _random.default_generator.get_state() if checked_after and draws_before else None
    _run_undoable(program, start)
    kept_slots = [(s, s.value, s.flat) for s in slots]
    kept_buffers = [(b, b.copy()) for b in buffers]
    INPLACE_EPOCH[0] += 1
    variant.replays += 1

    def resume(array, last: bool = False) -> None:
        """``last``: no later resume will come (a backward that frees its graph), so the slots alone hold
        the shared arrays from here on, and each goes after its last use as in eager's backward."""
        for s, value, flat in kept_slots:
            s.value, s.flat = value, flat
        for b, copy in kept_buffers:
            np.copyto(b, copy)
        if last:
            kept_slots.clear()
            kept_buffers.clear()
        variant.current_args[0] = tree
        _bind(buffer, slot, array)
        program.run_steps(start)
        INPLACE_EPOCH[0] += 1

    return resume, generator


def guards_hold(variant: Variant) -> bool:
    """Whether every state array the program reads in place is still the one it was captured with."""
    return all([t._data is a for t, a in variant.data_guards]) \
        and all([t._grad is not None and t._grad._data is a for t, a in variant.grad_guards])


def _replaced(identity: list) -> str:
    """Which state array guarded by identity was replaced (the replay checks them all at once)."""
    for t, of_grad, array in identity:
        holder = t.grad if of_grad else t
        if holder is None or holder._data is not array:
            return f"a state tensor's {'gradient' if of_grad else 'array'} (shape {tuple(t.shape)}) was replaced " \
                   "since the capture"
    return "a state array was replaced since the capture"


def _undo_point(safety):
    written, rng, grads_set, grads_written = safety
    arrays = written + [t._grad._data for t in grads_written]  # gradients read at replay: the ones held now
    copies = [(a, a.copy()) for a in arrays]
    grads = [(t, t.grad) for t in grads_set]
    state = _random.default_generator.get_state() if rng else None

    def undo():
        for a, c in copies:
            np.copyto(a, c)
        for t, g in grads:
            t.grad = g
        if state is not None:
            _random.default_generator.set_state(state)

    return undo


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


__all__ = ["capture", "replay", "guards_hold", "Variant", "CompileError", "rebuild"]
