"""A LeNet-style convolutional classifier for 28x28 images."""

from __future__ import annotations

from chainrule import nn


class LeNet(nn.Module):
    """conv(5x5, pad 2) -> relu -> maxpool 2 -> conv(5x5) -> relu -> maxpool 2 -> fc -> relu -> fc -> relu -> fc,
    the classic LeNet-5 layout with ReLU and max pooling."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple = (6, 16), hidden: tuple = (120, 84),
                 image_size: int = 28, dropout: float = 0.0):
        super().__init__()
        c1, c2 = channels
        if image_size < 12:
            raise ValueError(f"LeNet: images must be at least 12x12, got {image_size}")
        side = ((image_size // 2) - 4) // 2  # after conv(pad 2) + pool, conv (valid 5x5) + pool
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        h1, h2 = hidden
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, h1), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
