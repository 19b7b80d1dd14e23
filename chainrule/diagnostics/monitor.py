"""The gradient-flow monitor: per step, per parameter and per activation, the numbers that say whether
backpropagation is healthy.

    from chainrule import diagnostics

    monitor = diagnostics.watch(model, every=10)      # or: with diagnostics.watch(model) as monitor:
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        monitor.step(opt)                              # after optimizer.step() (opt: optional, records lr)
    print(monitor.report())                            # issues + tables; .to_json(), .issues
    monitor.save("runs/exp/diagnostics")               # report.json, report.txt and the plots
    monitor.remove()

    # or let it follow the optimizer: diagnostics.watch(model, optimizer=opt) (no monitor.step() calls),
    # or the fit loop: fit(..., callbacks=[monitor.callback()]) / GradientMonitorCallback(every=10)

What is recorded on every ``every``-th step (the first step always, so the gradients at
initialisation are there):

- per parameter that requires grad: the gradient norm, the weight norm, and the update-to-weight ratio
  ``||w_after - w_before|| / ||w_before||`` of the optimizer step (the weights are copied into a
  preallocated buffer at the end of the step before a recorded one, so the copy costs one memcpy of
  the parameters per recorded step);
- per activation module (ReLU, LeakyReLU, GELU, Tanh, Sigmoid, SiLU, ...), through a forward hook
  during training forwards (``module.training`` and grad mode on) that precede a recorded step: the
  output's mean and std, the fraction of exact zeros, the fraction of units that are zero for the
  whole batch (dead ReLUs), and for saturating activations the fraction saturated.

Everything is computed with reductions on the backend arrays (no graph is recorded) and stored as
Python floats. Gradient norms are read at ``step()`` time, i.e. after any gradient clipping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chainrule import nn
from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.diagnostics.config import HealthConfig
from chainrule.diagnostics.stats import activation_stats, diff_squared_norm, sample_values, squared_norm

__all__ = ["GradientMonitor", "watch", "ACTIVATION_SATURATION"]

# Activation module types the monitor hooks, with how each saturates (None: it does not).
ACTIVATION_SATURATION: dict[type, str | None] = {
    nn.ReLU: None, nn.ReLU6: None, nn.LeakyReLU: None, nn.ELU: None, nn.GELU: None, nn.SiLU: None,
    nn.Mish: None, nn.Softplus: None, nn.Tanh: "tanh", nn.Softsign: "tanh", nn.Sigmoid: "sigmoid",
    nn.Hardtanh: "bounds",
}

_STAT_KEYS = ("mean", "std", "zero_fraction", "dead_fraction", "saturated_fraction")


class GradientMonitor:
    """Records gradient, weight, update and activation statistics of ``model`` during training.

    Made by :func:`watch`; see the module docstring for what is recorded. Attributes (plain data):

    - ``steps``: the step numbers recorded;
    - ``param_names``: the monitored parameters, in ``named_parameters()`` order;
    - ``grad_norms[name]``, ``weight_norms[name]``, ``update_ratios[name]``: one float per recorded
      step (``nan`` when the parameter had no gradient, or for the update ratio of a step without a
      snapshot before it); ``has_grad[name]``: whether ``.grad`` was set at each recorded step;
    - ``learning_rates``: the first param group's learning rate per recorded step (``nan`` without
      an optimizer);
    - ``activations[name][stat]``: one float per recorded step for ``stat`` in mean, std,
      zero_fraction, dead_fraction, saturated_fraction (``nan`` when the module did not run);
    - ``activation_samples[name]``: ``{"first": values, "last": values}``, a strided sample of the
      outputs at the first and the latest recorded steps, for histograms;
    - ``layer_order``: modules holding parameters, in the order their forward first ran.
    """

    def __init__(self, model: nn.Module, optimizer=None, *, every: int = 1, activations: bool = True,
                 track_updates: bool = True, config: HealthConfig | None = None,
                 activation_types: Iterable[type] | None = None, sample_size: int = 4096):
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch: model must be a chainrule.nn.Module, got {type(model).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"watch: every must be a positive integer (record every n-th step), got {every!r}")
        if config is not None and not isinstance(config, HealthConfig):
            raise TypeError(f"watch: config must be a HealthConfig, got {type(config).__name__}")
        self.model = model
        self.every = every
        self.config = config or HealthConfig()
        self.track_updates = track_updates
        self.sample_size = sample_size
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("watch: the model has no parameter that requires grad; there is no gradient to monitor")
        self.param_names = [name for name, _ in self._params]
        self.param_shapes = {name: tuple(p.shape) for name, p in self._params}
        self.steps: list[int] = []
        self.grad_norms: dict[str, list[float]] = {name: [] for name in self.param_names}
        self.weight_norms: dict[str, list[float]] = {name: [] for name in self.param_names}
        self.update_ratios: dict[str, list[float]] = {name: [] for name in self.param_names}
        self.has_grad: dict[str, list[bool]] = {name: [] for name in self.param_names}
        self.learning_rates: list[float] = []
        self.activations: dict[str, dict[str, list[float]]] = {}
        self.activation_types: dict[str, str] = {}
        self.activation_samples: dict[str, dict[str, Any]] = {}
        self.layer_order: list[str] = []
        self._count = 0
        self._armed = True  # the next step is recorded: hooks measure the forwards before it
        self._pending: dict[str, list[dict]] = {}
        self._ever_active: dict[str, Any] = {}
        self._snapshot: list | None = None
        self._snapshot_norms: list[float] = []
        self._scratch: list | None = None
        self._handles: list = []
        self._order_handles: list = []
        self._optimizer = None
        self._optimizer_step = None
        self._removed = False
        self._register_hooks(activations, activation_types)
        if optimizer is not None:
            self._hook_optimizer(optimizer)
        if track_updates:
            self._take_snapshot()

    # ----- set-up ---------------------------------------------------------------------------------
    def _register_hooks(self, activations: bool, activation_types: Iterable[type] | None) -> None:
        types = tuple(activation_types) if activation_types is not None else tuple(ACTIVATION_SATURATION)
        for name, module in self.model.named_modules():
            if activations and isinstance(module, types):
                label = name or type(module).__name__
                self.activations[label] = {key: [] for key in _STAT_KEYS}
                self.activation_types[label] = type(module).__name__
                self._handles.append(module.register_forward_hook(self._activation_hook(label)))
            if any(p is not None and p.requires_grad for p in module._parameters.values()):
                self._order_handles.append(module.register_forward_hook(self._order_hook(name)))

    def _order_hook(self, name: str):
        def hook(module, inputs, output):
            if name not in self.layer_order:
                self.layer_order.append(name)

        return hook

    def _activation_hook(self, label: str):
        def hook(module, inputs, output):
            if not self._armed or not module.training or not GRAD_ENABLED[0]:
                return None
            data = getattr(output, "_data", None)
            if data is None:
                return None
            saturation = _saturation_of(module)
            bounds = (module.min_val, module.max_val) if saturation == "bounds" else None
            stats, active = activation_stats(data, saturation, self.config.tanh_saturation,
                                             self.config.sigmoid_saturation, bounds)
            self._pending.setdefault(label, []).append(stats)
            self._note_active(label, active)
            samples = self.activation_samples.setdefault(label, {})
            values = sample_values(data, self.sample_size)
            samples.setdefault("first", values)
            samples["last"] = values
            return None

        return hook

    def _note_active(self, label: str, active) -> None:
        if active is None:
            return
        seen = self._ever_active.get(label)
        if seen is None or seen.shape != active.shape:
            self._ever_active[label] = active.copy()
        else:
            seen |= active

    def _hook_optimizer(self, optimizer) -> None:
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"watch: optimizer must have a step() method, got {type(optimizer).__name__}")
        original = optimizer.step

        def step(*args, **kwargs):
            result = original(*args, **kwargs)
            self.step()
            return result

        optimizer.step = step
        self._optimizer, self._optimizer_step = optimizer, step

    @property
    def removed(self) -> bool:
        """True once :meth:`remove` was called (records readable, no more recording)."""
        return self._removed

    @property
    def hooks_optimizer(self) -> bool:
        """True when the monitor follows an optimizer's ``step()`` (no ``monitor.step()`` calls needed)."""
        return self._optimizer is not None

    # ----- recording ------------------------------------------------------------------------------
    def step(self, optimizer=None, *, step: int | None = None) -> bool:
        """Call once per training step, after ``optimizer.step()``. With ``optimizer`` (or the one given
        to :func:`watch`) the learning rate of its first param group is recorded too. ``step`` labels
        the record (default: the count of calls). Returns whether this step was recorded."""
        if self._removed:
            raise RuntimeError("GradientMonitor.step: the monitor was removed; create a new one with diagnostics.watch()")
        if optimizer is not None and not hasattr(optimizer, "param_groups"):
            raise TypeError(
                f"GradientMonitor.step: optimizer must be an optimizer (with param_groups), got {type(optimizer).__name__}; "
                "pass a step number as step=..."
            )
        self._count += 1
        recorded = (self._count - 1) % self.every == 0
        if recorded:
            self._record(self._count if step is None else int(step))
            self.learning_rates.append(_learning_rate(optimizer or self._optimizer))
        # the step after this one is recorded: measure its forwards and keep the weights it starts from
        self._armed = self._count % self.every == 0
        if self._armed and self.track_updates:
            self._take_snapshot()
        return recorded

    def _record(self, label: int) -> None:
        self.steps.append(label)
        for i, (name, p) in enumerate(self._params):
            self.weight_norms[name].append(math.sqrt(squared_norm(p._data)))
            self.has_grad[name].append(p.grad is not None)
            self.grad_norms[name].append(math.nan if p.grad is None else math.sqrt(squared_norm(p.grad._data)))
            self.update_ratios[name].append(self._update_ratio(i, p))
        for label_, series in self.activations.items():
            measured = self._pending.pop(label_, None)
            merged = _merge_stats(measured) if measured else {}
            for key in _STAT_KEYS:
                value = merged.get(key)
                series[key].append(math.nan if value is None else value)
        self._pending.clear()
        if self._order_handles and self.layer_order:
            for handle in self._order_handles:
                handle.remove()
            self._order_handles = []

    def _update_ratio(self, index: int, p) -> float:
        if self._snapshot is None:
            return math.nan
        before = self._snapshot[index]
        if before.shape != p._data.shape or type(before) is not type(p._data):
            return math.nan  # the parameter was replaced or moved since the snapshot
        before_norm = self._snapshot_norms[index]
        if before_norm == 0:
            return math.nan  # zero-initialised: no scale to compare with
        return math.sqrt(diff_squared_norm(p._data, before, self._scratch[index])) / before_norm

    def _take_snapshot(self) -> None:
        """Copy the weights into buffers kept between steps (allocated once, reused), with their norms
        (those just recorded, when this step was recorded: the weights are the same)."""
        snapshot = self._snapshot
        if snapshot is None or any(s.shape != p._data.shape or type(s) is not type(p._data)
                                   for s, (_, p) in zip(snapshot, self._params)):
            self._snapshot = [p._data.copy() for _, p in self._params]
            self._scratch = [p.xp.empty_like(p._data) for _, p in self._params]
        else:
            for buffer, (_, p) in zip(snapshot, self._params):
                p.xp.copyto(buffer, p._data)
        just_recorded = bool(self.steps) and self._count > 0 and (self._count - 1) % self.every == 0
        if just_recorded:
            self._snapshot_norms = [self.weight_norms[name][-1] for name in self.param_names]
        else:
            self._snapshot_norms = [math.sqrt(squared_norm(s)) for s in self._snapshot]

    # ----- life cycle -----------------------------------------------------------------------------
    def remove(self) -> None:
        """Remove the forward hooks (and the optimizer hook) and free the weight snapshot; the
        records stay readable and ``report()`` still works."""
        for handle in self._handles + self._order_handles:
            handle.remove()
        self._handles, self._order_handles = [], []
        if self._optimizer is not None and self._optimizer.__dict__.get("step") is self._optimizer_step:
            del self._optimizer.step
        self._optimizer = self._optimizer_step = None
        self._snapshot = self._scratch = None
        self._pending.clear()
        self._removed = True

    def __enter__(self) -> GradientMonitor:
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False

    def callback(self, out_dir: str | Path | None = None):
        """This monitor as a fit-loop callback: ``fit(..., callbacks=[monitor.callback()])`` calls
        ``step()`` after every optimizer step (unless the monitor follows the optimizer already) and,
        with ``out_dir``, saves the report and plots when training ends."""
        from chainrule.diagnostics.callback import GradientMonitorCallback

        return GradientMonitorCallback(self, out_dir=out_dir)

    # ----- views ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = "removed" if self._removed else "active"
        return (f"GradientMonitor({state}, every={self.every}, {len(self.param_names)} parameters, "
                f"{len(self.activations)} activations, {len(self.steps)} recorded steps)")

    def weight_layers(self) -> list[str]:
        """Modules holding a parameter of two or more dimensions (linear and convolution layers,
        embeddings), in forward order when it was observed, else in registration order."""
        layers = []
        for name in self.param_names:
            module = name.rpartition(".")[0]
            if len(self.param_shapes[name]) >= 2 and module not in layers:
                layers.append(module)
        order = {name: i for i, name in enumerate(self.layer_order)}
        return sorted(layers, key=lambda m: order.get(m, len(order) + layers.index(m)))

    def layer_grad_norms(self, index: int = -1) -> dict[str, float]:
        """Gradient norm of each weight layer (all its parameters together) at recorded step ``index``."""
        return {layer: self._layer_norm(layer, self.grad_norms, index) for layer in self.weight_layers()}

    def layer_grad_history(self) -> dict[str, list[float]]:
        """Per weight layer, its gradient norm at every recorded step."""
        return {layer: [self._layer_norm(layer, self.grad_norms, i) for i in range(len(self.steps))]
                for layer in self.weight_layers()}

    def total_grad_norms(self) -> list[float]:
        """The gradient norm of all monitored parameters together, per recorded step."""
        out = []
        for i in range(len(self.steps)):
            squares = [self.grad_norms[n][i] ** 2 for n in self.param_names if not math.isnan(self.grad_norms[n][i])]
            out.append(math.sqrt(sum(squares)) if squares else math.nan)
        return out

    def _layer_norm(self, layer: str, table: dict, index: int) -> float:
        squares = [table[n][index] ** 2 for n in self.param_names
                   if n.rpartition(".")[0] == layer and not math.isnan(table[n][index])]
        return math.sqrt(sum(squares)) if squares else math.nan

    def never_active_fraction(self, name: str) -> float:
        """Fraction of an activation's units that never produced a non-zero output in any measured batch."""
        seen = self._ever_active.get(name)
        if seen is None or seen.size == 0:
            return math.nan
        return 1.0 - float(seen.sum()) / seen.size

    def to_dict(self) -> dict[str, Any]:
        """The records as plain data (JSON-ready except for NaN, which :meth:`report` handles)."""
        return {
            "every": self.every,
            "steps": list(self.steps),
            "learning_rates": list(self.learning_rates),
            "parameters": {name: {"shape": list(self.param_shapes[name]), "grad_norm": self.grad_norms[name],
                                  "weight_norm": self.weight_norms[name], "update_ratio": self.update_ratios[name]}
                           for name in self.param_names},
            "activations": {name: {"type": self.activation_types[name], **series}
                            for name, series in self.activations.items()},
            "layer_order": self.weight_layers(),
        }

    def report(self, config: HealthConfig | None = None):
        """The health report (:class:`~chainrule.diagnostics.report.HealthReport`) of what was recorded."""
        from chainrule.diagnostics.report import analyze

        return analyze(self, config or self.config)

    def save(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """Write ``report.json``, ``report.txt`` and (with matplotlib) ``gradient_flow.png``,
        ``gradient_history.png`` and ``activation_histograms.png`` into ``out_dir``; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = self.report()
        written = {"report.json": out / "report.json", "report.txt": out / "report.txt"}
        report.to_json(written["report.json"])
        written["report.txt"].write_text(str(report) + "\n", encoding="utf-8")
        if plots and self.steps:
            from chainrule.diagnostics import plots as plotting

            written["gradient_flow.png"] = plotting.plot_gradient_flow(self, out / "gradient_flow.png")
            written["gradient_history.png"] = plotting.plot_gradient_history(self, out / "gradient_history.png")
            if self.activation_samples:
                written["activation_histograms.png"] = plotting.plot_activation_histograms(
                    self, out / "activation_histograms.png")
        return written


def _saturation_of(module) -> str | None:
    for cls in type(module).__mro__:
        if cls in ACTIVATION_SATURATION:
            return ACTIVATION_SATURATION[cls]
    return None


def _learning_rate(optimizer) -> float:
    try:
        return float(optimizer.param_groups[0]["lr"])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return math.nan


def _merge_stats(measured: list[dict]) -> dict:
    """Several forwards before one step (gradient accumulation): average weighted by element count."""
    if len(measured) == 1:
        return measured[0]
    total = sum(m["numel"] for m in measured) or 1
    merged = {}
    for key in _STAT_KEYS:
        values = [(m[key], m["numel"]) for m in measured if m[key] is not None and not math.isnan(m[key])]
        merged[key] = sum(v * n for v, n in values) / total if values else None
    return merged


def watch(model: nn.Module, optimizer=None, *, every: int = 1, activations: bool = True, track_updates: bool = True,
          config: HealthConfig | None = None, activation_types: Iterable[type] | None = None,
          sample_size: int = 4096) -> GradientMonitor:
    """Start monitoring the gradient flow of ``model``; returns a :class:`GradientMonitor`.

    Args:
        model: the module to watch (its parameters that require grad, its activation modules).
        optimizer: when given, the monitor records after each ``optimizer.step()`` by itself (its
            ``step`` is wrapped until ``remove()``); otherwise call ``monitor.step()`` after each
            optimizer step, or use ``monitor.callback()`` with ``fit``.
        every: record every n-th step (the first step always). Between recorded steps the monitor
            costs nothing but a counter increment and an early return in each activation hook.
        activations: hook the activation modules (types in ``ACTIVATION_SATURATION``, or
            ``activation_types``) to measure their outputs.
        track_updates: keep a copy of the weights before each recorded step for the update ratio.
        config: thresholds (:class:`HealthConfig`) for saturation and for the report.
        sample_size: how many activation values to keep for histograms.

    Use as a context manager (``with watch(model) as monitor:``, hooks removed on exit) or keep the
    handle and call ``remove()``.
    """
    return GradientMonitor(model, optimizer, every=every, activations=activations, track_updates=track_updates,
                           config=config, activation_types=activation_types, sample_size=sample_size)
