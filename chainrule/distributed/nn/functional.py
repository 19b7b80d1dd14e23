"""Differentiable collectives, as ``torch.distributed.nn.functional``: they return a new tensor instead of
writing in place, and their backward is the matching collective on the gradients."""

from __future__ import annotations

from chainrule.autograd.function import Function

__all__ = ["all_reduce"]


class _AllReduceSum(Function):
    """y = the sum over ranks of x. Every rank's loss depends on every rank's x, so the gradient reaching
    x on a rank is the sum over ranks of the gradients at y: again an allreduce."""

    @staticmethod
    def forward(ctx, x, group):
        from chainrule.distributed import all_reduce

        ctx.group = group
        out = x.detach().clone().contiguous()
        all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        from chainrule.distributed import all_reduce

        summed = grad.detach().clone().contiguous()
        all_reduce(summed, group=ctx.group)
        return summed, None


def all_reduce(tensor, op=None, group=None):
    """The sum of ``tensor`` over the group's ranks, as a new tensor that gradients flow back through
    (only ``ReduceOp.SUM``, the one PyTorch's differentiable all_reduce supports for every op's backward)."""
    from chainrule.distributed import ReduceOp

    if op not in (None, ReduceOp.SUM):
        raise ValueError(f"distributed.nn.functional.all_reduce: only ReduceOp.SUM is differentiable here, got {op}")
    return _AllReduceSum.apply(tensor, group)
