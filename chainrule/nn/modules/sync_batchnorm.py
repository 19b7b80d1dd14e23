"""``nn.SyncBatchNorm``: batch normalisation whose statistics cover the batch of every rank of a process
group, so N ranks x batch b normalise exactly as one process with batch N*b would.

In training, with a process group of more than one rank, the per-channel sums of x and then of
(x - mean)^2 are summed over the ranks by a differentiable allreduce (``distributed.nn.functional``):
backward sums the statistics' gradients over the ranks in the same way. Otherwise (eval, or one process)
it is ``BatchNorm``. ``convert_sync_batchnorm`` swaps every BatchNorm of a model for one.
"""

from __future__ import annotations

from chainrule.nn import functional as F
from chainrule.nn.modules.normalization import _BatchNorm

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over (N, C, ...) input with statistics synchronised over ``process_group``."""

    _expected_dims = tuple(range(2, 9))

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, dtype=None, device=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)
        self.process_group = process_group

    def _group_size(self) -> int:
        from chainrule import distributed as dist

        return dist.get_world_size(self.process_group) if dist.is_initialized() else 1

    def forward(self, x):
        if not self.training or self._group_size() <= 1:
            return super().forward(x)
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected (N, {self.num_features}, ...) input, got shape {tuple(x.shape)}")
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / int(self.num_batches_tracked.item())
        return self._synchronised(x, momentum or 0.0)

    def _synchronised(self, x, momentum: float):
        from chainrule import distributed as dist
        from chainrule.distributed.nn.functional import all_reduce

        dims = (0,) + tuple(range(2, x.ndim))
        shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
        count = x.new_tensor([x.numel() // x.shape[1]]).long()
        dist.all_reduce(count, group=self.process_group)
        total = int(count.item())
        if total <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got {total}")
        mean = all_reduce(x.sum(dims), group=self.process_group) / total
        centered = x - mean.reshape(shape)
        var = all_reduce((centered * centered).sum(dims), group=self.process_group) / total
        if self.track_running_stats:
            F._update_running(self.running_mean, self.running_var, mean.detach(), var.detach(), momentum, total)
        out = centered * (var.reshape(shape) + self.eps).rsqrt()
        if self.weight is not None:
            out = out * self.weight.reshape(shape)
        if self.bias is not None:
            out = out + self.bias.reshape(shape)
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm in it replaced by a SyncBatchNorm holding the same parameters and
        running statistics (a BatchNorm passed itself comes back as a new SyncBatchNorm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                       process_group)
            if module.affine:
                sync.weight, sync.bias = module.weight, module.bias
            if module.track_running_stats:
                sync.running_mean, sync.running_var = module.running_mean, module.running_var
                sync.num_batches_tracked = module.num_batches_tracked
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                setattr(module, name, converted)
        return module
