"""Activation checkpointing, as ``torch.utils.checkpoint``: trade compute for memory.

``checkpoint(fn, *args)`` runs ``fn`` with recording off, so none of its intermediate activations are
kept: the graph holds one node whose inputs are ``fn``'s tensor arguments plus every tensor from outside
that ``fn`` read and that requires grad (its parameters, found by watching the ops it ran). In the
backward that node's rule re-runs ``fn`` with recording on, from the saved inputs and with the random
generator put back as it was for the first run (so dropout draws the same mask), and returns the
gradients of the recomputed graph: the same numbers as running ``fn`` directly, for the memory of its
inputs and outputs instead of all of its activations (figures in bench/ANALYSIS.md).
"""

from __future__ import annotations

from typing import Any

from chainrule.autograd.engine import grad as _grad
from chainrule.autograd.function import Function
from chainrule.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from chainrule.autograd.graph import RECORD_OBSERVERS
from chainrule.random import get_rng_state, set_rng_state
from chainrule.tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]


def checkpoint(function, *args, use_reentrant: bool | None = None, preserve_rng_state: bool = True,
               determinism_check: str = "default", debug: bool = False, **kwargs) -> Any:
    """``function(*args, **kwargs)``, its activations recomputed in the backward instead of kept.

    ``use_reentrant`` is accepted either way (both of PyTorch's variants give these gradients; this one
    also reaches parameters that ``function`` uses without taking them as arguments, and works with
    ``autograd.grad``). ``preserve_rng_state=False`` lets the recomputation draw fresh random numbers.
    """
    if not is_grad_enabled():
        return function(*args, **kwargs)
    rng = get_rng_state() if preserve_rng_state else None
    used: dict[int, Tensor] = {}

    def watch(result, op, inputs):  # recording is off inside: any input that requires grad came from outside
        for t in inputs:
            if isinstance(t, Tensor) and t._rg:
                used.setdefault(id(t), t)

    RECORD_OBSERVERS.append(watch)
    try:
        with no_grad():
            out = function(*args, **kwargs)
    finally:
        RECORD_OBSERVERS.remove(watch)
    outputs = out if isinstance(out, tuple) else (out,)
    if not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError(f"checkpoint: the function must return a Tensor or a tuple of Tensors, got {type(out).__name__}")
    arg_ids = {id(a) for a in args if isinstance(a, Tensor)}
    outside = tuple(t for key, t in used.items() if key not in arg_ids)
    if not any(isinstance(a, Tensor) and a._rg for a in args) and not outside:
        return out
    return _Checkpointed.apply(_Call(function, args, kwargs, rng, outputs), *args, *outside)


class _Call:
    """What the backward needs to re-run the function (a plain object: Function.apply passes it through)."""

    def __init__(self, function, args, kwargs, rng, outputs):
        self.function, self.args, self.kwargs, self.rng, self.outputs = function, args, kwargs, rng, outputs


class _Checkpointed(Function):
    @staticmethod
    def forward(ctx, call: _Call, *tensors):
        ctx.call = call
        ctx.outside = tensors[len(call.args):]
        outputs, call.outputs = call.outputs, None  # the node keeps its own; drop ours
        return outputs if len(outputs) > 1 else outputs[0]

    @staticmethod
    def backward(ctx, *grad_outputs):
        call = ctx.call
        inputs = [a.detach().requires_grad_(a._rg) if isinstance(a, Tensor) else a for a in call.args]
        outside = ctx.outside
        state = get_rng_state() if call.rng is not None else None
        if call.rng is not None:
            set_rng_state(call.rng)
        try:
            with enable_grad():
                out = call.function(*inputs, **call.kwargs)
        finally:
            if state is not None:
                set_rng_state(state)
        outputs = out if isinstance(out, tuple) else (out,)
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o._rg and g is not None]
        stand_ins = _cut_at_outside(pairs, outside)
        ends = [stand_ins.get(id(t._node), t) if t._node is not None else t for t in outside]
        wanted = [t for t in inputs if isinstance(t, Tensor) and t._rg] + ends
        grads = iter(_grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True,
                           create_graph=is_grad_enabled()) if pairs and wanted else [None] * len(wanted))
        result = [None]
        result += [next(grads) if isinstance(t, Tensor) and t._rg else None for t in inputs]
        taken: set = set()
        for end in ends:  # two outside tensors of one node: its gradient once
            g = next(grads)
            result.append(None if id(end) in taken else g)
            taken.add(id(end))
        return tuple(result)


def _cut_at_outside(pairs, outside) -> dict:
    """Give each outside tensor that has a node (an intermediate of the caller's graph) a leaf stand-in in
    the recomputed graph, so the inner gradient stops there instead of walking (and freeing) the caller's
    graph, which the outer backward still has to run. Returns node id -> stand-in."""
    stand_ins = {id(t._node): t.detach().requires_grad_() for t in outside if t._node is not None}
    if not stand_ins:
        return stand_ins
    seen: set = set()
    stack = [o._node for o, _ in pairs if o._node is not None]
    while stack:  # iterative: the recomputed graph may be deep
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        parents = node.parents
        if any(id(p) in stand_ins for p in parents if p is not None):
            node.parents = tuple(stand_ins.get(id(p), p) if p is not None else None for p in parents)
        stack.extend(p for p in node.parents if p is not None and not isinstance(p, Tensor))
    return stand_ins


def checkpoint_sequential(functions, segments: int, input, use_reentrant: bool | None = None, **kwargs):
    """Run ``functions`` (a Sequential or a list of modules/functions) on ``input`` in ``segments``
    chunks, each but the last checkpointed, as torch.utils.checkpoint.checkpoint_sequential."""
    if hasattr(functions, "children") and not isinstance(functions, (list, tuple)):
        functions = list(functions.children())
    functions = list(functions)
    size = max(1, len(functions) // segments)

    def run(start, end):
        def forward(x):
            for f in functions[start:end]:
                x = f(x)
            return x
        return forward

    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(start, end + 1), input, use_reentrant=use_reentrant, **kwargs)
    return run(end + 1, len(functions))(input)
