"""The `chainrule` command end to end: each train recipe for a few steps into a temporary folder, the files
it writes, evaluate/sample/graph/diagnose on the result, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest

from chainrule.cli import main

TINY = {
    "mlp": ["--epochs", "1", "--width", "16"],
    "cnn": ["--epochs", "1", "--batch-size", "256"],
    "gpt": ["--steps", "4", "--eval-interval", "2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--block-size", "16"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train each recipe once (tiny) for the whole module."""
    root = tmp_path_factory.mktemp("runs")
    for kind, options in TINY.items():
        assert main(["train", kind, "--out", str(root / kind), "--quiet", *options]) == 0
    return root


@pytest.mark.parametrize("kind", sorted(TINY))
def test_train_writes_a_complete_run_folder(runs, kind):
    folder = runs / kind
    for name in ("config.json", "best.safetensors", "last.safetensors", "metrics.jsonl", "history.json",
                 "curves.png", "summary.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == kind and "model" in config and "train" in config
    summary = json.loads((folder / "summary.json").read_text())
    assert ("val_loss" if kind == "gpt" else "test_accuracy") in summary
    assert (folder / "curves.png").read_bytes().startswith(b"\x89PNG")
    if kind == "gpt":
        assert (folder / "samples.txt").read_text().startswith("ROMEO:")


def test_evaluate_reports_metrics(runs, capsys):
    assert main(["evaluate", str(runs / "mlp")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["test_accuracy"] <= 1.0 and report["test_samples"] == 359


def test_sample_generates_the_requested_length(runs, capsys):
    assert main(["sample", str(runs / "gpt"), "--prompt", "KING:", "--tokens", "25", "--temperature", "0.9"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("KING:") and len(text) == len("KING:") + 25


def test_graph_renders_a_run(runs, capsys, tmp_path):
    out = tmp_path / "graph.dot"
    assert main(["graph", str(runs / "cnn"), "--out", str(out)]) == 0
    assert "digraph" in out.read_text()


def test_existing_folder_is_refused_without_overwrite(runs, capsys):
    assert main(["train", "mlp", "--out", str(runs / "mlp"), "--quiet", *TINY["mlp"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error:") and "--overwrite" in err and err.count("\n") == 1


def test_resume_refuses_changed_options(runs, capsys):
    assert main(["train", "mlp", "--out", str(runs / "mlp"), "--resume", "--epochs", "5"]) == 2
    assert "cannot change options when resuming" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "resnet"], "unknown model 'resnet'"),
    (["train", "gpt", "--n-embd", "30", "--n-head", "4"], "must be divisible"),
    (["train", "mlp", "--width", "0"], "impossible"),
    (["sample", "/nonexistent/run"], "not a chainrule run folder"),
    (["evaluate", "/nonexistent/run"], "not a chainrule run folder"),
    (["diagnose", "--steps", "1"], "--steps >= 2"),
    (["train", "mlp", "--lr", "nan"], "--lr must be a finite number > 0.0, got nan"),
    (["train", "cnn", "--epochs", "0"], "--epochs must be"),
    (["train", "mlp", "--batch-size", "0"], "--batch-size must be"),
    (["train", "gpt", "--weight-decay", "inf"], "--weight-decay must be a finite number >= 0.0, got inf"),
])
def test_bad_input_gives_one_line_and_status_2(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


_WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # as if the train extra were not installed: importing it raises ImportError
from chainrule.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_train_without_matplotlib_trains_and_says_why_there_is_no_plot(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", _WITHOUT_MATPLOTLIB, "train", "mlp", "--out", str(out), "--quiet",
                             *TINY["mlp"]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "matplotlib is not installed, so no curves.png" in result.stderr and "Traceback" not in result.stderr
    assert (out / "best.safetensors").is_file() and not (out / "curves.png").exists()


def test_corrupt_checkpoint_is_a_one_line_error(runs, capsys, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(runs / "mlp", broken)
    for name in ("best.safetensors", "last.safetensors"):
        path = broken / name
        path.write_bytes(path.read_bytes()[:100])
    assert main(["evaluate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: can't load") and err.count("\n") == 1


def test_console_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "chainrule.cli", "evaluate", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "no config.json" in result.stderr and "Traceback" not in result.stderr


def test_device_option_trains_on_the_device_and_the_run_evaluates_and_samples_on_the_cpu(cuda_device, tmp_path, capsys):
    import chainrule as cr

    summaries, default = {}, cr.get_default_device()
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert main(["train", "gpt", "--device", device, "--out", str(out), "--quiet", *TINY["gpt"]]) == 0
        text = capsys.readouterr().out
        summaries[device] = json.loads(text[:text.rindex("}") + 1])
        assert cr.get_default_device() == default  # the command's device does not outlive it
    exact = cr.backend.gpu.cupy_module() is None  # the stand-in computes with numpy: bit for bit the CPU's
    assert summaries["cuda"]["val_loss"] == pytest.approx(summaries["cpu"]["val_loss"], rel=0 if exact else 1e-4)
    assert main(["evaluate", str(tmp_path / "cuda"), "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["val_loss"] == pytest.approx(summaries["cuda"]["val_loss"], abs=1e-4), (evaluated, summaries)
    assert main(["sample", str(tmp_path / "cuda"), "--tokens", "5", "--device", "cpu"]) == 0
    assert main(["sample", str(tmp_path / "cpu"), "--tokens", "5", "--device", "cuda"]) == 0
    assert len(capsys.readouterr().out) > 0


def test_unknown_device_is_a_one_line_error(capsys, tmp_path):
    assert main(["train", "mlp", "--device", "tpu", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: --device tpu: device 'tpu' is not available here") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_diagnose_on_the_device_reports_what_it_reports_on_the_cpu(cuda_device, tmp_path, capsys):
    import chainrule as cr

    summaries = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert main(["diagnose", "--device", device, "--steps", "3", "--depth", "3", "--width", "8", "--out", str(out)]) == 0
        summaries[device] = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    exact = cr.backend.gpu.cupy_module() is None  # the stand-in computes with numpy: the same numbers
    for name, on_cpu in summaries["cpu"]["models"].items():
        on_device = summaries["cuda"]["models"][name]
        assert on_device["verdict"] == on_cpu["verdict"], name
        for key in ("grad_norms_at_init", "final_train_loss", "test_accuracy"):
            assert on_device[key] == (on_cpu[key] if exact else pytest.approx(on_cpu[key], rel=1e-4)), (name, key)
