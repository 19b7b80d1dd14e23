"""Run under ``mpiexec -n N`` with a folder: ``fit`` under a process group against ``fit`` in one process.

Each process first trains the one-process reference (no group yet: global batch N*b, a one-replica
DistributedSampler, so the same order of samples), then joins the group and trains with DDP, a
DistributedSampler and the local batch b: 2 epochs with checkpoints and a JSONL log, then a resume from
the last checkpoint for a third epoch. Rank 0 prints one JSON line of what it saw. With ``--resume-alone``
(no launcher) one process continues the 2-rank run's epoch-2 checkpoint for the third epoch.
"""

import json
import os
import sys

import _device  # noqa: F401  (the suite's device: workers/_device.py)
import numpy as np

import chainrule as cr
import chainrule.distributed as dist
from chainrule import nn
from chainrule.data import DataLoader, DistributedSampler, TensorDataset
from chainrule.nn.parallel import DistributedDataParallel as DDP
from chainrule.train import fit
from chainrule.train.callbacks import JSONLLogger, ModelCheckpoint

LOCAL_BATCH = 4
ROWS = 40


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, 6))
    return TensorDataset(cr.tensor(x), cr.tensor((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)))


def model_and_optimizer(seed):
    cr.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return model, cr.optim.AdamW(model.parameters(), lr=0.05)


def run(model, opt, loader, epochs, folder, resume_from=None):
    return fit(model, loader, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs, val_data=(data().tensors),
               metrics=["accuracy"], grad_clip_norm=1.0, verbose=0, resume_from=resume_from,
               callbacks=[ModelCheckpoint(folder), JSONLLogger(os.path.join(folder, "log.jsonl"))])


def reference_run(n):
    """Three epochs in this one process over the global batches of ``n`` ranks."""
    cr.manual_seed(0)
    reference, ref_opt = model_and_optimizer(1)
    whole = DataLoader(data(), batch_size=n * LOCAL_BATCH, sampler=DistributedSampler(data(), 1, 0, seed=5))
    history = fit(reference, whole, loss=nn.CrossEntropyLoss(), optimizer=ref_opt, epochs=3, grad_clip_norm=1.0,
                  val_data=data().tensors, metrics=["accuracy"], verbose=0)
    return reference, history, whole


def resume_alone(folder, n):
    """In one process, no launcher: continue the run the n ranks checkpointed after 2 epochs, for a third."""
    reference, ref_history, whole = reference_run(n)
    model, opt = model_and_optimizer(77)
    resumed = run(model, opt, whole, 3, os.path.join(folder, "alone"),
                  resume_from=os.path.join(folder, "first", "last.safetensors"))
    diff = max(float(np.abs(p.detach().cpu().numpy() - q.detach().cpu().numpy()).max())
               for p, q in zip(model.parameters(), reference.parameters()))
    print(json.dumps({"param_diff": diff, "epochs": len(resumed.epochs),
                      "loss_diff": abs(resumed.epochs[-1]["loss"] - ref_history.epochs[-1]["loss"])}), flush=True)


def main(folder, n):
    reference, ref_history, _ = reference_run(n)

    dist.init_process_group("mpi")
    rank = dist.get_rank()
    cr.manual_seed(0)
    model, opt = model_and_optimizer(1 + rank)  # DDP takes rank 0's weights
    ddp = DDP(model)
    loader = DataLoader(data(), batch_size=LOCAL_BATCH, sampler=DistributedSampler(data(), seed=5))
    first_folder = os.path.join(folder, "first")
    first = run(ddp, opt, loader, 2, first_folder)
    model2, opt2 = model_and_optimizer(50 + rank)
    ddp2 = DDP(model2)
    resumed = run(ddp2, opt2, loader, 3, os.path.join(folder, "resumed"),
                  resume_from=os.path.join(first_folder, "last.safetensors"))
    diff = max(float(np.abs(p.detach().cpu().numpy() - q.detach().cpu().numpy()).max())
               for p, q in zip(model2.parameters(), reference.parameters()))
    losses = [r["loss"] for r in first.epochs] + [r["loss"] for r in resumed.epochs[2:]]
    ref_losses = [r["loss"] for r in ref_history.epochs]
    if rank == 0:
        ckpt = cr.io.load(os.path.join(first_folder, "last.safetensors"))
        with open(os.path.join(first_folder, "log.jsonl")) as f:
            lines = f.read().splitlines()
        print(json.dumps({
            "param_diff": diff, "loss_diff": max(abs(a - b) for a, b in zip(losses, ref_losses)),
            "val_loss_diff": abs(resumed.epochs[-1]["val_loss"] - ref_history.epochs[-1]["val_loss"]),
            "epochs": len(resumed.epochs), "checkpoint_keys": sorted(ckpt.state_dict), "checkpoint_epoch": ckpt.epoch,
            "log_lines": len(lines), "files": sorted(os.listdir(first_folder))}), flush=True)


if __name__ == "__main__":
    if sys.argv[2:] == ["--resume-alone"]:
        resume_alone(sys.argv[1], 2)
    else:
        main(sys.argv[1], int(os.environ.get("PMI_SIZE", "1")))
