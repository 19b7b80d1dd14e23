"""``torch.nn.parallel``'s names: ``DataParallel`` (``data_parallel.py``); DistributedDataParallel joins later."""

from chainrule.nn.parallel.data_parallel import DataParallel

__all__ = ["DataParallel"]
