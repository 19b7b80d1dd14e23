"""Differentiable primitives, grouped by kind; each is also bound onto Tensor (see _methods)."""

from chainrule.ops import _methods  # noqa: F401  (binds methods and operators onto Tensor)
from chainrule.ops.elementwise import *  # noqa: F401,F403
from chainrule.ops.indexing import *  # noqa: F401,F403
from chainrule.ops.linalg import *  # noqa: F401,F403
from chainrule.ops.logits import *  # noqa: F401,F403
from chainrule.ops.reduction import *  # noqa: F401,F403
from chainrule.ops.shape import *  # noqa: F401,F403
from chainrule.ops.sorting import *  # noqa: F401,F403
from chainrule.ops.view_forms import *  # noqa: F401,F403
