"""``torch.backends``' switches, accepted so programs that set them run unchanged.

``cudnn.benchmark``/``deterministic``/``enabled``/``allow_tf32`` and ``cuda.matmul.allow_tf32`` are plain
settable flags: chainrule's CPU backend has no cuDNN or TF32 paths, so they change nothing today.
``mps.is_available()`` is False. (``chainrule.backend``, singular, is the array backend; this is not it.)
"""

from __future__ import annotations

from chainrule.backends import cuda, cudnn, mps

__all__ = ["cudnn", "cuda", "mps", "set_float32_matmul_precision", "get_float32_matmul_precision"]

_MATMUL_PRECISION = ["highest"]


def set_float32_matmul_precision(precision: str) -> None:
    """Accepted as in PyTorch ("highest", "high", "medium"); a speed-only switch that chainrule's float32
    matmuls (always full precision on the CPU) do not need."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', got {precision!r}")
    _MATMUL_PRECISION[0] = precision


def get_float32_matmul_precision() -> str:
    return _MATMUL_PRECISION[0]
