"""Training curves as a PNG: :func:`plot_history`.

    from chainrule.train import fit, plot_history
    history = fit(...)
    plot_history(history, "runs/exp1/curves.png")

Panels: the loss against optimizer steps (each step's loss faint, an exponential moving average of it
solid, and the per-epoch training and validation losses as points at the step where each epoch ended);
one panel per metric against epochs (training and validation); and the learning rate against steps.

matplotlib (in the ``train`` extra) is imported only when plotting, and only its object-oriented API
with the Agg canvas is used, so the global pyplot backend of a notebook or script is left alone.
"""

from __future__ import annotations

import math
import os
from typing import Any

from chainrule.train.history import History

__all__ = ["plot_history", "smooth"]

_NOT_METRICS = ("epoch", "step", "seconds", "lr", "loss")


def smooth(values: list[float], span: int) -> list[float]:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, debiased at the start (as
    TensorBoard's smoothing); non-finite values are skipped (the average carries over them)."""
    alpha = 2.0 / (span + 1.0)
    out, average, weight = [], 0.0, 0.0
    for value in values:
        if value is not None and math.isfinite(value):
            average = (1 - alpha) * average + alpha * value
            weight = (1 - alpha) * weight + alpha
        out.append(average / weight if weight else math.nan)
    return out


def _metric_names(history: History) -> list[str]:
    names: list[str] = []
    for record in history.epochs:
        for key in record:
            base = key[4:] if key.startswith("val_") else key
            if base not in _NOT_METRICS and base not in names and isinstance(record[key], (int, float)):
                names.append(base)
    return names


def _series(records: list[dict], key: str, x_key: str) -> tuple[list, list]:
    xs, ys = [], []
    for i, record in enumerate(records):
        value = record.get(key)
        if isinstance(value, (int, float)):
            xs.append(record.get(x_key, i))
            ys.append(value)
    return xs, ys


def _plot_loss(ax, history: History, smoothing_span: int | None) -> None:
    steps = history.steps
    if steps:
        xs, ys = _series(steps, "loss", "step")
        span = smoothing_span or min(len(ys), max(5, len(ys) // 50))
        ax.plot(xs, ys, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (step)")
        ax.plot(xs, smooth(ys, span), color="tab:blue", linewidth=1.6, label=f"train (EMA, span {span})")
        x_key = "step"
        ax.set_xlabel("step")
    else:
        x_key = "epoch"
        ax.set_xlabel("epoch")
    for key, color in (("loss", "tab:blue"), ("val_loss", "tab:orange")):
        xs, ys = _series(history.epochs, key, x_key)
        if ys:
            label = "train (epoch mean)" if key == "loss" else "validation"
            ax.plot(xs, ys, "o-" if key == "val_loss" else "o", color=color, markersize=4, label=label)
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _plot_metric(ax, history: History, name: str) -> None:
    for key, color, label in ((name, "tab:blue", "train"), (f"val_{name}", "tab:orange", "validation")):
        xs, ys = _series(history.epochs, key, "epoch")
        if ys:
            ax.plot([x + 1 for x in xs], ys, "o-", color=color, markersize=4, label=label)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _plot_lr(ax, history: History) -> None:
    xs, ys = _series(history.steps, "lr", "step") if history.steps else _series(history.epochs, "lr", "epoch")
    ax.plot(xs, ys, color="tab:green")
    if ys and min(ys) > 0 and max(ys) / min(ys) > 20:
        ax.set_yscale("log")
    ax.set_title("learning rate")
    ax.set_xlabel("step" if history.steps else "epoch")
    ax.grid(alpha=0.3)


def plot_history(history: History | dict | str | os.PathLike, path: str | os.PathLike, *,
                 smoothing_span: int | None = None, title: str | None = None, dpi: int = 100) -> str:
    """Draw the curves of ``history`` (a History, its ``to_dict()``, or a path to its JSON) into the
    PNG file ``path`` (parent folders are created); returns the path.

    ``smoothing_span`` sets the moving average over per-step losses (default: 1/50 of the steps, at
    least 5).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install 'chainrule[train]' (or matplotlib)") from None
    history = _as_history(history)
    if not history.epochs and not history.steps:
        raise ValueError("plot_history: the history is empty (no epochs or steps recorded)")
    metrics = _metric_names(history)
    has_lr = any("lr" in r for r in history.steps or history.epochs)
    panels = 1 + len(metrics) + int(has_lr)
    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(5 * columns, 3.6 * rows), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]
    _plot_loss(axes[0], history, smoothing_span)
    for ax, name in zip(axes[1:], metrics):
        _plot_metric(ax, history, name)
    if has_lr:
        _plot_lr(axes[-1], history)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs are whole numbers
    if title:
        figure.suptitle(title)
    # fixed margins: tight_layout would render the figure an extra time just to measure it
    height = 3.6 * rows  # inches; margins are set in inches so they do not grow with the number of rows
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - (0.75 if title else 0.35) / height,
                           wspace=0.25, hspace=0.45)
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _as_history(history: Any) -> History:
    if isinstance(history, History):
        return history
    if isinstance(history, dict):
        result = History(history.get("epochs", []), history.get("steps", []))
        result.stop_reason = history.get("stop_reason")
        return result
    if isinstance(history, (str, os.PathLike)):
        return History.from_json(history)
    raise TypeError(f"plot_history: expected a History, a dict from History.to_dict(), or a JSON path; "
                    f"got {type(history).__name__}")
