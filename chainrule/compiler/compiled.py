"""``cr.compile``: the calls of a compiled function (warm-up, capture, verification, replay), its
variants by signature, and what it says about itself (``explain()``)."""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from chainrule import dtypes as _dt
from chainrule import threads as _threads
from chainrule.amp import autocast_key
from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.autograd.graph import ANOMALY, RECORD_OBSERVERS
from chainrule.backend import is_host
from chainrule.backend import kernels as _kernels
from chainrule.backend import parallel as _parallel
from chainrule.compiler import fusion
from chainrule.compiler.capture import Variant, capture, guards_hold, replay
from chainrule.compiler.state import State, close, first_difference, same
from chainrule.compiler.tracer import ACTIVE, CompileError, GuardMiss
from chainrule.tensor import STATE_EPOCH, Tensor

RECAPTURES = 3  # misses a variant may have (each: one eager call, one new capture) before it stays eager
_DISABLED = [os.environ.get("CHAINRULE_COMPILE", "1") == "0"]


class disable:
    """Run every compiled function eagerly while this context is active (``CHAINRULE_COMPILE=0`` in the
    environment does the same for the whole process): for debugging, printing and stepping inside."""

    def __enter__(self):
        self._prev = _DISABLED[0]
        _DISABLED[0] = True
        return self

    def __exit__(self, *exc):
        _DISABLED[0] = self._prev


class Compiled:
    """A function compiled by :func:`compile`. Call it as the function; ``explain()`` describes it."""

    def __init__(self, fn, state=(), fallback: str = "error", max_variants: int = 8, verify: str = "once",
                 copy_outputs: bool = True, fuse=False, name: str | None = None):
        if fallback not in ("error", "eager"):
            raise ValueError(f"compile: fallback must be 'error' or 'eager', got {fallback!r}")
        if verify not in ("once", "always", "off"):
            raise ValueError(f"compile: verify must be 'once', 'always' or 'off', got {verify!r}")
        if fuse not in (False, None, "exact", "fast"):
            raise ValueError(f"compile: fuse must be False, 'exact' or 'fast', got {fuse!r}")
        if type(max_variants) is not int or max_variants < 1:
            raise ValueError(f"compile: max_variants must be a positive int, got {max_variants!r}")
        self.fn = fn
        self.extra_state = tuple(state) if isinstance(state, (list, tuple)) else (state,)
        self.fallback, self.max_variants, self.verify, self.copy_outputs = fallback, max_variants, verify, copy_outputs
        self.fuse = fuse or None
        self.variants: dict = {}
        self._last: tuple = (None, None)  # (signature, variant) of the last call that found its variant
        self._replayed_at = None  # STATE_EPOCH after the last call, when it replayed (else None)
        self.captures = 0
        self.eager_calls = 0
        self.misses: list[str] = []
        self.refused: str | None = None
        self._state: State | None = None
        self._warned = False
        self.__name__ = name or getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    # ----- calls --------------------------------------------------------------------------------------
    def __get__(self, obj, objtype=None):
        """``@cr.compile`` on a method: the instance is passed as the first argument (one variant per
        instance, as it is a static argument compared by identity)."""
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if _DISABLED[0] or self.refused is not None:
            return self._eager(args, kwargs)
        if ACTIVE[0] is not None:  # called inside another compiled function's capture: part of its program
            return self.fn(*args, **kwargs)
        if self._state is None:
            self._state = State(self.fn, args, kwargs, self.extra_state)
        else:
            rebound = self._state.rebound()
            if rebound is not None:  # the programs read the old objects: start again from discovery
                self.misses.append(f"{rebound}; every variant is captured again")
                self.variants.clear()
                self._last = (None, None)
                self._replayed_at = None
                self._state = State(self.fn, args, kwargs, self.extra_state)
        try:
            call_key = self._call_key(args, kwargs)
        except TypeError as error:
            off_host = self._off_host(args, kwargs)
            return off_host[0] if off_host else self._refuse(str(error), args, kwargs)
        last_key, variant = self._last
        # Nothing changed a state tensor, hook or mode since the last call replayed: the state is as that
        # replay left it, so the state half of the signature is the one noted then (not made again).
        unchanged = STATE_EPOCH[0] == self._replayed_at
        key = (call_key, variant.after[0] if unchanged else self._state_key())
        if key != last_key:  # comparing the last one is cheaper than hashing the 100s of entries
            variant = self.variants.get(key)
            if variant is not None:
                self._last = (key, variant)
        elif unchanged and variant.after[1] and variant.stage == "replay":
            # The steady state: this variant again, its identity guards true after its replays.
            return self._finish(self._replay(variant, args, kwargs, guarded=False), variant)
        if variant is None:
            # The signature holds every argument's and state tensor's array type: a variant found was made
            # for these types, after this check passed for them.
            off_host = self._off_host(args, kwargs)
            if off_host:
                return off_host[0]
            if len(self.variants) >= self.max_variants:
                self._warn_once(f"compile: {self.__name__} has met {len(self.variants)} signatures (max_variants="
                                f"{self.max_variants}); new ones run eagerly. Varying shapes (a ragged last batch) "
                                "each need a variant: use drop_last=True or pad to fixed shapes.")
                self.misses.append(f"over max_variants: {_describe_key(key)}")
                return self._eager(args, kwargs)
            variant = self.variants[key] = Variant(key)
            if len(self.variants) > 1:
                self.misses.append(f"new signature: {_describe_key(key)}")
        return self._finish(getattr(self, _STAGES[variant.stage])(variant, args, kwargs), variant)

    def _finish(self, result, variant):
        """Note where the call left the state (what the next call compares with), and return ``result``."""
        replayed = variant.stage == "replay" and self._last[1] is variant
        if replayed and variant.after is None:
            state_key = self._state_key()
            variant.after = (variant.key[1] if state_key == variant.key[1] else state_key, guards_hold(variant))
        self._replayed_at = STATE_EPOCH[0] if replayed else None
        self._state.seen_tree()
        return result

    def _off_host(self, args, kwargs) -> tuple | None:
        """When a state tensor or argument is not on the CPU: warn once, run eagerly, and return
        ``(result,)``; else None."""
        device = _off_host_device(self._state.tensors, args, kwargs)
        if device is None:
            return None
        self._warn_once(f"compile: {self.__name__} works on tensors on {device}; programs replay on the CPU "
                        "only (CUDA-graph capture is not built yet), so it runs eagerly.")
        return (self._eager(args, kwargs),)

    def _eager(self, args, kwargs):
        self.eager_calls += 1
        return self.fn(*args, **kwargs)

    def _warm_up(self, variant, args, kwargs):
        variant.stage = "capture"
        return self._eager(args, kwargs)

    def _capture(self, variant, args, kwargs):
        self.captures += 1
        variant.after = None  # what the old program's replays left is not the new one's
        hooks = _hooks_on(self._state)
        result, outputs = capture(self.fn, args, kwargs, self._state.tensors, variant, self._state.modules,
                                  self._fusion(), self.copy_outputs)
        problems = ([hooks] if hooks else []) + variant.problems
        if problems:
            variant.stage = "failed"
            return self._cannot(variant, problems[0], result)
        if variant.program.guard_safety is None:
            variant.stage = "failed"
            return self._cannot(variant, "a value is checked after an optimizer step; that check cannot be undone",
                                result)
        variant.stage = "verify" if self.verify != "off" else "replay"
        return outputs

    def _verify(self, variant, args, kwargs):
        """Call 3: the eager step and the poisoned replay from the same state must agree bit for bit."""
        state = self._state
        before = state.snapshot()
        args_before = _argument_values(args, kwargs)
        eager_result = self.fn(*args, **kwargs)
        args_after = _argument_values(args, kwargs)
        eager_outputs = _flat_tensors(eager_result) + _argument_grads(args, kwargs) + args_after
        after_eager = state.snapshot()
        state.restore(before)
        _set_argument_values(args, kwargs, args_before)
        eager_grads = _clear_argument_grads(args, kwargs)
        variant.program.poison()
        try:
            result = replay(variant, args, kwargs, self.copy_outputs)
        except GuardMiss as miss:
            variant.program.poison(False)
            state.restore(after_eager)
            _set_argument_values(args, kwargs, args_after)
            _set_argument_grads(args, kwargs, eager_grads)
            return self._missed(variant, str(miss), eager_result)
        variant.program.poison(False)
        replayed = _flat_tensors(result) + _argument_grads(args, kwargs) + _argument_values(args, kwargs)
        difference = first_difference(after_eager, state.snapshot(), eager_outputs, replayed,
                                      close if variant.program.fused and self.fuse == "fast" else same)
        if difference is not None:
            state.restore(after_eager)
            _set_argument_values(args, kwargs, args_after)
            _set_argument_grads(args, kwargs, eager_grads)
            variant.stage = "failed"
            return self._cannot(variant, f"the replayed program differs from eager in {difference} (a computation "
                                         "the tracer did not see, or a Python value that changes between calls)",
                                eager_result)
        if self.verify == "once":
            variant.stage = "replay"
        return result

    def _replay(self, variant, args, kwargs, guarded: bool = True):
        try:
            return replay(variant, args, kwargs, self.copy_outputs, guarded)
        except GuardMiss as miss:
            return self._missed(variant, str(miss), self._eager(args, kwargs))

    def _missed(self, variant, reason: str, result):
        """A guard was false: this call ran eagerly; capture again on the next call, unless this variant
        keeps missing (a value that changes every step), which then runs eagerly for good."""
        variant.misses.append(reason)
        self.misses.append(reason)
        if len(variant.misses) > RECAPTURES:
            variant.stage = "failed"
            return self._cannot(variant, f"its program missed {len(variant.misses)} times; last: {reason}", result)
        variant.stage = "capture"
        return result

    def _failed(self, variant, args, kwargs):
        return self._eager(args, kwargs)

    def _cannot(self, variant, reason: str, result):
        """The capture (or verification) found something a program cannot do: raise, or run eagerly."""
        text = f"compile: {self.__name__} cannot be compiled: {reason}"
        variant.misses.append(reason)
        if self.fallback == "error":
            raise CompileError(text + ". Fix it, or pass fallback='eager' to run it eagerly.")
        self._warn_once(text + "; it runs eagerly.")
        return result

    def _refuse(self, reason: str, args, kwargs):
        if self.fallback == "error":
            raise CompileError(f"compile: {self.__name__}: {reason}")
        self.refused = reason
        self._warn_once(f"compile: {self.__name__}: {reason}; it runs eagerly.")
        return self._eager(args, kwargs)

    def _fusion(self) -> str | None:
        """The fusion mode this capture uses: None when none was asked for, or when numba is missing or the
        compiled kernels are switched off (then the program replays unfused, with one warning)."""
        if self.fuse is None or fusion.available():
            return self.fuse
        self._warn_once(f"compile: fuse={self.fuse!r} needs numba (the 'fast' extra) and the compiled kernels "
                        "switched on (not CHAINRULE_KERNELS=numpy); the program replays unfused.")
        return None

    def _warn_once(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(text, RuntimeWarning, stacklevel=_user_stacklevel())

    # ----- guards -------------------------------------------------------------------------------------
    # A variant's signature, what its program bakes in, is (call key, state key).
    def _call_key(self, args, kwargs) -> tuple:
        """The part of the signature made every call: the arguments' structure, shapes, dtypes, layouts,
        array types and requires_grad, the values of the other arguments, and the global modes."""
        tensors: list = []  # the ids of the tensor arguments, in order
        return (_arg_key(args, tensors), _arg_key(kwargs, tensors), _aliasing(tensors), GRAD_ENABLED[0],
                _kernels._STATE["wanted"], _parallel.get_workers(), _dt.get_default_dtype(),
                _blas_threads(),  # BLAS results can depend on the thread count
                ANOMALY[0], bool(RECORD_OBSERVERS),  # diagnostics would watch the capture only
                autocast_key())  # a capture under autocast bakes its casts in

    def _state_key(self) -> tuple:
        """The part of the signature made only when ``STATE_EPOCH`` moved: the state tensors' gradient
        state, requires_grad and array types (a device change is a new signature), every module's
        training flag, and whether a hook is registered (a capture refuses hooks)."""
        state = self._state
        return (tuple([(t._grad is None, t._rg, type(t._data)) for t in state.tensors]),
                tuple([m.training for m in state.submodules]),
                _hooks_on(state) is not None)

    # ----- reporting ----------------------------------------------------------------------------------
    def explain(self) -> str:
        """The variants (signature, stage, guards, misses), the calls so far, and each program as Python."""
        lines = [f"compiled {self.__name__}: {len(self.variants)} variant(s), {self.captures} capture(s), "
                 f"{self.eager_calls} eager call(s)"]
        if self.refused:
            lines.append(f"  refused: {self.refused}")
        for miss in self.misses:
            lines.append(f"  miss: {miss}")
        for i, v in enumerate(self.variants.values()):
            lines.append(f"variant {i}: {v.stage}, {v.replays} replay(s); signature {_describe_key(v.key)}")
            for reason in v.misses:
                lines.append(f"  reason: {reason}")
            if v.program is not None:
                p = v.program
                lines.append(f"  guards: {len(v.identity)} state arrays by identity, "
                             f"{sum(i.kind == 'guard' for i in p.instrs)} values read by chainrule")
                lines.append(f"  program: {len(p.instrs)} instructions (from {p.source_count} traced); buffers: "
                             f"{p.per_replay} made per replay, {len(p.internal)} kept ({p.nbytes / 2**20:.2f} MiB); "
                             f"{len(p.bound_grads)} gradients read from .grad, {len(p.bound_inputs)} arguments "
                             "used in place")
                lines.extend("    " + line for line in p.source().splitlines())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<compiled {self.__name__}: {len(self.variants)} variant(s)>"


_STAGES = {"warm-up": "_warm_up", "capture": "_capture", "verify": "_verify", "replay": "_replay",
           "failed": "_failed"}  # (by name: a subclass may do a stage its own way)


def _aliasing(tensors: list) -> tuple | None:
    """Which tensor arguments (``tensors``: their ids in order) are one tensor passed twice (the program
    was built for that pattern)."""
    if len(set(tensors)) == len(tensors):
        return None
    return tuple(tensors.index(k) for k in tensors)


def _blas_threads():
    """The thread limit ``cr.set_num_threads`` set (threadpoolctl's limits; None when never set)."""
    limiter = _threads._limiter[0] if _threads._limiter else None
    limits = getattr(limiter, "_limits", None)
    return tuple(sorted(limits.items())) if isinstance(limits, dict) else id(limiter) if limiter else None


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside chainrule."""
    import sys

    from chainrule.compiler.tracer import _PACKAGE

    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _hooks_on(state: State) -> str | None:
    from chainrule.autograd.graph import POST_ACCUMULATE_HOOKS

    for t in state.tensors:  # (the table of post-accumulate hooks is empty, so false, unless one was made)
        if t._hooks or (POST_ACCUMULATE_HOOKS and POST_ACCUMULATE_HOOKS.hooks_of(t)):
            return f"a hook is registered on a tensor of shape {tuple(t.shape)} (hooks would run only while " \
                   "capturing); remove it, or run the step eagerly"
    for sub in state.submodules:
        if sub._forward_hooks or sub._forward_pre_hooks:
            return f"a forward hook is registered on {type(sub).__name__} (it would run only while capturing)"
    return None


def _arg_key(x, tensors: list):
    """The part of the signature an argument makes; each tensor's id is appended to ``tensors``."""
    if isinstance(x, Tensor):
        tensors.append(id(x))
        d = x._data
        if x.grad is not None:
            raise TypeError(f"an argument (shape {tuple(x.shape)}) has a .grad already; a compiled call would add to "
                            "it in the capture's buffer: pass tensors without .grad")
        return ("T", d.shape, d.dtype.str, x._rg, d.flags.c_contiguous, type(d))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple([_arg_key(v, tensors) for v in x]))
    if isinstance(x, dict):
        return ("dict", tuple([(k, _arg_key(v, tensors)) for k, v in x.items()]))
    if isinstance(x, np.ndarray):
        raise TypeError(f"a numpy array argument (shape {x.shape}) cannot be compiled; pass a tensor")
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"an argument of type {type(x).__name__} is neither a tensor nor hashable") from None
    return (type(x).__name__, x)


def _describe_key(key) -> str:
    call_key, state_key = key
    args = call_key[0]

    def show(k):
        if k[0] == "T":
            return f"{np.dtype(k[2]).name}{list(k[1])}" + ("(requires_grad)" if k[3] else "")
        if k[0] in ("tuple", "list"):
            return "(" + ", ".join(show(v) for v in k[1]) + ")"
        if k[0] == "dict":
            return "{" + ", ".join(f"{a}: {show(v)}" for a, v in k[1]) + "}"
        return repr(k[1])

    flags = set(state_key[1])  # every module's
    training = "mixed" if len(flags) > 1 else flags.pop() if flags else None
    return f"{show(args)} grad_mode={call_key[3]} training={training}"


def _argument_grads(args, kwargs) -> list:
    """Copies of the ``.grad`` of the tensor arguments (None where there is none)."""
    from chainrule.compiler.capture import _tensors_in

    return [None if t.grad is None else t.grad._data.copy() for _, t in _tensors_in((args, kwargs))]


def _argument_values(args, kwargs) -> list:
    """Copies of the tensor arguments' arrays (a step may change them in place)."""
    from chainrule.compiler.capture import _tensors_in

    return [t._data.copy() for _, t in _tensors_in((args, kwargs))]


def _set_argument_values(args, kwargs, values: list) -> None:
    from chainrule.compiler.capture import _tensors_in

    for (_, t), v in zip(_tensors_in((args, kwargs)), values):
        np.copyto(t._data, v)


def _clear_argument_grads(args, kwargs) -> list:
    """Set the tensor arguments' ``.grad`` to None; returns what they were."""
    from chainrule.compiler.capture import _tensors_in

    grads = []
    for _, t in _tensors_in((args, kwargs)):
        grads.append(t.grad)
        t.grad = None
    return grads


def _set_argument_grads(args, kwargs, grads: list) -> None:
    from chainrule.compiler.capture import _tensors_in

    for (_, t), g in zip(_tensors_in((args, kwargs)), grads):
        t.grad = g


def _off_host_device(state_tensors, args, kwargs):
    """The device of the first state tensor or argument that is not on the CPU, else None."""
    for t in (*state_tensors, *_flat_tensors(list(args) + list(kwargs.values()))):
        if isinstance(t, Tensor) and not is_host(t._data):
            return t.device
    return None


def _flat_tensors(result) -> list:
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (list, tuple)):
        return [x for v in result for x in _flat_tensors(v)]
    if isinstance(result, dict):
        return [x for v in result.values() for x in _flat_tensors(v)]
    return [result]
