"""Module: the base of every layer and model, as ``torch.nn.Module``.

Assigning a Parameter, a Module or (for a registered buffer name) a Tensor to an attribute registers
it, so ``parameters()``, ``state_dict()``, ``to()`` and ``train()`` find everything by walking the tree.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from typing import Any

from chainrule.autograd.grad_mode import no_grad
from chainrule.autograd.graph import HookHandle
from chainrule.nn.parameter import Parameter
from chainrule.tensor import STATE_EPOCH, Tensor

__all__ = ["Module", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# Bumped when any module's parameters, buffers or submodules are added, replaced or removed: a compiled
# function then finds its state again (chainrule.compiler), as its programs read the old tensors.
TREE_EPOCH = [0]


def _tree_changed() -> None:
    TREE_EPOCH[0] += 1
    STATE_EPOCH[0] += 1


class Module:
    """Base class: subclasses set layers and parameters in ``__init__`` and define ``forward``."""

    training: bool

    def __init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_parameters", OrderedDict())
        set_(self, "_buffers", OrderedDict())
        set_(self, "_non_persistent", set())
        set_(self, "_modules", OrderedDict())
        set_(self, "_forward_hooks", OrderedDict())
        set_(self, "_forward_pre_hooks", OrderedDict())
        set_(self, "training", True)

    # ----- registration -------------------------------------------------------------------------
    def _require_init(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() call: call super().__init__() first in "
                f"{type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._require_init(name)
            self._forget(name, keep="_parameters")
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._require_init(name)
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter '{name}' (a Parameter or None is required)"
                )
            self._parameters[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (a Tensor or None is required)")
            self._buffers[name] = value
        elif "_modules" in self.__dict__ and name in self._modules and value is None:
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)
            if name == "training":
                STATE_EPOCH[0] += 1
            return
        _tree_changed()

    def _forget(self, name: str, keep: str | None = None) -> None:
        """Drop ``name`` from the module's tables, except ``keep``, the table about to get its new value: a
        replaced entry keeps its place (so a Sequential's layer swapped for another stays where it was)."""
        for table in ("_parameters", "_buffers", "_modules"):
            if table != keep:
                self.__dict__[table].pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(table, {}):
                del self.__dict__[table][name]
                self._non_persistent.discard(name)
                _tree_changed()
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}")
        self._check_name(name)
        self._forget(name, keep="_parameters")
        self._parameters[name] = param
        _tree_changed()

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that belongs to the module's state but is not learned (e.g. BatchNorm's running mean)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        self._check_name(name)
        self._forget(name, keep="_buffers")
        self._buffers[name] = tensor
        _tree_changed()
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._check_name(name)
        self._forget(name, keep="_modules")
        self._modules[name] = module
        _tree_changed()

    register_module = add_module

    def _check_name(self, name: str) -> None:
        self._require_init(name)
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"invalid name {name!r}: names must be non-empty strings without '.'")

    # ----- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, hook: Callable) -> HookHandle:
        """``hook(module, inputs, output)`` after every forward; a returned value replaces the output."""
        return HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook: Callable) -> HookHandle:
        """``hook(module, inputs)`` before every forward; a returned value replaces the inputs."""
        return HookHandle(self._forward_pre_hooks, hook)

    # ----- walking the tree ---------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """(name, module) for this module and every descendant, depth first, each once."""
        seen = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module.__dict__[table].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def _members(self, table: str, recurse: bool):
        """The values of ``_named_members`` without building their names: ``parameters()`` runs every
        step (zero_grad, optimizers), so it skips the string work."""
        seen = set()
        for module in self.modules() if recurse else (self,):
            for value in module.__dict__[table].values():
                if value is not None and id(value) not in seen:
                    seen.add(id(value))
                    yield value

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return self._members("_parameters", recurse)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return self._members("_buffers", recurse)

    def get_submodule(self, target: str) -> Module:
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' (looking up '{target}')")
            module = module._modules[part]
        return module

    def get_parameter(self, target: str) -> Parameter:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._parameters:
            raise AttributeError(f"{type(module).__name__} has no parameter '{name}' (looking up '{target}')")
        return module._parameters[name]

    def compile(self, **options) -> None:
        """Compile this module's forward in place (PyTorch's ``Module.compile``): later calls run it through
        ``cr.compile(module, **options)`` (:class:`~chainrule.compiler.CompiledModule`: inference and training
        calls replay programs), and the module stays this module."""
        from chainrule.compiler import compile as compile_function

        compiled = compile_function(self, **options)
        if compiled is not self:  # (disable=True gives the module back)
            compiled.fn = type(self).forward.__get__(self)  # not __call__: that would come back here
            self.forward = compiled

    # ----- modes and conversion -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("train: mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        STATE_EPOCH[0] += 1
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p._grad is None:  # past the property (hot), with one STATE_EPOCH bump for all
                continue
            if set_to_none:
                p._grad = None
            else:
                p._grad._data[...] = 0
        STATE_EPOCH[0] += 1

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and on self, e.g. for custom init."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False) -> Module:
        """Convert floating-point parameters and buffers to a dtype and/or move all of them to a device, in
        place: the Parameter objects keep their identity, so an optimizer built earlier still holds them, and
        their gradients move with them. ``non_blocking`` copies from pinned host memory asynchronously, as
        ``Tensor.to`` does."""
        dtype, device = _dtype_and_device(args, dtype, device)
        with no_grad():
            for module in self.modules():
                for table in (module._parameters, module._buffers):
                    for value in table.values():
                        if value is not None:
                            _convert_in_place(value, dtype, device, non_blocking)
        return self

    def float(self) -> Module:
        from chainrule.dtypes import float32

        return self.to(float32)

    def double(self) -> Module:
        from chainrule.dtypes import float64

        return self.to(float64)

    def half(self) -> Module:
        from chainrule.dtypes import float16

        return self.to(float16)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        """Move every parameter and buffer (and their gradients) to the GPU, in place (``to("cuda")``)."""
        return self.to("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)

    # ----- state --------------------------------------------------------------------------------
    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (detached unless ``keep_vars``)."""
        out = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip(".")):
            dot = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[dot + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[dot + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False) -> IncompatibleKeys:
        """Copy tensors from ``state_dict`` into this module's parameters and buffers.

        Everything is checked before anything is copied: with ``strict`` missing and unexpected keys are
        errors, and a shape mismatch is always one; the error lists every problem and nothing is loaded.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        for key, target in own.items():
            if key not in state_dict:
                continue
            source = state_dict[key]
            shape = tuple(getattr(source, "shape", ()))
            if shape != tuple(target.shape):
                problems.append(f"size mismatch for {key}: checkpoint has shape {shape}, model has {tuple(target.shape)}")
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__} (nothing was loaded):\n  " + "\n  ".join(problems)
            )
        with no_grad():
            for key, target in own.items():
                if key in state_dict:
                    source = state_dict[key]
                    # copied into the parameter's own memory, on its own device (from a checkpoint on any device)
                    data = source.to(target.device)._data if isinstance(source, Tensor) else target.xp.asarray(source)
                    target._data[...] = data.astype(target._data.dtype, copy=False)
                    target._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # ----- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, module in self._modules.items():
            text = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _dtype_and_device(args: tuple, dtype, device):
    """Sort ``to()``'s positional arguments into a dtype and a device (or take both from a tensor)."""
    from chainrule.dtypes import to_dtype

    for arg in args:
        if isinstance(arg, Tensor):
            dtype, device = arg.dtype, arg.device
            continue
        try:
            dtype = to_dtype(arg)
        except TypeError:
            device = arg
    return dtype, device


def _convert_in_place(t: Tensor, dtype, device, non_blocking: bool = False) -> None:
    converted = t
    if device is not None:
        converted = converted.to(device=device, non_blocking=non_blocking)
    if dtype is not None and t.dtype.is_floating_point:
        converted = converted.to(dtype)
    if converted is not t:
        t._swap_data(converted._data)
        if t.grad is not None:
            t.grad = t.grad.to(dtype=converted.dtype, device=converted.device)
