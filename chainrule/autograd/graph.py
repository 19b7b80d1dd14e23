"""The recorded graph: one :class:`Node` per differentiable operation, made by :func:`record`.

A node knows its parents (per input: the input's node, the input itself when it is a leaf that
requires grad, or ``None``), the inputs that do not require grad (its ``constants``), its backward rule,
and the versions of the tensors the rule will read.

A backward rule is a function ``rule(grad_out, out, *args) -> tuple of input gradients`` (``None`` for
an input that needs none), written with differentiable tensor operations. ``out`` is the operation's
output when the op asked to keep it (``keep_output=True``: exp, tanh, sigmoid, ...), else ``None``;
``args`` are what the op passed to :func:`record` for its rule (usually nothing: most rules are closures).
The most frequent ops (mul, add, sub, tanh) use module-level rules with ``args`` instead of closures:
a closure costs three to four objects per recorded op (function, cells, their tuple), and in a graph of
many small ops the garbage collector's passes over them were a tenth of the step.
The node holds the output's array rather than the output tensor, so no reference cycle
(tensor -> node -> rule -> tensor) delays freeing memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.autograd.provenance import ORIGINS, note_origin
from chainrule.backend import ARRAY_TYPES, xp_of
from chainrule.tensor import INPLACE_EPOCH, Tensor, wrap

__all__ = ["Node", "record", "HookHandle", "ANOMALY", "PlacedGrad"]

# detect_anomaly() turns this on: nodes then remember where the user's code created them.
ANOMALY = [False]
_new = object.__new__

class HookHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, registry: dict, hook: Callable):
        self._registry = registry
        self._id = next(HookHandle._ids)
        registry[self._id] = hook

    def remove(self) -> None:
        self._registry.pop(self._id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Node:
    """One recorded operation: the ``grad_fn`` of the tensor it produced.

    ``versions`` are the version counters of the ``saved`` tensors when the node was made and
    ``epoch`` the in-place epoch then (see ``tensor.INPLACE_EPOCH``): backward compares the versions
    only when some tensor was changed in place since.
    """

    __slots__ = ("op", "parents", "backward_fn", "args", "saved", "versions", "epoch", "out", "out_version", "hooks",
                 "retained", "callsite", "constants", "__weakref__")

    def __init__(self, op: str, parents: tuple, backward_fn: Callable, saved: tuple, args: tuple = ()):
        self.op = op
        self.parents = parents
        self.backward_fn = backward_fn
        self.args = args
        self.saved = saved
        self.versions = _versions_of(saved) if saved else ()
        self.epoch = INPLACE_EPOCH[0]
        self.out = None  # the output array, for rules that read it
        self.out_version = None  # the output tensor's version counter, shared with it
        self.hooks = None
        self.retained = None
        self.callsite = None
        self.constants = ()

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


def _constants_of(inputs: tuple, parents: tuple) -> tuple:
    return tuple([x for x, p in zip(inputs, parents) if p is None])


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
           keep_output: bool = False, args: tuple = ()) -> Tensor:
    """Wrap the backend array ``out`` as the result of operation ``op`` on ``inputs``.

    When grad mode is on and an input requires grad, the result gets a node holding
    ``backward_fn``; ``saved`` lists the input tensors whose values that rule reads, and
    ``keep_output`` says it reads the output, so an in-place change to either before backward is
    caught; ``args`` are passed to the rule after the gradient and the output. Otherwise nothing is
    recorded.
    """
    if type(out) not in ARRAY_TYPES:  # reductions to 0-d give numpy scalars
        out = xp_of(inputs[0]._data).asarray(out)
    if not GRAD_ENABLED[0]:
        return wrap(out)
    parents = _parents_of(inputs)
    if parents is None:
        result = wrap(out)
        if ORIGINS:  # an input came from the graph through an op without gradient: pass that on
            note_origin(result, op, inputs)
        return result
    # Node.__init__'s fields, set without its call overhead: this runs for every recorded operation
    node = _new(Node)
    node.op = op
    node.parents = parents
    node.backward_fn = backward_fn
    node.args = args
    node.saved = saved
    node.versions = _versions_of(saved) if saved else ()
    node.epoch = INPLACE_EPOCH[0]
    node.out = out if keep_output else None
    node.out_version = None
    node.hooks = None
    node.retained = None
    node.callsite = None
    # The inputs outside the graph (data, buffers, detached copies), which the parents cannot name, are
    # kept for explanations (chainrule.diagnostics): rules need not hold their inputs. Identity tests
    # only: `None in parents` would call Tensor.__eq__ on every leaf parent.
    mixed = parents[0] is None or parents[-1] is None or (len(parents) > 2 and any(p is None for p in parents))
    node.constants = _constants_of(inputs, parents) if mixed else ()
    result = wrap(out, True, node)
    if keep_output:
        node.out_version = result._vc = [0]
    if ANOMALY[0]:
        from chainrule.autograd.anomaly import on_record

        on_record(node, out, inputs)
    return result
