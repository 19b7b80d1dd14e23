"""``torch.cuda``'s everyday calls, so device-selection code runs unchanged:
``device = cr.device("cuda" if cr.cuda.is_available() else "cpu")``.

``is_available()`` says whether chainrule's array backend has a ``cuda`` device (none yet: the CPU
backend is numpy). Seeding, synchronising and cache calls are harmless no-ops without one; calls that
need a GPU raise as PyTorch's do on a machine without CUDA.
"""

from __future__ import annotations

__all__ = ["is_available", "device_count", "current_device", "manual_seed", "manual_seed_all", "seed", "seed_all",
           "synchronize", "empty_cache", "is_bf16_supported", "get_device_name", "set_device",
           "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats"]


def is_available() -> bool:
    from chainrule.backend import get_device

    try:
        get_device("cuda")
    except RuntimeError:
        return False
    return True


def device_count() -> int:
    return 1 if is_available() else 0


def _no_gpu(op: str):
    if not is_available():
        raise RuntimeError(f"chainrule.cuda.{op}: no CUDA device is available (chainrule.cuda.is_available() is "
                           "False); select the device with chainrule.device('cuda' if chainrule.cuda.is_available() "
                           "else 'cpu')")


def current_device() -> int:
    _no_gpu("current_device")
    return 0


def set_device(device) -> None:
    _no_gpu("set_device")


def get_device_name(device=None) -> str:
    _no_gpu("get_device_name")
    return "cuda"


def manual_seed(seed: int) -> None:
    """No separate GPU generator: chainrule draws from one generator (seed it with chainrule.manual_seed)."""


def manual_seed_all(seed: int) -> None:
    """As :func:`manual_seed`."""


def seed() -> None:
    """No-op without a GPU generator."""


def seed_all() -> None:
    """No-op without a GPU generator."""


def synchronize(device=None) -> None:
    """Nothing runs asynchronously on the CPU backend: returns at once."""


def empty_cache() -> None:
    """No GPU memory cache to release."""


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return False


def memory_allocated(device=None) -> int:
    return 0


def max_memory_allocated(device=None) -> int:
    return 0


def reset_peak_memory_stats(device=None) -> None:
    """No GPU memory statistics to reset."""
