"""The benchmark suite (bench/) does not rot: a ``--quick`` run completes, reports every workload, and
checks that both frameworks did equal work; without torch the chainrule side still runs. No timing
assertions: the numbers themselves are the suite's output, not its correctness. The tests that run the
scripts in fresh interpreters are marked ``slow`` (a plain ``python -m pytest`` runs them; ``-m "not slow"``
leaves them out)."""

import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import gpu as gpu_bench  # noqa: E402
from bench import models, profiles, report  # noqa: E402
from bench import run as bench_run  # noqa: E402
from bench.workloads import _dense_flops, workloads  # noqa: E402

NAMES = ["overhead", "mlp", "cnn", "gpt", "wide", "lstm", "unet"]
# a torch that cannot be imported, as on a machine without it (children are fresh interpreters, but a
# run without torch starts none for torch)
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")


def _bench(tmp_path, *args, without_torch=False):
    """Run bench/run.py in a fresh interpreter; return (stdout, results read back from --json)."""
    out = tmp_path / "results.json"
    argv = [str(RUN), "--quick", "--no-write", "--threads", "1", "--json", str(out), *args]
    cmd = [sys.executable, "-c", WITHOUT_TORCH, *argv] if without_torch else [sys.executable, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout, json.loads(out.read_text())


def _table_rows(stdout: str, heading: str) -> dict[str, str]:
    """The rows of the Markdown table under ``heading``, by workload name."""
    section = stdout.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return {row.split("|")[1].strip(): row for row in rows[1:]}


@pytest.mark.slow
def test_quick_run_with_torch_reports_every_workload_with_equal_losses(tmp_path):
    pytest.importorskip("torch")
    stdout, result = _bench(tmp_path, "--no-memory")
    assert [w["name"] for w in result["workloads"]] == NAMES
    for w in result["workloads"]:
        assert w["status"] == "ok", w
        assert w["loss_check"] == "equal", w
        c, t = w["losses"]["chainrule"], w["losses"]["torch"]
        assert abs(c[0] - t[0]) <= 2e-5 + 2e-4 * abs(t[0])
        assert set(w["time"]) == {"chainrule", "torch"}
        assert all(v["n"] == 2 and 0 < v["min"] <= v["median"] for v in w["time"].values())
        assert w["ratio"] == pytest.approx(w["time"]["chainrule"]["median"] / w["time"]["torch"]["median"])
        assert (w["matmul_flops"] > 0) == ("vs_gemm" in w)
    times = _table_rows(stdout, "## Step time")
    assert list(times) == NAMES
    assert all(("met" in row) or ("missed" in row) for row in times.values())
    losses = _table_rows(stdout, "## Equal work")
    assert all(row.rstrip(" |").endswith("equal") for row in losses.values())
    assert result["gemm"]["best"] > 0 and "torch" in result["gemm"]["rates"]
    # the call trees: one per workload, shown in the report under exactly the workloads that missed a target
    for w in result["workloads"]:
        _check_call_tree(w["profile"])
    evidence = stdout.split("## Profile evidence for the missed targets", 1)[1].split("\n## ", 1)[0]
    shown = [line.split()[1].rstrip(":") for line in evidence.splitlines() if line.startswith("### ")]
    assert shown == [w["name"] for w in result["workloads"] if report._missed_timing_targets(w)]


def _check_call_tree(profile: dict) -> None:
    if importlib.util.find_spec("pyinstrument") is None:
        assert "pyinstrument is not installed" in profile["missing"]
        return
    assert profile["steps"] >= 1 and profile["seconds"] > 0
    first, *rest = profile["tree"].splitlines()
    share, name = first.split()[:2]
    # The steps are the root. Their share of the samples is not checked beyond being a share: the rest is
    # the sampling loop's own time, which a busy machine can stretch in a quick run of a few steps.
    assert name == "Trainer.step" and 0 < float(share.rstrip("%")) <= 100
    assert any("backward" in line for line in rest)


@pytest.mark.slow
def test_quick_run_without_torch_runs_the_chainrule_side_and_measures_memory(tmp_path):
    stdout, result = _bench(tmp_path, without_torch=True)
    assert "torch is not installed" in stdout
    assert [w["name"] for w in result["workloads"]] == NAMES
    for w in result["workloads"]:
        assert w["status"] == "ok", w
        assert w["loss_check"] == "n/a (no torch)"
        assert list(w["time"]) == ["chainrule"] and "ratio" not in w
        mem = w["memory"]["chainrule"]
        assert "torch" not in w["memory"]
        assert mem["peak_kib"] >= mem["baseline_kib"] > 0
        assert len(mem["losses"]) == 2 and all(np.isfinite(mem["losses"]))
    assert list(_table_rows(stdout, "## Peak memory")) == NAMES
    assert result["machine"]["torch"] == "not installed"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc tuning is glibc's")
def test_the_harness_measures_with_freed_memory_kept():
    # chainrule no longer tunes malloc at import; the harness turns it on, as its figures were taken with it
    code = ("from bench import run; from chainrule.backend import allocator; before = allocator.applied(); "
            "run.load_chainrule(); print(before, allocator.applied())")
    env = {k: v for k, v in os.environ.items() if k != "CHAINRULE_MALLOC_TUNING"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["False", "True"]


def test_differing_first_losses_refuse_the_workload():
    class Fake:
        def __init__(self, loss):
            self.loss, self.losses = loss, []

        def step(self):
            self.losses.append(self.loss)

    result = {"name": "mlp", "status": "ok", "message": ""}
    assert not bench_run._first_steps(result, {"chainrule": Fake(2.0), "torch": Fake(2.1)})
    assert result["status"] == "refused" and "differ" in result["message"]
    assert result["loss_check"] == "**DIFFER**"
    close = {"name": "mlp", "status": "ok", "message": ""}
    assert bench_run._first_steps(close, {"chainrule": Fake(2.0), "torch": Fake(2.0 * (1 + 1e-6))})
    assert close["status"] == "ok" and close["loss_check"] == "equal"
    nan = {"name": "mlp", "status": "ok", "message": ""}
    assert not bench_run._first_steps(nan, {"chainrule": Fake(float("nan")), "torch": Fake(float("nan"))})
    assert nan["status"] == "refused"


def test_a_missing_chainrule_piece_skips_the_workload():
    mlp = workloads(small=True)["mlp"]
    broken = dataclasses.replace(mlp, make_optimizer=lambda lib, params: lib.optim.NoSuchOptimizer(params))
    result, trainers = bench_run.run_workload(broken, bench_run.load_chainrule(), None, bench_run.parse_args(["--quick"]), 1e9)
    assert result["status"] == "skipped" and "NoSuchOptimizer" in result["message"]
    assert trainers is None and "time" not in result


def test_a_refused_workload_is_reported_without_numbers():
    refused = {"name": "gpt", "summary": "s", "matmul_flops": 1, "target": 1.0, "gemm_target": None, "per_op": None,
               "status": "refused", "message": "first-step losses differ", "loss_check": "**DIFFER**",
               "losses": {"chainrule": [1.0], "torch": [2.0]}}
    full = {"date": "d", "command": "c", "thread_note": "",
            "machine": {k: "x" for k in ("cpu", "cpu_flags", "cores", "usable_cores", "os", "python", "numpy",
                                         "numpy_blas", "torch", "torch_blas", "chainrule")},
            "settings": {"quick": False, "threads": 2, "rounds": 1, "warmup": 1, "seed": 0, "gemm_n": 8,
                         "gemm_repeats": 1, "child_steps": 1},
            "noise": {"load_before": None, "load_after": None, "other_cores": None, "steal_cores": None,
                      "contended": False},
            "gemm": {"rates": {"numpy": 1e9}, "best": 1e9}, "workloads": [refused]}
    text = report.render(full)
    row = _table_rows(text, "## Step time")["gpt"]
    assert "refused: first-step losses differ" in row and " ms" not in row
    assert "**DIFFER**" in _table_rows(text, "## Equal work")["gpt"]


def test_the_call_tree_starts_at_the_steps():
    """pyinstrument's text tree cut below the sampling loop's frame, its children shifted to the left edge."""
    text = """
  _     ._   __/__   _ _  _  _ _/_   Recorded: 19:59:21  Samples:  3992
/   _/                      v5.1.3

100.0% <module>  run.py:1
`- 100.0% run_workload  run.py:190
   |- 99.0% _steps_for  bench/profiles.py:45
   |  `- 98.0% Trainer.step  bench/workloads.py:33
   |     |- 60.0% Tensor.backward  chainrule/tensor.py:170
   |     `- 38.0% Chain.__call__  chainrule/nn/module.py:130
   |        `- 30.0% record  chainrule/autograd/graph.py:162
   `- 1.0% report  run.py:300
"""
    assert profiles._subtree(text, "_steps_for").splitlines() == [
        "98.0% Trainer.step  bench/workloads.py:33",
        "|- 60.0% Tensor.backward  chainrule/tensor.py:170",
        "`- 38.0% Chain.__call__  chainrule/nn/module.py:130",
        "   `- 30.0% record  chainrule/autograd/graph.py:162",
    ]


def test_call_tree_samples_a_step():
    def step():
        sum(i * i for i in range(20_000))

    result = profiles.call_tree(step, 0.05)
    if importlib.util.find_spec("pyinstrument") is None:
        assert "pyinstrument is not installed" in result["missing"]
        return
    assert result["steps"] >= 1 and result["seconds"] >= 0.05
    assert result["tree"].splitlines()[0].split()[1] == "step"  # the root is the sampled step


def test_dense_flops_count_forward_and_needed_backward_gemms():
    # (2x3)@(3x4) and (2x4)@(4x5): forward 2*2*(12+20) = 128, weight grads 128, input grad of layer 2 only 80
    assert _dense_flops(2, (3, 4, 5)) == 336


def test_explicit_and_sdpa_attention_compute_the_same_gpt():
    cfg = models.GPTConfig(context=8, d_model=16, heads=2, layers=1)
    fused = models.gpt(cr, cfg)
    explicit = models.gpt(cr, models.GPTConfig(context=8, d_model=16, heads=2, layers=1, attention="explicit"))
    explicit.load_state_dict(fused.state_dict())
    idx = cr.tensor(np.random.default_rng(0).integers(0, cfg.vocab, (2, 8)))
    np.testing.assert_allclose(explicit(idx).detach().cpu().numpy(), fused(idx).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


def test_unet_keeps_the_image_shape_and_lstm_predicts_every_step():
    image = cr.tensor(np.random.default_rng(0).standard_normal((2, 1, 16, 16)).astype(np.float32))
    assert models.unet(cr, 8, 4)(image).shape == (2, 1, 16, 16)
    idx = cr.tensor(np.random.default_rng(0).integers(0, 11, (3, 5)))
    assert models.lstm(cr, 11, 6, 8, 2)(idx).shape == (3, 5, 11)


def test_workloads_in_small_mode_keep_their_structure():
    full, small = workloads(), workloads(small=True)
    assert list(full) == list(small) == NAMES
    assert all(small[n].matmul_flops < full[n].matmul_flops for n in NAMES if n != "overhead")
    with pytest.raises(SystemExit):
        bench_run.parse_args(["nonexistent"])


@pytest.mark.slow
@pytest.mark.parametrize("side", [["--kernels"], ["--workers", "1", "2"], ["--against", "HEAD"]])
def test_ab_runs_both_sides_in_one_process(side):
    # bench/ab.py: the in-process A/B behind the ratios quoted for single changes
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ab.py"), "overhead", *side, "--rounds", "1",
                           "--threads", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "overhead: new" in proc.stdout and "new/old" in proc.stdout


@pytest.mark.slow
def test_phases_times_each_phase_of_both_frameworks():
    # bench/phases.py: the per-phase figures in bench/ANALYSIS.md
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "phases.py"), "mlp", "--rounds", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [line[0] for line in lines] == ["chainrule", "torch"]
    for line in lines:  # every phase reported with a time, and their sum
        assert all(word in line for word in ("zero_grad", "forward", "loss", "backward", "update", "sum"))
        assert float(line[-1]) > 0


@pytest.mark.slow
def test_collections_per_step_reports_the_mean_and_the_collector_s_runs():
    # bench/collections_per_step.py: the garbage-collector figures in bench/ANALYSIS.md
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "collections_per_step.py"), "overhead",
                           "--steps", "20", "--warmup", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    words = proc.stdout.split()
    assert words[:2] == ["overhead:", "mean"] and float(words[2]) > 0
    runs = proc.stdout.split("(generation 0 / 1 / 2): ")[1].split(";")[0].split(" / ")
    assert len(runs) == 3 and all(float(r) >= 0 for r in runs)


@pytest.mark.slow
def test_gpu_bench_smoke_run_reports_the_three_workloads_with_equal_losses(tmp_path):
    # bench/gpu.py --smoke: tiny sizes on the GPU when there is one, else chainrule on the stand-in device
    # and torch on the CPU; the report is the Markdown section bench/ANALYSIS.md keeps
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    result = json.loads(out.read_text())
    assert [w["name"] for w in result["workloads"]] == ["gpt", "wide", "overhead"]
    has_torch = importlib.util.find_spec("torch") is not None
    for w in result["workloads"]:
        timing = w["time"]["chainrule"]
        assert timing["n"] == 2 and 0 < timing["min"] <= timing["median"]
        assert len(w["losses"]["chainrule"]) == 2 and all(np.isfinite(w["losses"]["chainrule"]))
        if has_torch:
            assert w["loss_check"] == "equal", w
            assert w["ratio"] == pytest.approx(timing["median"] / w["time"]["torch"]["median"])
    section = proc.stdout[proc.stdout.index(gpu_bench.HEADING):]
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
    assert rows[2:] == ["gpt", "wide", "overhead"]
    assert result["chainrule_device"] in section and "smoke" in section


def test_gpu_bench_section_replaces_the_previous_one_in_the_analysis(tmp_path):
    analysis = tmp_path / "ANALYSIS.md"
    analysis.write_text("## Before\n\ntext\n")
    gpu_bench.write_section(f"{gpu_bench.HEADING}\n\nfirst run\n", analysis)
    assert analysis.read_text() == f"## Before\n\ntext\n\n{gpu_bench.HEADING}\n\nfirst run\n"
    analysis.write_text(analysis.read_text() + "\n## After\n\nkept\n")
    gpu_bench.write_section(f"{gpu_bench.HEADING}\n\nsecond run\n", analysis)
    assert analysis.read_text() == f"## Before\n\ntext\n\n{gpu_bench.HEADING}\n\nsecond run\n\n## After\n\nkept\n"


# ----- the compiled column: the training step through cr.compile, timed beside eager ------------------

def _run_small(workload, *flags):
    """One small workload through bench/run.py's run_workload in this process, chainrule side only."""
    args = bench_run.parse_args(["--quick", "--profile-seconds", "0", *flags])
    result, _ = bench_run.run_workload(workload, bench_run.load_chainrule(), None, args, 1e9)
    return result


def _report_of(results: list[dict], compile: bool = True) -> str:
    full = {"date": "d", "command": "c", "thread_note": "",
            "machine": {k: "x" for k in ("cpu", "cpu_flags", "cores", "usable_cores", "os", "python", "numpy",
                                         "numpy_blas", "torch", "torch_blas", "chainrule")},
            "settings": {"quick": True, "threads": 1, "rounds": 2, "warmup": 1, "seed": 0, "gemm_n": 8,
                         "gemm_repeats": 1, "child_steps": 1, "compile": compile},
            "noise": {"load_before": None, "load_after": None, "other_cores": None, "steal_cores": None,
                      "contended": False},
            "gemm": {"rates": {"numpy": 1e9}, "best": 1e9}, "workloads": results}
    return report.render(full)


class _ReadsAValue(cr.nn.Module):
    """The overhead chain's shape with a value read inside the step (``.item()``): a program cannot replay it."""

    def __init__(self):
        super().__init__()
        self.weight = cr.nn.Parameter(cr.ones(16))

    def forward(self, x):
        return x * self.weight * float((x * self.weight).sum().item())


@pytest.mark.cpu_only(reason="compiled programs replay on the CPU only (on cuda the step runs eagerly)")
def test_the_compiled_column_is_timed_beside_eager_for_a_small_workload():
    result = _run_small(workloads(small=True)["overhead"])
    assert result["status"] == "ok"
    compiled = result["compiled"]
    assert compiled["status"] == "ok", compiled
    # the same computation: its first step's loss is eager's, bit for bit
    assert compiled["loss_check"] == "bitwise equal"
    assert np.float64(compiled["first_loss"]).tobytes() == np.float64(result["losses"]["chainrule"][0]).tobytes()
    timing, eager = compiled["time"], result["time"]["chainrule"]
    assert timing["n"] == eager["n"] == 2 and 0 < timing["min"] <= timing["median"]
    assert compiled["vs_eager"] == pytest.approx(timing["median"] / eager["median"])
    assert "compiled" not in result["time"]  # its own column, not a framework of the eager table
    # two warm-ups (the first call has no gradients: its own signature), capture, verification
    assert len(compiled["cost"]) == 4 and all(s > 0 for s in compiled["cost"])
    assert compiled["cost_in_steps"] == pytest.approx(sum(compiled["cost"]) / timing["median"])
    assert compiled["traced"] >= compiled["instructions"] > 0 and compiled["program_mib"] > 0

    text = _report_of([result])
    header = text.split("## Step time", 1)[1].splitlines()[2]
    assert header.endswith("| compiled (ms) | compiled / eager | compiled / PyTorch |")
    row = _table_rows(text, "## Step time")["overhead"].split("|")
    assert row[-4].strip().startswith(f"{timing['median'] * 1e3:.3f} ") and "µs/op" in row[-4]
    assert row[-3].strip() == f"{compiled['vs_eager']:.2f}x" and row[-2].strip() == "-"  # no torch in this run
    cost = _table_rows(text, "## Compiled step: compile cost")["overhead"]
    assert f"{compiled['instructions']} ({compiled['traced']})" in cost and "bitwise equal" in cost


@pytest.mark.cpu_only(reason="compiled programs replay on the CPU only (on cuda the step runs eagerly)")
def test_a_step_that_cannot_be_compiled_says_why_in_its_row():
    overhead = workloads(small=True)["overhead"]
    reads = dataclasses.replace(overhead, build_model=lambda lib, seed: _ReadsAValue())
    result = _run_small(reads)
    assert result["status"] == "ok" and list(result["time"]) == ["chainrule"]  # eager is still timed
    compiled = result["compiled"]
    assert compiled["status"] == "not compiled" and "time" not in compiled
    assert ".item()" in compiled["message"] and "test_bench.py" in compiled["message"]
    text = _report_of([result])
    assert "not compiled (why: in the compile cost table)" in _table_rows(text, "## Step time")["overhead"]
    assert "not compiled: it reads a tensor's value" in _table_rows(text, "## Compiled step: compile cost")["overhead"]


@pytest.mark.cpu_only(reason="compiled programs replay on the CPU only (on cuda the step runs eagerly)")
@pytest.mark.parametrize("name", ["overhead", "mlp", "cnn"])
def test_jax_twins_are_timed_beside_the_compiled_step_from_the_same_weights(name):
    """Where JAX is installed, the workload's jax.jit twin starts from the same weights and data (its step-1
    loss equals chainrule's to 1e-5) and is timed in the same rounds; the report gets its own section."""
    from bench import jax_steps

    jax = jax_steps.load_jax(1)
    if jax is None:
        pytest.skip("JAX is not installed")
    args = bench_run.parse_args(["--quick", "--profile-seconds", "0"])
    result, _ = bench_run.run_workload(workloads(small=True)[name], bench_run.load_chainrule(), None, args, 1e9, jax)
    twin = result["jax"]
    assert twin["loss_check"] == "equal" and twin["rel_diff"] <= 1e-5, twin
    assert twin["time"]["min"] > 0 and twin["jit_s"] > 0
    assert twin["vs_eager"] == pytest.approx(twin["time"]["median"] / result["time"]["chainrule"]["median"])
    assert twin["compiled_vs_jax"] == pytest.approx(result["compiled"]["time"]["median"] / twin["time"]["median"])
    row = _table_rows(_report_of([result]), "## JAX jit side by side")[name]
    assert f"{twin['compiled_vs_jax']:.2f}x" in row and row.rstrip(" |").endswith("equal")


def test_no_compile_leaves_the_compiled_column_out():
    result = _run_small(workloads(small=True)["overhead"], "--no-compile")
    assert result["status"] == "ok" and "compiled" not in result
    text = _report_of([result], compile=False)
    assert "compiled (ms)" not in text and "## Compiled step" not in text


@pytest.mark.slow
def test_quick_run_times_the_compiled_step_against_pytorch_too(tmp_path):
    pytest.importorskip("torch")
    stdout, result = _bench(tmp_path, "mlp", "--no-memory", "--profile-seconds", "0")
    (w,) = result["workloads"]
    compiled = w["compiled"]
    assert w["loss_check"] == "equal" and compiled["status"] == "ok" and compiled["loss_check"] == "bitwise equal"
    assert compiled["vs_torch"] == pytest.approx(compiled["time"]["median"] / w["time"]["torch"]["median"])
    assert result["settings"]["compile"] is True
    row = _table_rows(stdout, "## Step time")["mlp"].split("|")
    assert row[-2].strip() == f"{compiled['vs_torch']:.2f}x"
