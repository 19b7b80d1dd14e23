#!/usr/bin/env python
"""Data-parallel training over MPI on this machine: the recipe GPT's step (``chainrule train gpt``'s model,
AdamW, clipping, global batch 32) in one process against two ranks of ``mpiexec -n 2``.

    python bench/distributed.py                    # every configuration, a markdown table at the end
    python bench/distributed.py --steps 30 --repeats 3

Configurations (median ms per step over ``--steps`` after warm-up, the range over ``--repeats`` runs):

- 1 process, 1 BLAS thread, batch 32;  1 process, 2 threads, batch 32 (the best one process does here);
- 2 ranks x 1 thread, batch 16 each, DistributedDataParallel (default 25 MB buckets: the recipe GPT's
  3.3 MB of gradients go in a 1 MiB first bucket and one more);
- the same with a slow network simulated in the communicator: the buckets go over one link one after
  another at ``bandwidth`` and each arrives ``latency`` after it was sent (the reducer waits for the last
  at the end of backward), once with small buckets launched during backward (overlap) and once with one
  bucket, sent when backward ends (no overlap).

Also reported for each 2-rank run: the wait at the end of backward once the slower rank got there (what
communication adds to the step) against a blocking allreduce of all gradients, so the share of
communication hidden behind backward.
Needs mpi4py and mpiexec (``pip install -e '.[mpi]'``). Two cores are two cores: nothing here says
anything about more ranks, real networks or other machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GLOBAL_BATCH = 32


# ----- one run (in each process) -----------------------------------------------------------------------------
def _slow_network_reducer(latency_s: float, bytes_per_s: float):
    """DistributedDataParallel's reducer with simulated transfer times (see the module docstring)."""
    from chainrule.nn.parallel import distributed as ddp_module

    class SlowNetworkReducer(ddp_module._Reducer):
        def arm(self):
            super().arm()
            self.link_free_at = 0.0
            self.done_at = 0.0

        def launch(self, bucket):
            super().launch(bucket)
            # the link sends one bucket after another at bytes_per_s; each arrives latency_s after it was sent
            self.link_free_at = max(time.perf_counter(), self.link_free_at) + bucket.flat.nbytes / bytes_per_s
            self.done_at = self.link_free_at + latency_s

        def finalize(self):
            super().finalize()
            time.sleep(max(0.0, self.done_at - time.perf_counter()))

    return SlowNetworkReducer


class _TimedReducer:
    """Wraps the reducer class so that each finalize (the end of backward, where the reducer waits for the
    allreduces) notes when it began and ended."""

    spans: list = []  # (start, end) of each finalize, perf_counter seconds (one clock for all ranks here)
    early: list = []  # per finalize: (buckets launched during backward, how many of them MPI had completed)

    @classmethod
    def around(cls, reducer_class):
        class Timed(reducer_class):
            def finalize(self):
                start = time.perf_counter()
                launched = [b.request for b in self.buckets[:self.next_bucket]]
                cls.early.append((len(launched), sum(1 for request in launched if request.Test())))
                super().finalize()
                cls.spans.append((start, time.perf_counter()))

        return Timed


def worker(args) -> dict:
    import numpy as np

    import chainrule as cr
    from chainrule import distributed as dist
    from chainrule.models import GPT
    from chainrule.nn import functional as F
    from chainrule.nn.utils import clip_grad_norm_
    from chainrule.recipes import RECIPES

    cr.set_num_threads(args.threads)
    world, rank = 1, 0
    if dist.wants_distributed():
        dist.init_process_group("mpi")
        world, rank = dist.get_world_size(), dist.get_rank()
    cr.manual_seed(0)
    model = GPT(**RECIPES["gpt"].model)
    wrapped = model
    if world > 1:
        from chainrule.nn.parallel import distributed as ddp_module

        base = ddp_module._Reducer
        if args.latency_ms is not None:
            base = _slow_network_reducer(args.latency_ms / 1e3, args.bandwidth_mb_s * 1e6)
        ddp_module._Reducer = _TimedReducer.around(base)
        wrapped = ddp_module.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    optimizer = cr.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    block = model.block_size
    rng = np.random.default_rng(0)
    local = GLOBAL_BATCH // world
    tokens = rng.integers(0, RECIPES["gpt"].model["vocab_size"], (GLOBAL_BATCH, block + 1))
    x, y = cr.tensor(tokens[rank * local:(rank + 1) * local, :-1]), cr.tensor(tokens[rank * local:(rank + 1) * local, 1:])
    times = []
    for step in range(args.warmup + args.steps):
        if world > 1:
            dist.barrier()  # every rank starts the step together
        start = time.perf_counter()
        optimizer.zero_grad()
        logits = wrapped(x)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {"ms_per_step": 1e3 * statistics.median(times), "world": world}
    if world > 1:
        result["wait_ms"] = _exposed_wait_ms(_TimedReducer.spans[args.warmup:])
        early = _TimedReducer.early[args.warmup:]
        result["buckets_launched_during_backward"] = sum(n for n, _ in early)
        result["of_them_complete_when_backward_ended"] = sum(done for _, done in early)
        result["blocking_allreduce_ms"] = _blocking_allreduce_ms(model, args)
        times_all = [None] * world
        dist.all_gather_object(times_all, result["ms_per_step"])
        result["ms_per_step"] = max(times_all)  # the step ends when the slowest rank's does
    return result if rank == 0 else {}


def _exposed_wait_ms(spans: list) -> float:
    """Median over steps of the time communication added after the last rank finished its backward (so a rank
    waiting for a slower one does not count as communication)."""
    from chainrule import distributed as dist

    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, spans)
    exposed = [max(0.0, max(s[1] for s in step) - max(s[0] for s in step)) for step in zip(*every)]
    return 1e3 * statistics.median(exposed)


def _blocking_allreduce_ms(model, args) -> float:
    """One blocking allreduce of all the gradients in one buffer (with the simulated network, its time)."""
    import numpy as np

    import chainrule as cr
    from chainrule import distributed as dist

    flat = cr.tensor(np.zeros(sum(p.numel() for p in model.parameters()), np.float32))
    spans = []
    for _ in range(10):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        spans.append(time.perf_counter() - start)
    measured = statistics.median(spans)
    if args.latency_ms is not None:
        measured += args.latency_ms / 1e3 + flat._data.nbytes / (args.bandwidth_mb_s * 1e6)
    return 1e3 * measured


# ----- the driver --------------------------------------------------------------------------------------------
def _mpiexec() -> str | None:
    here = Path(sysconfig.get_path("scripts")) / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


CONFIGS = [
    ("1 process, 1 thread, batch 32", 1, 1, []),
    ("1 process, 2 threads, batch 32", 1, 2, []),
    ("2 ranks x 1 thread, batch 16 each", 2, 1, []),
    ("2 ranks, simulated 1 ms + 50 MB/s link, 0.5 MB buckets (overlap)", 2, 1,
     ["--latency-ms", "1", "--bandwidth-mb-s", "50", "--bucket-cap-mb", "0.5"]),
    ("2 ranks, simulated 1 ms + 50 MB/s link, one bucket (no overlap)", 2, 1,
     ["--latency-ms", "1", "--bandwidth-mb-s", "50", "--bucket-cap-mb", "1000"]),
]


def run_config(ranks: int, threads: int, extra: list, steps: int, warmup: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CHAINRULE_DIST_TIMEOUT": "300"}
    command = [sys.executable, __file__, "--worker", "--threads", str(threads), "--steps", str(steps),
               "--warmup", str(warmup), *extra]
    if ranks > 1:
        command = [_mpiexec(), "-n", str(ranks), *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _span(values: list, digits: int = 1) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if round(low, digits) == round(high, digits) else f"{low:.{digits}f}-{high:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--latency-ms", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth-mb-s", type=float, default=100.0, help=argparse.SUPPRESS)
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args)
        if result:
            print(json.dumps(result), flush=True)
        return
    if _mpiexec() is None:
        sys.exit("bench/distributed.py needs mpiexec and mpi4py: pip install -e '.[mpi]'")
    results = {label: [] for label, *_ in CONFIGS}
    for _ in range(args.repeats):  # configurations interleaved, so the machine's swings land on all of them
        for label, ranks, threads, extra in CONFIGS:
            results[label].append(run_config(ranks, threads, extra, args.steps, args.warmup))
            print(f"{label}: {results[label][-1]}", file=sys.stderr, flush=True)
    best_single = min(statistics.median(r["ms_per_step"] for r in results[CONFIGS[1][0]]),
                      statistics.median(r["ms_per_step"] for r in results[CONFIGS[0][0]]))
    print("| configuration | ms / step | vs best 1 process | wait at end of backward, ms | blocking allreduce, ms "
          "| communication hidden |")
    print("|---|---|---|---|---|---|")
    for label, runs in results.items():
        steps = [r["ms_per_step"] for r in runs]
        speed = f"{best_single / statistics.median(steps):.2f}x"
        if runs[0]["world"] == 1:
            print(f"| {label} | {_span(steps)} | {speed} | | | |")
            continue
        waits, blocking = [r["wait_ms"] for r in runs], [r["blocking_allreduce_ms"] for r in runs]
        hidden = [max(0.0, 1 - w / b) for w, b in zip(waits, blocking)]
        print(f"| {label} | {_span(steps)} | {speed} | {_span(waits)} | {_span(blocking)} | "
              f"{_span([100 * h for h in hidden], 0)} % |")


if __name__ == "__main__":
    main()
