#!/usr/bin/env python
"""Benchmark chainrule against PyTorch eager and against the machine's float32 GEMM limit.

    python bench/run.py                       # every workload, results in BENCHMARKS.md
    python bench/run.py --quick --no-write    # a smoke run of a few seconds (what CI runs)
    python bench/run.py mlp gpt --rounds 9 --threads 1 --profile 25
    python bench/run.py wide --profile-seconds 10  # a longer call tree under a missed target

Each workload is built in both frameworks from the same weights and data, the first-step losses are
compared (a workload whose losses differ is not reported), the steps are timed interleaved (with a third
column, the same training step through ``cr.compile``, unless ``--no-compile``), chainrule's
steps are then sampled with pyinstrument (the call tree the report shows under a missed target), and each
framework's peak memory is read from a child process that trains alone. Without torch installed (or with
``--no-torch``) only the chainrule side runs.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(ROOT))

from bench import jax_steps, measure, profiles, report  # noqa: E402
from bench.workloads import Workload, workloads  # noqa: E402

FULL = {"rounds": 5, "warmup": 3, "gemm_n": 2048, "gemm_repeats": 5, "child_steps": 3, "profile_seconds": 2.0}
QUICK = {"rounds": 2, "warmup": 1, "gemm_n": 512, "gemm_repeats": 2, "child_steps": 2, "steps": 1,
         "profile_seconds": 0.2}
LOSS_RTOL, LOSS_ATOL = 2e-4, 2e-5
FIRST_CALLS = 6  # calls of a compiled step allowed to reach its replay (two signatures: 4)
CONTENDED_CORES = 0.25  # other processes busier than this during timing: say the numbers are noisy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = list(workloads())
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=f"which to run (default: all of {', '.join(names)})")
    p.add_argument("--quick", action="store_true", help="a few steps of each workload, for CI (seconds in total)")
    p.add_argument("--rounds", type=int, help=f"interleaved timing rounds (default {FULL['rounds']})")
    p.add_argument("--steps", type=int, help="timed steps per framework per round (default: per workload)")
    p.add_argument("--warmup", type=int, help=f"untimed steps per framework first (default {FULL['warmup']})")
    p.add_argument("--threads", type=int, default=2, help="threads for each framework (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    p.add_argument("--gpt-attention", choices=("sdpa", "explicit"), default="sdpa",
                   help="GPT attention: F.scaled_dot_product_attention (default) or an explicit masked softmax")
    p.add_argument("--gemm-n", type=int, help=f"size of the square GEMM probe (default {FULL['gemm_n']})")
    p.add_argument("--kernels", choices=("compiled", "numpy"), default="compiled",
                   help="chainrule's float32 kernels: numba-compiled when installed (default) or numpy's ufuncs only")
    p.add_argument("--no-torch", action="store_true", help="run the chainrule side only, even if torch is installed")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory phase (child processes)")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the compiled column (the training step through cr.compile, timed beside eager)")
    p.add_argument("--profile", type=int, metavar="N", default=0,
                   help="after timing, cProfile chainrule's steps and print the top N functions by own time")
    p.add_argument("--profile-seconds", type=float, metavar="S",
                   help=f"after timing, sample chainrule's steps with pyinstrument for S seconds, for the call trees "
                        f"the report shows under missed targets (default {FULL['profile_seconds']:g}; 0: none)")
    p.add_argument("--no-jax", action="store_true",
                   help="leave out the jax.jit twins (bench/jax_steps.py) even where JAX is installed")
    p.add_argument("--no-write", action="store_true", help="print the report but do not write BENCHMARKS.md")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report")
    p.add_argument("--json", type=Path, help="also write the raw results as JSON to this path")
    p.add_argument("--child", help=argparse.SUPPRESS)  # WORKLOAD:FRAMEWORK, the memory phase's child process
    p.add_argument("--child-steps", type=int, default=FULL["child_steps"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [w for w in args.workloads if w not in names]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    for flag, value, least in (("--threads", args.threads, 1), ("--rounds", args.rounds, 1), ("--steps", args.steps, 1),
                               ("--warmup", args.warmup, 0), ("--gemm-n", args.gemm_n, 1), ("--profile", args.profile, 0),
                               ("--profile-seconds", args.profile_seconds, 0)):
        if value is not None and value < least:
            p.error(f"{flag} must be at least {least}, got {value}")
    defaults = QUICK if args.quick else FULL
    for key in ("rounds", "warmup", "gemm_n", "profile_seconds"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.steps is None:
        args.steps = defaults.get("steps")
    args.gemm_repeats = defaults["gemm_repeats"]
    if args.quick and args.child is None:
        args.child_steps = QUICK["child_steps"]
    return args


# ----- frameworks ------------------------------------------------------------------------------------

def load_chainrule():
    """chainrule with its nn and optim subpackages (``import chainrule`` alone does not load them), and
    freed memory kept for reuse as chainrule's own fit loop and command do (``keep_freed_memory``, no
    longer applied at import; the figures in BENCHMARKS.md were all taken with it). A missing optim is
    tolerated here: the workloads that need it are skipped with the import error."""
    import chainrule
    import chainrule.nn  # noqa: F401
    from chainrule.backend.allocator import keep_freed_memory

    keep_freed_memory()

    try:
        import chainrule.optim  # noqa: F401
    except ImportError as err:
        print(f"warning: chainrule.optim is not importable ({err}); workloads with an optimizer will be skipped")
    return chainrule


def load_torch(disabled: bool):
    if disabled:
        return None
    try:
        import torch
    except ImportError:
        print("torch is not installed: running the chainrule side only")
        return None
    return torch


def limit_threads(n: int, cr, torch) -> str:
    """Restrict both frameworks to ``n`` threads; return a note when that was not fully possible."""
    if torch is not None:
        torch.set_num_threads(n)
    if cr is None:
        return ""
    try:
        cr.set_num_threads(n)
    except ImportError as err:
        return f"numpy's BLAS was not limited to {n} threads: {err}"
    return ""


# ----- one workload ----------------------------------------------------------------------------------

def _losses_agree(a: float, b: float) -> bool:
    return abs(a - b) <= LOSS_ATOL + LOSS_RTOL * abs(b)


class MissingPiece(Exception):
    """chainrule lacks something a workload needs (a module, a layer, an op): skip, do not crash."""


MISSING = (ImportError, AttributeError, NotImplementedError)


def _build(workload: Workload, cr, torch, seed: int, theirs=None) -> dict:
    """The trainers, chainrule first (the interleaving order). Torch's is built first, from the seed (or
    ``theirs`` is that trainer, already built), and its initial weights are loaded into chainrule's model.
    A chainrule build that fails for want of a piece raises MissingPiece; anything else propagates."""
    if theirs is None and torch is not None:
        theirs = workload.trainer(torch, seed)
    try:
        ours = workload.trainer(cr, seed, init_from=theirs.model if theirs else None)
    except MISSING as err:
        raise MissingPiece(f"chainrule cannot build it ({type(err).__name__}: {err})") from err
    return {"chainrule": ours, "torch": theirs} if theirs else {"chainrule": ours}


def _first_steps(result: dict, trainers: dict) -> bool:
    """Run the first step of every framework and compare the losses; False (and the reason in
    ``result``) when they differ or are not finite."""
    for trainer in trainers.values():
        trainer.step()
    losses = {name: tr.losses[0] for name, tr in trainers.items()}
    if any(loss != loss or abs(loss) == float("inf") for loss in losses.values()):
        result.update(status="refused", message=f"first-step loss is not finite: {losses}", loss_check="not finite")
        return False
    if "torch" not in losses:
        result["loss_check"] = "n/a (no torch)"
        return True
    c, t = losses["chainrule"], losses["torch"]
    result["loss_rel_diff"] = f"{abs(c - t) / max(abs(t), 1e-30):.1e}"
    if not _losses_agree(c, t):
        result.update(status="refused", loss_check="**DIFFER**",
                      message=f"first-step losses differ (chainrule {c:.7g}, torch {t:.7g}): not equal work, not reported")
        return False
    result["loss_check"] = "equal"
    return True


def _record_timing(result: dict, workload: Workload, timings: dict, gemm_best: float) -> None:
    result["time"] = {name: {"median": t.median, "min": t.min, "n": len(t.times)} for name, t in timings.items()}
    if "torch" in timings:
        result["ratio"] = timings["chainrule"].median / timings["torch"].median
        result["ratio_of_mins"] = timings["chainrule"].min / timings["torch"].min
    if workload.matmul_flops and gemm_best > 0:
        limit = workload.matmul_flops / gemm_best
        result["gemm_limit_s"] = limit
        result["vs_gemm"] = {name: t.median / limit for name, t in timings.items()}


def _bitwise_equal(a: float, b: float) -> bool:
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def _compiled_step(trainer, cr, eager_loss: float) -> tuple[dict, object]:
    """The workload's training step through ``cr.compile`` (bench/compile.py's step function) on ``trainer``,
    a second chainrule trainer built beside the eager one (same weights, data and seed), after its first
    calls (warm-up, capture, verification against eager) have run and been timed. Returns the compiled
    column's result and the step to time; the step is None, and the result's status and message say why,
    when the step cannot be captured, fails verification, or its first-step loss is not bitwise
    ``eager_loss`` (the eager trainer's, from the same random state)."""
    from bench.compile import first_calls, step_function  # here: bench.compile imports this module

    compiled = cr.compile(step_function(trainer))
    try:
        cost, results, variant = first_calls(compiled, trainer.inputs, trainer.targets, most=FIRST_CALLS)
    except cr.CompileError as err:  # its message names the step ("compile: step cannot be compiled: ..."): the why
        return {"status": "not compiled", "message": str(err).splitlines()[0].split("cannot be compiled: ", 1)[-1]}, None
    except Exception as err:  # a bug in the compiler: report it in the row, time the rest
        traceback.print_exc()
        return {"status": "failed", "message": f"{type(err).__name__}: {err}"}, None
    if variant is None or variant.stage != "replay":
        reason = "; ".join(compiled.misses) or f"stage {variant.stage if variant else 'no program'}"
        return {"status": "not compiled", "message": f"no replaying program after {len(cost)} calls ({reason})"}, None
    program = variant.program
    first_loss = float(results[0].item())
    column = {"status": "ok", "message": "", "cost": cost, "instructions": len(program.instrs),
              "traced": program.source_count, "program_mib": program.nbytes / 2**20,
              "first_loss": first_loss, "loss_check": "bitwise equal"}
    if not _bitwise_equal(first_loss, eager_loss):
        column.update(status="refused", loss_check="**DIFFER**",
                      message=f"first-step loss {first_loss!r} is not eager's {eager_loss!r}: not the same computation")
        return column, None
    return column, functools.partial(compiled, trainer.inputs, trainer.targets)


def _record_compiled(column: dict, timing, timings: dict) -> None:
    column["time"] = {"median": timing.median, "min": timing.min, "n": len(timing.times)}
    column["vs_eager"] = timing.median / timings["chainrule"].median
    if "torch" in timings:
        column["vs_torch"] = timing.median / timings["torch"].median
    column["cost_in_steps"] = sum(column["cost"]) / timing.median


def _jax_first_step(twin, eager_loss: float) -> tuple[dict, object]:
    """The first (jit-compiling) step of a ``jax.jit`` twin (bench/jax_steps.py); the result's ``loss_check``
    compares its loss with ``eager_loss`` (chainrule's, from the same weights and data), to within 1e-5
    (JAX's own tanh and reductions round differently). Returns the result and the step to time (None when
    the losses differ)."""
    start = time.perf_counter()
    twin.step()
    difference = abs(twin.first_loss - eager_loss) / max(abs(eager_loss), 1e-30)
    column = {"jit_s": time.perf_counter() - start, "first_loss": twin.first_loss, "rel_diff": difference,
              "loss_check": "equal" if difference <= 1e-5 else "**DIFFER**"}
    return column, twin.step if difference <= 1e-5 else None


def _record_jax(result: dict, timing, timings: dict) -> None:
    column = result["jax"]
    column["time"] = {"median": timing.median, "min": timing.min}
    column["vs_eager"] = timing.median / timings["chainrule"].median
    if "torch" in timings:
        column["vs_torch"] = timing.median / timings["torch"].median
    compiled = result.get("compiled", {}).get("time")
    if compiled:
        column["compiled_vs_jax"] = compiled["median"] / timing.median


def run_workload(workload: Workload, cr, torch, args, gemm_best_so_far: float, jax=None) -> tuple[dict, dict | None]:
    """Build, check and time one workload; returns its result and its trainers (None when not run).
    Status: ok; skipped (chainrule lacks a piece); refused (losses differ); failed (any other error)."""
    result = {"name": workload.name, "summary": workload.summary, "matmul_flops": workload.matmul_flops,
              "target": workload.target_vs_torch, "gemm_target": workload.target_vs_gemm, "per_op": workload.per_op,
              "status": "ok", "message": ""}
    trainers = None
    try:
        trainers = _build(workload, cr, torch, args.seed)
        # built before any step, from the same torch weights; its first step draws what eager's drew
        compiled_trainer = None if args.no_compile else _build(workload, cr, None, args.seed, trainers.get("torch"))
        twin = None  # made before any step: it copies the weights all trainers start from
        if jax is not None and workload.name in jax_steps.NAMES:
            twin = jax_steps.JaxStep(jax, workload.name, trainers["chainrule"])
        random_state = cr.get_rng_state()
        agree = _first_steps(result, trainers)
        result["losses"] = {name: tr.losses for name, tr in trainers.items()}
        if not agree:
            return result, None
        to_time = {n: tr.step for n, tr in trainers.items()}
        if compiled_trainer is not None:
            cr.set_rng_state(random_state)
            result["compiled"], compiled = _compiled_step(compiled_trainer["chainrule"], cr,
                                                          trainers["chainrule"].losses[0])
            if compiled is not None:
                to_time["compiled"] = compiled
        if twin is not None:
            result["jax"], jax_step = _jax_first_step(twin, trainers["chainrule"].losses[0])
            if jax_step is not None:
                to_time["jax"] = jax_step
        steps = args.steps or workload.steps_per_round
        timings = measure.time_interleaved(to_time, args.rounds, steps,
                                           max(0, args.warmup - 1))  # the first step was a warm-up step
        if "compiled" in timings:
            _record_compiled(result["compiled"], timings.pop("compiled"), timings)
        if "jax" in timings:
            _record_jax(result, timings.pop("jax"), timings)
    except MissingPiece as err:
        result.update(status="skipped", message=str(err))
        return result, None
    except Exception as err:  # a bug in a framework: report it, go on with the next workload
        traceback.print_exc()
        first_step = trainers is not None and not trainers["chainrule"].losses
        if first_step and isinstance(err, (ImportError, NotImplementedError)):
            result.update(status="skipped", message=f"chainrule cannot run it ({type(err).__name__}: {err})")
        else:
            result.update(status="failed", message=f"{type(err).__name__}: {err}")
        return result, None
    result["losses"] = {name: tr.losses for name, tr in trainers.items()}
    _record_timing(result, workload, timings, gemm_best_so_far)
    if args.profile_seconds:
        result["profile"] = profiles.call_tree(trainers["chainrule"].step, args.profile_seconds)
    if args.profile:
        print(f"\n--- cProfile of chainrule, {workload.name}, {steps} steps, top {args.profile} by own time ---")
        print(profiles.own_time_table(trainers["chainrule"].step, steps, args.profile))
    return result, trainers


def _measure_memory(result: dict, frameworks: list[str], args) -> None:
    memory = {}
    for framework in frameworks:
        try:
            child = measure.peak_memory(Path(__file__), result["name"], framework, args.threads, args.child_steps,
                                        args.seed, args.gpt_attention, small=args.quick)
        except (RuntimeError, OSError, ValueError) as err:
            result["memory_message"] = f"{framework} child failed: {str(err).splitlines()[0]}"
            print(err, file=sys.stderr)
            return
        if child.get("baseline_kib") is not None:
            child["growth_kib"] = child["peak_kib"] - child["baseline_kib"]
        memory[framework] = child
    result["memory"] = memory
    if "torch" in memory:
        result["memory_ratio"] = memory["chainrule"]["peak_kib"] / memory["torch"]["peak_kib"]
        if memory["torch"].get("growth_kib"):
            result["growth_ratio"] = memory["chainrule"]["growth_kib"] / memory["torch"]["growth_kib"]


# ----- the memory phase's child process --------------------------------------------------------------

def _peak_rss_kib() -> int:
    """This process's peak resident set in KiB: VmHWM from /proc (the high-water mark of this process's
    own address space). getrusage's ru_maxrss is only the fallback: on Linux it carries over the parent's
    peak across fork and exec, so a child started from a big parent would report the parent's size."""
    hwm = measure.rss_kib("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes, Linux KiB


def run_child(args) -> int:
    """Train one workload in one framework for a few steps and print (as the last line, JSON) this
    process's peak RSS and its RSS after imports. Only that framework is imported."""
    name, framework = args.child.split(":")
    lib = load_chainrule() if framework == "chainrule" else load_torch(False)
    if lib is None:
        raise SystemExit(f"child: framework {framework!r} is not available")
    limit_threads(args.threads, lib if framework == "chainrule" else None, lib if framework == "torch" else None)
    baseline = measure.rss_kib("VmRSS")
    trainer = workloads(args.gpt_attention, small=args.quick)[name].trainer(lib, args.seed)
    for _ in range(args.child_steps):
        trainer.step()
    print(json.dumps({"peak_kib": _peak_rss_kib(), "baseline_kib": baseline, "losses": trainer.losses,
                      "source": "VmHWM" if measure.rss_kib("VmHWM") is not None else "ru_maxrss"}))
    return 0


# ----- main ------------------------------------------------------------------------------------------

def _settings(args) -> dict:
    return {"quick": args.quick, "threads": args.threads, "rounds": args.rounds, "steps": args.steps,
            "warmup": args.warmup, "seed": args.seed, "gemm_n": args.gemm_n, "gemm_repeats": args.gemm_repeats,
            "child_steps": args.child_steps, "gpt_attention": args.gpt_attention,
            "profile_seconds": args.profile_seconds, "compile": not args.no_compile,
            "jax": None if args.no_jax else _jax_version()}


def _jax_version() -> str | None:
    jax = sys.modules.get("jax")
    return None if jax is None else jax.__version__


def _command(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return "python bench/run.py" + (" " + shlex.join(words) if words else "")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when every selected workload was reported (or skipped for a missing
    piece of chainrule), 1 when one failed or its losses differed, in eager or compiled."""
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    if args.kernels == "numpy":
        os.environ["CHAINRULE_KERNELS"] = "numpy"  # read by chainrule, here and in the memory phase's children
    jax = None if args.no_jax else jax_steps.load_jax(args.threads)  # XLA reads its thread flags at import
    torch = load_torch(args.no_torch)  # before limiting threads, so that threadpoolctl sees torch's pools too
    cr = load_chainrule()
    thread_note = limit_threads(args.threads, cr, torch)
    if thread_note:
        print("warning:", thread_note)
    table = workloads(args.gpt_attention, small=args.quick)
    selected = [table[n] for n in (args.workloads or table)]

    rates = measure.gemm_rates(args.gemm_n, args.gemm_repeats, torch)
    results = []
    with measure.CpuMonitor() as monitor:
        for workload in selected:
            started = time.perf_counter()
            print(f"running {workload.name} ...", end=" ", flush=True)
            result, trainers = run_workload(workload, cr, torch, args, max(rates.values()), jax)
            print(f"{result['status']} ({time.perf_counter() - started:.1f} s)", flush=True)
            results.append(result)
            del trainers  # free one workload's models before the next
    for name, rate in measure.gemm_rates(args.gemm_n, args.gemm_repeats, torch).items():
        rates[name] = max(rates[name], rate)
    best = max(rates.values())
    for workload, result in zip(selected, results):
        if result.get("vs_gemm"):  # recompute against the best rate seen in the whole run
            limit = workload.matmul_flops / best
            result["gemm_limit_s"] = limit
            result["vs_gemm"] = {n: t["median"] / limit for n, t in result["time"].items()}

    if not args.no_memory:
        print("measuring peak memory (one child process per framework and workload) ...", flush=True)
        frameworks = ["chainrule"] + (["torch"] if torch is not None else [])
        for result in results:
            if result["status"] == "ok":
                _measure_memory(result, frameworks, args)

    noise = {"load_before": monitor.load_before, "load_after": monitor.load_after,
             "other_cores": monitor.other_cores, "steal_cores": monitor.steal_cores}
    noise["contended"] = (monitor.other_cores or 0) + (monitor.steal_cores or 0) > CONTENDED_CORES
    full = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "command": _command(argv),
            "machine": report.machine_info(cr, torch, ROOT), "settings": _settings(args), "noise": noise,
            "thread_note": thread_note, "gemm": {"rates": rates, "best": best}, "workloads": results}
    text = report.render(full)
    print(text)
    if not args.no_write:
        args.output.write_text(text)
        print(f"written to {args.output}")
    if args.json:
        args.json.write_text(json.dumps(full, indent=1, default=str))
    broken = ("failed", "refused")  # a compiled step that cannot be captured is reported, not broken
    return 1 if any(r["status"] in broken or r.get("compiled", {}).get("status") in broken for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
