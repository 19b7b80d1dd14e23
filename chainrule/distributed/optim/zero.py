"""``ZeroRedundancyOptimizer``: optimizer state sharded over the ranks (ZeRO stage 1), as PyTorch's.

Every parameter gets an owner rank (largest first, each to the rank holding the fewest elements so far,
the same on every rank). Gradients stay fully averaged by DistributedDataParallel, so clipping and the
rest of the step are unchanged; ``step()`` updates only the parameters this rank owns, with the wrapped
optimizer's own update (so the state, e.g. AdamW's moments, exists on the owner alone), then each owner
broadcasts its parameters to the others. ``consolidate_state_dict(to=0)`` gathers the whole state on one
rank, where ``state_dict()`` is then the ordinary optimizer's dict (``io.save`` takes it as it is);
``load_state_dict`` takes that full dict on every rank and keeps the owned entries.
"""

from __future__ import annotations

from chainrule.autograd.grad_mode import enable_grad
from chainrule.optim.optimizer import Optimizer, params_with_grad

__all__ = ["ZeroRedundancyOptimizer"]


class ZeroRedundancyOptimizer(Optimizer):
    """Wrap ``optimizer_class(params, **defaults)``, keeping its state only for this rank's share of the
    parameters. ``param_groups`` are the wrapped optimizer's (schedulers work unchanged)."""

    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view: bool = False,
                 overlap_with_ddp: bool = False, **defaults):
        from chainrule.distributed._group import resolve

        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer: overlap_with_ddp is not implemented in chainrule")
        group = resolve(process_group, "ZeroRedundancyOptimizer")
        if group is None:
            raise ValueError("ZeroRedundancyOptimizer: this rank is not in process_group")
        self.optim = optimizer_class(list(params), **defaults)
        if type(self.optim)._update_group is Optimizer._update_group:
            raise TypeError(f"ZeroRedundancyOptimizer: {optimizer_class.__name__} updates in its own step(), so its "
                            "update cannot be limited to this rank's parameters")
        super().__init__(self.optim.param_groups, self.optim.defaults)
        self.param_groups = self.optim.param_groups
        self.state = self.optim.state
        self.process_group = group
        self.rank = group.rank()
        self.parameters_as_bucket_view = parameters_as_bucket_view
        self._owner = _partition([p for g in self.param_groups for p in g["params"]], group.size())
        self._consolidated: dict | None = None

    def step(self, closure=None):
        """Update this rank's parameters, then take every other parameter from its owner."""
        from chainrule.distributed import broadcast

        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        work = [(g, [p for p in params_with_grad(g) if self._owner[id(p)] == self.rank]) for g in self.param_groups]
        for group, mine in work:
            if mine:
                self.optim._update_group(group, mine)
        for group in self.param_groups:
            for p in group["params"]:
                broadcast(p, src=self.process_group.ranks[self._owner[id(p)]], group=self.process_group)
        return loss

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's share of the state on rank ``to`` (a collective: every rank calls it)."""
        from chainrule.distributed import gather_object

        mine = self.optim.state_dict()
        shares = [None] * self.process_group.size() if self.process_group.ranks[self.rank] == to else None
        gather_object(_as_arrays(mine["state"]), shares, dst=to, group=self.process_group)  # tensors don't pickle
        if shares is None:
            self._consolidated = None
            return
        state = {}
        for share in shares:
            state.update(_as_tensors(share))
        self._consolidated = {"state": dict(sorted(state.items())), "param_groups": mine["param_groups"]}

    def state_dict(self) -> dict:
        if self._consolidated is None:
            raise RuntimeError("ZeroRedundancyOptimizer: the optimizer state has not been consolidated on this rank; "
                               "call consolidate_state_dict(to=rank) on every rank first")
        return self._consolidated

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a full (consolidated) state dict on every rank; keep the state of this rank's parameters."""
        self.optim.load_state_dict(state_dict)
        for p in list(self.optim.state):
            if self._owner.get(id(p)) != self.rank:
                del self.optim.state[p]
        self._consolidated = None

    def add_param_group(self, param_group: dict) -> None:
        if hasattr(self, "optim") and hasattr(self, "_owner"):
            raise NotImplementedError("ZeroRedundancyOptimizer: add_param_group after construction is not "
                                      "implemented in chainrule")
        super().add_param_group(param_group)


def _as_arrays(state: dict) -> dict:
    """An optimizer state's tensors as numpy arrays, marked, for sending (chainrule tensors never pickle)."""
    from chainrule.tensor import Tensor

    return {i: {k: ("tensor", v.cpu().numpy()) if isinstance(v, Tensor) else ("value", v) for k, v in entry.items()}
            for i, entry in state.items()}


def _as_tensors(state: dict) -> dict:
    from chainrule.creation import tensor

    return {i: {k: tensor(v) if kind == "tensor" else v for k, (kind, v) in entry.items()} for i, entry in state.items()}


def _partition(params: list, ranks: int) -> dict:
    """id(param) -> owner rank: largest first, each to the rank with the fewest elements so far."""
    load = [0] * ranks
    owner = {}
    for p in sorted(params, key=lambda p: -p.numel()):  # sorted() is stable: ties keep the given order
        if id(p) in owner:
            continue
        rank = min(range(ranks), key=lambda r: load[r])
        owner[id(p)] = rank
        load[rank] += p.numel()
    return owner
