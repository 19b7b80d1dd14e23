"""``torch.distributions.utils``: probs/logits conversions, clamping, broadcasting, lower-triangle packing and
``lazy_property``."""

from __future__ import annotations

import math
from functools import update_wrapper

from chainrule import creation
from chainrule.backend import np
from chainrule.distributions.distribution import broadcast_all
from chainrule.tensor import Tensor

__all__ = ["broadcast_all", "clamp_probs", "euler_constant", "is_tensor_like", "lazy_property", "logits_to_probs",
           "probs_to_logits", "tril_matrix_to_vec", "vec_to_tril_matrix"]

euler_constant = 0.57721566490153286060  # Euler-Mascheroni


def is_tensor_like(x) -> bool:
    return isinstance(x, Tensor)


def clamp_probs(probs: Tensor) -> Tensor:
    """Into [eps, 1 - eps] for the dtype's eps, so that logs stay finite."""
    eps = float(np.finfo(probs._data.dtype).eps)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs: Tensor, is_binary: bool = False) -> Tensor:
    """log p (categorical) or log p - log(1 - p) (binary), of the clamped probabilities."""
    p = clamp_probs(probs)
    return p.log() - (-p).log1p() if is_binary else p.log()


def logits_to_probs(logits: Tensor, is_binary: bool = False) -> Tensor:
    return logits.sigmoid() if is_binary else logits.softmax(-1)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), without overflow for large x (the families' log-normalisers and Jacobians use it)."""
    return x.clamp(min=0) + (-x.abs()).exp().log1p()


def _tril_positions(n: int, diag: int) -> list[int]:
    """Flat positions i * n + j of the entries with j - i <= diag, row by row."""
    return [i * n + j for i in range(n) for j in range(n) if j - i <= diag]


def tril_matrix_to_vec(mat: Tensor, diag: int = 0) -> Tensor:
    """The entries on and below diagonal ``diag`` of the last two dimensions, row by row."""
    n = mat.shape[-1]
    if not -n <= diag < n:
        raise ValueError(f"diag ({diag}) provided is outside [{-n}, {n - 1}].")
    index = creation.tensor(_tril_positions(n, diag), dtype=None, device=mat.device).long()
    return mat.reshape(*(tuple(mat.shape[:-2]) + (n * n,))).index_select(-1, index)


def vec_to_tril_matrix(vec: Tensor, diag: int = 0) -> Tensor:
    """The inverse: a square matrix with ``vec`` on and below diagonal ``diag`` (zeros elsewhere); a product with
    a constant placement matrix, so gradients flow back exactly."""
    m = vec.shape[-1]
    # m = n (n + 1) / 2 + diag n - |diag| (|diag| + 1) / 2 ... solved for n
    n = round((-(1 + 2 * diag) + math.sqrt((1 + 2 * diag) ** 2 + 8 * m + 4 * abs(diag) * (diag + 1))) / 2)
    positions = _tril_positions(n, diag)
    if len(positions) != m:
        raise ValueError("Incorrect shape of vec: it does not fill a lower triangle.")
    place = np.zeros((m, n * n))
    place[np.arange(m), positions] = 1.0
    flat = vec @ creation.tensor(place, dtype=vec.dtype, device=vec.device)
    return flat.reshape(*(tuple(vec.shape[:-1]) + (n, n)))


class lazy_property:
    """A property computed on first access and then stored on the instance (PyTorch's ``lazy_property``)."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        update_wrapper(self, wrapped)

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return self
        value = self.wrapped(instance)
        setattr(instance, self.wrapped.__name__, value)
        return value
