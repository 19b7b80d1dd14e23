"""``torch.distributed.optim``: ``ZeroRedundancyOptimizer`` (``zero.py``)."""

from chainrule.distributed.optim.zero import ZeroRedundancyOptimizer

__all__ = ["ZeroRedundancyOptimizer"]
