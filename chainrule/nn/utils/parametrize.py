"""Parametrizations, as ``torch.nn.utils.parametrize``: a module's tensor recomputed from other tensors.

    register_parametrization(linear, "weight", Symmetric())   # linear.weight is now Symmetric()(original)

The tensor ``name`` leaves the module's parameters and becomes a property of a per-module subclass
(``ParametrizedLinear``); reading it runs ``module.parametrizations[name]``, a :class:`ParametrizationList`
holding the original tensor(s) (``original``, or ``original0``, ``original1``, ... when the first
parametrization's ``right_inverse`` returns several) and the parametrization modules ``0``, ``1``, ... in
order. State-dict keys are therefore PyTorch's (``parametrizations.weight.original0``), and gradients flow
to the originals because the property is computed with ordinary differentiable operations.
Assigning ``module.name = value`` calls the parametrizations' ``right_inverse`` and writes the originals in
place.
"""

from __future__ import annotations

from contextlib import contextmanager

from chainrule.autograd.grad_mode import no_grad
from chainrule.nn.module import Module
from chainrule.nn.modules.container import ModuleDict, ModuleList
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized", "cached", "ParametrizationList",
           "type_before_parametrizations", "transfer_parametrizations_and_params"]

_cache_enabled = 0
_cache: dict = {}


@contextmanager
def cached():
    """Within this context a parametrized tensor is computed once and reused (as PyTorch's)."""
    global _cache_enabled
    _cache_enabled += 1
    try:
        yield
    finally:
        _cache_enabled -= 1
        if not _cache_enabled:
            _cache.clear()


def _register(module: Module, name: str, value: Tensor) -> None:
    if isinstance(value, Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


def _set_in_place(target: Tensor, value: Tensor, what: str) -> None:
    if tuple(target.shape) != tuple(value.shape) or target.dtype != value.dtype:
        raise ValueError(f"{what}: right_inverse returned a tensor of shape {tuple(value.shape)} and dtype "
                         f"{value.dtype}, but the original has shape {tuple(target.shape)} and dtype {target.dtype}")
    target._swap_data(value.detach()._data.copy())
    target._bump_version()


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor and its original(s): ``forward()`` gives the parametrized tensor."""

    def __init__(self, modules, original: Tensor, unsafe: bool = False):
        modules = list(modules)
        if not modules:
            raise ValueError("ParametrizationList requires one or more modules.")
        super().__init__(modules)
        self.unsafe = unsafe
        original_shape, original_dtype = tuple(original.shape), original.dtype
        with no_grad():
            new = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    new = module.right_inverse(new)
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if original.dtype != new.dtype:
                raise ValueError(f"When `right_inverse` outputs one tensor, it may not change the dtype.\n"
                                 f"original.dtype: {original.dtype}\nright_inverse(original).dtype: {new.dtype}")
            if new is not original:
                original._swap_data(new.detach()._data.copy())  # the same object, as PyTorch's set_
            _register(self, "original", original)
        else:
            for i, originali in enumerate(new):
                if not isinstance(originali, Tensor):
                    raise ValueError(f"'right_inverse' must return a Tensor or a Sequence of tensors (list, tuple...). "
                                     f"Got element {i} of the sequence with type {type(originali).__name__}.")
                originali = originali.detach()
                if isinstance(original, Parameter):
                    originali = Parameter(originali, original.requires_grad)
                else:
                    originali.requires_grad_(original.requires_grad)
                _register(self, f"original{i}", originali)
        if not self.unsafe:
            z = self()
            if not isinstance(z, Tensor):
                raise ValueError(f"A parametrization must return a tensor. Got {type(z).__name__}.")
            if tuple(z.shape) != original_shape or z.dtype != original_dtype:
                raise ValueError(
                    f"Registering a parametrization may not change the shape or dtype of the tensor, unless `unsafe` "
                    f"flag is enabled.\nunparametrized shape: {original_shape}, dtype: {original_dtype}\n"
                    f"parametrized shape: {tuple(z.shape)}, dtype: {z.dtype}"
                )

    def right_inverse(self, value: Tensor) -> None:
        """Set the original(s) so that the parametrized tensor is ``value`` (in place, under no_grad)."""
        with no_grad():
            for module in reversed(list(self)):
                if not hasattr(module, "right_inverse"):
                    raise RuntimeError(f"parametrization {type(module).__name__} does not implement right_inverse.")
                value = module.right_inverse(value)
            if self.is_tensor:
                _set_in_place(self.original, value, "ParametrizationList.right_inverse")
            else:
                if not isinstance(value, (list, tuple)) or len(value) != self.ntensors:
                    raise ValueError(f"'right_inverse' must return a sequence of {self.ntensors} tensors")
                for i, v in enumerate(value):
                    _set_in_place(getattr(self, f"original{i}"), v, "ParametrizationList.right_inverse")

    def forward(self):
        first = self[0]
        if self.is_tensor:
            x = first(self.original)
        else:
            x = first(*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for module in list(self)[1:]:
            x = module(x)
        return x


def _get_parametrized(module: Module, name: str) -> Tensor:
    plist = module.parametrizations[name]
    if not _cache_enabled:
        return plist()
    key = (id(module), name)
    if key not in _cache:
        _cache[key] = plist()
    return _cache[key]


def _inject_new_class(module: Module) -> None:
    cls = module.__class__

    def __setattr__(self, name, value):
        if name in type(self).__dict__ and isinstance(type(self).__dict__[name], property):
            object.__setattr__(self, name, value)  # the property's setter: right_inverse
        else:
            cls.__setattr__(self, name, value)

    new_cls = type(f"Parametrized{cls.__name__}", (cls,), {"__setattr__": __setattr__, "__module__": cls.__module__})
    object.__setattr__(module, "__class__", new_cls)


def _inject_property(module: Module, name: str) -> None:
    def getter(self):
        return _get_parametrized(self, name)

    def setter(self, value):
        if _cache_enabled:
            raise RuntimeError("Cannot set the parametrization of a tensor inside the `cached` context")
        self.parametrizations[name].right_inverse(value)

    setattr(module.__class__, name, property(getter, setter))


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """Whether ``module`` has any parametrization (on ``tensor_name``, if given)."""
    parametrizations = module.__dict__.get("_modules", {}).get("parametrizations")
    if not isinstance(parametrizations, ModuleDict):
        return False
    return len(parametrizations) > 0 if tensor_name is None else tensor_name in parametrizations


def type_before_parametrizations(module: Module) -> type:
    return module.__class__.__bases__[0] if is_parametrized(module) else type(module)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Make ``module.<tensor_name>`` be ``parametrization(original)``; a second call on the same name chains
    another parametrization after the first. Returns ``module``."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        plist = module.parametrizations[tensor_name]
        if not unsafe:
            y = getattr(module, tensor_name)
            x = parametrization(y)
            if not isinstance(x, Tensor) or tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
                raise ValueError("Registering a parametrization may not change the shape or dtype of the tensor, "
                                 "unless the `unsafe` flag is enabled.")
            if hasattr(parametrization, "right_inverse"):
                z = parametrization.right_inverse(x)
                if not isinstance(z, Tensor) or tuple(z.shape) != tuple(y.shape) or z.dtype != y.dtype:
                    raise ValueError("The tensor returned by `right_inverse` must have the same shape and dtype as "
                                     "the input of the parametrization.")
        plist.append(parametrization)
        plist.unsafe |= unsafe
    elif tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        plist = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            _inject_new_class(module)
            module.parametrizations = ModuleDict()
        _inject_property(module, tensor_name)
        module.parametrizations[tensor_name] = plist
    else:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a parametrized element with "
                         f"name '{tensor_name}'")
    return module


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True) -> Module:
    """Undo :func:`register_parametrization` on ``tensor_name``: the tensor becomes a parameter (or buffer)
    again, holding the parametrized value (``leave_parametrized``) or the original."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with no_grad():
                t = getattr(module, tensor_name)
                original._swap_data(t._data.copy())
                original._bump_version()
    else:
        if not leave_parametrized:
            raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is parametrized "
                             "in terms of a sequence of tensors.")
        with no_grad():
            t = getattr(module, tensor_name)
        requires_grad = plist.original0.requires_grad
        original = Parameter(t.detach(), requires_grad) if isinstance(plist.original0, Parameter) else t.detach()
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    _register(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        object.__setattr__(module, "__class__", module.__class__.__bases__[0])
    return module


def transfer_parametrizations_and_params(from_module: Module, to_module: Module, tensor_name: str | None = None):
    """Copy the parametrizations (and originals' values) of ``from_module`` onto ``to_module``."""
    if not is_parametrized(from_module):
        return to_module
    names = list(from_module.parametrizations) if tensor_name is None else [tensor_name]
    for name in names:
        src = from_module.parametrizations[name]
        if not is_parametrized(to_module, name):
            for p in src:
                register_parametrization(to_module, name, p, unsafe=True)
        dst = to_module.parametrizations[name]
        with no_grad():
            if src.is_tensor:
                _set_in_place(dst.original, src.original, "transfer_parametrizations_and_params")
            else:
                for i in range(src.ntensors):
                    _set_in_place(getattr(dst, f"original{i}"), getattr(src, f"original{i}"),
                                  "transfer_parametrizations_and_params")
    return to_module
