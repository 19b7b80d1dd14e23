"""The mean step time of one workload over many steps, how often Python's garbage collector ran
meanwhile (per generation, per 1,000 steps) and how long its runs took per step. bench/run.py reports
medians of rounds, which drop the rare full collections; a user's training loop pays them. chainrule
only, in this process; torch is imported first (when installed), so that a full collection walks the
heap of a bench/run.py process. To compare two revisions, run this script in a checkout of each,
alternately: the mean step time moves with the machine's speed level from one process to the next, the
time in the collector much less.

    python bench/collections_per_step.py overhead --steps 3000
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import workloads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=list(workloads()))
    p.add_argument("--steps", type=int, default=3000, help="timed steps (default 3000)")
    p.add_argument("--warmup", type=int, default=100, help="untimed steps first (default 100)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401  (its objects are part of what a full collection walks in bench/run.py)
    except ImportError:
        pass
    import chainrule
    from chainrule.backend.allocator import keep_freed_memory

    keep_freed_memory()  # as bench/run.py measures
    chainrule.set_num_threads(args.threads)
    trainer = workloads()[args.workload].trainer(chainrule, args.seed)
    for _ in range(args.warmup):
        trainer.step()
    runs = [0, 0, 0]
    collecting = [0.0, 0.0]  # seconds in the collector; when the current run started

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            runs[info["generation"]] += 1
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    gc.callbacks.append(count)
    try:
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.step()
        seconds = time.perf_counter() - start
    finally:
        gc.callbacks.remove(count)
    per_thousand = " / ".join(f"{n * 1000 / args.steps:.1f}" for n in runs)
    print(f"{args.workload}: mean {seconds / args.steps * 1e3:.3f} ms per step over {args.steps} steps; "
          f"collections per 1,000 steps (generation 0 / 1 / 2): {per_thousand}; "
          f"{collecting[0] / args.steps * 1e3:.3f} ms per step in the collector; {len(gc.get_objects())} objects tracked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
