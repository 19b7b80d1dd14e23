"""The Optimizer base class: parameter groups, per-parameter state, ``zero_grad``, ``step`` and state dicts.

Follows ``torch.optim.Optimizer``::

    opt = SGD([{"params": body, "lr": 1e-2}, {"params": head}], lr=1e-3, momentum=0.9)
    opt.param_groups[1]["lr"]      # 1e-3: the constructor's value is each group's default
    opt.zero_grad()                # .grad = None (or zero-filled with set_to_none=False)
    loss.backward(); opt.step()
    state = opt.state_dict()       # {"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}

Hyperparameters live in ``optimizer.param_groups`` (one dict per group), which is what learning-rate
schedulers change. Per-parameter state (momentum buffers, moment estimates, step counts) lives in
``optimizer.state[param]`` as Tensors and Python numbers.

Speed: a subclass implements ``_update_group(group, params)``, which reads the hyperparameters once and
updates each parameter that has a gradient directly on its backend array, in place (numpy/cupy ``out=``),
with two reusable scratch buffers instead of temporaries; large CPU arrays are updated in cache-sized
blocks (see ``_for_blocks``). Nothing is recorded on the graph; each updated parameter's version is bumped.
Before anything changes, ``step`` checks that every gradient has its parameter's shape.

Hooks, as in PyTorch: ``register_step_pre_hook`` / ``register_step_post_hook`` (and the global
``register_optimizer_step_pre_hook`` / ``_post_hook`` of this module) run around every ``step``, the
``step`` a subclass writes itself included (``__init_subclass__`` wraps it); ``register_state_dict_*`` and
``register_load_state_dict_*`` hooks (with ``prepend=``) around the state dicts. One difference: a hook
of a built-in optimizer (one whose ``step`` is this class's) sees ``step(closure=f)`` as ``args=(opt, f)``,
where PyTorch shows ``kwargs={"closure": f}``; the base ``step`` does its hook test inline rather than
through a wrapper, which saves each step a call.

Differences from PyTorch, all on the side of safety: ``state_dict()`` returns a snapshot (copies of the
state arrays, so later steps do not change it); ``load_state_dict()`` copies what it loads, checks state
shapes and hyperparameters too, and changes nothing when the dict does not fit. The ``step`` count is
a Python float rather than a 0-d tensor (a loaded 0-d tensor is converted). Each state entry passes one
seam each way, ``_state_value_for_dict`` and ``_restore_state_value``, which an optimizer whose state is
not shaped like its parameters overrides (Adafactor, LBFGS); the hooks see the whole dicts either way.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from numbers import Real
from typing import Any

from chainrule.autograd.grad_mode import enable_grad
from chainrule.autograd.graph import HookHandle
from chainrule.backend import ARRAY_TYPES, np, to_host, xp_of
from chainrule.backend.parallel import parallel_for
from chainrule.tensor import STATE_EPOCH, Tensor, wrap

__all__ = ["Optimizer", "ParamsT", "required", "register_optimizer_step_pre_hook",
           "register_optimizer_step_post_hook"]

# what optimizers accept as ``params``: tensors, (name, tensor) pairs, or param-group dicts
ParamsT = Iterable[Tensor] | Iterable[tuple[str, Tensor]] | Iterable[dict[str, Any]]


class _RequiredParameter:
    """Marks a hyperparameter with no default: every param group must give it."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


# Step hooks every optimizer runs (``register_optimizer_step_pre_hook`` / ``_post_hook``), before its own.
_global_optimizer_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
_global_optimizer_post_hooks: OrderedDict[int, Callable] = OrderedDict()
# False until a step hook is first registered anywhere: until then a step tests nothing else
_step_hooks_used = False


def register_optimizer_step_pre_hook(hook: Callable) -> HookHandle:
    """Register ``hook(optimizer, args, kwargs) -> None or (new_args, new_kwargs)``, run before the
    ``step`` of every optimizer (before each optimizer's own pre-hooks). ``args`` starts with the
    optimizer itself, as in PyTorch. Returns a handle whose ``remove()`` unregisters it."""
    return _register(_global_optimizer_pre_hooks, hook, step=True)


def register_optimizer_step_post_hook(hook: Callable) -> HookHandle:
    """Register ``hook(optimizer, args, kwargs) -> None``, run after the ``step`` of every optimizer
    (after each optimizer's own post-hooks). Returns a handle whose ``remove()`` unregisters it."""
    return _register(_global_optimizer_post_hooks, hook, step=True)


def _track_step(step: Callable) -> Callable:
    """Wrap a subclass's own ``step`` (custom optimizers' too) so the optimizer remembers it has stepped
    (schedulers check this to warn when ``scheduler.step()`` comes before ``optimizer.step()``) and runs
    the step hooks around it (see :func:`_hooked_step`). The base class's ``step`` does the same inline,
    which saves the built-in optimizers a wrapper call. Until a step hook is first registered anywhere,
    the hooks cost one test."""
    if getattr(step, "_tracks_step", False):
        return step

    @functools.wraps(step)
    def tracked(self, *args, **kwargs):
        self._opt_called = True
        if _step_hooks_used and _runs_hooks(self):
            return _hooked_step(step, self, (self, *args), kwargs)
        return step(self, *args, **kwargs)

    tracked._tracks_step = True
    return tracked


def _runs_hooks(opt) -> bool:
    """Whether this ``step`` call runs hooks: some are registered and it is not a ``super().step()``
    inside a step that already ran them."""
    return not opt._in_hooked_step and bool(_global_optimizer_pre_hooks or _global_optimizer_post_hooks
                                            or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks)


def _hooked_step(step: Callable, self, args: tuple, kwargs: dict):
    """``step(*args, **kwargs)`` between the hooks: global pre-hooks, the optimizer's pre-hooks (either may
    replace ``args`` and ``kwargs``), ``step``, the optimizer's post-hooks, global post-hooks. As in
    PyTorch, ``args`` starts with the optimizer itself."""
    for hook in (*_global_optimizer_pre_hooks.values(), *self._optimizer_step_pre_hooks.values()):
        result = hook(self, args, kwargs)
        if result is not None:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RuntimeError(
                    f"{type(self).__name__}.step: a step pre-hook ({getattr(hook, '__qualname__', hook)!r}) must "
                    f"return None or a tuple of (new_args, new_kwargs), but got {result!r}"
                )
            args, kwargs = result
    self._in_hooked_step = True
    try:
        out = step(*args, **kwargs)
    finally:
        self._in_hooked_step = False
    for hook in (*self._optimizer_step_post_hooks.values(), *_global_optimizer_post_hooks.values()):
        hook(self, args, kwargs)
    return out


def _register(registry: OrderedDict, hook: Callable, prepend: bool = False, step: bool = False) -> HookHandle:
    global _step_hooks_used
    _step_hooks_used = _step_hooks_used or step
    handle = HookHandle(registry, hook)
    if prepend:
        registry.move_to_end(handle._id, last=False)
    return handle


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts that each hold a
            ``"params"`` entry and per-group hyperparameters overriding ``defaults``.
        defaults: the default hyperparameters of every group.
    """

    # per-parameter state entries that are numbers (PyTorch stores them as 0-d tensors), not arrays
    _scalar_state: tuple[str, ...] = ("step",)
    _in_hooked_step = False  # True while step runs inside its hooks (a nested super().step() skips them)

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._opt_called = False
        self._scratch_buffers: dict = {}
        self._optimizer_step_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        name = type(self).__name__
        self._validate_group({k: v for k, v in defaults.items() if v is not required})
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params should be an iterable of Tensors or dicts, but got a single Tensor "
                f"(shape {tuple(params.shape)}); wrap it in a list: {name}([tensor], ...)"
            )
        _reject_unordered(params, name)
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _track_step(cls.__dict__["step"])

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # ----- hyperparameter checks (subclasses extend) -------------------------------------------
    def _validate_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for a bad hyperparameter in ``group`` (keys may be missing)."""
        if "lr" in group:
            check_non_negative(self, "learning rate", "lr", group["lr"])

    # ----- param groups -------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with optional per-group hyperparameters) to ``param_groups``,
        e.g. to start training layers that were frozen. Nothing changes if the group is rejected."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}.add_param_group: the param group has no 'params' entry")
        group = dict(param_group)
        params, names = self._extract_params(group["params"])
        group["params"] = params
        if names is not None:
            group["param_names"] = names
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required optimization parameter {key}")
            group.setdefault(key, default)
        self._validate_group(group)
        self._check_new_params(group)
        self.param_groups.append(group)

    def _extract_params(self, params) -> tuple[list[Tensor], list[str] | None]:
        name = type(self).__name__
        if isinstance(params, Tensor):
            params = [params]
        _reject_unordered(params, name)
        params = list(params)
        named = [isinstance(p, tuple) for p in params]
        if any(named) and not all(named):
            raise ValueError(f"{name}: all optimizer params should be with/without names. Some param names are missing")
        names = [p[0] for p in params] if params and all(named) else None
        tensors = [p[1] for p in params] if names is not None else params
        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: optimizer can only optimize Tensors, but parameter {i} is {type(p).__name__}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError(
                    f"{name}: can't optimize a non-leaf Tensor (parameter {i}, shape {tuple(p.shape)}, made by "
                    f"{p.grad_fn.name()}); optimize the leaf it was computed from, or a .detach().requires_grad_() copy"
                )
        return tensors, names

    def _check_new_params(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        params = group["params"]
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            warnings.warn(
                f"{name}: a parameter group contains duplicate parameters; each will be updated more than once",
                stacklevel=4,
            )
        for i, other in enumerate(self.param_groups):
            if ("param_names" in group) != ("param_names" in other):
                raise ValueError(
                    f"{name}: all optimizer param groups should be with/without names; cannot add a group "
                    f"{'with' if 'param_names' in group else 'without'} names to an optimizer whose group {i} is "
                    f"{'with' if 'param_names' in other else 'without'} names"
                )
            if any(id(p) in ids for p in other["params"]):
                raise ValueError(f"{name}: some parameters appear in more than one parameter group (already in group {i})")

    # ----- gradients ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters: to ``None`` (default), or filled with zeros
        in place when ``set_to_none=False``. With ``None`` a parameter that gets no gradient in the next
        backward is skipped by ``step``; with zeros it is stepped with a zero gradient (which still moves
        it under momentum or weight decay)."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad  # past the property (hot), with one STATE_EPOCH bump for all
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                    continue
                if g._node is not None:
                    g.detach_()
                else:
                    g._rg = False
                g._data.fill(0)
                g._bump_version()
        STATE_EPOCH[0] += 1

    # ----- hooks ------------------------------------------------------------------------------
    def register_step_pre_hook(self, hook: Callable) -> HookHandle:
        """Register ``hook(optimizer, args, kwargs) -> None or (new_args, new_kwargs)``, run before each
        ``step`` (``args`` starts with the optimizer, as in PyTorch); what it returns replaces the
        arguments ``step`` gets. Returns a handle whose ``remove()`` unregisters it."""
        return _register(self._optimizer_step_pre_hooks, hook, step=True)

    def register_step_post_hook(self, hook: Callable) -> HookHandle:
        """Register ``hook(optimizer, args, kwargs) -> None``, run after each ``step``."""
        return _register(self._optimizer_step_post_hooks, hook, step=True)

    def register_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> HookHandle:
        """Register ``hook(optimizer) -> None``, run before :meth:`state_dict` builds the dict
        (first of all with ``prepend=True``, else after those already registered)."""
        return _register(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> HookHandle:
        """Register ``hook(optimizer, state_dict) -> state_dict or None``, run on the dict
        :meth:`state_dict` built (it may change it in place or return a replacement)."""
        return _register(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> HookHandle:
        """Register ``hook(optimizer, state_dict) -> state_dict or None``, run on (a shallow copy of) the
        dict given to :meth:`load_state_dict` before it is checked and loaded."""
        return _register(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> HookHandle:
        """Register ``hook(optimizer) -> None``, run after :meth:`load_state_dict` has loaded."""
        return _register(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    # ----- stepping -----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; returns the closure's loss when one is given
        (the closure re-evaluates the model and is run with gradients enabled)."""
        self._opt_called = True
        if _step_hooks_used and _runs_hooks(self):  # what _track_step does for subclasses' own step
            return _hooked_step(Optimizer.step, self, (self,) if closure is None else (self, closure), {})
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        work = [(group, params_with_grad(group)) for group in self.param_groups]  # check all before changing any
        for group, params in work:
            if params:
                self._update_group(group, params)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Update ``params`` (the group's parameters that have a gradient) with the group's hyperparameters."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group, params) or step()")

    def _for_blocks(self, update, arrays: tuple, *args) -> None:
        """Call ``update(xp, *pieces, tmp0, tmp1, *args)`` on matching pieces of ``arrays`` (the parameter's
        array first, then its gradient and state arrays), which it updates in place.

        A large CPU parameter is cut into blocks of ~512 KiB per array, so the dozen passes of an update
        run over data still in cache instead of streaming the whole arrays through memory each time
        (bench/ANALYSIS.md has the figures), and the blocks of a parameter of over a million
        elements are shared among chainrule's worker threads. Small,
        non-contiguous or GPU arrays come whole. ``tmp0``/``tmp1`` are scratch buffers of the piece's
        shape; entries of ``arrays`` may be None (passed through). Every element's arithmetic is the
        same however the arrays are cut, so results do not depend on the thread count."""
        p = arrays[0]
        xp = xp_of(p)
        block = _BLOCK_BYTES // p.itemsize
        n = p.size
        if n <= block or type(p) is not np.ndarray or not _all_c_contiguous(p, arrays[1:]):
            update(xp, *arrays, self._scratch(p, 0), self._scratch(p, 1), *args)
            return
        flat = [None if a is None else a.reshape(-1) for a in arrays]

        def work(first: int, last: int) -> None:  # blocks first .. last - 1, with this thread's scratch
            tmp0, tmp1 = np.empty(block, p.dtype), np.empty(block, p.dtype)
            for start in range(first * block, min(n, last * block), block):
                stop = min(start + block, n)
                pieces = [None if a is None else a[start:stop] for a in flat]
                update(xp, *pieces, tmp0[:stop - start], tmp1[:stop - start], *args)

        blocks = -(-n // block)
        if n < _THREADED_UPDATE_ELEMENTS:  # a hand-off to a thread costs more than it saves
            work(0, blocks)
        else:
            parallel_for(blocks, block, p, work)

    def _scratch(self, like, slot: int):
        """A reusable buffer with ``like``'s shape, dtype and device (slots 0 and 1 are distinct)."""
        return self._scratch_flat(like, like.size, slot).reshape(like.shape)

    def _scratch_flat(self, like, n: int, slot: int):
        key = (slot, like.dtype, type(like))
        flat = self._scratch_buffers.get(key)
        if flat is None or flat.size < n:
            flat = xp_of(like).empty(n, dtype=like.dtype)
            self._scratch_buffers[key] = flat
        return flat[:n]

    # ----- state dicts --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer: ``{"state": {index: {name: Tensor or number}},
        "param_groups": [{hyperparameters..., "params": [indices]}]}``, where indices number the
        parameters in group order (PyTorch's format). The tensors are copies."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        index_of: dict[int, int] = {}
        groups = []
        start = 0
        for group in self.param_groups:
            params = group["params"]
            for i, p in enumerate(params, start):
                index_of.setdefault(id(p), i)
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index_of[id(p)] for p in params]
            groups.append(packed)
            start += len(params)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st and index_of[id(p)] not in state:
                    state[index_of[id(p)]] = {k: self._state_value_for_dict(p, k, v) for k, v in st.items()}
        state_dict = {"state": dict(sorted(state.items())), "param_groups": groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict made by :meth:`state_dict`. Group count, group sizes, state shapes and
        hyperparameters are checked first; on any mismatch a ValueError says what differs and the
        optimizer is left unchanged. State tensors are copied and cast to their parameter's dtype and
        device. Load the optimizer *after* creating any lr scheduler (creating one resets ``lr``)."""
        name = f"{type(self).__name__}.load_state_dict"
        if isinstance(state_dict, dict):
            state_dict = state_dict.copy()  # shallow, for the hooks (as in PyTorch)
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a dict with 'state' and 'param_groups' entries (from state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: loaded state dict has a different number of parameter groups ({len(saved_groups)}) "
                f"than the optimizer ({len(self.param_groups)})"
            )
        param_of: dict[Any, Tensor] = {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{name}: saved param group {i} is not a dict with a 'params' list")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}: loaded state dict contains a parameter group ({i}) that doesn't match the size of "
                    f"optimizer's group: {len(saved['params'])} saved parameters, {len(group['params'])} here"
                )
            param_of.update(zip(map(_index_key, saved["params"]), group["params"]))
            new_groups.append(self._restore_group(group, saved))
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for index, saved_state in state_dict["state"].items():
            index = _index_key(index)
            if index not in param_of:
                raise ValueError(f"{name}: the state dict has state for parameter {index!r}, which is in no param group")
            param = param_of[index]
            new_state[param] = {key: self._restore_state_value(param, key, value, index, name)
                                for key, value in saved_state.items()}
        self.state = new_state
        self.param_groups = new_groups
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # One value of per-parameter state, the seam between ``self.state`` and the dicts: ``state_dict`` and
    # ``load_state_dict`` call these for every entry (hooks see the results); checkpoints' restore asks
    # ``_restore_state_value`` too, to check a saved state before anything changes. A subclass whose state
    # is not shaped like its parameter (Adafactor's factors, L-BFGS's flat history) overrides them.
    def _state_value_for_dict(self, param: Tensor, key: str, value):
        """``self.state[param][key]`` as :meth:`state_dict` gives it: a copy (Tensors stay Tensors)."""
        return _snapshot(value)

    def _restore_state_value(self, param: Tensor, key: str, value, index, where: str):
        """A saved state entry as this optimizer keeps it, or a ValueError (naming ``where``, the entry and
        parameter ``index``) when it does not fit ``param``: arrays must have the parameter's shape and are
        copied to its dtype and device; ``step`` (and the other ``_scalar_state`` keys) become floats."""
        return _restore_value(param, key, value, index, where, self._scalar_state)

    def _restore_group(self, group: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
        restored = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
        for key, value in restored.items():
            if isinstance(value, list) and isinstance(self.defaults.get(key), tuple):
                restored[key] = tuple(value)  # betas come back from JSON as a list
        restored["params"] = group["params"]
        if "param_names" in group and "param_names" not in restored:
            restored["param_names"] = group["param_names"]
        for key, default in self.defaults.items():
            restored.setdefault(key, group.get(key, default))
        self._validate_group(restored)
        return restored


_BLOCK_BYTES = 1 << 19
# Parameters at least this large share their blocks among threads; smaller ones lose more to the hand-off
# than they gain (bench/ANALYSIS.md).
_THREADED_UPDATE_ELEMENTS = 1 << 20


def _reject_unordered(params, name: str) -> None:
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"{name}: optimizer parameters need to be organized in ordered collections, but the ordering "
            "of tensors in sets changes between runs; use a list instead"
        )


def _all_c_contiguous(p, arrays) -> bool:
    if not p.flags.c_contiguous:
        return False
    return all(a is None or (a.flags.c_contiguous and a.shape == p.shape) for a in arrays)


def effective_grad(xp, p, g, weight_decay: float, maximize: bool, out):
    """The gradient an update uses: ``-g`` when maximizing, plus ``weight_decay * p`` (the L2 penalty).
    Returns ``g`` itself (never written to) when neither applies, else ``out`` holding the result."""
    if weight_decay == 0 and not maximize:
        return g
    if weight_decay == 0:
        return xp.negative(g, out=out)
    xp.multiply(p, weight_decay, out=out)
    return xp.subtract(out, g, out=out) if maximize else xp.add(out, g, out=out)


def lerp_(xp, start, end, weight: float, tmp) -> None:
    """``start += weight * (end - start)`` in place, with PyTorch's ``lerp_`` formula (which switches at
    weight 0.5 to stay exact at weight 1)."""
    xp.subtract(end, start, out=tmp)
    if weight < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1.0 - weight
        xp.subtract(end, tmp, out=start)


def _index_key(index):
    """Parameter indices are ints; a dict that went through JSON has them as digit strings."""
    return int(index) if isinstance(index, str) and index.isdigit() else index


def _snapshot(value):
    if isinstance(value, Tensor):
        return wrap(value._data.copy())
    return copy.deepcopy(value)


def _restore_value(param: Tensor, key: str, value, index, where: str, scalar_keys: tuple = ("step",),
                   shape: tuple | None = None):
    """A loaded state entry as this optimizer keeps it: ``step`` (and the optimizer's other
    ``scalar_keys``) as a float, arrays as Tensor copies with the parameter's dtype and device and
    ``shape`` (default: the parameter's shape)."""
    if isinstance(value, Tensor):
        arr = value._data
    elif type(value) in ARRAY_TYPES:
        arr = value
    else:
        return copy.deepcopy(value)
    if key in scalar_keys:
        if arr.size != 1:
            raise ValueError(f"{where}: state '{key}' of parameter {index} has shape {tuple(arr.shape)}, expected a number")
        return float(arr.reshape(()).item())
    expected = tuple(param.shape) if shape is None else tuple(shape)
    if tuple(arr.shape) != expected:
        needs = "" if shape is None else f", which needs {expected} here"
        raise ValueError(
            f"{where}: state '{key}' of parameter {index} has shape {tuple(arr.shape)} but the parameter has shape "
            f"{tuple(param.shape)}{needs}; the state dict belongs to a different model or parameter order"
        )
    xp = param.xp
    dtype = param._data.dtype if param.dtype.is_floating_point else arr.dtype
    if xp_of(arr) is not xp:
        arr = to_host(arr)  # a device array to the host first
    return wrap(xp.array(arr, dtype=dtype, copy=True))


def check_non_negative(opt, what: str, key: str, value) -> None:
    """Reject a hyperparameter that is not a real number >= 0 (PyTorch's "Invalid ..." wording)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, Real) or isinstance(value, bool) or math.isnan(value) or value < 0:
        raise ValueError(f"{type(opt).__name__}: Invalid {what}: {value!r} ({key} must be a number >= 0)")


def check_range(opt, what: str, value, low: float, high: float) -> None:
    """Reject a hyperparameter outside ``[low, high)``."""
    if not isinstance(value, Real) or isinstance(value, bool) or not (low <= value < high):
        raise ValueError(f"{type(opt).__name__}: Invalid {what}: {value!r} (must be in [{low}, {high}))")


def check_speed_flags(opt, *, foreach: bool | None = None, fused: bool | None = None,
                      differentiable: bool = False) -> None:
    """PyTorch's switches for its own kernels: ``foreach`` (one multi-tensor kernel per group), ``fused``
    (one fused kernel per step), ``capturable`` (state kept on the device for CUDA graph capture) and
    ``differentiable`` (the step recorded on the autograd graph).

    chainrule has one update path (in place, in cache-sized blocks), so the first three are accepted, so
    that PyTorch programs run unchanged, and ignored; the combinations PyTorch refuses (``fused`` with
    ``foreach`` or ``differentiable``) are refused with its messages. ``differentiable=True`` is refused: a
    chainrule step is never recorded on the graph, and ignoring the flag would hand a program that
    differentiates through its steps silently wrong gradients (PyTorch itself fails at the first step of a
    differentiable optimizer over leaf parameters, the only kind chainrule optimizes)."""
    name = type(opt).__name__
    if fused:
        if differentiable:
            raise RuntimeError(f"{name}: `fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")
    if differentiable:
        raise NotImplementedError(
            f"{name}: differentiable=True is not supported: chainrule's optimizer steps update the parameters in "
            "place without recording a graph, so a step cannot be differentiated; leave differentiable=False"
        )


def counted_state(opt, p: Tensor, **fills: float) -> dict[str, Any]:
    """``opt.state[p]`` with this step counted: at the parameter's first step it is created as ``step``
    (a float) and one array per keyword, of the parameter's shape, dtype and device, filled with its value;
    then ``step`` goes up by one."""
    state = opt.state[p]
    if not state:
        state["step"] = 0.0
        for key, value in fills.items():
            state[key] = wrap(p.xp.full_like(p._data, value))
    state["step"] += 1
    return state


def group_scalar(value) -> float:
    """A hyperparameter as a Python number (a one-element Tensor lr is allowed, as in PyTorch)."""
    return value.item() if isinstance(value, Tensor) else value


def params_with_grad(group: dict[str, Any]) -> list[Tensor]:
    """The group's parameters that have a gradient, each checked to have the parameter's shape."""
    params = [p for p in group["params"] if p._grad is not None]  # past the property: hot
    for p in params:
        if p._grad._data.shape != p._data.shape:
            raise RuntimeError(
                f"optimizer step: a parameter of shape {tuple(p.shape)} has a gradient of shape "
                f"{tuple(p.grad.shape)}; assign .grad a tensor of the parameter's shape"
            )
    return params
