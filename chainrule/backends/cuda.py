"""``torch.backends.cuda``: ``matmul.allow_tf32`` and friends.

``matmul.allow_tf32`` is the float32 matmul precision (:func:`chainrule.set_float32_matmul_precision`) seen as a
flag, as in PyTorch: True is "high" (or "medium"), False "highest", the default. On the ``cuda`` device it
decides whether cuBLAS may compute float32 products with TF32 tensor cores
(:func:`chainrule.backend.gpu.set_tf32`, applied when the flag changes and when the device loads); on the
CPU it changes nothing. The reduced-precision-reduction flags are accepted and have no effect.
"""

from __future__ import annotations

import importlib.util

PRECISIONS = ("highest", "high", "medium")


class _MatmulFlags:
    def __init__(self):
        self._float32_precision = "highest"
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True

    @property
    def allow_tf32(self) -> bool:
        return self._float32_precision != "highest"

    @allow_tf32.setter
    def allow_tf32(self, flag: bool) -> None:
        self.set_float32_precision("high" if flag else "highest")

    def set_float32_precision(self, precision: str) -> None:
        """The one place the precision changes: kept here and applied to CuPy's GEMMs when CuPy is loaded."""
        if precision not in PRECISIONS:
            raise RuntimeError(f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', got {precision!r}")
        self._float32_precision = precision
        from chainrule.backend import gpu

        gpu.set_tf32(self.allow_tf32)


matmul = _MatmulFlags()


def is_built() -> bool:
    """Whether the ``cuda`` backend's library (CuPy) is installed; a GPU may still be absent."""
    return importlib.util.find_spec("cupy") is not None
