"""Small models and data for the fit-loop tests (kept tiny so the whole folder runs in seconds)."""

import chainrule as cr
from chainrule import nn


def make_mlp(n_in: int = 4, hidden: int = 16, n_out: int = 2, dropout: float = 0.0) -> nn.Module:
    layers = [nn.Linear(n_in, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


def separable(n: int, n_in: int = 4, dtype=None):
    """A linearly separable two-class problem: y = [x . w > 0]."""
    x = cr.randn(n, n_in, dtype=dtype)
    w = cr.tensor([1.0, -2.0, 0.5, 1.5][:n_in], dtype=x.dtype)
    y = ((x * w).sum(1) > 0).long()
    return x, y


def params_of(model) -> list:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]
