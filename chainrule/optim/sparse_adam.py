"""SparseAdam: ``torch.optim.SparseAdam``'s name and signature, refused at construction.

PyTorch's SparseAdam only steps sparse gradients (from ``nn.Embedding(sparse=True)``), updating the moments
of the rows a batch touched. chainrule's gradients are always dense, so there is nothing for it to do: the
class exists so that ``optim.SparseAdam`` resolves and a program that names it learns why it cannot run,
at once rather than at its first step (where PyTorch would fail for dense gradients).
"""

from __future__ import annotations

from chainrule.optim.optimizer import Optimizer, ParamsT

__all__ = ["SparseAdam"]


class SparseAdam(Optimizer):
    """Not supported: chainrule has no sparse gradients. Use :class:`chainrule.optim.Adam` (PyTorch's own
    advice for dense gradients) or :class:`chainrule.optim.AdamW`. Every construction raises
    NotImplementedError."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, maximize: bool = False) -> None:
        raise NotImplementedError(
            "SparseAdam: chainrule has no sparse gradients (every .grad is dense), so SparseAdam has nothing to "
            "step; use optim.Adam(params, lr=..., betas=..., eps=...) instead"
        )
