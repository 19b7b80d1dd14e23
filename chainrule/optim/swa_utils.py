"""Weight averaging, following ``torch.optim.swa_utils``: stochastic weight averaging (SWA) and exponential
moving averages (EMA) of a model's parameters, the SWALR schedule, and ``update_bn``::

    swa_model = AveragedModel(model)                      # SWA: the running mean of the weights
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    swa_sched = SWALR(opt, swa_lr=0.05)
    for epoch in range(epochs):
        train_one_epoch(model, opt)
        if epoch >= swa_start:
            swa_model.update_parameters(model)
            swa_sched.step()
    update_bn(loader, swa_model)                           # BatchNorm statistics for the averaged weights

:class:`AveragedModel` holds a deep copy of the model (``.module``) and an ``n_averaged`` buffer; the
first ``update_parameters`` copies the model's parameters, each later one folds them into the average:
``avg_fn(averaged, current, n_averaged)`` per tensor, or ``multi_avg_fn(averaged_list, current_list,
n_averaged)`` on the lists of one device and dtype at a time, changing them in place. Without either,
the running mean (SWA). With ``use_buffers=True`` the buffers (BatchNorm statistics) are averaged
too; otherwise they are copied from the model at each update.

The built-in averages compute what PyTorch's do on the same device: on the CPU the per-tensor formula
``averaged + (current - averaged) / (n_averaged + 1)``, on a GPU the lerp of the multi-tensor form,
with PyTorch's lerp rounding.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

from chainrule.autograd.grad_mode import no_grad
from chainrule.creation import tensor
from chainrule.dtypes import int64
from chainrule.nn.module import Module
from chainrule.nn.modules.normalization import _BatchNorm
from chainrule.optim.lr_scheduler import LRScheduler, _per_group
from chainrule.optim.optimizer import Optimizer, lerp_
from chainrule.tensor import Tensor

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn", "get_ema_avg_fn",
           "get_swa_avg_fn"]


def _lerp_all(averaged: list[Tensor], current: list[Tensor], weight: float) -> None:
    """``averaged += weight * (current - averaged)`` in place, with PyTorch's ``lerp_`` rounding."""
    for a, c in zip(averaged, current):
        xp = a.xp
        lerp_(xp, a._data, c._data.astype(a._data.dtype, copy=False), weight, xp.empty_like(a._data))
        a._bump_version()


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """A ``multi_avg_fn`` keeping the exponential moving average ``ema = decay * ema + (1 - decay) * current``
    (as a lerp towards ``current`` by ``1 - decay``; integer tensors by the formula, truncated)."""
    _check_decay(decay)

    @no_grad()
    def ema_update(ema_param_list: list[Tensor], current_param_list: list[Tensor], _) -> None:
        if ema_param_list[0].dtype.is_floating_point:
            _lerp_all(ema_param_list, current_param_list, 1 - decay)
        else:
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                p_ema.copy_(p_ema * decay + p_model * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """A ``multi_avg_fn`` keeping the running mean: a lerp towards ``current`` by ``1 / (n_averaged + 1)``."""

    @no_grad()
    def swa_update(averaged_param_list: list[Tensor], current_param_list: list[Tensor], num_averaged) -> None:
        if averaged_param_list[0].dtype.is_floating_point:
            # as PyTorch: with a tensor count the weight is a float32 tensor, rounded so
            weight = 1 / (num_averaged + 1)
            _lerp_all(averaged_param_list, current_param_list, float(weight))
        else:
            for p_averaged, p_model in zip(averaged_param_list, current_param_list):
                p_averaged.copy_(p_averaged + (p_model - p_averaged) / (num_averaged + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """An ``avg_fn`` returning ``decay * ema + (1 - decay) * current``."""
    _check_decay(decay)

    @no_grad()
    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged) -> Tensor:
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable:
    """An ``avg_fn`` returning the running mean ``averaged + (current - averaged) / (n_averaged + 1)``."""

    @no_grad()
    def swa_update(averaged_param: Tensor, current_param: Tensor, num_averaged) -> Tensor:
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


def _by_device_and_dtype(averaged: list[Tensor], current: list[Tensor]) -> dict[tuple, tuple[list, list]]:
    """The pairs grouped by the averaged tensor's (device, dtype), in order of first appearance."""
    groups: dict[tuple, tuple[list, list]] = {}
    for a, c in zip(averaged, current):
        mine, theirs = groups.setdefault((a.device, a.dtype), ([], []))
        mine.append(a)
        theirs.append(c)
    return groups


class AveragedModel(Module):
    """A running average of ``model``'s parameters (see the module docstring); calling it runs the averaged
    copy. ``device`` moves the copy (and the averages) there; ``avg_fn`` / ``multi_avg_fn`` (at most one)
    choose the average; ``use_buffers`` averages the buffers too instead of copying them."""

    def __init__(self, model: Module, device=None, avg_fn: Callable | None = None,
                 multi_avg_fn: Callable | None = None, use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        n_averaged = tensor(0, dtype=int64)
        self.register_buffer("n_averaged", n_averaged if device is None else n_averaged.to(device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _tensors(self, model: Module) -> list[Tensor]:
        if self.use_buffers:
            return [*model.parameters(), *model.buffers()]
        return list(model.parameters())

    @no_grad()
    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers, with ``use_buffers``) into the average; the
        first call copies them. ``model`` must have the architecture the averaged copy was made from."""
        averaged = [p.detach() for p in self._tensors(self.module)]
        current = [p.detach().to(a.device) for a, p in zip(averaged, self._tensors(model))]
        n_averaged = int(self.n_averaged.item())
        if n_averaged == 0:
            for a, c in zip(averaged, current):
                a.copy_(c)
        elif self.multi_avg_fn is not None or self.avg_fn is None:
            for (device, _), (mine, theirs) in _by_device_and_dtype(averaged, current).items():
                count = self.n_averaged.to(device)
                if self.multi_avg_fn is not None:
                    self.multi_avg_fn(mine, theirs, count)
                elif device.type != "cpu":  # PyTorch's multi-tensor path, where it has foreach kernels
                    get_swa_multi_avg_fn()(mine, theirs, count)
                else:
                    swa = get_swa_avg_fn()
                    for a, c in zip(mine, theirs):
                        a.copy_(swa(a, c, count))
        else:
            for a, c in zip(averaged, current):
                a.copy_(self.avg_fn(a, c, self.n_averaged.to(a.device)))
        if not self.use_buffers:  # keep the buffers in sync with the model's
            mine, theirs = list(self.module.buffers()), list(model.buffers())
            if len(mine) != len(theirs):
                raise ValueError(f"AveragedModel.update_parameters: the model has {len(theirs)} buffers, the averaged "
                                 f"copy {len(mine)}; pass the model the AveragedModel was made from")
            for b_swa, b_model in zip(mine, theirs):
                b_swa.detach().copy_(b_model.detach().to(b_swa.device))
        self.n_averaged.add_(1)


@no_grad()
def update_bn(loader: Iterable[Any], model: Module, device=None) -> None:
    """Recompute the running statistics of every BatchNorm layer of ``model`` with one pass over
    ``loader`` (batches, or ``(input, ...)`` lists/tuples whose first entry is the input): the
    statistics are reset and averaged with equal weight over the batches (momentum None), then each
    layer's momentum and the model's training mode are restored."""
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    try:
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if device is not None:
                batch = batch.to(device)
            model(batch)
    finally:
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's lr from its current value to ``swa_lr`` (one value, or one per group) over
    ``anneal_epochs`` epochs, by a cosine or linear (``anneal_strategy``) curve, then hold it; used
    with :class:`AveragedModel` in the SWA phase."""

    def __init__(self, optimizer: Optimizer, swa_lr: float | list[float], anneal_epochs: int = 10,
                 anneal_strategy: Literal["cos", "linear"] = "cos", last_epoch: int = -1) -> None:
        swa_lrs = _per_group("swa_lr", optimizer, swa_lr)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"SWALR: anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy!r}")
        if not isinstance(anneal_epochs, int) or isinstance(anneal_epochs, bool) or anneal_epochs < 0:
            raise ValueError(f"SWALR: anneal_epochs must be equal or greater than 0, got {anneal_epochs!r}")
        for value, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = value
        self._set_anneal_func(anneal_strategy)
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> list[float]:
        self._warn_outside_step()
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        prev_lrs = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
                    for group in self.optimizer.param_groups]
        alpha = self.anneal_func(max(0, min(1, step / max(1, self.anneal_epochs))))
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(self.optimizer.param_groups, prev_lrs)]

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer and the anneal function (kept as ``_anneal_strategy``)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._check_state_dict(state_dict)
        if state_dict.get("_anneal_strategy", self._anneal_strategy) not in ("cos", "linear"):
            raise ValueError(f"SWALR.load_state_dict: bad anneal strategy {state_dict['_anneal_strategy']!r}")
        self.__dict__.update(copy.deepcopy(state_dict))
        self._set_anneal_func(self._anneal_strategy)
