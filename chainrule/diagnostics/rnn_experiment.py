"""The vanishing-gradient-through-time experiment: a tanh RNN and an LSTM on the adding problem.

    from chainrule.diagnostics.rnn_experiment import run_rnn_gradient_experiment
    summary = run_rnn_gradient_experiment("runs/diagnose-rnn", steps=200, seq_len=60)

The adding problem (Hochreiter & Schmidhuber 1997): each of ``seq_len`` steps carries a value in [0, 1]
and a marker; two steps are marked, one in the first tenth of the sequence and one in the second half,
and the target (read after the last step) is the sum of the two marked values. The early marker's value
must travel across most of the sequence.

The gradient reaching step t is measured as ``autograd.grad(loss, inputs)``: the norm of dL/dx_t over the
batch. In the tanh RNN it is multiplied by ``W_hh^T diag(1 - h^2)`` at every step back, so it shrinks
geometrically; in the LSTM it travels along the cell state, multiplied only by the forget gate. The LSTM's
forget-gate bias starts at ``forget_bias`` (split over ``bias_ih`` and ``bias_hh``; Jozefowicz et al. 2015
recommend a positive one, PyTorch's default is about 0) so that gate starts near 1.

The output folder gets ``grad_through_time.png`` (gradient norm per step, at initialisation and after
training, log scale), ``learning_curves.png``, ``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr
from chainrule import nn, optim
from chainrule.diagnostics.experiment import _strict

__all__ = ["run_rnn_gradient_experiment", "adding_problem", "RecurrentRegressor", "RNN_KINDS"]

RNN_KINDS = ("rnn", "lstm")
_TITLES = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM"}
TOLERANCE = 0.04  # a prediction within this of the target counts as correct (as in the literature)


def adding_problem(n: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences (n, seq_len, 2) of the adding problem and their targets (n,)."""
    if seq_len < 4:
        raise ValueError(f"adding_problem: seq_len must be at least 4, got {seq_len}")
    x = np.zeros((n, seq_len, 2), dtype=np.float32)
    x[:, :, 0] = rng.uniform(0, 1, (n, seq_len))
    first = rng.integers(0, max(1, seq_len // 10), n)
    second = rng.integers(seq_len // 2, seq_len, n)
    rows = np.arange(n)
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    y = x[rows, first, 0] + x[rows, second, 0]
    return x, y.astype(np.float32)


class RecurrentRegressor(nn.Module):
    """A one-layer ``nn.RNN`` (tanh) or ``nn.LSTM`` read out by a Linear layer after the last step."""

    def __init__(self, kind: str, hidden_size: int = 64, forget_bias: float = 3.0):
        super().__init__()
        if kind not in RNN_KINDS:
            raise ValueError(f"RecurrentRegressor: unknown kind {kind!r}; choose one of {list(RNN_KINDS)}")
        cls = nn.RNN if kind == "rnn" else nn.LSTM
        self.rnn = cls(2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        if kind == "lstm":  # gates are ordered (input, forget, cell, output)
            with cr.no_grad():
                for bias in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0):
                    bias[hidden_size:2 * hidden_size].fill_(forget_bias / 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


def _grad_through_time(model: nn.Module, x: np.ndarray, y: np.ndarray) -> list[float]:
    """The norm of dL/dx_t for every step t (over the batch and both features)."""
    xs = cr.tensor(x, requires_grad=True)
    loss = ((model(xs) - cr.tensor(y)) ** 2).mean()
    (g,) = cr.autograd.grad(loss, [xs])
    return [float(v) for v in np.sqrt((g.cpu().numpy().astype(np.float64) ** 2).sum(axis=(0, 2)))]


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with cr.no_grad():
        pred = model(cr.tensor(x)).cpu().numpy()
    err = np.abs(pred - y)
    return float((err < TOLERANCE).mean()), float((err ** 2).mean())


def run_rnn_gradient_experiment(out_dir: str | Path, steps: int = 200, seq_len: int = 60, hidden_size: int = 64,
                                batch_size: int = 32, lr: float = 3e-3, seed: int = 0, forget_bias: float = 3.0,
                                verbose: int = 1) -> dict[str, Any]:
    """Train both models for ``steps`` Adam steps on the same batches; write plots and summaries to
    ``out_dir``; return the summary (as written to ``summary.json``)."""
    if steps < 1 or seq_len < 4 or hidden_size < 1 or batch_size < 1:
        raise ValueError(f"run_rnn_gradient_experiment: needs steps >= 1, seq_len >= 4, hidden_size >= 1 and "
                         f"batch_size >= 1 (got {steps}, {seq_len}, {hidden_size}, {batch_size})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    probe_x, probe_y = adding_problem(256, seq_len, np.random.default_rng(seed + 1))
    test_x, test_y = adding_problem(512, seq_len, np.random.default_rng(seed + 2))
    results: dict[str, dict[str, Any]] = {}
    for kind in RNN_KINDS:
        cr.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = RecurrentRegressor(kind, hidden_size, forget_bias)
        opt = optim.Adam(model.parameters(), lr=lr)
        grads_init = _grad_through_time(model, probe_x, probe_y)
        losses, start = [], time.perf_counter()
        for _ in range(steps):
            x, y = adding_problem(batch_size, seq_len, rng)
            loss = ((model(cr.tensor(x)) - cr.tensor(y)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.item()))
        accuracy, mse = _accuracy(model, test_x, test_y)
        results[kind] = {
            "title": _TITLES[kind],
            "grad_norm_per_step_at_init": grads_init,
            "grad_norm_per_step_trained": _grad_through_time(model, probe_x, probe_y),
            "first_to_last_ratio_at_init": grads_init[0] / grads_init[-1] if grads_init[-1] else math.nan,
            "losses": losses,
            "test_accuracy": accuracy,
            "test_mse": mse,
            "seconds": time.perf_counter() - start,
        }
        if verbose:
            r = results[kind]
            print(f"{_TITLES[kind]:>20}: gradient at step 0 / step {seq_len - 1} = {r['first_to_last_ratio_at_init']:.2e}"
                  f", test accuracy {accuracy:.1%} (|error| < {TOLERANCE}), mse {mse:.4f}")
    summary = {"task": "adding problem", "steps": steps, "seq_len": seq_len, "hidden_size": hidden_size,
               "batch_size": batch_size, "lr": lr, "seed": seed, "forget_bias": forget_bias,
               "tolerance": TOLERANCE, "baseline_mse": 1 / 6, "models": results}
    files = _write_plots(results, out) + ["summary.json", "summary.md"]
    summary["files"] = files
    (out / "summary.json").write_text(json.dumps(_strict(summary), indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(_markdown(summary), encoding="utf-8")
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    n = summary["seq_len"]
    lines = [f"# Gradients through time: the adding problem over {n} steps", "",
             f"{summary['steps']} Adam steps, hidden size {summary['hidden_size']}, batch {summary['batch_size']}. "
             f"Accuracy: |prediction - target| < {summary['tolerance']}; predicting the mean gives mse 0.167.", "",
             f"| model | grad at step 0 / step {n - 1} (init) | after training | test accuracy | test mse |",
             "|---|---|---|---|---|"]
    for r in summary["models"].values():
        trained = r["grad_norm_per_step_trained"]
        ratio = trained[0] / trained[-1] if trained[-1] else math.nan
        lines.append(f"| {r['title']} | {r['first_to_last_ratio_at_init']:.2e} | {ratio:.2e} | "
                     f"{r['test_accuracy']:.1%} | {r['test_mse']:.4f} |")
    return "\n".join(lines) + "\n"


def _write_plots(results: dict[str, dict[str, Any]], out: Path) -> list[str]:
    from chainrule.diagnostics.plots import new_figure, save_figure
    from chainrule.train.plots import smooth

    fig = new_figure(11, 4.2)
    init_ax, trained_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for r in results.values():
        for ax, key in ((init_ax, "grad_norm_per_step_at_init"), (trained_ax, "grad_norm_per_step_trained")):
            values = [max(v, 1e-300) for v in r[key]]
            ax.semilogy(range(len(values)), values, label=r["title"])
    for ax, when in ((init_ax, "at initialisation"), (trained_ax, "after training")):
        ax.set(xlabel="time step t", ylabel="||dL/dx_t||", title=f"Gradient reaching each step, {when}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out / "grad_through_time.png")
    fig = new_figure(6, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for r in results.values():
        ax.plot(range(1, len(r["losses"]) + 1), smooth(r["losses"], 20), label=r["title"])
    ax.axhline(1 / 6, color="gray", linestyle="--", linewidth=0.8, label="predict the mean")
    ax.set(xlabel="step", ylabel="training mse (smoothed)", title="Training loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out / "learning_curves.png")
    return ["grad_through_time.png", "learning_curves.png"]
