"""chainrule.distributed, DistributedDataParallel and clean failure, each run as a real MPI job
(``mpiexec -n 2``, and ``-n 3`` where cheap) of a small script in ``workers/``; skipped only when mpi4py or
``mpiexec`` is missing (``pip install -e '.[mpi]'`` brings both)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"
TIMEOUT_S = 10  # CHAINRULE_DIST_TIMEOUT inside the jobs: the watchdog's limit
# Under CHAINRULE_TEST_DEVICE=cuda the jobs compute on the device too (workers/_device.py): CuPy where there is
# a GPU, else the stand-in device, which the workers load with CHAINRULE_STANDIN_CUDA=1.
ON_DEVICE = {"CHAINRULE_TEST_DEVICE": "cuda", "CHAINRULE_STANDIN_CUDA": "1"}
DEVICE_ENV = ON_DEVICE if os.environ.get("CHAINRULE_TEST_DEVICE") == "cuda" else {}


def _mpiexec():
    here = Path(sysconfig.get_path("scripts")) / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _have_mpi4py():
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


pytestmark = pytest.mark.skipif(not (_mpiexec() and _have_mpi4py()),
                                reason="needs mpi4py and an mpiexec: pip install -e '.[mpi]'")


def run_mpi(n, worker, *args, timeout=120, env=None):
    """Run ``workers/<worker>.py args`` as an n-process MPI job; returns (completed process, wall seconds)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "CHAINRULE_DIST_TIMEOUT": str(TIMEOUT_S), **DEVICE_ENV,
                **(env or {})}
    command = [_mpiexec(), "-n", str(n), sys.executable, str(WORKERS / f"{worker}.py"), *args]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)
    return done, time.monotonic() - start


def ok(done):
    assert done.returncode == 0, f"rc {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("n", [2, 3])
def test_every_collective_against_numpy(n):
    done, _ = run_mpi(n, "collectives")
    ok(done)
    device = "cuda" if DEVICE_ENV else "cpu"
    assert done.stdout.splitlines() == [f"rank {r} of {n}: collectives ok ({device})" for r in range(n)]


def test_collectives_and_ddp_on_device_tensors_through_host_copies():
    """The same jobs with every tensor on the cuda device (the stand-in without a GPU): mpi4py gets host copies
    and the results are copied back into the device tensors."""
    done, _ = run_mpi(2, "collectives", env=ON_DEVICE)
    ok(done)
    assert done.stdout.splitlines() == [f"rank {r} of 2: collectives ok (cuda)" for r in range(2)]
    results = ok(run_mpi(2, "ddp", "equivalence", env=ON_DEVICE)[0])
    assert len(results) == 6 and all(r["device"] == "cuda" for r in results)
    for r in results:
        assert r["bitwise_equal_across_ranks"], r
        assert r["diff"] < (1e-12 if r["dtype"].endswith("float64") else 1e-5), r


@pytest.mark.parametrize("n", [2, 3])
def test_ddp_equals_one_process_on_the_global_batch(n):
    """N ranks x batch b == 1 process x batch N*b after AdamW steps with clipping, for the MLP, CNN and GPT."""
    done, _ = run_mpi(n, "ddp", "equivalence")
    results = ok(done)
    assert {(r["kind"], r["dtype"]) for r in results} == {
        (k, f"chainrule.{d}") for k in ("mlp", "cnn", "gpt") for d in ("float32", "float64")}
    for r in results:
        assert r["bitwise_equal_across_ranks"], r
        assert r["diff"] < (1e-12 if r["dtype"].endswith("float64") else 1e-5), r


def test_ddp_in_a_single_process_without_a_launcher_is_plain_training_bit_for_bit():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHAINRULE_DIST_TIMEOUT": str(TIMEOUT_S), **DEVICE_ENV}
    done = subprocess.run([sys.executable, str(WORKERS / "ddp.py"), "equivalence"], capture_output=True, text=True,
                          timeout=120, env=env)  # MPI starts as a world of one (a "singleton")
    results = ok(done)
    assert len(results) == 6 and all(r["diff"] == 0.0 for r in results), results


def test_ddp_options_no_sync_unused_parameters_syncbatchnorm_zero_and_mismatched_models():
    results = ok(run_mpi(2, "ddp", "options", "unused", "mismatch", "syncbn", "zero")[0])
    by_check = {}
    for r in results:
        by_check.setdefault(r["check"], []).append(r)
    options = {r["option"]: r for r in by_check["option"]}
    assert options["bucket_cap_mb tiny"]["buckets"] > 10 and options["bucket_cap_mb huge"]["buckets"] == 1
    assert all(r["bitwise_equal_to_default"] for r in options.values()), options
    (no_sync,) = by_check["no_sync"]
    assert no_sync["diff"] < 1e-12 and no_sync["bitwise_equal_across_ranks"]
    (unused,) = by_check["unused"]
    assert unused["diff"] < 1e-12 and unused["never_grad_is_none"] and unused["never_unchanged"]
    assert unused["bitwise_equal_across_ranks"]
    (syncbn,) = by_check["syncbn"]  # BatchNorm's division by the batch's std magnifies summation-order roundoff
    assert syncbn["diff"] < 1e-9 and syncbn["running_stats_diff"] < 1e-10 and syncbn["bitwise_equal_across_ranks"]
    (zero,) = by_check["zero"]  # ZeroRedundancyOptimizer(AdamW): AdamW's results, about half the state here
    assert zero["bitwise_equal_to_adamw"] and zero["consolidated_equals_adamw"] and zero["bitwise_equal_across_ranks"]
    assert 0.3 < zero["state_share"] < 0.7
    (mismatch,) = by_check["mismatch"]
    assert mismatch["same_error_everywhere"]
    assert "rank 1 has parameter 'net.1.weight' [17, 12]" in mismatch["message"]


@pytest.mark.parametrize("mode, status, text, bound", [
    ("raise", 1, "ValueError: rank 1 found bad input", 5),
    ("kill", None, "", 5),
    ("stall", 124, "all_reduce (SUM, float32, 4 elements) did not complete within 2 s", 2 + 5),
    ("exit_early", 124, "did not complete within 2 s", 2 + 5),  # rank 0 in all_reduce or rank 1 at its exit barrier
    ("monitored", 1, "monitored_barrier: rank 1 failed to pass the barrier within 1 s", 5),
    # the debug mode (CHAINRULE_DISTRIBUTED_DEBUG=DETAIL) names mismatched collectives and drifting parameters
    ("debug_mismatch", 1, "the ranks called different collectives (rank 0: all_reduce (SUM, float32, 4 elements); "
                          "rank 1: broadcast from rank 0 (float32, 4 elements))", 5),
    ("debug_parameters", 1, "the parameters of rank(s) [1] differ from rank 0's", 5),
])
def test_a_failing_rank_ends_the_whole_job_in_bounded_time(mode, status, text, bound):
    env = {"CHAINRULE_DIST_TIMEOUT": "2", "CHAINRULE_DISTRIBUTED_DEBUG": "DETAIL" if mode.startswith("debug") else ""}
    done, wall = run_mpi(2, "failures", mode, timeout=60, env=env)
    assert done.returncode != 0 and (status is None or done.returncode == status), (done.returncode, done.stderr[-3000:])
    assert text in done.stderr, done.stderr[-3000:]
    assert "finished" not in done.stdout or mode == "exit_early"
    assert wall < bound, wall


def test_fit_under_a_process_group_follows_the_one_process_fit_and_resumes(tmp_path):
    """2 ranks x batch 4 with DDP and DistributedSampler == 1 process x batch 8 over the same order: logged
    losses, validation and weights; rank 0 alone writes checkpoints (no ``module.`` prefix) and the log; a
    resume is read by rank 0 and sent to the other rank; and one process continues the 2-rank checkpoint exactly."""
    (result,) = ok(run_mpi(2, "trainer", str(tmp_path))[0])
    assert result["param_diff"] < 1e-12 and result["loss_diff"] < 1e-12 and result["val_loss_diff"] < 1e-12
    assert result["epochs"] == 3 and result["checkpoint_epoch"] == 2 and result["log_lines"] == 2
    assert result["checkpoint_keys"] == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert result["files"] == ["best.safetensors", "last.safetensors", "log.jsonl"]  # no temporary files left
    env = {**os.environ, "OMP_NUM_THREADS": "1", **DEVICE_ENV}
    done = subprocess.run([sys.executable, str(WORKERS / "trainer.py"), str(tmp_path), "--resume-alone"],
                          capture_output=True, text=True, timeout=120, env=env)
    (alone,) = ok(done)  # a different number of processes continues the run exactly
    assert alone["epochs"] == 3 and alone["param_diff"] < 1e-12 and alone["loss_diff"] < 1e-12


GPT_OPTIONS = ["--steps", "6", "--eval-interval", "3", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
               "--block-size", "16", "--quiet"]


def run_cli(n, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHAINRULE_DIST_TIMEOUT": str(TIMEOUT_S)}
    command = ([_mpiexec(), "-n", str(n)] if n else []) + [sys.executable, "-m", "chainrule", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_cli_train_gpt_on_two_processes_follows_the_one_process_run(tmp_path):
    import numpy as np

    import chainrule as cr

    two, one = tmp_path / "two", tmp_path / "one"
    for n, out in ((2, two), (0, one)):
        done = run_cli(n, "train", "gpt", *GPT_OPTIONS, "--batch-size", "8", "--out", str(out))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count('"val_loss"') == 1  # one summary, from rank 0
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())  # one set of files
    a, b = cr.io.load(two / "last.safetensors"), cr.io.load(one / "last.safetensors")
    assert sorted(a.state_dict) == sorted(b.state_dict)  # no "module." prefixes
    diff = max(float(np.abs(a.state_dict[k].cpu().numpy() - b.state_dict[k].cpu().numpy()).max()) for k in a.state_dict)
    assert diff < 1e-5  # float32: the same global batches, reduced in another order
    losses = [[json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (two, one)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert json.loads((two / "summary.json").read_text())["processes"] == 2


def test_cli_resumes_a_two_process_run_in_one_process(tmp_path):
    """A run trained by 2 processes continues in 1 (its folder, checkpoint and log are a one-process run's).
    To have steps left, the finished 6-step run's config is edited to plan 9, as a run stopped at step 6 has."""
    import chainrule as cr

    run = tmp_path / "run"
    done = run_cli(2, "train", "gpt", *GPT_OPTIONS, "--batch-size", "8", "--out", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    config["train"]["steps"] = 9
    (run / "config.json").write_text(json.dumps(config))
    resumed = run_cli(0, "train", "gpt", "--resume", "--quiet", "--out", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # 2 validations, then a third
    last = cr.io.load(run / "last.safetensors")
    assert (last.step, last.epoch) == (9, 3)


def test_cli_under_mpiexec_refuses_bad_input_and_other_commands_and_ends_every_rank(tmp_path):
    bad = run_cli(2, "train", "gpt", *GPT_OPTIONS, "--batch-size", "5", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "must divide by 2" in bad.stderr and not (tmp_path / "x").exists()
    other = run_cli(2, "evaluate", str(tmp_path))
    assert other.returncode == 2
    assert other.stderr.count("only `train` runs under mpiexec") == 2  # one line from each process
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("not a run")
    start = time.monotonic()
    rank0_only = run_cli(2, "train", "gpt", *GPT_OPTIONS, "--batch-size", "8", "--out", str(tmp_path / "taken"))
    assert rank0_only.returncode == 2 and time.monotonic() - start < 30  # rank 0 alone saw it: no hang
    assert "[rank 0] chainrule: error: output folder" in rank0_only.stderr
    env_without = {**os.environ, "CHAINRULE_DISTRIBUTED_NO_MPI4PY": "1", "OMP_NUM_THREADS": "1"}
    missing = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "chainrule", "train", "gpt", *GPT_OPTIONS,
                              "--out", str(tmp_path / "y")], capture_output=True, text=True, timeout=60, env=env_without)
    assert missing.returncode == 2 and missing.stderr.count("needs mpi4py: pip install 'chainrule[mpi]'") == 2


def test_threads_are_shared_among_the_ranks_of_a_machine_unless_chosen():
    code = ("import os, json, chainrule as cr, chainrule.distributed as dist; dist.init_process_group('mpi'); "
            "seen = [None, None]; dist.all_gather_object(seen, (cr.get_num_threads(), os.environ['OMP_NUM_THREADS'])); "
            "print(json.dumps(seen)) if dist.get_rank() == 0 else None")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for given, expected in ((None, str(share)), ("3", "3")):
        run_env = env if given is None else {**env, "OMP_NUM_THREADS": given}
        done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, env=run_env)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])  # [[BLAS threads, OMP_NUM_THREADS] of each rank]
        assert [omp for _, omp in seen] == [expected, expected], seen
        if given is None:
            assert [blas for blas, _ in seen] == [share, share], seen
