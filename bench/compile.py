"""cr.compile beside eager: step time of the compiled training step against chainrule eager and PyTorch
eager, in one process, interleaved block by block (bench/measure.py), with the compile cost (calls 1-3
against a steady step), the program's size and memory, and for the GEMM-bound mlp the time of the
program's own matmul instructions alone; with the program fused (``fuse="exact"`` and ``fuse="fast"``, each
on its own trainer) and the model compiled alone (``cr.compile(model)``, the loss, backward's engine
and optimizer eager) in the same interleaved rounds; and, where JAX is installed, the workload's
``jax.jit`` twin (bench/jax_steps.py: overhead, mlp, cnn) from the same weights and data.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compile.py                # all four
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compile.py overhead --rounds 15
    python bench/compile.py --quick                                                      # seconds, for CI

Memory: each side's whole footprint under tracemalloc, started before its trainer is built, so that
everything the run allocates counts (model, data, optimizer state, gradients, and for the compiled step
its programs: buffers and Python objects alike): what is held between steps after the first calls, and
the peak of one more steady step. The compiler's modules are imported before either is measured.
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import jax_steps  # noqa: E402
from bench.measure import time_interleaved  # noqa: E402
from bench.run import limit_threads, load_chainrule, load_torch  # noqa: E402
from bench.workloads import workloads  # noqa: E402

NAMES = ("overhead", "mlp", "cnn", "gpt")


def step_function(trainer, forward=None):
    """The workload's training step as a function of (inputs, targets), without the value read that
    bench's Trainer makes for its equal-work check (a compiled step must not read values); ``forward``
    stands in for the model's call (the model compiled alone, ``cr.compile(model)``)."""
    model, loss_fn, opt = trainer.model, trainer.loss_fn, trainer.optimizer
    forward = forward or model

    def step(x, y):
        if opt is not None:
            opt.zero_grad()
        else:
            model.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        if opt is not None:
            opt.step()
        return loss

    return step


def first_calls(compiled, *args, most: int = 3) -> tuple[list[float], list, object]:
    """The first calls of a compiled step (warm-up, capture, verification; a step whose first call has no
    gradients yet meets a second signature at call 2 and warms up again), each timed, until a program
    replays or ``most`` calls are done: their times in seconds, their results, and the variant that holds
    the program (the replaying one when there is one; None when no program was made)."""
    cost, results = [], []
    while len(cost) < most and not _replaying(compiled):
        start = time.perf_counter()
        results.append(compiled(*args))
        cost.append(time.perf_counter() - start)
    variant = _replaying(compiled) or next((v for v in compiled.variants.values() if v.program is not None), None)
    return cost, results, variant


def _replaying(compiled):
    return next((v for v in compiled.variants.values() if v.stage == "replay"), None)


def footprint(workload, cr, seed: int, compiled: bool, module: bool = False) -> tuple[int, int]:
    """Bytes a training run with a fresh trainer holds between steps once steady, and its peak during one
    more step (tracemalloc). What the run holds is what deleting its trainer and step function frees:
    tables of the interpreter that grow while it runs (the interned strings' table, 0.9 MiB, once landed
    in one side's figure) stay after that and are not counted. ``module``: the model compiled alone, the
    rest of the step eager."""
    gc.collect()
    tracemalloc.start()
    try:
        trainer = workload.trainer(cr, seed)
        step = step_function(trainer, forward=cr.compile(trainer.model) if module else None)
        if module:
            for _ in range(4):  # calls 1-2 eager, 3-4 capture and verify the training program
                step(trainer.inputs, trainer.targets)
        elif compiled:
            step = cr.compile(step)
            first_calls(step, trainer.inputs, trainer.targets, most=6)
        for _ in range(2):  # a steady step (a replay) leaves what the next one finds
            step(trainer.inputs, trainer.targets)
        gc.collect()
        steady = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step(trainer.inputs, trainer.targets)
        rise = tracemalloc.get_traced_memory()[1] - steady
        del trainer, step
        gc.collect()
        held = steady - tracemalloc.get_traced_memory()[0]
        return held, held + rise
    finally:
        tracemalloc.stop()


def program_gemms(program):
    """A function running the program's matmuls alone (its GEMMs), each on fresh operands of the shapes,
    dtypes and layouts (C or transposed) the program passes, and how many there are."""
    def like(a):  # an ndarray, or a view of a kernel result the program takes as it comes
        transposed = len(a.shape) >= 2 and a.strides[-1] > a.strides[-2]
        return np.ones(a.shape, a.dtype, order="F" if transposed else "C")

    gemms = []
    for instr in program.instrs:
        if instr.fn is np.matmul:
            out = instr.kwargs.get("out") or (instr.outs,)  # out=, or a result taken as it comes
            arrays = [a for a in instr.args if hasattr(a, "shape")] + list(out)
            gemms.append([like(a) for a in arrays])

    def run():
        for a, b, out in gemms:
            np.matmul(a, b, out=out)

    return run, len(gemms)


def run_workload(name: str, cr, torch, args, jax=None) -> dict:
    w = workloads(small=args.quick)[name]
    eager = w.trainer(cr, args.seed)
    compiled_trainer = w.trainer(cr, args.seed)
    eager_step = step_function(eager)
    compiled = cr.compile(step_function(compiled_trainer))
    x, y = compiled_trainer.inputs, compiled_trainer.targets

    cost, first_results, variant = first_calls(compiled, x, y)
    program = variant.program

    steps = {"chainrule eager": lambda: eager_step(eager.inputs, eager.targets),
             "chainrule compiled": lambda: compiled(x, y)}
    fused = {}
    for mode in args.fuse:  # each on its own trainer: a compiled step changes its model
        fused_trainer = w.trainer(cr, args.seed)
        fused_step = cr.compile(step_function(fused_trainer), fuse=mode)
        start = time.perf_counter()
        for _ in range(3):
            fused_step(fused_trainer.inputs, fused_trainer.targets)
        fused_program = next(v for v in fused_step.variants.values() if v.program is not None).program
        fused[mode] = (time.perf_counter() - start, len(fused_program.instrs), fused_program.fused)
        steps[f"compiled fuse={mode}"] = functools.partial(fused_step, fused_trainer.inputs, fused_trainer.targets)
    module_trainer = w.trainer(cr, args.seed)  # the model compiled alone; loss, backward and optimizer eager
    module_step = step_function(module_trainer, forward=cr.compile(module_trainer.model))
    for _ in range(5):  # calls 1-2 eager, 3-4 capture and verify the training program, then replays
        module_step(module_trainer.inputs, module_trainer.targets)
    steps["compiled module"] = functools.partial(module_step, module_trainer.inputs, module_trainer.targets)
    if torch is not None:
        t = w.trainer(torch, args.seed)
        steps["torch eager"] = t.step
    jax_result = None
    if jax is not None and name in jax_steps.NAMES:
        twin = jax_steps.JaxStep(jax, name, w.trainer(cr, args.seed))
        start = time.perf_counter()
        twin.step()  # jit compiles
        jax_result = {"compile": time.perf_counter() - start, "loss": twin.first_loss,
                      "chainrule loss": float(first_results[0].item())}  # call 1 of the compiled step is eager
        steps["jax jit"] = twin.step
    gemm_count = 0
    if name == "mlp":  # timed in the same rounds, so that the machine's speed swings land on it too
        steps["its GEMMs alone"], gemm_count = program_gemms(program)
    rounds = args.rounds or (3 if args.quick else 9)
    per_round = args.steps or (2 if args.quick else w.steps_per_round)
    timings = time_interleaved(steps, rounds, per_round, warmup=1)
    medians = {k: v.median for k, v in timings.items()}
    result = {"name": name, "medians": medians, "cost": cost, "instructions": len(program.instrs),
              "traced": program.source_count, "buffers": len(program.internal),
              "program_mib": program.nbytes / 2**20, "unplanned_mib": program.unplanned_bytes / 2**20,
              "stage": variant.stage, "per_op": w.per_op, "fused": fused, "jax": jax_result}
    if gemm_count:
        result["gemm"], result["gemm_count"] = medians.pop("its GEMMs alone"), gemm_count
    if not args.no_memory:  # (the compiler's modules are imported by now: neither side counts them)
        result["memory_mib"] = {side: [b / 2**20 for b in footprint(w, cr, args.seed, side == "compiled",
                                                                  side == "compiled module")]
                                for side in ("eager", "compiled", "compiled module")}
    return result


def report(r: dict) -> list[str]:
    m = r["medians"]
    e, c = m["chainrule eager"], m["chainrule compiled"]
    lines = [f"## {r['name']}  (variant {r['stage']}; {r['instructions']} instructions from {r['traced']} traced, "
             f"{r['buffers']} buffers, {r['program_mib']:.2f} MiB planned (unplanned {r['unplanned_mib']:.2f} MiB))"]
    for label, value in m.items():
        extra = f"  ({value / r['per_op'] * 1e6:.3f} us/op)" if r["per_op"] else ""
        lines.append(f"  {label:<20} {value * 1e3:9.3f} ms{extra}")
    lines.append(f"  compiled / chainrule eager: {c / e:.3f}x; compiled module (cr.compile(model), the rest of the "
                 f"step eager) / chainrule eager: {m['compiled module'] / e:.3f}x")
    if "torch eager" in m:
        lines.append(f"  compiled / torch eager:     {c / m['torch eager']:.3f}x"
                     f"   (chainrule eager / torch eager: {e / m['torch eager']:.3f}x)")
    for mode, (cost, instructions, kernels) in r["fused"].items():
        f = m[f"compiled fuse={mode}"]
        torch_ratio = f" = {f / m['torch eager']:.4f}x torch eager" if "torch eager" in m else ""
        lines.append(f"  fuse={mode}: {instructions} instructions ({kernels} fused kernels), {f / c:.3f}x unfused"
                     f"{torch_ratio}; calls 1-3 {cost * 1e3:.0f} ms (numba compiles, or loads from its cache)")
    if r["jax"] is not None:
        j, jx = r["jax"], m["jax jit"]
        difference = abs(j["loss"] - j["chainrule loss"]) / max(abs(j["chainrule loss"]), 1e-30)
        lines.append(f"  jax jit: compiled / jax jit {c / jx:.3f}x" + "".join(
            f", fuse={mode} / jax jit {m[f'compiled fuse={mode}'] / jx:.3f}x" for mode in r["fused"])
            + (f", jax jit / torch eager {jx / m['torch eager']:.3f}x" if "torch eager" in m else "")
            + f"; its jit took {j['compile'] * 1e3:.0f} ms; step-1 loss {j['loss']:.6f} vs chainrule's "
            f"{j['chainrule loss']:.6f} (rel diff {difference:.1e})")
    if "gemm" in r:
        lines.append(f"  its {r['gemm_count']} GEMMs alone: {r['gemm'] * 1e3:.3f} ms; compiled step / GEMMs: "
                     f"{c / r['gemm']:.3f}x")
    lines.append("  compile cost, calls 1-3: " + ", ".join(f"{s * 1e3:.1f}" for s in r["cost"])
                 + f" ms = {sum(r['cost']) / c:.1f} compiled steps")
    if "memory_mib" in r:
        (eager_held, eager_peak), (held, peak) = r["memory_mib"]["eager"], r["memory_mib"]["compiled"]
        lines.append(f"  memory (model, data, optimizer state included): eager held {eager_held:.2f} MiB, step peak "
                     f"{eager_peak:.2f} MiB; compiled held {held:.2f} MiB, step peak {peak:.2f} MiB "
                     f"({peak / eager_peak:.4f}x eager's peak); compiled module held "
                     f"{r['memory_mib']['compiled module'][0]:.2f} MiB, step peak "
                     f"{r['memory_mib']['compiled module'][1]:.2f} MiB "
                     f"({r['memory_mib']['compiled module'][1] / eager_peak:.4f}x)")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python bench/compile.py", description=__doc__.split("\n\n")[0])
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=f"which to run (default: {', '.join(NAMES)})")
    p.add_argument("--quick", action="store_true", help="small shapes, few rounds")
    p.add_argument("--rounds", type=int)
    p.add_argument("--steps", type=int, help="timed steps per framework per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-jax", action="store_true", help="leave out the jax.jit twins even where JAX is installed")
    p.add_argument("--fuse", nargs="*", default=["exact", "fast"], choices=["exact", "fast"],
                   help="fusion modes timed beside the unfused program (default both; none: --fuse)")
    args = p.parse_args(argv)
    jax = None if args.no_jax else jax_steps.load_jax(args.threads)  # before anything imports it
    cr = load_chainrule()
    torch = load_torch(args.no_torch)
    note = limit_threads(args.threads, cr, torch)
    if note:
        print(note)
    for name in args.workloads or NAMES:
        print("\n".join(report(run_workload(name, cr, torch, args, jax))), flush=True)


if __name__ == "__main__":
    main()
