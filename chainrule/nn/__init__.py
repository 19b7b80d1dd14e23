"""Neural-network building blocks: Parameter, Module, layers, losses, init and functional."""

from chainrule.nn import functional, init
from chainrule.nn.module import Module
from chainrule.nn.modules import *  # noqa: F401,F403
from chainrule.nn.parameter import Parameter

try:  # gradient clipping utilities
    from chainrule.nn import utils
except ImportError:  # pragma: no cover - only while nn/utils.py is being written
    pass
