"""The ``cuda`` device on CuPy: NumPy's API on an NVIDIA GPU, behind the same array-namespace seam.

CuPy is imported only when a ``cuda`` device is first asked for (``cr.device("cuda")``,
``cr.cuda.is_available()``), never at ``import chainrule``. Without CuPy (the ``cuda`` extra:
``pip install chainrule[cuda]`` installs ``cupy-cuda12x``) or without a GPU the device is absent and
:func:`install` returns None.
"""

from __future__ import annotations

__all__ = ["install", "cupy_module", "on_gpu", "set_tf32", "memory_allocated", "memory_reserved", "max_memory_allocated",
           "reset_peak_memory_stats", "empty_cache", "synchronize", "device_name"]

_STATE: dict = {"tried": False, "device": None, "cupy": None}
_ARRAY_TYPE: list = [None]  # cupy.ndarray once the device is installed


def install():
    """Register CuPy's arrays as the ``cuda`` device when CuPy imports and sees a GPU; the device or None."""
    if _STATE["tried"]:
        return _STATE["device"]
    _STATE["tried"] = True
    cupy = _import_cupy()
    if cupy is None:
        return None
    from chainrule.backend import Device, register_device

    device = Device("cuda", cupy)
    register_device(device, cupy.ndarray)
    _STATE["device"], _STATE["cupy"] = device, cupy
    _ARRAY_TYPE[0] = cupy.ndarray
    _allocator()  # peaks count from here on
    from chainrule.backends import cuda

    set_tf32(cuda.matmul.allow_tf32)
    return device


def _import_cupy():
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # CUDARuntimeError without a driver or a GPU
        return None
    return cupy


def cupy_module():
    """CuPy when the real ``cuda`` device is installed, else None (the stand-in device or no GPU)."""
    return _STATE["cupy"]


def on_gpu(array) -> bool:
    """Whether ``array`` is a CuPy array: the one type test by which the backend's functions pick their GPU
    kernels (:mod:`chainrule.backend.gpu_kernels`). False for every array while CuPy is not loaded, and for
    the stand-in device's arrays, which take the numpy formulas."""
    return type(array) is _ARRAY_TYPE[0]


def set_tf32(allow: bool) -> None:
    """Let cuBLAS compute float32 matrix products with TF32 tensor cores (``allow``) or in full float32:
    CuPy's compute type for float32 GEMMs, which it otherwise reads once from ``CUPY_TF32``. Called by
    ``chainrule.backends.cuda.matmul.allow_tf32`` when it is set, and when the device loads; nothing to do
    without CuPy."""
    cupy = _STATE["cupy"]
    if cupy is None:
        return
    from cupy._core import _routines_linalg as linalg

    linalg.set_compute_type(cupy.float32, linalg.COMPUTE_TYPE_TF32 if allow else linalg.COMPUTE_TYPE_DEFAULT)


# ----- memory: CuPy's pool, with the peak that PyTorch's allocator reports ------------------------------

class _PeakTrackingAllocator:
    """Allocates from CuPy's default memory pool and remembers the most bytes in use at once (CuPy's pool
    counts bytes in use but keeps no peak)."""

    def __init__(self, pool):
        self.pool = pool
        self.peak = 0

    def __call__(self, nbytes: int):
        memory = self.pool.malloc(nbytes)
        used = self.pool.used_bytes()
        if used > self.peak:
            self.peak = used
        return memory


def _allocator():
    allocator = _STATE.get("allocator")
    if allocator is None:
        cupy = _STATE["cupy"]
        allocator = _PeakTrackingAllocator(cupy.get_default_memory_pool())
        cupy.cuda.set_allocator(allocator)
        _STATE["allocator"] = allocator
    return allocator


def memory_allocated() -> int:
    """Bytes of GPU memory held by live arrays."""
    return _STATE["cupy"].get_default_memory_pool().used_bytes()


def memory_reserved() -> int:
    """Bytes the pool holds from the driver (live arrays and cached free blocks)."""
    return _STATE["cupy"].get_default_memory_pool().total_bytes()


def max_memory_allocated() -> int:
    """The most bytes live arrays held at once since the device was installed or the last reset."""
    return max(_allocator().peak, memory_allocated())


def reset_peak_memory_stats() -> None:
    _allocator().peak = memory_allocated()


def empty_cache() -> None:
    """Return the pool's cached free blocks to the driver."""
    _STATE["cupy"].get_default_memory_pool().free_all_blocks()
    _STATE["cupy"].get_default_pinned_memory_pool().free_all_blocks()


def synchronize() -> None:
    _STATE["cupy"].cuda.Device().synchronize()


def device_name() -> str:
    name = _STATE["cupy"].cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


# ----- host <-> device copies: pinned host memory and asynchronous copies -----------------------------------

class _StandInPinnedBuffer(bytearray):
    """Host memory the stand-in device hands out as "pinned": ordinary memory, marked so that pinning and
    ``is_pinned`` are exercised on machines without a GPU."""


def pinned_copy(host_array):
    """A copy of the host array ``host_array`` in page-locked (pinned) host memory, from which a GPU copies
    asynchronously: CuPy's pinned pool on a GPU, a marked buffer with the stand-in device; None when no
    ``cuda`` device is present (pinning then has no meaning, as in PyTorch without an accelerator)."""
    import numpy as np

    if not pinning_available():
        return None
    cupy = _STATE["cupy"]
    if cupy is not None:
        memory = cupy.cuda.alloc_pinned_memory(max(host_array.nbytes, 1))
    else:
        memory = _StandInPinnedBuffer(max(host_array.nbytes, 1))
    pinned = np.frombuffer(memory, host_array.dtype, host_array.size).reshape(host_array.shape)
    pinned[...] = host_array
    return pinned


def pinning_available() -> bool:
    """Whether :func:`pinned_copy` pins: a ``cuda`` device, CuPy or the stand-in, is present (loaded here on
    first use, as ``get_device("cuda")`` loads it)."""
    from chainrule.backend import get_device

    try:
        get_device("cuda")
    except RuntimeError:
        return False
    return True


def is_pinned(array) -> bool:
    """Whether ``array`` is a host array in memory that :func:`pinned_copy` (or CuPy's pinned allocator)
    gave out: its chain of base objects ends in a pinned buffer."""
    cupy = _STATE["cupy"]
    kinds = (_StandInPinnedBuffer,) if cupy is None else (_StandInPinnedBuffer, cupy.cuda.PinnedMemoryPointer)
    base = array
    while base is not None:
        if isinstance(base, kinds):
            return True
        base = getattr(base, "base", None) if not isinstance(base, memoryview) else base.obj
    return False


def copy_to_device(array, device, non_blocking: bool = False):
    """``array`` (on any device) as an array of ``device``. A ``non_blocking`` host-to-GPU copy is enqueued on
    CuPy's current stream and returns at once (truly asynchronous when the host array is pinned; the caller
    keeps it alive and unchanged until the stream passes the copy, as with PyTorch); every other copy is
    synchronous."""
    import numpy as np

    from chainrule.backend import to_host

    host = to_host(array)
    cupy = _STATE["cupy"]
    if non_blocking and cupy is not None and device.xp is cupy:
        out = cupy.empty(host.shape, host.dtype)
        out.set(np.ascontiguousarray(host), stream=cupy.cuda.get_current_stream())
        return out
    return device.xp.asarray(host)
