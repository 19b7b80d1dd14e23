"""Neural-network building blocks: Parameter, Module, layers, losses, init and functional."""

from chainrule.nn import functional, init, parallel, utils
from chainrule.nn.module import Module
from chainrule.nn.modules import *  # noqa: F401,F403
from chainrule.nn.parallel import DataParallel
from chainrule.nn.parameter import Parameter
