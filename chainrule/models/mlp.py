"""A multi-layer perceptron classifier."""

from __future__ import annotations

from chainrule import nn


class MLP(nn.Module):
    """Flatten, then ``depth`` hidden layers of ``width`` units with an activation, then a linear classifier."""

    def __init__(self, in_features: int = 64, width: int = 128, depth: int = 2, num_classes: int = 10,
                 activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if depth < 0 or width < 1 or in_features < 1 or num_classes < 1:
            raise ValueError(f"MLP: impossible sizes in_features={in_features}, width={width}, depth={depth}, "
                             f"num_classes={num_classes}")
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
        if activation not in acts:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of {sorted(acts)}")
        layers: list[nn.Module] = [nn.Flatten()]
        size = in_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), acts[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
