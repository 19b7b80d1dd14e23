"""The models the ``chainrule`` command trains: an MLP for digits, a LeNet-style CNN for MNIST, and a
character-level GPT for Shakespeare. Each is built from a plain config dict (saved with checkpoints)."""

from chainrule.models.cnn import LeNet
from chainrule.models.gpt import GPT
from chainrule.models.mlp import MLP

MODELS = {"mlp": MLP, "cnn": LeNet, "gpt": GPT}


def build_model(kind: str, config: dict):
    """The model of ``kind`` ('mlp', 'cnn', 'gpt') for an architecture config as saved in checkpoints."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose one of {sorted(MODELS)}")
    return MODELS[kind](**config)


__all__ = ["MLP", "LeNet", "GPT", "MODELS", "build_model"]
