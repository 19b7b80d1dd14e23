"""What autocast's op entries cost the eager path while no autocast region is open, once a program has
used autocast (before its first use they are not there: see chainrule/amp.py). Interleaved in one process
as bench/ab.py does: this tree after one empty ``autocast`` region (new) against another revision (old).

    python bench/amp_overhead.py mlp --against 224643c --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ab import _revision_as_package  # noqa: E402
from bench.measure import time_interleaved  # noqa: E402
from bench.workloads import workloads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=list(workloads()))
    p.add_argument("--against", metavar="REVISION", required=True)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    workload = workloads()[args.workload]

    import chainrule as new
    from chainrule.backend.allocator import keep_freed_memory

    keep_freed_memory()
    with new.autocast("cpu"):  # puts the op entries in place; none is active while timing
        pass
    old = __import__(_revision_as_package(args.against, Path(tempfile.mkdtemp(prefix="chainrule-amp-"))))
    for lib in (new, old):
        lib.set_num_threads(args.threads)
    steps = {"new": workload.trainer(new, 0).step, "old": workload.trainer(old, 0).step}
    timing = time_interleaved(steps, args.rounds, workload.steps_per_round, warmup=3)
    fast, slow = (statistics.median(timing[k].times) for k in ("new", "old"))
    print(f"{args.workload} (autocast entries in place, no region open): new {fast * 1e3:.3f} ms, old "
          f"{slow * 1e3:.3f} ms (medians): new/old {fast / slow:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
