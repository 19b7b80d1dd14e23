"""The gradient-through-time experiment, shortened: its files, and the RNN's gradient vanishing where the LSTM's does not."""

import json

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.diagnostics.rnn_experiment import adding_problem, run_rnn_gradient_experiment

PNG = b"\x89PNG\r\n\x1a\n"


def test_adding_problem_targets_are_the_marked_sums():
    x, y = adding_problem(50, 20, np.random.default_rng(0))
    assert x.shape == (50, 20, 2) and y.shape == (50,)
    assert (x[:, :, 1].sum(axis=1) == 2).all() and (x[:, :2, 1].sum(axis=1) == 1).all()
    np.testing.assert_allclose((x[:, :, 0] * x[:, :, 1]).sum(axis=1), y, rtol=1e-6)
    with pytest.raises(ValueError, match="seq_len"):
        adding_problem(2, 3, np.random.default_rng(0))


def test_short_experiment_writes_its_files_and_the_rnn_gradient_vanishes(tmp_path):
    summary = run_rnn_gradient_experiment(tmp_path, steps=3, seq_len=30, hidden_size=16, batch_size=16, verbose=0)
    for name in ("grad_through_time.png", "learning_curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    saved = json.loads((tmp_path / "summary.json").read_text())
    rnn, lstm = saved["models"]["rnn"], saved["models"]["lstm"]
    assert len(rnn["grad_norm_per_step_at_init"]) == 30 and 0 <= lstm["test_accuracy"] <= 1
    # the gradient reaching the earliest step: vanished in the tanh RNN, carried by the LSTM's cell state
    assert rnn["grad_norm_per_step_at_init"][0] < 1e-3 * lstm["grad_norm_per_step_at_init"][0]
    assert rnn["first_to_last_ratio_at_init"] < 1e-4 < lstm["first_to_last_ratio_at_init"]
    assert summary["models"]["rnn"]["losses"] and "| LSTM |" in (tmp_path / "summary.md").read_text()


def test_cli_diagnose_rnn(tmp_path, capsys):
    assert main(["diagnose", "--rnn", "--steps", "2", "--seq-len", "12", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "summary.json").exists() and "grad_through_time.png" in capsys.readouterr().out
    assert main(["diagnose", "--rnn", "--seq-len", "2", "--out", str(tmp_path / "bad")]) == 2
