"""``torch.backends``' switches, accepted so programs that set them run unchanged.

``cudnn.benchmark``/``deterministic``/``enabled``/``allow_tf32`` are plain settable flags (chainrule has no
cuDNN paths). ``cuda.matmul.allow_tf32`` and the float32 matmul precision are one setting, as in PyTorch, which
decides whether CuPy's float32 GEMMs on the ``cuda`` device may use TF32 (:mod:`chainrule.backends.cuda`).
``mps.is_available()`` is False. (``chainrule.backend``, singular, is the array backend; this is not it.)
"""

from __future__ import annotations

from chainrule.backends import cuda, cudnn, mps

__all__ = ["cudnn", "cuda", "mps", "set_float32_matmul_precision", "get_float32_matmul_precision"]

def set_float32_matmul_precision(precision: str) -> None:
    """As PyTorch's: "highest" (the default), "high" or "medium". Anything but "highest" lets float32 matmuls on
    the ``cuda`` device use TF32 (it is ``cuda.matmul.allow_tf32``); the CPU's are always full precision."""
    cuda.matmul.set_float32_precision(precision)


def get_float32_matmul_precision() -> str:
    return cuda.matmul._float32_precision
