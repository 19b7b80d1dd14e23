"""In-process A/B timing of one workload: this checkout's chainrule against another git revision's, or
with the compiled kernels on against off. Both sides run in one process, interleaved block by block, so
that the machine's speed swings (2x on these VMs) land on both; the median ratio of many rounds is the
figure to quote for a change too small to see across separate runs of bench/run.py.

    python bench/ab.py gpt --against 72dfe7c     # this tree (new) vs that revision (old)
    python bench/ab.py cnn --kernels             # compiled kernels on (new) vs off (old)
    python bench/ab.py gpt --workers 1 2         # kernels in 1 thread (new) vs split over 2 (old)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import time_interleaved  # noqa: E402
from bench.workloads import workloads  # noqa: E402


def _revision_as_package(revision: str, folder: Path) -> str:
    """Extract ``revision``'s chainrule package into ``folder`` under another name; return the name."""
    name = "chainrule_" + re.sub(r"\W", "_", revision)
    archive = subprocess.run(["git", "archive", revision, "chainrule"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    package = folder / name
    (folder / "chainrule").rename(package)
    for path in package.rglob("*.py"):  # its own imports must reach its own modules
        path.write_text(re.sub(r"\bchainrule(?=[.\s]|$)", name, path.read_text(), flags=re.M))
    sys.path.insert(0, str(folder))
    return name


def _steps(args, workload):
    import chainrule as new
    from chainrule.backend.allocator import keep_freed_memory

    keep_freed_memory()  # as bench/run.py measures (process-wide, so both sides get it)
    new.set_num_threads(args.threads)
    if args.kernels or args.workers:
        from chainrule.backend import kernels, parallel

        def switched(flag):
            trainer = workload.trainer(new, args.seed)

            def step():
                if args.kernels:
                    kernels.set_enabled(flag)
                else:
                    parallel.set_workers(flag)
                trainer.step()
            return step

        settings = (True, False) if args.kernels else args.workers
        return {"new": switched(settings[0]), "old": switched(settings[1])}
    folder = Path(tempfile.mkdtemp(prefix="chainrule-ab-"))
    old = __import__(_revision_as_package(args.against, folder))
    old.set_num_threads(args.threads)
    return {"new": workload.trainer(new, args.seed).step, "old": workload.trainer(old, args.seed).step}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=list(workloads()))
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--against", metavar="REVISION", help="the git revision to compare this tree with")
    side.add_argument("--kernels", action="store_true", help="compiled kernels on (new) vs off (old)")
    side.add_argument("--workers", type=int, nargs=2, metavar=("NEW", "OLD"),
                      help="threads for the large elementwise kernels (chainrule.backend.parallel)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    workload = workloads()[args.workload]
    timing = time_interleaved(_steps(args, workload), args.rounds, workload.steps_per_round, warmup=3)
    new, old = (statistics.median(timing[k].times) for k in ("new", "old"))
    print(f"{args.workload}: new {new * 1e3:.2f} ms, old {old * 1e3:.2f} ms (medians of {len(timing['new'].times)} "
          f"steps each): new/old {new / old:.3f}; mins {timing['new'].min * 1e3:.2f} vs {timing['old'].min * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
