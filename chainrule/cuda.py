"""``torch.cuda``'s everyday calls, so device-selection code runs unchanged:
``device = cr.device("cuda" if cr.cuda.is_available() else "cpu")``.

The ``cuda`` device is CuPy on an NVIDIA GPU (:mod:`chainrule.backend.gpu`, the ``cuda`` extra) or, where
asked for, the NumPy stand-in that behaves like one (:mod:`chainrule.backend.standin`). Memory figures are
CuPy's memory pool's; the stand-in has no pool and reports 0. Without a ``cuda`` device, calls that need
one raise as PyTorch's do on a machine without CUDA; seeding, synchronising and cache calls do nothing.

chainrule draws every random number from its one generator (``chainrule.manual_seed``) on the host and
copies draws to the device, so a model initialised on the GPU equals one initialised on the CPU from the
same seed; ``manual_seed`` here seeds that generator, as the only one there is.
"""

from __future__ import annotations

import sys

from chainrule import amp as _amp_module

__all__ = ["is_available", "device_count", "current_device", "manual_seed", "manual_seed_all", "seed", "seed_all",
           "synchronize", "empty_cache", "is_bf16_supported", "get_device_name", "set_device",
           "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "memory_reserved",
           "reset_max_memory_allocated", "is_initialized", "init"]


def _device():
    from chainrule.backend import get_device

    try:
        return get_device("cuda")
    except RuntimeError:
        return None


def is_available() -> bool:
    return _device() is not None


def is_initialized() -> bool:
    return is_available()


def init() -> None:
    _require("init")


def device_count() -> int:
    return 1 if is_available() else 0


def _require(op: str) -> None:
    if not is_available():
        raise RuntimeError(f"chainrule.cuda.{op}: no CUDA device is available (chainrule.cuda.is_available() is "
                           "False: install the cuda extra, cupy-cuda12x, on a machine with an NVIDIA GPU); select "
                           "the device with chainrule.device('cuda' if chainrule.cuda.is_available() else 'cpu')")


def _gpu():
    """The CuPy backend module when the real GPU is the cuda device, else None (stand-in or none)."""
    from chainrule.backend import gpu

    _device()
    return gpu if gpu.cupy_module() is not None else None


def current_device() -> int:
    _require("current_device")
    return 0


def set_device(device) -> None:
    _require("set_device")
    from chainrule.backend import get_device

    get_device(device if not isinstance(device, int) else f"cuda:{device}")  # only index 0 exists


def get_device_name(device=None) -> str:
    _require("get_device_name")
    gpu = _gpu()
    if gpu is None:
        from chainrule.backend import standin

        return standin.NAME
    return gpu.device_name()


def manual_seed(seed: int) -> None:
    """Seeds chainrule's one generator (see the module's docstring)."""
    from chainrule.random import manual_seed as seed_all_draws

    seed_all_draws(seed)


def manual_seed_all(seed: int) -> None:
    """As :func:`manual_seed`."""
    manual_seed(seed)


def seed() -> None:
    from chainrule.random import seed as reseed

    reseed()


def seed_all() -> None:
    seed()


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work to finish (returns at once without a GPU)."""
    gpu = _gpu()
    if gpu is not None:
        gpu.synchronize()


def empty_cache() -> None:
    """Return CuPy's cached free memory blocks to the driver (nothing to do without a GPU)."""
    gpu = _gpu()
    if gpu is not None:
        gpu.empty_cache()


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: neither numpy nor CuPy has a bfloat16 dtype."""
    return False


def memory_allocated(device=None) -> int:
    """Bytes held by live GPU arrays."""
    gpu = _gpu()
    return 0 if gpu is None else gpu.memory_allocated()


def memory_reserved(device=None) -> int:
    """Bytes the memory pool holds (live arrays and cached blocks)."""
    gpu = _gpu()
    return 0 if gpu is None else gpu.memory_reserved()


def max_memory_allocated(device=None) -> int:
    """The most bytes live arrays held at once since the start or :func:`reset_peak_memory_stats`."""
    gpu = _gpu()
    return 0 if gpu is None else gpu.max_memory_allocated()


def reset_peak_memory_stats(device=None) -> None:
    gpu = _gpu()
    if gpu is not None:
        gpu.reset_peak_memory_stats()


reset_max_memory_allocated = reset_peak_memory_stats


# torch.cuda.amp's deprecated spellings of chainrule.amp's names; importable as chainrule.cuda.amp too
amp = _amp_module.cuda_amp
sys.modules.setdefault("chainrule.cuda.amp", amp)
