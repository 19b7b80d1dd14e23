"""PNG plots of what a :class:`~chainrule.diagnostics.GradientMonitor` recorded.

    from chainrule.diagnostics import plots
    plots.plot_gradient_flow(monitor, "flow.png")                 # gradient norm per layer, depth on x, log y
    plots.plot_gradient_flow({"sigmoid": m1, "resnet": m2}, "cmp.png", at="first")  # several models
    plots.plot_gradient_history(monitor, "history.png")           # each layer's norm over the steps
    plots.plot_activation_histograms(monitor, "acts.png")         # per activation: first vs latest step

matplotlib is imported only when plotting, and only its object-oriented API with the Agg canvas is used,
so a notebook's or script's pyplot backend is left alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["plot_gradient_flow", "plot_gradient_history", "plot_activation_histograms", "new_figure", "save_figure"]


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas (no pyplot), or a clear error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, which is not installed; install it with: pip install 'chainrule[train]' "
            "(or pip install matplotlib)"
        ) from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path)
    return path


def _as_mapping(source) -> dict:
    if isinstance(source, dict):
        if not source:
            raise ValueError("plot: got an empty mapping of monitors")
        return source
    return {"": source}


def _positive(values):
    """Values to draw on a log axis: non-positive and non-finite ones become NaN (a gap in the line)."""
    return [v if v is not None and math.isfinite(v) and v > 0 else math.nan for v in values]


def plot_gradient_flow(source, path: str | os.PathLike, *, at: str = "both", title: str | None = None) -> Path:
    """Gradient norm of every weight layer against its depth (forward order), log scale.

    ``source`` is a monitor or a ``{label: monitor}`` mapping (one line per model). ``at`` picks the
    recorded step(s) drawn: "first" (at initialisation when the monitor started with the model),
    "last", or "both" (first dashed, last solid)."""
    if at not in ("first", "last", "both"):
        raise ValueError(f"plot_gradient_flow: at must be 'first', 'last' or 'both', got {at!r}")
    monitors = _as_mapping(source)
    fig = new_figure(9, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(len(monitors))
    single_layers = None
    for color, (label, monitor) in zip(colors, monitors.items()):
        if not monitor.steps:
            continue
        layers = monitor.weight_layers()
        single_layers = layers if len(monitors) == 1 else None
        depth = list(range(1, len(layers) + 1))
        picks = {"first": [0], "last": [-1], "both": [0, -1]}[at]
        if len(monitor.steps) == 1:
            picks = [0]
        for index in picks:
            norms = monitor.layer_grad_norms(index)
            step = monitor.steps[index]
            name = f"{label} (step {step})" if label else f"step {step}"
            style = "--" if index == 0 and len(picks) > 1 else "-"
            ax.plot(depth, _positive([norms[layer] for layer in layers]), style, marker="o", markersize=3,
                    color=color if label else None, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("layer depth (1 = closest to the input)")
    ax.set_ylabel("gradient norm")
    ax.set_title(title or "Gradient norm per layer")
    ax.grid(True, which="both", alpha=0.3)
    if single_layers and len(single_layers) <= 24:
        ax.set_xticks(range(1, len(single_layers) + 1))
        ax.set_xticklabels(single_layers, rotation=60, ha="right", fontsize=7)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_gradient_history(source, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Each weight layer's gradient norm over the recorded steps (log scale), coloured by depth
    (dark = near the input, light = near the output); one panel per monitor."""
    monitors = _as_mapping(source)
    fig = new_figure(5.2 * len(monitors), 4.2)
    shared = None
    for i, (label, monitor) in enumerate(monitors.items()):
        ax = fig.add_subplot(1, len(monitors), i + 1, sharey=shared)
        shared = shared or ax
        history = monitor.layer_grad_history()
        colors = _colors(len(history), cmap="viridis")
        for color, (layer, values) in zip(colors, history.items()):
            ax.plot(monitor.steps, _positive(values), color=color, linewidth=1, label=layer)
        ax.set_yscale("log")
        ax.set_xlabel("step (colour: dark = input side, light = output side)")
        ax.set_ylabel("gradient norm")
        ax.set_title(label or title or "Gradient norm per layer over training")
        ax.grid(True, which="both", alpha=0.3)
        if 0 < len(history) <= 8:
            ax.legend(fontsize=7)
    if title and len(monitors) > 1:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_activation_histograms(monitor, path: str | os.PathLike, *, max_panels: int = 8, bins: int = 50) -> Path:
    """One histogram per activation module (at most ``max_panels``, spread over the depth): its
    outputs at the first recorded step and at the latest one."""
    names = [n for n in monitor.activations if n in monitor.activation_samples]
    if not names:
        raise ValueError("plot_activation_histograms: no activation outputs were recorded (no activation modules, "
                         "or no training forward before a recorded step)")
    if len(names) > max_panels:
        step = (len(names) - 1) / (max_panels - 1)
        names = [names[round(i * step)] for i in range(max_panels)]
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = new_figure(3.4 * cols, 2.6 * rows)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        samples = monitor.activation_samples[name]
        for key, color in (("first", "tab:blue"), ("last", "tab:orange")):
            values = samples.get(key)
            if values is not None and values.size:
                finite = values[_finite_mask(values)]
                if finite.size:  # one outline per histogram: far cheaper to draw than 50 bars
                    ax.hist(finite, bins=bins, histtype="stepfilled", alpha=0.45, color=color, label=key)
        ax.set_title(f"{name} ({monitor.activation_types[name]})", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    # fixed margins: tight_layout measures every tick label and costs seconds on a grid of panels
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.92, wspace=0.3, hspace=0.45)
    return save_figure(fig, path, tight=False)


def _finite_mask(values):
    from chainrule.backend import np

    return np.isfinite(values)


def _colors(n: int, cmap: str = "tab10") -> list:
    from matplotlib import colormaps

    palette = colormaps[cmap]
    if cmap == "tab10":
        return [palette(i % 10) for i in range(n)]
    return [palette(i / max(n - 1, 1) * 0.9) for i in range(n)]
