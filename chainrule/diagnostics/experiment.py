"""The vanishing-gradient experiment: three deep MLPs on the bundled digits, trained the same way.

    from chainrule.diagnostics.experiment import run_vanishing_gradient_experiment
    summary = run_vanishing_gradient_experiment("runs/diagnose", steps=300, depth=20)

- ``sigmoid``: ``depth`` hidden layers Linear -> Sigmoid with the default (PyTorch) initialisation. The
  sigmoid's derivative is at most 1/4 and the default weights are small, so the gradient shrinks at
  every layer on its way back: the first layers get gradients many orders of magnitude smaller than
  the last ones, and the network barely learns.
- ``relu_he``: the same depth with ReLU and Kaiming (He) normal initialisation, which keeps the
  variance of activations and gradients about constant from layer to layer.
- ``residual_ln``: an input projection, ``depth`` pre-norm residual blocks ``x + Linear(ReLU(LayerNorm(x)))``
  and a final LayerNorm: the identity path carries the gradient back unchanged.

All three see the same batches (same seed) with SGD + momentum at the same learning rate. A
:class:`~chainrule.diagnostics.GradientMonitor` records every model; the output folder gets:

- ``grad_norms_at_init.png``: gradient norm per layer at initialisation, the three models as lines (log scale);
- ``learning_curves.png``: training loss and test accuracy against steps, side by side;
- ``grad_norm_evolution.png``: each layer's gradient norm over training, one panel per model;
- ``summary.json`` and ``summary.md``: the numbers and the monitor's verdict for each model;
- ``<model>/``: each monitor's full report (``report.json``, ``report.txt``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chainrule as cr
from chainrule import nn, optim
from chainrule.diagnostics.monitor import GradientMonitor, watch
from chainrule.nn import functional as F

__all__ = ["run_vanishing_gradient_experiment", "build_deep_mlp", "train_model", "ModelRun", "MODEL_KINDS"]

MODEL_KINDS = ("sigmoid", "relu_he", "residual_ln")
_TITLES = {"sigmoid": "sigmoid, default init", "relu_he": "ReLU, Kaiming (He) init",
           "residual_ln": "residual + LayerNorm (pre-norm)"}


class _PreNormBlock(nn.Module):
    """``x + Linear(ReLU(LayerNorm(x)))``."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.act = nn.ReLU()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc(self.act(self.norm(x)))


class _ResidualMLP(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int, num_classes: int):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[_PreNormBlock(width) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x))))


def build_deep_mlp(kind: str, depth: int = 20, width: int = 64, in_features: int = 64, num_classes: int = 10) -> nn.Module:
    """One of the experiment's models (``kind`` in :data:`MODEL_KINDS`), with ``depth`` hidden layers."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"build_deep_mlp: unknown kind {kind!r}; choose one of {list(MODEL_KINDS)}")
    if depth < 1 or width < 1:
        raise ValueError(f"build_deep_mlp: depth and width must be positive, got depth={depth}, width={width}")
    if kind == "residual_ln":
        return _ResidualMLP(in_features, width, depth, num_classes)
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth):
        linear = nn.Linear(size, width)
        if kind == "relu_he":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, nn.Sigmoid() if kind == "sigmoid" else nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, num_classes))
    return nn.Sequential(*layers)


@dataclass
class ModelRun:
    """One trained model: its monitor, per-step training losses, and test accuracy at ``eval_steps``."""

    kind: str
    monitor: GradientMonitor
    losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def final_loss(self, last: int = 20) -> float:
        tail = self.losses[-last:]
        return sum(tail) / len(tail) if tail else math.nan


def _digits():
    from chainrule.data import load_digits

    return load_digits("train", flatten=True), load_digits("test", flatten=True)


def train_model(kind: str, steps: int = 300, depth: int = 20, width: int = 64, seed: int = 0, lr: float = 0.01,
                batch_size: int = 64, every: int | None = None, eval_every: int | None = None, data=None) -> ModelRun:
    """Build and train one model of the experiment on the digits, monitored; returns a :class:`ModelRun`.
    The batches depend only on ``seed``, so every kind sees the same data in the same order."""
    (x_train, y_train), (x_test, y_test) = data or _digits()
    cr.manual_seed(seed)
    model = build_deep_mlp(kind, depth, width, x_train.shape[1], 10)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    every = every or max(1, steps // 60)
    eval_every = eval_every or max(1, steps // 15)
    batches = cr.Generator(seed + 1)  # the data order, independent of the initialisation draws
    run = ModelRun(kind, watch(model, every=every))
    started = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            index = cr.randint(0, x_train.shape[0], (batch_size,), generator=batches)
            opt.zero_grad()
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            opt.step()
            run.monitor.step()
            run.losses.append(loss.item())
            if step % eval_every == 0 or step == steps:
                run.eval_steps.append(step)
                run.test_accuracy.append(_accuracy(model, x_test, y_test))
    finally:
        run.monitor.remove()
    run.seconds = time.perf_counter() - started
    return run


def _accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    with cr.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return accuracy


def run_vanishing_gradient_experiment(out_dir: str | Path, steps: int = 300, depth: int = 20, width: int = 64,
                                      seed: int = 0, lr: float = 0.01, verbose: int = 1, plots: bool = True) -> dict[str, Any]:
    """Train the three models of the module docstring for ``steps`` steps each and write the plots and
    summaries to ``out_dir``; returns the summary (as written to ``summary.json``)."""
    if steps < 2:
        raise ValueError(f"run_vanishing_gradient_experiment: steps must be at least 2, got {steps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _digits()
    runs: dict[str, ModelRun] = {}
    for kind in MODEL_KINDS:
        if verbose:
            print(f"training {kind} ({_TITLES[kind]}), depth {depth}, width {width}, {steps} steps ...", flush=True)
        runs[kind] = train_model(kind, steps, depth, width, seed, lr, data=data)
        if verbose:
            run = runs[kind]
            print(f"  loss {run.final_loss():.3f}, test accuracy {run.test_accuracy[-1]:.3f}, "
                  f"{run.seconds:.1f} s; {run.monitor.report().verdict}", flush=True)
    summary = _summary(runs, steps, depth, width, seed, lr)
    files = ["summary.json", "summary.md"]
    if plots:
        files += _write_plots(runs, out)
    for kind, run in runs.items():
        run.monitor.save(out / kind, plots=False)
    summary["files"] = files
    (out / "summary.json").write_text(json.dumps(_strict(summary), indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(_markdown(summary), encoding="utf-8")
    if verbose:
        print(f"wrote {', '.join(files)} to {out}", flush=True)
    return summary


def _summary(runs: dict[str, ModelRun], steps, depth, width, seed, lr) -> dict[str, Any]:
    models = {}
    for kind, run in runs.items():
        report = run.monitor.report()
        init = run.monitor.layer_grad_norms(0)
        norms = list(init.values())
        models[kind] = {
            "title": _TITLES[kind],
            "first_layer_grad_norm_at_init": norms[0],
            "last_layer_grad_norm_at_init": norms[-1],
            "first_to_last_ratio_at_init": norms[0] / norms[-1] if norms[-1] else math.nan,
            "grad_norms_at_init": init,
            "final_train_loss": run.final_loss(),
            "final_test_accuracy": run.test_accuracy[-1],
            "test_accuracy": dict(zip(run.eval_steps, run.test_accuracy)),
            "verdict": report.verdict,
            "issues": [issue.to_dict() for issue in report.issues],
            "seconds": round(run.seconds, 2),
        }
    return {"experiment": "vanishing gradients", "steps": steps, "depth": depth, "width": width, "seed": seed,
            "optimizer": f"SGD(lr={lr}, momentum=0.9), batch 64", "data": "digits (8x8, 1,437 train / 360 test)",
            "models": models}


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Vanishing gradients: sigmoid vs ReLU+He vs residual+LayerNorm", "",
        f"{summary['depth']} hidden layers of width {summary['width']}, {summary['steps']} steps of "
        f"{summary['optimizer']} on {summary['data']}, seed {summary['seed']}.", "",
        "| model | grad norm, first layer (init) | last layer (init) | first / last | final train loss "
        "| test accuracy | monitor verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in summary["models"].values():
        lines.append(
            f"| {model['title']} | {model['first_layer_grad_norm_at_init']:.2e} | "
            f"{model['last_layer_grad_norm_at_init']:.2e} | {model['first_to_last_ratio_at_init']:.2e} | "
            f"{model['final_train_loss']:.3f} | {model['final_test_accuracy']:.3f} | {model['verdict']} |")
    lines.append("")
    for kind, model in summary["models"].items():
        for issue in model["issues"]:
            lines.append(f"- **{kind}**: {issue['kind']} at {issue['where']}: {issue['message']}")
    if summary.get("files"):
        lines += ["", "Plots: " + ", ".join(f for f in summary["files"] if f.endswith(".png"))]
    return "\n".join(lines) + "\n"


def _write_plots(runs: dict[str, ModelRun], out: Path) -> list[str]:
    from chainrule.diagnostics.plots import new_figure, plot_gradient_flow, plot_gradient_history, save_figure
    from chainrule.train.plots import smooth

    monitors = {_TITLES[k]: r.monitor for k, r in runs.items()}
    plot_gradient_flow(monitors, out / "grad_norms_at_init.png", at="first",
                       title="Gradient norm per layer at initialisation")
    plot_gradient_history(monitors, out / "grad_norm_evolution.png", title="Gradient norm per layer during training")
    fig = new_figure(11, 4.2)
    loss_ax, acc_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for kind, run in runs.items():
        steps = list(range(1, len(run.losses) + 1))
        line, = loss_ax.plot(steps, smooth(run.losses, 20), label=_TITLES[kind])
        loss_ax.plot(steps, run.losses, color=line.get_color(), alpha=0.15, linewidth=0.8)
        acc_ax.plot(run.eval_steps, run.test_accuracy, marker="o", markersize=3, color=line.get_color(), label=_TITLES[kind])
    loss_ax.set(xlabel="step", ylabel="training loss (smoothed)", title="Training loss")
    acc_ax.set(xlabel="step", ylabel="test accuracy", title="Test accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out / "learning_curves.png")
    return ["grad_norms_at_init.png", "learning_curves.png", "grad_norm_evolution.png"]


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value
