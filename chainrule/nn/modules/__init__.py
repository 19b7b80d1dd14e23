"""Layers, grouped by kind."""

from chainrule.nn.modules.activation import *  # noqa: F401,F403
from chainrule.nn.modules.container import *  # noqa: F401,F403
from chainrule.nn.modules.conv import *  # noqa: F401,F403
from chainrule.nn.modules.distance import *  # noqa: F401,F403
from chainrule.nn.modules.dropout import *  # noqa: F401,F403
from chainrule.nn.modules.lazy import *  # noqa: F401,F403
from chainrule.nn.modules.linear import *  # noqa: F401,F403
from chainrule.nn.modules.loss import *  # noqa: F401,F403
from chainrule.nn.modules.normalization import *  # noqa: F401,F403
from chainrule.nn.modules.padding import *  # noqa: F401,F403
from chainrule.nn.modules.rnn import *  # noqa: F401,F403
from chainrule.nn.modules.sparse import *  # noqa: F401,F403
from chainrule.nn.modules.sync_batchnorm import *  # noqa: F401,F403
from chainrule.nn.modules.transformer import *  # noqa: F401,F403
from chainrule.nn.modules.upsampling import *  # noqa: F401,F403
