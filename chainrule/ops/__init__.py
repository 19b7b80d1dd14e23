"""Differentiable primitives, grouped by kind; each is also bound onto Tensor (see _methods)."""

from chainrule.ops import _methods  # noqa: F401  (binds methods and operators onto Tensor)
from chainrule.ops._spellings import with_numpy_spellings as _with_numpy_spellings
from chainrule.ops.complex import *  # noqa: F401,F403
from chainrule.ops.elementwise import *  # noqa: F401,F403
from chainrule.ops.elementwise_more import *  # noqa: F401,F403
from chainrule.ops.indexing import *  # noqa: F401,F403
from chainrule.ops.linalg import *  # noqa: F401,F403
from chainrule.ops.linalg_more import *  # noqa: F401,F403
from chainrule.ops.logits import *  # noqa: F401,F403
from chainrule.ops.reduction import *  # noqa: F401,F403
from chainrule.ops.search import *  # noqa: F401,F403
from chainrule.ops.shape import *  # noqa: F401,F403
from chainrule.ops.sorting import *  # noqa: F401,F403
from chainrule.ops.statistics import *  # noqa: F401,F403
from chainrule.ops.view_forms import *  # noqa: F401,F403

# cr.cumsum(x, axis=0), cr.cat(xs, axis=1): numpy's argument names, as PyTorch accepts them
globals().update({_name: _with_numpy_spellings(_fn) for _name, _fn in list(globals().items())
                  if callable(_fn) and not _name.startswith("_") and not isinstance(_fn, type)})
