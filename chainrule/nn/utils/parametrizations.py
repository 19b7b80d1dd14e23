"""Weight normalisation and spectral normalisation as parametrizations (``torch.nn.utils.parametrizations``).

    m = weight_norm(nn.Linear(20, 40))     # weight = g * v / ||v||  (g: original0 (40, 1), v: original1)
    m = spectral_norm(nn.Linear(20, 40))   # weight = W / sigma(W), sigma by power iteration (buffers _u, _v)

Both are built on :func:`chainrule.nn.utils.parametrize.register_parametrization`, so the state-dict keys are
PyTorch's (``parametrizations.weight.original0/original1``; ``parametrizations.weight.original`` and
``parametrizations.weight.0._u/_v``) and checkpoints cross over. Both are composites of differentiable
primitives (norm, matmul, division): gradients come free.

The legacy :func:`weight_norm` / :func:`remove_weight_norm` (``torch.nn.utils.weight_norm``: parameters
``weight_g``, ``weight_v`` and a forward pre-hook) live here too.
"""

from __future__ import annotations

from chainrule.autograd.grad_mode import no_grad
from chainrule.nn import functional as F
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.nn.utils import parametrize
from chainrule.tensor import Tensor

__all__ = ["weight_norm", "spectral_norm", "legacy_weight_norm", "remove_weight_norm"]


def _norm_except_dim(v: Tensor, dim: int) -> Tensor:
    """The 2-norm of ``v`` over every dim but ``dim`` (kept as size 1), or over all of it for ``dim == -1``
    (``torch.norm_except_dim``: -1 means the whole tensor, not the last dim)."""
    if dim == -1:
        return (v * v).sum().sqrt()
    dims = tuple(d for d in range(v.ndim) if d != dim)
    return (v * v).sum(dim=dims, keepdim=True).sqrt() if dims else v.abs()


def _weight_norm(v: Tensor, g: Tensor, dim: int) -> Tensor:
    return v * (g / _norm_except_dim(v, dim))


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return _weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight: Tensor):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrize ``module.<name>`` as ``g * v / ||v||`` (norm over all dims but ``dim``; the whole tensor
    for ``dim=None``). ``g`` is ``parametrizations.<name>.original0``, ``v`` is ``original1``."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            from chainrule.creation import randn

            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(weight.detach())
            h, w = weight_mat.shape
            u = randn(h, dtype=weight.dtype, device=weight.device)
            v = randn(w, dtype=weight.dtype, device=weight.device)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        """u <- normalize(W v), v <- normalize(W^T u), written into the buffers in place."""
        with no_grad():
            weight_mat = weight_mat.detach()
            for _ in range(n_power_iterations):
                self._u._data[...] = F.normalize(weight_mat @ self._v, dim=0, eps=self.eps)._data
                self._v._data[...] = F.normalize(weight_mat.mT @ self._u, dim=0, eps=self.eps)._data
            self._u._bump_version()
            self._v._bump_version()

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = (u * (weight_mat @ v)).sum()
        return weight / sigma

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Reparametrize ``module.<name>`` as ``W / sigma(W)``, sigma its largest singular value estimated by
    ``n_power_iterations`` of power iteration per training forward (15 at registration), as PyTorch's.
    ``dim`` defaults to 1 for ConvTranspose layers and 0 otherwise."""
    from chainrule.nn.modules.conv import _ConvTransposeNd

    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, _ConvTransposeNd) else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


# ----- the legacy hook-based weight_norm (torch.nn.utils.weight_norm) --------------------------------------
class _LegacyWeightNorm:
    def __init__(self, name: str, dim: int):
        self.name, self.dim = name, dim

    def compute_weight(self, module: Module) -> Tensor:
        return _weight_norm(getattr(module, self.name + "_v"), getattr(module, self.name + "_g"), self.dim)

    def __call__(self, module: Module, inputs) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module))


def legacy_weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """``torch.nn.utils.weight_norm``: parameters ``<name>_g`` and ``<name>_v``, recombined into ``<name>``
    by a forward pre-hook before every forward (deprecated in PyTorch in favour of the parametrization)."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, _LegacyWeightNorm) and hook.name == name:
            raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
    dim = -1 if dim is None else dim
    fn = _LegacyWeightNorm(name, dim)
    weight = getattr(module, name)
    if not isinstance(weight, Parameter):
        raise ValueError(f"weight_norm: '{name}' of {type(module).__name__} must be a Parameter")
    del module._parameters[name]
    module.register_parameter(name + "_g", Parameter(_norm_except_dim(weight, dim).detach()))
    module.register_parameter(name + "_v", Parameter(weight.detach()))
    object.__setattr__(module, name, fn.compute_weight(module))
    handle = module.register_forward_pre_hook(fn)
    fn.handle = handle
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`legacy_weight_norm`: ``<name>`` becomes one Parameter again, holding g * v / ||v||."""
    for hook in list(module._forward_pre_hooks.values()):
        if isinstance(hook, _LegacyWeightNorm) and hook.name == name:
            with no_grad():
                weight = hook.compute_weight(module)
            hook.handle.remove()
            del module._parameters[name + "_g"]
            del module._parameters[name + "_v"]
            module.__dict__.pop(name, None)
            module.register_parameter(name, Parameter(weight.detach()))
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
