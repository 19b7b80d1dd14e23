"""chainrule on the ``cuda`` device (CuPy) beside PyTorch eager on the same GPU, in one run.

Three workloads of issue 21, built by bench/workloads.py with ``device=``: the GPT (vocab 65, context 256,
d_model 512, 8 heads, 8 layers, batch 64, AdamW), the wide MLP (4096 units, batch 4096, SGD, float32) and the
tiny-op chain (200 ops on 16 numbers: per-op overhead). Both frameworks start from the same weights and data;
their first-step losses are compared (equal work); steps are timed interleaved (bench/measure.py), each step
followed by a device synchronize so that a step's time is its GPU work, not its launches. TF32 is off on both
sides (PyTorch's default and chainrule's), so both run full float32 GEMMs.

The report is a Markdown section ("## GPU: ...") with the GPU's name, printed, and with ``--write`` put into
bench/ANALYSIS.md (replacing the previous one), from where bench/run.py carries it into BENCHMARKS.md.

``--smoke`` runs tiny sizes for a step or two: on a machine without a GPU chainrule runs on the NumPy stand-in
device and PyTorch on the CPU, so the script is exercised by the test suite (tests/test_bench.py) and cannot
rot; its numbers mean nothing.

    python bench/gpu.py                 # on a GPU machine: the issue's sizes
    python bench/gpu.py --write         # ... and update bench/ANALYSIS.md
    python bench/gpu.py --smoke --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import measure, models  # noqa: E402
from bench.workloads import (  # noqa: E402
    OVERHEAD_OPS,
    Workload,
    _adamw,
    _chain_data,
    _gpt_data,
    _gpt_flops,
    _mse,
    _regression_data,
    _sgd,
    _sum_loss,
    _token_cross_entropy,
    workloads,
)

HEADING = "## GPU: chainrule on CuPy vs PyTorch eager (bench/gpu.py)"
ANALYSIS = ROOT / "bench" / "ANALYSIS.md"
TARGETS = {"gpt": 1.0, "wide": 1.0, "overhead": 1.5}  # chainrule time / torch time, from issue 21

FULL = {"gpt": models.GPTConfig(vocab=65, context=256, d_model=512, heads=8, layers=8), "gpt_batch": 64,
        "wide": (4096, 4096, 4096, 4096), "wide_batch": 4096, "steps": 5, "rounds": 3, "warmup": 2}
SMOKE = {"gpt": models.GPTConfig(vocab=65, context=16, d_model=32, heads=4, layers=2), "gpt_batch": 4,
         "wide": (64, 64, 64, 64), "wide_batch": 32, "steps": 2, "rounds": 1, "warmup": 1}


def gpu_workloads(sizes: dict) -> dict[str, Workload]:
    """The GPT, the wide MLP and the tiny-op chain at ``sizes``: bench/workloads.py's definitions with the
    issue's shapes (the wide MLP of 4096 units trains with SGD on an MSE loss, as the CPU suite's)."""
    cfg, batch, wide, wide_batch = sizes["gpt"], sizes["gpt_batch"], sizes["wide"], sizes["wide_batch"]
    cpu = workloads()
    arrow = "-".join(map(str, wide))
    return {
        "gpt": replace(cpu["gpt"], summary=f"char transformer: vocab {cfg.vocab}, context {cfg.context}, d_model "
                       f"{cfg.d_model}, {cfg.heads} heads, {cfg.layers} layers, batch {batch}, AdamW",
                       build_model=lambda lib, seed: models.gpt(lib, cfg), make_data=_gpt_data(batch, cfg),
                       make_loss=_token_cross_entropy, make_optimizer=_adamw, matmul_flops=_gpt_flops(batch, cfg)),
        "wide": replace(cpu["wide"], summary=f"{arrow} ReLU MLP, batch {wide_batch}, MSE, SGD lr 0.01, float32",
                        build_model=lambda lib, seed: models.mlp(lib, wide),
                        make_data=_regression_data(wide_batch, wide[0], wide[-1]), make_loss=_mse,
                        make_optimizer=_sgd(0.01)),
        "overhead": replace(cpu["overhead"], summary=f"{OVERHEAD_OPS} chained mul/add/tanh ops on 16 numbers, sum, "
                            "backward", make_data=_chain_data, make_loss=_sum_loss),
    }


# ----- the two devices -------------------------------------------------------------------------------------

def chainrule_device(smoke: bool):
    """chainrule's ``cuda`` device: CuPy on the GPU, or (``--smoke`` only) the NumPy stand-in. Returns
    ``(chainrule, synchronize, description)``."""
    import chainrule as cr
    from chainrule.backend import gpu, standin

    if gpu.install() is not None:
        return cr, gpu.synchronize, f"CuPy {gpu.cupy_module().__version__} on {gpu.device_name()}"
    if not smoke:
        raise SystemExit("bench/gpu.py: no CUDA GPU with CuPy here (pip install cupy-cuda12x); "
                         "--smoke runs it on the stand-in device")
    standin.install()
    return cr, lambda: None, standin.NAME


def torch_device(smoke: bool):
    """PyTorch's ``cuda`` device, or (``--smoke`` without a GPU) its CPU; None without torch. Returns
    ``(torch, device, synchronize, description)`` or None."""
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch, "cuda", torch.cuda.synchronize, f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}"
    if not smoke:
        raise SystemExit("bench/gpu.py: torch sees no CUDA GPU here; the comparison needs both on one GPU")
    return torch, "cpu", lambda: None, f"torch {torch.__version__} on the CPU (smoke run)"


def on_a_gpu(lib) -> bool:
    """Whether ``lib``'s ``cuda`` device is a real GPU (not the stand-in, not absent)."""
    if lib.__name__ == "torch":
        return lib.cuda.is_available()
    from chainrule.backend import gpu

    return gpu.cupy_module() is not None


def peak_bytes(lib) -> int | None:
    """The most GPU memory ``lib``'s allocator held for tensors since its last reset (None off a GPU)."""
    return int(lib.cuda.max_memory_allocated()) if on_a_gpu(lib) else None


def reset_peak(lib) -> None:
    if on_a_gpu(lib):
        lib.cuda.reset_peak_memory_stats()


# ----- one workload ----------------------------------------------------------------------------------------

def run_workload(workload: Workload, sizes: dict, cr, cr_sync, torch_side, seed: int) -> dict:
    """Both frameworks' trainers on their devices, equal first losses checked, steps timed interleaved."""
    result = {"name": workload.name, "summary": workload.summary, "target": TARGETS[workload.name]}
    steps, peaks = {}, {}
    torch_trainer = None
    if torch_side is not None:
        torch, device, torch_sync, _ = torch_side
        reset_peak(torch)
        torch_trainer = workload.trainer(torch, seed, device=device)
        steps["torch"] = _synchronized(torch_trainer.step, torch_sync)
    reset_peak(cr)
    init = None if torch_trainer is None or workload.name == "overhead" else torch_trainer.model
    cr_trainer = workload.trainer(cr, seed, init_from=init, device="cuda")
    steps = {"chainrule": _synchronized(cr_trainer.step, cr_sync), **steps}
    timings = measure.time_interleaved(steps, sizes["rounds"], sizes["steps"], sizes["warmup"])
    result["time"] = {name: {"median": t.median, "min": t.min, "n": len(t.times)} for name, t in timings.items()}
    result["losses"] = {"chainrule": cr_trainer.losses}
    peaks["chainrule"] = peak_bytes(cr)
    if torch_trainer is not None:
        result["losses"]["torch"] = torch_trainer.losses
        peaks["torch"] = peak_bytes(torch_side[0])
        result["ratio"] = timings["chainrule"].median / timings["torch"].median
        c, t = cr_trainer.losses[0], torch_trainer.losses[0]
        result["loss_check"] = "equal" if abs(c - t) <= 2e-4 * max(1.0, abs(t)) else f"differ ({c:.7g} vs {t:.7g})"
    result["peak_bytes"] = peaks
    if workload.matmul_flops:
        result["matmul_flops"] = workload.matmul_flops
    return result


def _synchronized(step, synchronize):
    def timed_step():
        step()
        synchronize()
    return timed_step


# ----- the report ------------------------------------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value * 1e3:.2f} ms" if value >= 1e-3 else f"{value * 1e6:.0f} µs"


def _time_cell(timing: dict | None, per_op: int | None = None) -> str:
    if timing is None:
        return "-"
    cell = f"{_seconds(timing['median'])} ({_seconds(timing['min'])})"
    return cell + (f"; {_seconds(timing['median'] / per_op)}/op" if per_op else "")


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def render(report: dict) -> str:
    """The Markdown section for bench/ANALYSIS.md."""
    lines = [HEADING, "",
             f"Run at commit {report['commit']} on {report['date']} by `{report['command']}`"
             + (" (`--smoke`: tiny sizes, numbers meaningless)" if report["smoke"] else "") + ".",
             f"chainrule: {report['chainrule_device']}; PyTorch: {report['torch_device']}. TF32 off on both sides; "
             f"{report['rounds']} rounds of {report['steps']} steps after {report['warmup']} warm-up steps, each step "
             "synchronized; times are medians (min).", "",
             "| workload | chainrule | torch eager | chainrule/torch | target | peak GPU memory (chainrule / torch) "
             "| first-step losses |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["workloads"]:
        per_op = OVERHEAD_OPS if r["name"] == "overhead" else None
        ratio = r.get("ratio")
        verdict = "-" if ratio is None else ("met" if ratio <= r["target"] else "missed")
        lines.append(f"| {r['name']} | {_time_cell(r['time']['chainrule'], per_op)} | "
                     f"{_time_cell(r['time'].get('torch'), per_op)} | {'-' if ratio is None else f'{ratio:.2f}x'} | "
                     f"≤ {r['target']}x ({verdict}) | {_mib(r['peak_bytes'].get('chainrule'))} / "
                     f"{_mib(r['peak_bytes'].get('torch'))} | {r.get('loss_check', 'n/a (no torch)')} |")
    lines += ["", *(f"- **{r['name']}**: {r['summary']}" for r in report["workloads"]), ""]
    return "\n".join(lines)


def write_section(section: str, path: Path = ANALYSIS) -> None:
    """Put ``section`` into ``path`` in place of the previous GPU section (or at the end)."""
    text = path.read_text() if path.exists() else ""
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section.rstrip() + "\n" + ("" if end < 0 else text[end:])
    path.write_text(text.rstrip() + "\n")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes; the stand-in device and a CPU torch without a GPU")
    p.add_argument("--only", nargs="*", choices=["gpt", "wide", "overhead"], help="a subset of the workloads")
    p.add_argument("--rounds", type=int, help="timing rounds (default 3; 1 with --smoke)")
    p.add_argument("--steps", type=int, help="timed steps per round and framework (default 5; 2 with --smoke)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--write", action="store_true", help=f"put the section into {ANALYSIS.relative_to(ROOT)}")
    args = p.parse_args(argv)
    sizes = dict(SMOKE if args.smoke else FULL)
    sizes.update({k: v for k, v in (("rounds", args.rounds), ("steps", args.steps)) if v})
    cr, cr_sync, cr_description = chainrule_device(args.smoke)
    torch_side = torch_device(args.smoke)
    chosen = gpu_workloads(sizes)
    names = args.only or list(chosen)
    results = []
    for name in names:
        print(f"{name} ...", flush=True)
        results.append(run_workload(chosen[name], sizes, cr, cr_sync, torch_side, args.seed))
    report = {"commit": _commit(), "date": datetime.date.today().isoformat(),
              "command": "python bench/gpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "smoke": args.smoke, "chainrule_device": cr_description,
              "torch_device": "torch is not installed" if torch_side is None else torch_side[3],
              "rounds": sizes["rounds"], "steps": sizes["steps"], "warmup": sizes["warmup"], "workloads": results}
    section = render(report)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.write:
        write_section(section)
    unequal = [r["name"] for r in results if r.get("loss_check", "equal") != "equal"]
    if unequal:
        print(f"first-step losses differ for {', '.join(unequal)}: not equal work", file=sys.stderr)
    return 1 if unequal else 0


if __name__ == "__main__":
    sys.exit(main())
