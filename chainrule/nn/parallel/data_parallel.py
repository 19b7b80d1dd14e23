"""``nn.DataParallel``: what PyTorch's is on a machine without GPUs, a transparent wrapper.

chainrule runs a model on one device, so there is nothing to scatter, replicate or gather: ``forward``
calls the wrapped module, as PyTorch's does when it finds no accelerator (it then also ignores
``device_ids`` and keeps ``device_ids == []``). Programs written for PyTorch keep working unchanged:
the model sits at ``.module`` and checkpoints carry its keys under ``module.`` (``"module.fc.weight"``),
exactly as PyTorch's DataParallel saves them. Several processes training one model are
``DistributedDataParallel``'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chainrule.nn.module import Module

__all__ = ["DataParallel"]


class DataParallel(Module):
    """Wrap ``module``; ``forward(*inputs, **kwargs)`` returns ``module(*inputs, **kwargs)``.

    Args (accepted as PyTorch's, with no effect here): ``device_ids``, ``output_device``, ``dim``.
    """

    def __init__(self, module: Module, device_ids: Sequence[int] | None = None, output_device: int | None = None,
                 dim: int = 0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected an nn.Module to wrap, got {type(module).__name__}")
        self.module = module
        self.device_ids: list[int] = []  # as PyTorch's without an accelerator, whatever was asked for
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)
