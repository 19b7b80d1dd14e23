"""Run under ``mpiexec -n N``: DistributedDataParallel against one process training on the whole batch.

Every rank builds its model from a different seed (DDP must take rank 0's), trains N ranks x batch b with
AdamW and gradient clipping, and compares with the same training done here in one process on the global
batch N x b from rank 0's initial weights. Prints one JSON line per check: the largest difference.
"""

import hashlib
import json
import sys

import _device  # noqa: F401  (the suite's device: workers/_device.py)
import numpy as np

import chainrule as cr
import chainrule.distributed as dist
import chainrule.nn.functional as F
from chainrule import nn
from chainrule.models import GPT, MLP, LeNet
from chainrule.nn.parallel import DistributedDataParallel as DDP

STEPS = 4
LOCAL_BATCH = 3


def build(kind, dtype, seed):
    cr.manual_seed(seed)
    model = {"mlp": lambda: MLP(in_features=12, width=16, depth=2),
             "cnn": lambda: LeNet(channels=(3, 4), hidden=(12, 10), image_size=12),
             "gpt": lambda: GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)}[kind]()
    return model.to(dtype)


def batch(kind, dtype, n, step):
    """The global batch of ``step``: rank r trains on rows [r*b, (r+1)*b)."""
    rng = np.random.default_rng(1000 + step)
    rows = n * LOCAL_BATCH
    if kind == "gpt":
        tokens = rng.integers(0, 11, (rows, 9))
        return cr.tensor(tokens[:, :-1]), cr.tensor(tokens[:, 1:])
    shape = (rows, 12) if kind == "mlp" else (rows, 1, 12, 12)
    return cr.tensor(rng.standard_normal(shape), dtype=dtype), cr.tensor(rng.integers(0, 10, rows))


def loss_of(kind, model, x, y):
    out = model(x)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def train(kind, model, dtype, n, rank, micro=1, ddp=None):
    """STEPS AdamW steps with clipping; ``micro`` micro-batches per step (no_sync for all but the last)."""
    wrapped = ddp or model
    opt = cr.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(STEPS):
        opt.zero_grad()
        for m in range(micro):
            x, y = batch(kind, dtype, n, step * micro + m)
            if ddp is not None:
                x, y = x[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH], y[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH]
            sync = ddp is None or m == micro - 1
            if sync:
                loss_of(kind, wrapped, x, y).backward()
            else:
                with ddp.no_sync():
                    loss_of(kind, wrapped, x, y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    return model


def max_diff(a, b):
    return max(float(np.abs(p.detach().cpu().numpy() - q.detach().cpu().numpy()).max())
               for p, q in zip(a.parameters(), b.parameters()))


def digest(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def same_on_every_rank(model):
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, digest(model))
    return len(set(every)) == 1


def report(check, **values):
    if dist.get_rank() == 0:
        print(json.dumps({"check": check, **values}), flush=True)


def equivalence(n, rank):
    for kind in ("mlp", "cnn", "gpt"):
        for dtype in (cr.float64, cr.float32):
            reference = train(kind, build(kind, dtype, 100), dtype, n, rank)
            model = build(kind, dtype, 100 + rank)
            trained = train(kind, model, dtype, n, rank, ddp=DDP(model))
            report("equivalence", kind=kind, dtype=str(dtype), diff=max_diff(trained, reference),
                   bitwise_equal_across_ranks=same_on_every_rank(trained),
                   device=str(next(trained.parameters()).device.type))


def ddp_trained(kind, dtype, seed, n, rank, micro=1, **kwargs):
    model = build(kind, dtype, seed)
    ddp = DDP(model, **kwargs)
    return train(kind, model, dtype, n, rank, micro=micro, ddp=ddp), ddp


def options(n, rank):
    """Bucket sizes, gradients as bucket views and no_sync change nothing but speed."""
    dtype = cr.float64
    base = digest(ddp_trained("gpt", dtype, 7 + rank, n, rank)[0])
    for label, kwargs in (("bucket_cap_mb tiny", {"bucket_cap_mb": 1e-6}), ("bucket_cap_mb huge", {"bucket_cap_mb": 1e3}),
                          ("gradient_as_bucket_view", {"gradient_as_bucket_view": True})):
        trained, ddp = ddp_trained("gpt", dtype, 7 + rank, n, rank, **kwargs)
        report("option", option=label, buckets=len(ddp._reducer.buckets), bitwise_equal_to_default=digest(trained) == base)
    reference = train("mlp", build("mlp", dtype, 5), dtype, n, rank, micro=2)
    trained, _ = ddp_trained("mlp", dtype, 5 + rank, n, rank, micro=2)
    report("no_sync", diff=max_diff(trained, reference), bitwise_equal_across_ranks=same_on_every_rank(trained))


class Branchy(nn.Module):
    """``branch`` is used only for the samples rank 0 holds; ``never`` by nobody."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(6, 4)
        self.branch = nn.Linear(6, 4)
        self.never = nn.Linear(6, 4)

    def forward(self, x, use_branch):
        out = self.trunk(x)
        return out + self.branch(x) if use_branch else out


def unused(n, rank):
    dtype = cr.float64
    rng = np.random.default_rng(3)
    x = cr.tensor(rng.standard_normal((n * 2, 6)))
    y = cr.tensor(rng.integers(0, 4, n * 2))
    mask = cr.tensor(np.repeat((np.arange(n) == 0).astype(np.float64), 2))
    cr.manual_seed(1)
    reference = Branchy().to(dtype)
    cr.manual_seed(1)
    model = Branchy().to(dtype)
    ddp = DDP(model)
    before = model.never.weight.detach().cpu().numpy().copy()
    for m, rows, use in ((reference, slice(None), None), (ddp, slice(rank * 2, rank * 2 + 2), rank == 0)):
        opt = cr.optim.AdamW((m.module if m is ddp else m).parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            xs, ys = x[rows], y[rows]
            if use is None:
                loss = F.cross_entropy(m.trunk(xs) + m.branch(xs) * mask[:, None], ys)
            else:  # only rank 0 reaches the branch
                loss = F.cross_entropy(m(xs, use), ys)
            loss.backward()
            opt.step()
    report("unused", diff=max_diff(model, reference), never_grad_is_none=model.never.weight.grad is None,
           never_unchanged=bool((model.never.weight.detach().cpu().numpy() == before).all()),
           bitwise_equal_across_ranks=same_on_every_rank(model))


def with_batchnorm(seed):
    cr.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 10 * 10, 10),
                         nn.BatchNorm1d(10)).double()


def syncbn(n, rank):
    """SyncBatchNorm over N ranks x batch b == BatchNorm in one process over batch N*b (running stats too)."""
    reference = train("cnn", with_batchnorm(11), cr.float64, n, rank)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(with_batchnorm(11 + rank))
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 2
    trained = train("cnn", model, cr.float64, n, rank, ddp=DDP(model))
    stats = max(float(np.abs(a.cpu().numpy() - b.cpu().numpy()).max()) for a, b in zip(trained.buffers(), reference.buffers())
                if a.dtype.is_floating_point)
    report("syncbn", diff=max_diff(trained, reference), running_stats_diff=stats,
           bitwise_equal_across_ranks=same_on_every_rank(trained))


def zero(n, rank):
    """ZeroRedundancyOptimizer(AdamW) == AdamW under DDP, bit for bit; its consolidated state dict is AdamW's,
    and a ZeRO optimizer loading it continues as AdamW does."""
    from chainrule.distributed.optim import ZeroRedundancyOptimizer

    def steps(model, opt, first, count):
        ddp = DDP(model, init_sync=False)
        for step in range(first, first + count):
            opt.zero_grad()
            x, y = batch("gpt", cr.float64, n, step)
            rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
            loss_of("gpt", ddp, x[rows], y[rows]).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()

    plain_model, zero_model = build("gpt", cr.float64, 3), build("gpt", cr.float64, 3)
    plain = cr.optim.AdamW(plain_model.parameters(), lr=1e-2, weight_decay=0.1)
    sharded = ZeroRedundancyOptimizer(zero_model.parameters(), optimizer_class=cr.optim.AdamW, lr=1e-2, weight_decay=0.1)
    steps(plain_model, plain, 0, 3)
    steps(zero_model, sharded, 0, 3)
    owned = len(sharded.state)
    sharded.consolidate_state_dict(to=0)
    full = [sharded.state_dict() if rank == 0 else None]
    expected = plain.state_dict()
    same_state = rank != 0 or all(
        np.array_equal(np.asarray(a), np.asarray(b)) for i in expected["state"] for k in expected["state"][i]
        for a, b in [(_plain(full[0]["state"][i][k]), _plain(expected["state"][i][k]))])
    from chainrule.distributed.optim.zero import _as_arrays, _as_tensors

    sent = [None if full[0] is None else {**full[0], "state": _as_arrays(full[0]["state"])}]
    dist.broadcast_object_list(sent, src=0)
    full = [{**sent[0], "state": _as_tensors(sent[0]["state"])}]
    resumed = ZeroRedundancyOptimizer(zero_model.parameters(), optimizer_class=cr.optim.AdamW, lr=1e-2,
                                      weight_decay=0.1)
    resumed.load_state_dict(full[0])
    steps(plain_model, plain, 3, 2)
    steps(zero_model, resumed, 3, 2)
    report("zero", bitwise_equal_to_adamw=digest(zero_model) == digest(plain_model),
           state_share=owned / len(plain.state), consolidated_equals_adamw=same_state,
           bitwise_equal_across_ranks=same_on_every_rank(zero_model))


def _plain(value):
    return value.cpu().numpy() if isinstance(value, cr.Tensor) else value


def mismatch(n, rank):
    cr.manual_seed(0)
    model = MLP(in_features=12, width=16 if rank == 0 else 17, depth=2)
    try:
        DDP(model)
    except RuntimeError as err:
        message = str(err)
    else:
        message = "no error"
    every = [None] * n
    dist.all_gather_object(every, message)
    report("mismatch", same_error_everywhere=len(set(every)) == 1, message=every[0])


def main(checks):
    dist.init_process_group("mpi")
    n, rank = dist.get_world_size(), dist.get_rank()
    for check in checks:
        checks = {"equivalence": equivalence, "options": options, "unused": unused, "mismatch": mismatch,
                  "syncbn": syncbn, "zero": zero}
        checks[check](n, rank)


if __name__ == "__main__":
    main(sys.argv[1:])
