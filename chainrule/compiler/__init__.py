"""``cr.compile``: trace a whole training step (or a module's forward, for inference and training) once, replay it
as a flat program.

::

    @cr.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss                       # a copy; read loss.item() outside the compiled function

Call 1 runs eagerly (warm-up: optimizer state is made), call 2 captures, call 3 verifies (the eager
step and a replay of the program from the same state, with the program's buffers poisoned first, must
agree bit for bit), later calls replay. A new signature (shapes, dtypes, requires_grad, grad mode,
every module's training flag, which parameters have a gradient, whether a hook is registered, the values
of non-tensor arguments) gets its own variant, up to ``max_variants``. The per-tensor part of the
signature and the identity guards are checked only when ``tensor.STATE_EPOCH`` moved since the last
replay (every ``.grad`` set, ``requires_grad`` change, array swap, hook, mode or module-tree change bumps
it); a parameter, buffer or submodule assigned anew in a module makes the function find its state again.

How it traces: the capture runs the real eager step with every state array (arguments, parameters,
buffers, gradients) swapped for a :class:`~chainrule.compiler.tracer.TracedArray` view, so every numpy
call the forward, chainrule's own backward engine and its rules make on them is run for real and logged;
backend kernels are logged whole; optimizer and scheduler steps are host calls re-run at replay (so a
learning rate a scheduler changes, or Adam's bias correction, is read at replay); draws from chainrule's
generator are instructions that draw from the live generator in eager's order.

The program (``explain()`` prints it) is a list of instructions, each ``fn(*args, **kwargs)`` with
``args`` holding numpy arrays and Python constants; kinds: ``ufunc`` (a numpy ufunc or ufunc method),
``call`` (any function; its fresh results taken as they come, or copied into buffers), ``fill`` (an array
creation), ``rng`` (a generator draw), ``guard`` (a value chainrule's code read during the capture,
re-read and compared: a different value abandons the replay, undoes it and runs the step eagerly; guards
are moved up to where what they read is ready, so most run before the replay changes anything), ``host``
(an optimizer or scheduler step), ``grad`` (``tensor.grad = ...``). Each carries the op and the user's
line that produced it. The list is :attr:`Program.instrs` of a variant (``compiled.variants``).

Memory, as eager: every buffer of ``program.PER_REPLAY_BYTES`` (4 KiB) or more is made per
replay (taken from the call that makes it, or allocated just before its first use) and dropped after
its last use; gradients that large are new arrays each replay, handed to ``.grad`` as eager's backward
does (a gradient kept from an earlier step keeps its values); gradients a step adds to (no zero_grad) are
read from ``.grad``, and arguments that large the program only reads are used in place. Smaller buffers share one
arena the program keeps, so a small gradient kept from an earlier step is rewritten by the next replay:
copy a gradient you keep. A fused kernel whose operands are made per replay gets their addresses at
each call.

Python side effects (printing a string, appending to a list, counters) run only on calls 1-3: what is
replayed is array work. Python numbers computed inside the function are frozen at the capture; call 3
catches one that changes between calls 2 and 3, not later. Pass changing values as tensors, or as
arguments (each value is then a variant). Reading a tensor's value inside (``.item()``, ``if loss > 0``,
``print(t)``) is refused with the user's line; so are hooks and ``create_graph=True``.
``fallback="eager"`` runs such functions eagerly with one warning. ``cr.compiler.disable()`` (a context
manager) and ``CHAINRULE_COMPILE=0`` run everything eagerly.

``fuse="exact"`` replaces each run of consecutive elementwise numpy calls over one shape by one generated
numba loop (kind ``fused``; ``explain()`` lists the calls it holds and their lines), keeping only correctly
rounded operations, so results stay bit for bit eager's; ``fuse="fast"`` also fuses exp, tanh, log and
friends (a few ulps from numpy's; verification then compares within ``state.FAST_RTOL``). Without numba
(or with ``CHAINRULE_KERNELS=numpy``) it warns once and replays unfused.

``cr.compile(module)`` (and ``module.compile()``) compiles a module's forward
(:mod:`chainrule.compiler.module`): inference calls replay it; training calls replay the first half of one
program of the forward and the gradients of its output, and backward replays the other half.
"""

from __future__ import annotations

import warnings

from chainrule.compiler.compiled import Compiled, disable
from chainrule.compiler.module import CompiledModule
from chainrule.compiler.tracer import CompileError

__all__ = ["compile", "disable", "CompileError", "Compiled", "CompiledModule", "TORCH_MODES", "TORCH_BACKENDS"]


def compile(fn=None, **options):
    """Compile ``fn`` (a training step or any function of tensors) or a Module's forward; usable as
    ``@compile`` and ``@compile(fallback="eager")``. Options: ``fallback`` ("error" or "eager"),
    ``max_variants`` (8), ``verify`` ("once", "always", "off"), ``copy_outputs`` (True), ``name``, ``state``
    (extra modules, optimizers or tensors the function touches that discovery cannot see), ``fuse``
    (False, "exact" or "fast": elementwise runs as generated numba loops, :mod:`chainrule.compiler.fusion`).
    ``torch.compile``'s keywords are taken as a ported program passes them (:func:`_from_torch`)."""
    options = _from_torch(options)
    if options is None:  # disable=True: a no-op, as in PyTorch
        return (lambda f: f) if fn is None else fn
    if fn is None:
        return lambda f: compile(f, **options)
    from chainrule.nn.module import Module

    if isinstance(fn, Module):
        return CompiledModule(fn, **options)
    return Compiled(fn, **options)


TORCH_MODES = (None, "default", "lite", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
TORCH_BACKENDS = (None, "inductor", "eager", "aot_eager", "cudagraphs")


def _from_torch(options: dict) -> dict | None:
    """``options`` with ``torch.compile``'s keywords translated (None for ``disable=True``):

    - ``fullgraph=True`` refuses what cannot be traced (``fallback="error"``, the default here);
      ``fullgraph=False`` runs such a function eagerly with one warning (``fallback="eager"``), the nearest
      thing to PyTorch's graph breaks (chainrule replays whole programs only);
    - ``recompile_limit`` is ``max_variants``; ``name`` names the function in ``explain()``;
    - ``mode`` and ``backend`` are checked and have no effect: there is one replay engine (and no CUDA
      graphs, which "reduce-overhead" asks for on a GPU);
    - ``dynamic=True`` warns: shapes are always specialised, one variant per signature; a non-empty
      ``options`` (inductor's settings) warns that it has no effect."""
    options = dict(options)
    if options.pop("disable", False):
        return None
    fullgraph = options.pop("fullgraph", None)
    if fullgraph is not None:
        _merge(options, "fallback", "error" if fullgraph else "eager", f"fullgraph={fullgraph!r}")
    limit = options.pop("recompile_limit", None)
    if limit is not None:
        _merge(options, "max_variants", limit, f"recompile_limit={limit!r}")
    mode = options.pop("mode", None)
    if mode not in TORCH_MODES:
        raise ValueError(f"compile: mode must be one of {TORCH_MODES[1:]} (torch.compile's), got {mode!r}")
    backend = options.pop("backend", None)
    if backend not in TORCH_BACKENDS:
        raise ValueError(f"compile: backend {backend!r} is not one of torch.compile's built-in backends "
                         f"{TORCH_BACKENDS[1:]}; chainrule replays its own programs and runs no other backend")
    if options.pop("dynamic", None):
        warnings.warn("compile: dynamic=True has no effect here: shapes are always specialised, each new "
                      "signature captured as its own variant (max_variants); pad or bucket varying shapes",
                      UserWarning, stacklevel=3)
    if options.pop("options", None):
        warnings.warn("compile: options= holds torch inductor's settings and has no effect here",
                      UserWarning, stacklevel=3)
    return options


def _merge(options: dict, key: str, value, source: str) -> None:
    if key in options and options[key] != value:
        raise ValueError(f"compile: {source} means {key}={value!r}, but {key}={options[key]!r} was also given")
    options[key] = value
