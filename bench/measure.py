"""Measurements: interleaved step timing, the float32 GEMM rate, CPU contention, and peak memory of a
training process (each framework's workload in its own child process)."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Timing", "time_interleaved", "gemm_rates", "CpuMonitor", "peak_memory", "rss_kib"]


@dataclass
class Timing:
    """Per-step wall times in seconds (after warm-up) of one framework on one workload."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def time_interleaved(steps: dict[str, Callable[[], object]], rounds: int, steps_per_round: int,
                     warmup: int) -> dict[str, Timing]:
    """Time each framework's step function in alternation: every framework warms up, then each round runs
    ``steps_per_round`` timed steps of the first framework, then of the second, and so on, so that noise
    from the machine lands on all of them. The garbage collector runs between blocks, never inside one."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            gc.collect()
            for _ in range(steps_per_round):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return {name: Timing(t) for name, t in times.items()}


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm the BLAS (thread pool start-up, page faults on the output)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_rates(n: int, repeats: int, torch=None) -> dict[str, float]:
    """Best float32 GEMM rate, in FLOP/s, of an n x n by n x n product with numpy (the BLAS chainrule
    calls) and, when given, torch.mm, under the thread limits already in force."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = np.empty((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    rates = {"numpy": flops / _best_seconds(lambda: np.matmul(a, b, out=out), repeats)}
    if torch is not None:
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        rates["torch"] = flops / _best_seconds(lambda: torch.mm(ta, tb, out=tout), repeats)
    return rates


def _cpu_jiffies() -> dict[str, int] | None:
    """Machine-wide busy and steal jiffies from /proc/stat (None where there is no /proc)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields] + [0] * 10
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return {"busy": user + nice + system + irq + softirq, "steal": steal}


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


class CpuMonitor:
    """What else used the CPU while we measured: load averages before and after, and from /proc/stat the
    machine's busy CPU time minus this process's own, i.e. the average number of cores other processes
    kept busy, plus the hypervisor's steal time."""

    def __init__(self):
        self.load_before = self.load_after = None
        self.other_cores = self.steal_cores = None

    def __enter__(self) -> CpuMonitor:
        self.load_before = _loadavg()
        self._jiffies = _cpu_jiffies()
        self._own = self._own_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        own = self._own_seconds() - self._own
        jiffies = _cpu_jiffies()
        self.load_after = _loadavg()
        if jiffies is None or self._jiffies is None or wall <= 0:
            return
        hz = os.sysconf("SC_CLK_TCK")
        busy = (jiffies["busy"] - self._jiffies["busy"]) / hz
        self.other_cores = max(0.0, busy - own) / wall
        self.steal_cores = (jiffies["steal"] - self._jiffies["steal"]) / hz / wall

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def rss_kib(field: str = "VmRSS") -> int | None:
    """This process's resident set (``VmRSS``) or its high-water mark (``VmHWM``) in KiB, from /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory(run_py: Path, workload: str, framework: str, threads: int, steps: int, seed: int,
                gpt_attention: str, small: bool, timeout: float = 900.0) -> dict:
    """Run ``steps`` training steps of one workload in one framework in a fresh interpreter (the same
    one that runs us) and return what it reports: its peak RSS, and its RSS after imports, before the
    model was built, with the sizes of ``--quick`` when ``small``. Raises RuntimeError with the child's stderr when it fails."""
    cmd = [sys.executable, str(run_py), "--child", f"{workload}:{framework}", "--threads", str(threads),
           "--child-steps", str(steps), "--seed", str(seed), "--gpt-attention", gpt_attention]
    if small:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {workload}:{framework} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
