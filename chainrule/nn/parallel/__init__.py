"""``torch.nn.parallel``'s names: ``DataParallel`` (``data_parallel.py``) and ``DistributedDataParallel``
(``distributed.py``, several processes over MPI)."""

from chainrule.nn.parallel.data_parallel import DataParallel
from chainrule.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
