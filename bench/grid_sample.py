"""grid_sample's forward + backward against PyTorch eager (one thread), and optionally against another git
revision of chainrule, in one process, interleaved round by round; medians of the times and of the ratios.
The case: input (16, 32, 64, 64) float32 sampled at a (16, 64, 64, 2) grid of points in [-1.1, 1.1].

    python bench/grid_sample.py                      # this tree vs torch
    python bench/grid_sample.py --against 8da7d4d    # ... and vs that revision
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ab import _revision_as_package  # noqa: E402


def _step(lib, functional, x, grid, mode):
    def run():
        xs, gs = lib.tensor(x, requires_grad=True), lib.tensor(grid, requires_grad=True)
        functional.grid_sample(xs, gs, mode=mode, align_corners=False).sum().backward()
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", metavar="REVISION", help="a git revision of chainrule to compare with")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    import torch

    import chainrule as cr

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 32, 64, 64)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (16, 64, 64, 2)).astype(np.float32)
    libs = {"chainrule": cr, "torch": torch}
    if args.against:
        libs["old"] = __import__(_revision_as_package(args.against, Path(tempfile.mkdtemp(prefix="chainrule-gs-"))))
    for mode in ("bilinear", "nearest", "bicubic"):
        steps = {name: _step(lib, lib.nn.functional, x, grid, mode) for name, lib in libs.items()}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        line = "  ".join(f"{name} {statistics.median(t) * 1e3:.0f} ms" for name, t in times.items())
        for other in [n for n in steps if n != "chainrule"]:
            ratio = statistics.median(c / o for c, o in zip(times["chainrule"], times[other]))
            line += f"  chainrule/{other} {ratio:.2f}"
        print(f"{mode:9s} {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
