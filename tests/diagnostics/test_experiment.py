"""The vanishing-gradient experiment, shortened: the files it writes and the verdicts it reaches."""

import json

import pytest

from chainrule import nn
from chainrule.diagnostics.experiment import MODEL_KINDS, build_deep_mlp, run_vanishing_gradient_experiment

PNG = b"\x89PNG\r\n\x1a\n"


def test_models_have_the_requested_depth():
    for kind in MODEL_KINDS:
        model = build_deep_mlp(kind, depth=5, width=8)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(linears) == (5 + 2 if kind == "residual_ln" else 5 + 1)
    assert sum(isinstance(m, nn.Sigmoid) for m in build_deep_mlp("sigmoid", depth=5).modules()) == 5
    assert sum(isinstance(m, nn.LayerNorm) for m in build_deep_mlp("residual_ln", depth=5).modules()) == 6
    with pytest.raises(ValueError, match="unknown kind"):
        build_deep_mlp("tanh")


def test_short_experiment_writes_its_files_and_separates_the_models(tmp_path):
    summary = run_vanishing_gradient_experiment(tmp_path, steps=15, depth=20, width=16, verbose=0)
    for name in ("grad_norms_at_init.png", "learning_curves.png", "grad_norm_evolution.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["models"].keys() == set(MODEL_KINDS) and saved["depth"] == 20
    models = summary["models"]
    assert models["sigmoid"]["first_to_last_ratio_at_init"] < 1e-8
    assert 1e-2 < models["residual_ln"]["first_to_last_ratio_at_init"] < 1e2
    assert "vanishing_gradients" in models["sigmoid"]["verdict"]
    assert "vanishing_gradients" not in models["residual_ln"]["verdict"]
    assert "vanishing_gradients" not in models["relu_he"]["verdict"]
    table = (tmp_path / "summary.md").read_text()
    assert "| sigmoid, default init |" in table and "residual + LayerNorm" in table
    assert json.loads((tmp_path / "sigmoid" / "report.json").read_text())["issues"][0]["kind"] == "vanishing_gradients"
