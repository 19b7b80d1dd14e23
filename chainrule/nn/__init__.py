"""Neural-network building blocks: Parameter, Module, layers, losses, init and functional."""

from chainrule.nn.parameter import Parameter

__all__ = ["Parameter"]
