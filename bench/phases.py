"""Where a workload's step goes, in chainrule and in PyTorch: the median time of each phase (zero the
gradients, forward, loss, backward, optimizer update), the two frameworks taking turns in one process
block by block, as bench/run.py times whole steps. For the per-phase figures in bench/ANALYSIS.md.

    python bench/phases.py cnn                  # 4 rounds of the workload's steps per round
    python bench/phases.py gpt --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import workloads  # noqa: E402

PHASES = ("zero_grad", "forward", "loss", "backward", "update")


def _timed_step(trainer) -> list[float]:
    """One training step (Trainer.step) and the seconds of each of its phases."""
    marks = [time.perf_counter()]
    trainer.step(marks)
    return [b - a for a, b in zip(marks, marks[1:])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=list(workloads()))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import chainrule
    from chainrule.backend.allocator import keep_freed_memory

    keep_freed_memory()  # as bench/run.py measures (process-wide, so torch's phases get it too)
    libraries = {"chainrule": chainrule}
    try:
        import torch

        libraries["torch"] = torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    chainrule.set_num_threads(args.threads)
    workload = workloads()[args.workload]
    trainers = {name: workload.trainer(lib, args.seed) for name, lib in libraries.items()}
    times: dict[str, list[list[float]]] = {name: [] for name in trainers}
    for trainer in trainers.values():  # warm-up
        for _ in range(3):
            _timed_step(trainer)
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            times[name] += [_timed_step(trainer) for _ in range(workload.steps_per_round)]
    print(f"{args.workload}, median ms per phase ({args.rounds} rounds of {workload.steps_per_round} steps, "
          f"{args.threads} threads):")
    for name, rows in times.items():
        medians = [statistics.median(column) * 1e3 for column in zip(*rows)]
        cells = ", ".join(f"{phase} {value:.2f}" for phase, value in zip(PHASES, medians))
        print(f"  {name:9s} {cells}; sum {sum(medians):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
