"""``cr.compile(module)``: a module's compiled forward. Inference calls replay a program of the forward.
A call that records gradients (training) replays a program of the forward and its backward in two
halves: the forward when the module is called, the backward when autograd reaches its output."""

from __future__ import annotations

import contextlib

import numpy as np

from chainrule import random as _random
from chainrule.autograd.engine import RELEASING
from chainrule.autograd.engine import grad as _autograd_grad
from chainrule.autograd.grad_mode import GRAD_ENABLED, enable_grad
from chainrule.autograd.graph import record
from chainrule.compiler.capture import rebuild, replay_in_halves
from chainrule.compiler.compiled import _DISABLED, Compiled
from chainrule.compiler.tracer import ACTIVE, GuardMiss, mark
from chainrule.nn.module import TREE_EPOCH, Module
from chainrule.tensor import Tensor, wrap

_EAGER = object()  # what a training call of the joint program gives when the module is to run eagerly
_FORWARD_DONE = "forward done"  # the mark between the halves of the joint program


class CompiledModule(Compiled):
    """``cr.compile(module)``: calls that record no gradient replay a program of the forward; calls that
    do (grad mode on, a parameter or argument requiring grad) go through :class:`_Training`."""

    def __init__(self, module: Module, **options):
        super().__init__(module, state=(module,), **options)
        self.module = module
        self.training_calls = _Training(self, options)
        self._parameter_cache: tuple = (-1, [])  # (TREE_EPOCH then, the module's parameters)

    def _parameter_list(self) -> list:
        """The module's parameters in order, walked again only when a module tree changed (``TREE_EPOCH``:
        the walk costs more than a small module's replayed forward)."""
        if self._parameter_cache[0] != TREE_EPOCH[0]:
            self._parameter_cache = (TREE_EPOCH[0], list(self.module.parameters()))
        return self._parameter_cache[1]

    def __call__(self, *args, **kwargs):
        if GRAD_ENABLED[0] and (any(p._rg for p in self._parameter_list())
                                or any(isinstance(a, Tensor) and a._rg for a in args)):
            if _DISABLED[0] or ACTIVE[0] is not None:  # (inside a capture: part of that program)
                return self.fn(*args, **kwargs)
            return self.training_calls(args, kwargs)
        return super().__call__(*args, **kwargs)

    def explain(self) -> str:
        joint = self.training_calls.joint
        training = f"\ntraining calls (the forward and its backward as one program):\n{joint.explain()}" \
            if joint.variants else ""
        return super().explain() + training

    def __getattr__(self, name):
        return getattr(self.module, name)


class _Training:
    """A compiled module's training calls. Their program is that of ``joint(*args, grad)``: the forward,
    then ``autograd.grad`` of its output (``grad`` given) with respect to the parameters and arguments that
    require grad. A call replays the steps up to the mark between the two (the forward) and returns the
    output as one node of the graph; when backward reaches it, the rest replays with the real gradient and
    the node hands the engine one gradient per parameter and argument, accumulated as eager's would be.
    The joint program is captured and verified (the 3rd and 4th call of a signature) in a sandbox, with a
    made-up output gradient and the state restored after; those calls, and any the program cannot serve
    (a forward returning anything but one floating-point tensor, tensor keyword arguments), run eagerly."""

    def __init__(self, owner: CompiledModule, options: dict):
        self.owner = owner
        self.joint = _Joint(self._joint, state=(owner.module,), **options)
        self.joint.__name__ = f"{owner.__name__} (training)"
        self.grads: dict = {}  # the arguments' shapes, dtypes, numbers -> a made-up output gradient (None: eager)

    def _joint(self, *args):
        *inputs, grad = args
        out = self.owner.fn(*inputs)
        mark(_FORWARD_DONE)
        grads = _autograd_grad(out, self._wrt(inputs), grad, allow_unused=True)
        return (out.detach(), *grads)

    def _wrt(self, inputs) -> list:
        return [p for p in self.owner._parameter_list() if p._rg] + [a for a in inputs if isinstance(a, Tensor) and a._rg]

    def __call__(self, args: tuple, kwargs: dict):
        key = tuple((a.shape, a.dtype) if isinstance(a, Tensor) else (type(a), a if _plain(a) else None) for a in args)
        grad = self.grads.get(key) if not kwargs else None
        if grad is None:
            out = self.owner._eager(args, kwargs)
            if key not in self.grads and not kwargs and len(self.grads) < self.owner.max_variants:
                self.grads[key] = _made_up_gradient(out)
            if self.grads.get(key) is None:
                self.owner._warn_once(
                    f"compile: the compiled module {type(self.owner.module).__name__} runs eagerly where it records "
                    "gradients, as its forward takes tensor keyword arguments or returns something other than one "
                    "floating-point tensor. Compile the whole step (zero_grad, forward, loss, backward, optimizer "
                    "step) with cr.compile instead, or use fit(..., compile=True).")
            return out
        result = self.joint(*_leaves(args), grad)
        if result is _EAGER:
            return self.owner._eager(args, kwargs)
        out, outputs, resume, generator = result
        return self._record(out, args, outputs, resume, generator)

    def _record(self, out: Tensor, args: tuple, outputs, resume, generator) -> Tensor:
        """``out`` as the output of one node whose rule replays the second half (``resume``), or, where a
        value check there misses (a gradient that is not finite, say), redoes the call eagerly."""
        name = type(self.owner.module).__name__

        def rule(g, _out):
            if GRAD_ENABLED[0]:
                raise RuntimeError(f"compile: backward with create_graph=True through the compiled module {name}: "
                                   "its backward is a replayed program, not a graph; run it eagerly "
                                   "(cr.compiler.disable())")
            try:
                resume(g._data, last=RELEASING[0])
            except GuardMiss as miss:
                self.joint.misses.append(f"in a backward half: {miss}; that backward ran eagerly")
                return self._redo(args, g, generator)
            return tuple(rebuild(o, True) for o in outputs)

        return record(out._data, f"compiled_{name}", tuple(self._wrt(args)), rule)

    def _redo(self, args: tuple, g: Tensor, generator) -> tuple:
        """The gradients of one call, eagerly: its forward again from the generator's state before it (the
        same dropout masks) and the gradients of its output, with the state (running statistics, the
        generator) restored after, as the call itself already changed it."""
        state = self.joint._state
        before = state.snapshot()
        try:
            if generator is not None:
                _random.default_generator.set_state(generator)
            with enable_grad():
                _out, *grads = self._joint(*_leaves(args), g)
        finally:
            state.restore(before)
        return tuple(grads)


def _leaves(args: tuple) -> tuple:
    """The joint program's arguments: each tensor as a new leaf on its memory (requiring grad as it does),
    so that a ``.grad`` the caller's tensor holds plays no part (the joint program returns gradients)."""
    return tuple(a.detach().requires_grad_(a._rg) if isinstance(a, Tensor) else a for a in args)


def _plain(x) -> bool:
    return isinstance(x, (bool, int, float, str, type(None)))


def _made_up_gradient(out):
    """An output gradient to capture and verify the joint program with (random values: with ones, a program
    that dropped a multiplication by the gradient would still pass), or None when the output is not one
    floating-point tensor."""
    if type(out) is not Tensor or not out.dtype.is_floating_point or out._node is None:
        return None
    values = np.random.default_rng(0).standard_normal(out.shape)
    return wrap(values.astype(out._data.dtype))


class _Joint(Compiled):
    """The compiled joint program of a module's training calls. Where a plain compiled function would run
    its function eagerly (warm-up, a failed or refused variant, a miss) this gives ``_EAGER``, and the
    module runs eagerly instead; capture and verification run in a sandbox; a replay stops before the
    backward (``replay_in_halves``) and gives (the output, the gradients' output structure, resume)."""

    def _eager(self, args, kwargs):
        self.eager_calls += 1
        return _EAGER

    def _capture(self, variant, args, kwargs):
        with self._sandbox():
            super()._capture(variant, args, kwargs)
        return _EAGER

    def _verify(self, variant, args, kwargs):
        with self._sandbox():
            super()._verify(variant, args, kwargs)
        return _EAGER

    def _replay(self, variant, args, kwargs, guarded: bool = True):
        try:
            halves = replay_in_halves(variant, args, kwargs, _FORWARD_DONE, (0, len(args) - 1), guarded)
        except GuardMiss as miss:
            return self._missed(variant, str(miss), _EAGER)
        if halves is None:
            variant.stage = "failed"
            return self._cannot(variant, "its program cannot stop between the forward and the backward (a host "
                                         "call or a write of state comes after the forward)", _EAGER)
        _kind, (out, *grads) = variant.outputs
        # A copy: the backward half may read the output's own array, which the caller could change in place.
        return (wrap(rebuild(out, False)._data.copy()), grads) + halves

    @contextlib.contextmanager
    def _sandbox(self):
        before = self._state.snapshot()
        try:
            yield
        finally:
            self._state.restore(before)
