"""The recorded graph: one :class:`Node` per differentiable operation, made by :func:`record`.

A node knows its parents (per input: the input's node, the input itself when it is a leaf that
requires grad, or ``None``), the shape and dtype of its output, the inputs that do not require grad
(its ``constants``), its backward rule, and the versions of the tensors the rule will read.

An operation declares its derivative once, beside its forward, when it calls :func:`record`:

- ``rule(g, out, *args)``: the gradient for each input (``None`` where there is none), written with
  differentiable tensor operations, so the same rule builds a graph when the backward itself is recorded
  (``create_graph=True``) and higher-order gradients need no extra code;
- optionally ``fast(g, out, *args)``: the same formula on backend arrays, for a *plain backward* (one that
  records nothing, the usual ``loss.backward()``), where it skips the tensor and node machinery.

``out`` is the operation's output when it asked to keep it (``keep_output=True``: exp, tanh, ...), else
``None``; ``args`` are what the operation passed for its rule. A rule may return a gradient of the
broadcast shape or of another dtype: the engine sums it down to its input's shape and casts it
(:func:`received`: undoing broadcasting happens there, once, for every rule). The most frequent ops (mul, add, tanh) use
module-level rules with ``args`` rather than closures, which cost the garbage collector several objects
per recorded op (bench/ANALYSIS.md). The node holds the output's array, not the output tensor, so no
reference cycle (tensor -> node -> rule -> tensor) delays freeing memory.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

from chainrule import dtypes as _dt
from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.backend import ARRAY_TYPES, xp_of
from chainrule.tensor import INPLACE_EPOCH, STATE_EPOCH, Tensor, wrap

__all__ = ["Node", "record", "HookHandle", "ANOMALY", "PlacedGrad", "RECORD_OBSERVERS", "received"]

# detect_anomaly() turns this on: backward rules' results are then checked for NaN/Inf.
ANOMALY = [False]
# Diagnostics that watch the forward pass (anomaly mode, provenance of untracked results) register a
# function here while they are active; record() calls each as observe(result, op, inputs). Ordinary
# training registers none, so recording pays one test for them.
RECORD_OBSERVERS: list[Callable] = []


class HookHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, registry: dict, hook: Callable):
        self._registry = registry
        self._id = next(HookHandle._ids)
        registry[self._id] = hook
        STATE_EPOCH[0] += 1  # compiled programs ran without this hook

    def remove(self) -> None:
        self._registry.pop(self._id, None)
        STATE_EPOCH[0] += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _LeafHookTable(dict):
    """The hooks of ``Tensor.register_post_accumulate_grad_hook``: id(leaf) -> (weak reference to the leaf,
    {handle id: hook}), an entry living as long as its leaf (a WeakKeyDictionary would compare tensors
    with ==, which is elementwise). Empty, and so false, unless some hook was registered; only backward()
    looks at it then."""

    def hooks_of(self, leaf) -> dict | None:
        entry = dict.get(self, id(leaf))
        return entry[1] if entry is not None and entry[0]() is leaf else None

    def registry(self, leaf) -> dict:
        """The dict a HookHandle adds ``leaf``'s hook to, made on first use."""
        hooks = self.hooks_of(leaf)
        if hooks is None:
            key = id(leaf)
            hooks = {}
            self[key] = (weakref.ref(leaf, lambda _, key=key: self.pop(key, None)), hooks)
        return hooks


POST_ACCUMULATE_HOOKS = _LeafHookTable()


def register_post_accumulate_grad_hook(self: Tensor, hook: Callable[[Tensor], None]) -> HookHandle:
    """Call ``hook(self)`` once ``backward()`` has added this leaf's gradient into ``.grad`` (as soon as it is
    complete, while the rest of the backward goes on; not for ``autograd.grad``). Returns a handle whose
    ``remove()`` unregisters the hook."""
    if self._node is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered "
                           f"on non-leaf tensors (this one was made by {self._node.name()})")
    if not self._rg:
        raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor that "
                           "doesn't require grad")
    return HookHandle(POST_ACCUMULATE_HOOKS.registry(self), hook)


# a Tensor method defined beside the table it writes to (tensor.py cannot import this module)
Tensor.register_post_accumulate_grad_hook = register_post_accumulate_grad_hook


class Node:
    """One recorded operation: the ``grad_fn`` of the tensor it produced.

    ``shape`` and ``dtype`` are those of the output, which every gradient sent to this node is summed and
    cast to. ``versions`` are the version counters of the ``saved`` tensors when the node was made and
    ``epoch`` the in-place epoch then (see ``tensor.INPLACE_EPOCH``): backward compares the versions only
    when some tensor was changed in place since.
    """

    __slots__ = ("op", "parents", "backward_fn", "fast_fn", "args", "saved", "versions", "epoch", "out",
                 "out_version", "shape", "dtype", "hooks", "retained", "callsite", "constants", "__weakref__")

    def __init__(self, op: str, parents: tuple, backward_fn: Callable, out, saved: tuple = (), args: tuple = (),
                 fast: Callable | None = None, keep_output: bool = False, inputs: tuple = ()):
        self.op = op
        self.parents = parents
        self.backward_fn = backward_fn
        self.fast_fn = fast
        self.args = args
        self.saved = saved
        self.versions = _versions_of(saved) if saved else ()
        self.epoch = INPLACE_EPOCH[0]
        self.out = out if keep_output else None  # the output array, for rules that read it
        self.out_version = None  # the output tensor's version counter, shared with it (set by record)
        self.shape = out.shape
        self.dtype = out.dtype
        self.hooks = None
        self.retained = None
        self.callsite = None
        # The inputs outside the graph (data, buffers, detached copies), which the parents cannot name, are
        # kept for explanations (chainrule.diagnostics). Identity tests only: `None in parents` would call
        # Tensor.__eq__ on every leaf parent.
        mixed = parents[0] is None or parents[-1] is None or (len(parents) > 2 and any(p is None for p in parents))
        self.constants = tuple([x for x, p in zip(inputs, parents) if p is None]) if mixed and inputs else ()

    def apply(self, g: Tensor, plain: bool, release: bool = False) -> tuple:
        """The gradient for each input (a tensor, an array from a fast entry, a placed gradient or None)
        given the gradient ``g`` of the output: the fast entry when ``plain`` (no graph of the backward is
        built) and the op has one, else the rule; with ``release``, the node then frees what the rule held.
        The one place rules are called (the engine, explanations). A gradient may still have the broadcast
        shape: the engine sums it to its input's shape (:func:`received`)."""
        rule = self.backward_fn
        if rule is None:
            raise _freed_graph_error(self)
        if self.epoch != INPLACE_EPOCH[0] and (self.saved or self.out_version):
            _check_versions(self)
        if plain and self.fast_fn is not None:
            grads = self.fast_fn(g._data, self.out, *self.args)
        else:
            grads = rule(g, None if self.out is None else wrap(self.out, True, self), *self.args)
        if ANOMALY[0]:
            from chainrule.autograd.anomaly import check_backward

            check_backward(self, g, grads)
        if release:
            self.backward_fn = self.fast_fn = None
            self.args = self.saved = self.constants = ()
            self.out = None
        return grads

    def name(self) -> str:
        """PyTorch-style: 'mul' -> 'MulBackward0' (the digit is PyTorch's overload number; always 0 here)."""
        return "".join(part[:1].upper() + part[1:] for part in self.op.split("_")) + "Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self) -> tuple:
        """Per input ``(node_or_leaf_or_None, 0)``, like PyTorch's (a leaf stands for its AccumulateGrad)."""
        return tuple((p, 0) for p in self.parents)

    def add_hook(self, hook: Callable) -> HookHandle:
        if self.hooks is None:
            self.hooks = {}
        return HookHandle(self.hooks, hook)

    def retain(self, tensor: Tensor) -> None:
        import weakref

        self.retained = weakref.ref(tensor)

    def retains(self, tensor: Tensor) -> bool:
        return self.retained is not None and self.retained() is tensor


def received(g, shape: tuple, dtype) -> Tensor:
    """The summed gradient of a node's output or of a leaf (a tensor, or an array from a fast entry) as a
    tensor of its ``shape`` and ``dtype``: summed over the dimensions the forward broadcast, then cast.
    Undoing broadcasting happens here, for every rule."""
    if type(g) is not Tensor:
        g = wrap(g if type(g) in ARRAY_TYPES else xp_of(g).asarray(g))  # numpy gives scalars for 0-d results
    if g._data.shape != shape:
        g = g.sum_to(shape)
    if g._data.dtype != dtype:
        g = g.to(_dt.from_np(dtype))
    return g


def _freed_graph_error(node: Node) -> RuntimeError:
    return RuntimeError(
        f"backward: trying to backward through the graph a second time ({node.name()}'s saved "
        "values were freed after the first backward). Pass retain_graph=True to the first "
        "backward() or autograd.grad() call if you need to backward through it again."
    )


def _check_versions(node: Node) -> None:
    if node.out_version and node.out_version[0] != 0:
        raise RuntimeError(
            f"backward: the output of '{node.op}' (needed by {node.name()}) has been modified by an "
            f"in-place operation: it is at version {node.out_version[0]}, expected version 0. Use an "
            "out-of-place operation instead, or clone() the output before modifying it."
        )
    for i, (t, v) in enumerate(zip(node.saved, node.versions)):
        now = t._vc[0] if t._vc is not None else 0
        if now != v:
            raise RuntimeError(
                f"backward: one of the tensors needed by {node.name()} (saved tensor {i}, shape "
                f"{t.shape}, {t.dtype}) has been modified by an in-place operation: it is at version "
                f"{now}, but the forward operation '{node.op}' saved it at version {v}. Use an "
                "out-of-place operation instead (e.g. y = y + 1 rather than y += 1), or clone() it."
            )


_NEVER_CHANGED = {1: (0,), 2: (0, 0)}


def _versions_of(saved: tuple) -> tuple:
    """The current version of each tensor in ``saved`` (0 for one never changed in place)."""
    n = len(saved)  # one and two unrolled: they are the common cases, and a comprehension is a call
    if n == 1:
        vc = saved[0]._vc
        return (vc[0],) if vc is not None else _NEVER_CHANGED[1]
    if n == 2:
        a, b = saved
        if a._vc is None and b._vc is None:
            return _NEVER_CHANGED[2]  # a shared tuple: no allocation for the usual case
        return (a._vc[0] if a._vc is not None else 0, b._vc[0] if b._vc is not None else 0)
    return tuple([t._vc[0] if t._vc is not None else 0 for t in saved])


def _parents_of(inputs: tuple) -> tuple | None:
    """Per input its node, or itself when it is a leaf that requires grad, or ``None`` when it does not
    require grad; ``None`` overall when no input requires grad (nothing to record)."""
    if len(inputs) == 1:  # unary and binary ops unrolled: this runs for every recorded operation
        a = inputs[0]
        return (a._node or a,) if a._rg else None
    if len(inputs) == 2:
        a, b = inputs
        if a._rg:
            return (a._node or a, (b._node or b) if b._rg else None)
        return (None, b._node or b) if b._rg else None
    for x in inputs:
        if x._rg:
            return tuple([(x._node or x) if x._rg else None for x in inputs])
    return None


_new = object.__new__
_init_node = Node.__init__


class PlacedGrad:
    """A gradient that is zero except ``values`` at the basic index ``index`` of an array of ``shape``:
    what a view (``x[i]``, ``x[:, a:b]``, the pieces of ``unbind``/``split``) sends to its base in a
    plain backward (no graph being built). The engine adds ``values`` into the base's gradient in place,
    so the views of one base cost one zero-filled array between them instead of one each plus their
    full-size sums. Anything else that meets one turns it into a tensor with :meth:`materialize`."""

    __slots__ = ("index", "values", "shape")

    def __init__(self, index: tuple, values, shape: tuple):
        self.index, self.values, self.shape = index, values, shape

    def materialize(self) -> Tensor:
        full = xp_of(self.values).zeros(self.shape, dtype=self.values.dtype)
        full[self.index] = self.values
        return wrap(full)


def record(out, op: str, inputs: tuple, backward_fn: Callable, saved: tuple = (),
           keep_output: bool = False, args: tuple = (), fast: Callable | None = None) -> Tensor:
    """Wrap the backend array ``out`` as the result of operation ``op`` on ``inputs``.

    When grad mode is on and an input requires grad, the result gets a node holding ``backward_fn`` (and
    the optional array-level ``fast`` entry: see the module docstring); ``saved`` lists the input tensors
    whose values the rule reads, and ``keep_output`` says it reads the output, so an in-place change to
    either before backward is caught; ``args`` are passed to the rule after the gradient and the output.
    Otherwise nothing is recorded.
    """
    if type(out) not in ARRAY_TYPES:  # reductions to 0-d give numpy scalars
        out = xp_of(inputs[0]._data).asarray(out)
    parents = _parents_of(inputs) if GRAD_ENABLED[0] else None
    if parents is None:
        result = wrap(out)
    else:
        node = _new(Node)  # Node's constructor, without the class call's overhead: this runs for every op
        _init_node(node, op, parents, backward_fn, out, saved, args, fast, keep_output, inputs)
        result = wrap(out, True, node)
        if keep_output:
            node.out_version = result._vc = [0]
    if RECORD_OBSERVERS:
        for observe in RECORD_OBSERVERS:
            observe(result, op, inputs)
    return result
