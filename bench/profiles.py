"""Where chainrule's training step spends its time: the profile evidence of a benchmark report.

:func:`call_tree` samples a workload's steps with pyinstrument and returns its call tree as text; the
report (bench/report.py) shows it under every workload that misses a target, so that what stands in the
way is visible in the profile and not only in the hand-written analysis. pyinstrument samples the
Python stack, so the time of a C call (a GEMM, a numpy ufunc, a compiled kernel) is charged to the
Python function that made it. :func:`own_time_table` is cProfile's table of functions by own time, for
``python bench/run.py --profile N``.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable

__all__ = ["TREE_THRESHOLD", "call_tree", "own_time_table"]

TREE_THRESHOLD = 0.02  # frames with less than this share of the sampled time are left out of the tree
_INTERVAL = 0.0005     # seconds between samples


def call_tree(step: Callable[[], object], seconds: float) -> dict:
    """Call ``step()`` again and again for ``seconds`` (at least once) under pyinstrument. Returns
    ``{"tool", "steps", "seconds", "tree"}``: the tree of calls below the steps, each line a frame's share
    of the sampled time; or ``{"missing": reason}`` when pyinstrument is not installed."""
    try:
        import pyinstrument
        from pyinstrument import Profiler
    except ImportError:
        return {"missing": "pyinstrument is not installed (pip install pyinstrument, or chainrule[bench])"}
    profiler = Profiler(interval=_INTERVAL)
    profiler.start()
    steps, elapsed = _steps_for(step, seconds)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, time="percent_of_total",
                                processor_options={"filter_threshold": TREE_THRESHOLD})
    return {"tool": f"pyinstrument {pyinstrument.__version__}", "steps": steps, "seconds": elapsed,
            "tree": _subtree(text, _steps_for.__name__)}


def _steps_for(step: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Run ``step`` until ``seconds`` have passed; the number of steps and the time they took. Its frame is
    the root that :func:`_subtree` cuts the profile at."""
    start = time.perf_counter()
    steps = 0
    while steps == 0 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps, time.perf_counter() - start


def _subtree(text: str, root: str) -> str:
    """The lines of pyinstrument's text tree below the frame named ``root``, shifted left to its children's
    column: the frames above it (the benchmark's own calls) and the banner say nothing about the step."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        name_at = line.find(f"% {root} ")
        if name_at < 0:
            continue
        column = len(line) - len(line.lstrip(" |`-"))  # where this frame's percentage starts
        children = []
        for below in lines[i + 1:]:
            depth = len(below) - len(below.lstrip(" |`-"))
            if not below.strip() or depth <= column:
                break
            children.append(below[column + 3:])  # each level of the tree indents by three characters
        return "\n".join(children)
    return text.strip()  # the root was not sampled (a step shorter than the interval): the whole tree


def own_time_table(step: Callable[[], object], steps: int, top: int) -> str:
    """cProfile's ``top`` functions by own time over ``steps`` calls of ``step``, as pstats prints them."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
