"""The machine description and the Markdown report (printed, and written to BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

from bench import profiles

__all__ = ["machine_info", "render"]

MEMORY_TARGET = 0.6  # chainrule peak RSS / torch peak RSS


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in ("avx", "avx2", "fma", "avx512f") if f in flags)
    except OSError:
        pass
    return ""


def _numpy_blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    import numpy as np

    numpy_dir = Path(np.__file__).resolve().parent.parent
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    ours = [p for p in pools if "numpy" in p.get("filepath", "") or str(numpy_dir) in p.get("filepath", "")] or pools
    return ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('threading_layer', '?')}, "
                     f"{p.get('architecture', '?')} kernels)" for p in ours) or "unknown"


def _torch_blas(torch) -> str:
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def _git_revision(root: Path) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"


def machine_info(cr, torch, root: Path) -> dict:
    """CPU model and cores, and the versions of everything that runs the numbers."""
    import numpy as np

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
        "torch": torch.__version__ if torch is not None else "not installed",
        "torch_blas": _torch_blas(torch) if torch is not None else "-",
        "chainrule": f"{cr.__version__} (git {_git_revision(root)})",
        "kernels": _kernels(cr),
    }


def _kernels(cr) -> str:
    """Which float32 kernels chainrule used: numba-compiled ones (the 'fast' extra) or numpy's ufuncs."""
    from chainrule.backend import kernels

    if not kernels.enabled():
        return "numpy ufuncs (compiled kernels off or numba not installed)"
    from importlib.metadata import version

    return f"compiled by numba {version('numba')}, loaded from {kernels.loaded_from()}"


# ----- formatting ------------------------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _ratio(value: float | None, target: float | None = None) -> str:
    """``1.23x``; with more decimals when two would round onto the target (1.0005 is not met)."""
    if value is None:
        return "-"
    digits = 2
    while target is not None and value != target and round(value, digits) == target and digits < 6:
        digits += 1
    return f"{value:.{digits}f}x"


def _missed(value: float | None, target: float | None) -> bool:
    """Whether a measured ratio misses its target (lower is better); False when either is unknown."""
    return value is not None and target is not None and value > target


def _verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "-"
    return "**missed**" if _missed(value, target) else "met"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def _loads(load) -> str:
    return "unknown" if load is None else " / ".join(f"{x:.2f}" for x in load)


def _cores(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _time_cell(timing: dict | None, per_op: int | None) -> str:
    if not timing:
        return "-"
    cell = f"{_duration(timing['median'])} ({_duration(timing['min'])})"
    if per_op:
        cell += f"; {timing['median'] / per_op * 1e6:.1f} µs/op"
    return cell


TIME_HEADER = ["workload", "chainrule median (min)", "torch median (min)", "chainrule/torch", "target", "",
               "chainrule/GEMM limit", "torch/GEMM limit", "GEMM target"]
COMPILED_HEADER = ["compiled (ms)", "compiled / eager", "compiled / PyTorch"]


def _compiled_cells(r: dict) -> list[str]:
    """The main table's compiled columns: median (min) in ms and the two ratios, or why there is no number."""
    c = r.get("compiled")
    if not c:
        return ["not run"] + ["-"] * 2
    if c["status"] != "ok":
        return [f"{c['status']} (why: in the compile cost table)"] + ["-"] * 2
    t = c["time"]
    cell = f"{t['median'] * 1e3:.3f} ({t['min'] * 1e3:.3f})"
    if r.get("per_op"):
        cell += f"; {t['median'] / r['per_op'] * 1e6:.2f} µs/op"
    return [cell, _ratio(c.get("vs_eager")), _ratio(c.get("vs_torch"))]


def _time_rows(results: list[dict], compiled: bool) -> list[list]:
    return [row + (_compiled_cells(r) if compiled else []) for r, row in zip(results, _eager_time_rows(results))]


def _eager_time_rows(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["name"], f"{r['status']}: {r['message']}"] + ["-"] * 7)
            continue
        t = r["time"]
        gemm = r.get("vs_gemm") or {}
        rows.append([
            r["name"], _time_cell(t.get("chainrule"), r.get("per_op")), _time_cell(t.get("torch"), r.get("per_op")),
            _ratio(r.get("ratio"), r["target"])
            + (f" (mins: {_ratio(r['ratio_of_mins'], r['target'])})" if r.get("ratio_of_mins") else ""),
            f"≤ {r['target']}", _verdict(r.get("ratio"), r["target"]),
            _ratio(gemm.get("chainrule"), r.get("gemm_target")), _ratio(gemm.get("torch")),
            "-" if r.get("gemm_target") is None else
            f"≤ {r['gemm_target']}: {_verdict(gemm.get('chainrule'), r['gemm_target'])}",
        ])
    return rows


def _compile_cost_rows(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        c = r.get("compiled")
        if not c or c["status"] != "ok" or "time" not in c:
            reason = f"{c['status']}: {c['message']}" if c else r["status"]
            rows.append([r["name"], reason] + ["-"] * 5)
            continue
        rows.append([
            r["name"], f"{c['time']['median'] * 1e3:.3f}", ", ".join(f"{s * 1e3:.1f}" for s in c["cost"]),
            f"{c['cost_in_steps']:.0f}", f"{c['instructions']} ({c['traced']})", f"{c['program_mib']:.2f}",
            c["loss_check"],
        ])
    return rows


def _jax_rows(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        j = r.get("jax")
        if not j:
            continue
        if "time" not in j:
            rows.append([r["name"], f"not timed (step-1 loss {j['first_loss']:.6f}: {j['loss_check']})"] + ["-"] * 6)
            continue
        t = j["time"]
        cell = f"{t['median'] * 1e3:.3f} ({t['min'] * 1e3:.3f})"
        if r.get("per_op"):
            cell += f"; {t['median'] / r['per_op'] * 1e6:.2f} µs/op"
        rows.append([r["name"], cell, _ratio(j.get("compiled_vs_jax")), _ratio(j.get("vs_eager")),
                     _ratio(j.get("vs_torch")), f"{j['jit_s'] * 1e3:.0f}", f"{j['rel_diff']:.1e}", j["loss_check"]])
    return rows


def _jax_section(results: list[dict], settings: dict) -> list[str]:
    """JAX jit beside the compiled step, where JAX is installed (bench/jax_steps.py)."""
    rows = _jax_rows(results)
    if not rows:
        return []
    return [
        f"## JAX jit side by side (jax {settings.get('jax')})",
        "",
        "Each workload with a twin in bench/jax_steps.py as one `jax.jit` function (forward, loss, gradients, the "
        "same update; parameters donated, so updated in place), from the chainrule trainer's weights and data, "
        "timed in the same interleaved rounds (every step waits for its loss).",
        "",
        *_table(["workload", "JAX jit (ms) median (min)", "compiled / JAX jit", "JAX jit / chainrule eager",
                 "JAX jit / PyTorch", "jit (ms)", "step-1 loss rel diff", "check"], rows),
        "",
    ]


def _compile_section(results: list[dict], settings: dict) -> list[str]:
    """Compile cost and program size per workload (the compiled column's other half)."""
    if not settings.get("compile"):
        return []
    return [
        "## Compiled step: compile cost and program size",
        "",
        "The training step through `cr.compile` (a third trainer from the same weights and data, timed in the same "
        "rounds). Its first calls run eagerly (the first without gradients is its own signature, so it warms up "
        "twice), capture, and verify the program against eager bit for bit; each is timed, in ms, until the "
        "program replays. Instructions: the program's, with the traced ones before planning in brackets; MiB: "
        "the arrays the program keeps between steps (its buffers under 4 KiB, in one arena, and folded constants; "
        "larger ones are made per replay, as eager does). `python bench/compile.py` measures both steps' whole "
        "memory.",
        "",
        *_table(["workload", "compiled step (ms)", "first calls (ms)", "their sum in steps", "instructions (traced)",
                 "arrays kept (MiB)", "step-1 loss vs eager"], _compile_cost_rows(results)),
        "",
    ]


def _memory_rows(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        mem = r.get("memory")
        if not mem:
            reason = r.get("memory_message") or ("not measured" if r["status"] == "ok" else r["status"])
            rows.append([r["name"], reason] + ["-"] * 6)
            continue
        c, t = mem.get("chainrule") or {}, mem.get("torch") or {}
        rows.append([
            r["name"], _mib(c.get("peak_kib")), _mib(t.get("peak_kib")), _ratio(r.get("memory_ratio")),
            _verdict(r.get("memory_ratio"), MEMORY_TARGET),
            _mib(c.get("growth_kib")), _mib(t.get("growth_kib")), _ratio(r.get("growth_ratio")),
        ])
    return rows


def _loss_rows(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        losses = r.get("losses") or {}
        c, t = losses.get("chainrule") or [], losses.get("torch") or []
        first = lambda xs: f"{xs[0]:.6f}" if xs else "-"
        second = " vs ".join(f"{xs[1]:.6f}" for xs in (c, t) if len(xs) > 1) or "-"
        rows.append([r["name"], first(c), first(t), r.get("loss_rel_diff", "-"), second, r.get("loss_check", "-")])
    return rows


def _contention_warning(machine: dict, settings: dict, noise: dict) -> list[str]:
    """On a shared machine, thread pools that wait at barriers (torch's OpenMP, OpenBLAS) lose far more than
    single-threaded code: every parallel region waits for its slowest thread, and that thread may be
    descheduled. Say so when we saw contention with a pool as wide as the usable cores."""
    if not noise.get("contended") or settings["threads"] < 2:
        return []
    return [f"- **Warning**: other processes were using the CPU while each framework ran {settings['threads']} threads "
            f"on {machine['usable_cores']} usable cores. Multi-threaded pools (torch's OpenMP, OpenBLAS) slow down far "
            "more than single-threaded code under such contention, which distorts the chainrule/torch ratios (usually "
            "in chainrule's favour on small ops). Trust these numbers only from an idle machine, or compare with "
            "`--threads 1`."]


def _method(settings: dict) -> list[str]:
    return [
        "## Method",
        "",
        f"- One step = zero gradients, forward, loss, backward, optimizer update, float32, the same batch every step "
        f"(data from numpy with seed {settings['seed']}). PyTorch runs eager, with default arguments, as users write it.",
        "- Both frameworks run in this one process, restricted to the same thread count (`chainrule.set_num_threads`, "
        "i.e. threadpoolctl on every loaded BLAS/OpenMP pool, and `torch.set_num_threads`).",
        f"- Timing: each framework does {settings['warmup']} warm-up steps; then {settings['rounds']} rounds, each running "
        "the timed steps of chainrule then of torch (and then of the compiled step, unless `--no-compile`), "
        "interleaved so that machine noise lands on all of them; every step is timed "
        "alone with `time.perf_counter`; the garbage collector runs between blocks of steps, never inside one. "
        "Cells show median (min) over all timed steps; ratios (and the met/missed verdicts) are of medians, with the "
        "ratio of the minimums beside them (on a busy machine the minimum is the least disturbed step).",
        "- Hardware limit: the step's matmul FLOPs (forward and the backward GEMMs actually needed, convolutions counted as "
        "their im2col GEMMs, attention as the full L x L products) divided by the best float32 GEMM rate measured in this "
        f"run ({settings['gemm_n']}x{settings['gemm_n']} squares, numpy matmul and torch.mm, best of "
        f"{settings['gemm_repeats']}, before and after the timing phase). `x/GEMM limit` = median step time / that time.",
        "- Equal work: the torch model is built from a fixed seed and its `state_dict` is loaded into the chainrule model; "
        "the first-step losses must agree within float32 tolerance (rel 2e-4, abs 2e-5) or the workload is not reported. "
        "The second-step losses (after one backward and optimizer update) are shown as a check of the update.",
        f"- Peak memory: each framework's workload runs {settings['child_steps']} steps in a fresh child process "
        "(same interpreter, same thread limit, importing only its own framework and numpy; chainrule initialises its own "
        "weights of the same shapes). Its peak RSS is `VmHWM` from /proc/self/status read by the child at the end "
        "(the kernel's high-water mark of the process's resident memory, including the interpreter and the framework's "
        "libraries; `getrusage` is not used on Linux because its ru_maxrss carries the parent's peak over fork and exec). "
        "'Growth' is that peak minus the RSS after imports, before the model was built: the training working set.",
        "- CPU contention: load averages from /proc/loadavg before and after the timing phase; from /proc/stat, the average "
        "number of cores kept busy by other processes during timing (machine busy time minus this process's CPU time) and "
        "the hypervisor's steal time.",
    ]


def _analysis(settings: dict) -> list[str]:
    """The hand-written analysis of missed targets (bench/ANALYSIS.md), for full runs."""
    path = Path(__file__).with_name("ANALYSIS.md")
    if settings["quick"] or not path.exists():
        return []
    return [*path.read_text().rstrip().splitlines(), ""]


def _missed_timing_targets(r: dict) -> list[str]:
    """The timing targets workload result ``r`` missed, each as ``what value (target)``."""
    missed = []
    if _missed(r.get("ratio"), r["target"]):
        missed.append(f"chainrule/torch {_ratio(r['ratio'], r['target'])} (target ≤ {r['target']})")
    gemm = (r.get("vs_gemm") or {}).get("chainrule")
    if _missed(gemm, r.get("gemm_target")):
        missed.append(f"chainrule/GEMM limit {_ratio(gemm, r['gemm_target'])} (target ≤ {r['gemm_target']})")
    return missed


def _profile_evidence(results: list[dict], settings: dict) -> list[str]:
    """pyinstrument's call tree of chainrule's steps (bench/profiles.py) under every missed timing target."""
    if not settings.get("profile_seconds"):
        return []
    lines = ["## Profile evidence for the missed targets", "",
             f"Each tree is chainrule's steps sampled for ~{settings['profile_seconds']:g} s after the timing "
             "(`--profile-seconds`): every line is a function's share of the sampled time with what it called below "
             f"it, functions under {profiles.TREE_THRESHOLD:.0%} left out. A C call (a GEMM, a numpy ufunc, a compiled "
             "kernel) counts for the Python function that made it, as `[self]` when that function also has callees "
             "shown.", ""]
    shown = 0
    for r in results:
        missed = _missed_timing_targets(r)
        if r["status"] != "ok" or not missed:
            continue
        shown += 1
        lines += [f"### {r['name']}: {'; '.join(missed)}", ""]
        profile = r.get("profile") or {"missing": "not profiled"}
        if "missing" in profile:
            lines += [f"No call tree: {profile['missing']}.", ""]
            continue
        lines += [f"{profile['tool']}, {profile['steps']} steps in {profile['seconds']:.1f} s:", "", "```text",
                  *profile["tree"].splitlines(), "```", ""]
    if not shown:
        lines += ["Every timing target was met in this run.", ""]
    return lines


def render(result: dict) -> str:
    """The whole report as Markdown."""
    m, s, noise, gemm = result["machine"], result["settings"], result["noise"], result["gemm"]
    lines = [
        "# chainrule benchmarks",
        "",
        f"Generated {result['date']} by `{result['command']}`"
        + (" (`--quick`: a smoke run; its numbers mean little)." if s["quick"] else "."),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cpu_flags']}); {m['cores']} logical cores, {m['usable_cores']} usable by this process; "
        f"{s['threads']} threads used by each framework",
        f"- {m['os']}; Python {m['python']}; numpy {m['numpy']} (BLAS: {m['numpy_blas']}); "
        f"torch {m['torch']} (BLAS: {m['torch_blas']}); chainrule {m['chainrule']}",
        "- chainrule's float32 kernels (exp, tanh, GELU, softmax, layer norm, 2x2 max pool, im2col/col2im): "
        f"{m.get('kernels', '-')}",
        f"- Load average (1/5/15 min) before timing: {_loads(noise['load_before'])}; after: {_loads(noise['load_after'])}",
        f"- During timing, other processes kept {_cores(noise['other_cores'])} cores busy on average; steal time "
        f"{_cores(noise['steal_cores'])} cores" + ("  **(the machine was shared: expect noise)**" if noise["contended"] else ""),
        *_contention_warning(m, s, noise),
        *([f"- Thread limit: {result['thread_note']}"] if result.get("thread_note") else []),
        "- float32 GEMM rate: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in gemm["rates"].items())
        + f"; limit used: {gemm['best'] / 1e9:.1f} GFLOP/s",
        "",
        "## Step time (chainrule vs PyTorch vs the GEMM limit)",
        "",
        *_table(TIME_HEADER + (COMPILED_HEADER if s.get("compile") else []),
                _time_rows(result["workloads"], s.get("compile"))),
        "",
        *_compile_section(result["workloads"], s),
        *_jax_section(result["workloads"], s),
        "## Peak memory of the training process",
        "",
        *_table(["workload", "chainrule peak RSS", "torch peak RSS", "chainrule/torch", f"≤ {MEMORY_TARGET}",
                 "chainrule growth", "torch growth", "growth ratio"], _memory_rows(result["workloads"])),
        "",
        "## Equal work: losses from the same initial weights",
        "",
        *_table(["workload", "chainrule step-1 loss", "torch step-1 loss", "rel diff", "step-2 loss (chainrule vs torch)",
                 "check"], _loss_rows(result["workloads"])),
        "",
        *_analysis(s),
        *_profile_evidence(result["workloads"], s),
        "## Workloads",
        "",
        *(f"- **{r['name']}**: {r['summary']} (matmul FLOPs per step: {r['matmul_flops'] / 1e9:.3f} G)"
          for r in result["workloads"]),
        "",
        *_method(s),
        "",
    ]
    return "\n".join(lines)
