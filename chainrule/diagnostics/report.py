"""The health report: what the monitor's numbers say, as issues with evidence and advice.

    report = monitor.report()
    report.ok                      # no issue found
    for issue in report.issues:    # kind, where, severity, evidence (numbers), advice (plain words)
        print(issue.kind, issue.where, issue.evidence, issue.advice)
    print(report)                  # the issues and two tables (parameters, activations)
    report.to_json("report.json")

Checks (thresholds in :class:`~chainrule.diagnostics.config.HealthConfig`), each on the median over
the last ``window`` recorded steps:

- ``vanishing_gradients``: the first third of the weight layers (in forward order) gets gradient
  norms orders of magnitude below the last third, or a layer's norm is below an absolute floor;
- ``exploding_gradients``: the first third's norms far above the last third's, or the total norm
  grew by orders of magnitude since the first recorded steps;
- ``non_finite_gradients``: a NaN or Inf gradient at any recorded step;
- ``no_gradient``: a parameter that requires grad but never got one (unused in the loss);
- ``dead_units``: many units of a ReLU-like activation output zero for the whole batch;
- ``saturated_activations``: many tanh/sigmoid outputs in their flat tails;
- ``update_ratio_too_small`` / ``update_ratio_too_large``: ``||dw|| / ||w||`` far from ~1e-3.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from chainrule.diagnostics.config import HealthConfig

__all__ = ["Issue", "HealthReport", "analyze", "ADVICE"]

ADVICE = {
    "vanishing_gradients": (
        "Early layers get far smaller gradients than late ones, so they barely learn. Use ReLU-family "
        "activations with Kaiming (He) initialisation instead of sigmoid/tanh, add residual connections "
        "with normalisation (e.g. pre-LayerNorm blocks), or make the network shallower."
    ),
    "exploding_gradients": (
        "Gradients grow on their way back or over training. Clip the gradient norm "
        "(nn.utils.clip_grad_norm_ or fit(grad_clip_norm=1.0)), lower the learning rate or add warm-up, "
        "add normalisation layers, and check the initialisation scale."
    ),
    "non_finite_gradients": (
        "A gradient became NaN or Inf. Run a step under chainrule.autograd.detect_anomaly() to find the "
        "operation and line that produced it; common causes are log/sqrt/division at 0 and a learning "
        "rate so high the loss overflows."
    ),
    "no_gradient": (
        "This parameter requires grad but never received a gradient: it does not take part in the loss "
        "(an unused layer, a branch cut by detach() or no_grad()). Remove it, freeze it with "
        "requires_grad_(False), or use chainrule.diagnostics.explain_grad(loss, param) to see why."
    ),
    "dead_units": (
        "Many units output zero for every sample, so they pass no gradient and stop learning. Lower the "
        "learning rate, use LeakyReLU or GELU, use Kaiming initialisation, or normalise the layer inputs."
    ),
    "saturated_activations": (
        "Many outputs sit in the flat tails of the activation, where its derivative is almost zero. "
        "Normalise the inputs, use a smaller (Xavier) initialisation, put a LayerNorm before the "
        "activation, or switch to ReLU/GELU."
    ),
    "update_ratio_too_small": (
        "Each step changes these weights by a tiny fraction, so they learn very slowly. Raise the "
        "learning rate (or this group's), or check that their gradient is not vanishing."
    ),
    "update_ratio_too_large": (
        "Each step changes these weights by a large fraction of their size, which makes training "
        "unstable. Lower the learning rate or use a warm-up."
    ),
}


@dataclass
class Issue:
    """One finding: ``kind`` (a key of :data:`ADVICE`), ``where`` (the layer, parameter or activation),
    ``severity`` ("warning" or "error"), ``evidence`` (the numbers), ``message`` and ``advice``."""

    kind: str
    where: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "severity": self.severity, "message": self.message,
                "evidence": self.evidence, "advice": self.advice}

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind} at {self.where}: {self.message}"


@dataclass
class HealthReport:
    """The issues found, with per-parameter and per-activation summaries (medians over the window)."""

    issues: list[Issue]
    parameters: list[dict[str, Any]]
    activations: list[dict[str, Any]]
    steps: list[int]
    config: HealthConfig

    @property
    def ok(self) -> bool:
        return not self.issues

    def kinds(self) -> list[str]:
        """The distinct issue kinds found, in order of first appearance."""
        return list(dict.fromkeys(issue.kind for issue in self.issues))

    def has(self, kind: str) -> bool:
        return any(issue.kind == kind for issue in self.issues)

    @property
    def verdict(self) -> str:
        """One line: 'healthy' or the issue kinds found."""
        if not self.steps:
            return "no steps recorded"
        return "healthy" if self.ok else "issues: " + ", ".join(self.kinds())

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "steps_recorded": len(self.steps),
                "steps": [self.steps[0], self.steps[-1]] if self.steps else [],
                "issues": [issue.to_dict() for issue in self.issues], "parameters": self.parameters,
                "activations": self.activations, "config": self.config.to_dict()}

    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 2) -> str:
        """Strict JSON (NaN and Inf written as null); also written to ``path`` when given."""
        text = json.dumps(_strict(self.to_dict()), indent=indent, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def table(self) -> str:
        """The per-parameter and per-activation tables as aligned text."""
        parts = []
        if self.parameters:
            rows = [[p["name"], _shape(p["shape"]), _num(p["grad_norm"]), _num(p["weight_norm"]),
                     _num(p["update_ratio"])] for p in self.parameters]
            parts.append(_format_table(["parameter", "shape", "grad norm", "weight norm", "update/weight"], rows))
        if self.activations:
            rows = [[a["name"], a["type"], _num(a["mean"]), _num(a["std"]), _pct(a["zero_fraction"]),
                     _pct(a["dead_fraction"]), _pct(a["saturated_fraction"])] for a in self.activations]
            parts.append(_format_table(["activation", "type", "mean", "std", "zeros", "dead units", "saturated"], rows))
        return "\n\n".join(parts)

    def __str__(self) -> str:
        if not self.steps:
            return "gradient-flow report: no steps recorded (call monitor.step() after each optimizer step)"
        head = (f"gradient-flow report: {len(self.steps)} recorded steps ({self.steps[0]}..{self.steps[-1]}), "
                f"medians over the last {min(self.config.window, len(self.steps))}: {self.verdict}")
        lines = [head]
        for issue in self.issues:
            lines.append(f"  {issue}")
            lines.append(f"      advice: {issue.advice}")
        return "\n".join(lines) + "\n\n" + self.table()


# ----- analysis ------------------------------------------------------------------------------------

def analyze(monitor, config: HealthConfig) -> HealthReport:
    """Run every check on ``monitor``'s records."""
    steps = list(monitor.steps)
    window = slice(-min(config.window, len(steps)), None) if steps else slice(0, 0)
    issues: list[Issue] = []
    if steps:
        issues += _non_finite(monitor)
        issues += _no_gradient(monitor)
        issues += _layer_profile(monitor, config, window)
        issues += _growth(monitor, config)
        issues += _activations(monitor, config, window)
        issues += _update_ratios(monitor, config, window)
    return HealthReport(issues, _parameter_rows(monitor, window), _activation_rows(monitor, window), steps, config)


def _finite_median(values: list[float]) -> float:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return median(kept) if kept else math.nan


def _non_finite(monitor) -> list[Issue]:
    for i, step in enumerate(monitor.steps):
        bad = [n for n in monitor.param_names if math.isinf(monitor.grad_norms[n][i]) or _is_nan_grad(monitor, n, i)]
        if bad:
            return [Issue("non_finite_gradients", bad[0], "error",
                          f"gradient norm is {monitor.grad_norms[bad[0]][i]} at step {step} "
                          f"({len(bad)} parameter(s) affected)",
                          {"step": step, "parameters": bad[:10], "count": len(bad)}, ADVICE["non_finite_gradients"])]
    return []


def _is_nan_grad(monitor, name: str, i: int) -> bool:
    """NaN norm from a NaN gradient (not from a missing one: a parameter with a NaN weight norm
    or a gradient that exists)."""
    value = monitor.grad_norms[name][i]
    return math.isnan(value) and monitor.has_grad[name][i]


def _no_gradient(monitor) -> list[Issue]:
    missing = [n for n in monitor.param_names if all(math.isnan(v) and not monitor.has_grad[n][i]
                                                      for i, v in enumerate(monitor.grad_norms[n]))]
    return [Issue("no_gradient", name, "warning",
                  f"no gradient at any of the {len(monitor.steps)} recorded steps",
                  {"recorded_steps": len(monitor.steps)}, ADVICE["no_gradient"]) for name in missing]


def _layer_profile(monitor, config: HealthConfig, window: slice) -> list[Issue]:
    history = monitor.layer_grad_history()
    layers = list(history)
    issues = []
    medians = {layer: _finite_median(history[layer][window]) for layer in layers}
    if len(layers) >= 2:
        third = max(1, len(layers) // 3)
        early, late = layers[:third], layers[-third:]
        ratios = []
        for i in range(len(monitor.steps))[window]:
            e = _geo_mean([history[layer][i] for layer in early])
            lt = _geo_mean([history[layer][i] for layer in late])
            if e is not None and lt is not None and lt > 0:
                ratios.append(e / lt)
        ratio = _finite_median(ratios)
        evidence = {"ratio_early_to_late": ratio, "early_layers": early, "late_layers": late,
                    "early_grad_norms": [medians[layer] for layer in early],
                    "late_grad_norms": [medians[layer] for layer in late]}
        if ratio < config.vanishing_ratio:
            issues.append(Issue(
                "vanishing_gradients", f"{early[0]} .. {early[-1]}", "error",
                f"the first {len(early)} weight layers get gradients {_orders(ratio)} smaller than the last "
                f"{len(late)} (ratio {ratio:.2e} < {config.vanishing_ratio:g})", evidence, ADVICE["vanishing_gradients"]))
        elif ratio > config.exploding_ratio:
            issues.append(Issue(
                "exploding_gradients", f"{early[0]} .. {early[-1]}", "error",
                f"the first {len(early)} weight layers get gradients {_orders(ratio)} larger than the last "
                f"{len(late)} (ratio {ratio:.2e} > {config.exploding_ratio:g})", evidence, ADVICE["exploding_gradients"]))
    flagged = {issue.kind for issue in issues}
    tiny = [layer for layer in layers if medians[layer] < config.grad_floor]
    if tiny and "vanishing_gradients" not in flagged:
        issues.append(Issue(
            "vanishing_gradients", tiny[0], "error",
            f"{len(tiny)} weight layer(s) get gradient norms below {config.grad_floor:g} "
            f"(smallest {min(medians[t] for t in tiny):.2e} at {tiny[0]})",
            {"layers": tiny, "grad_norms": [medians[t] for t in tiny], "floor": config.grad_floor},
            ADVICE["vanishing_gradients"]))
    return issues


def _growth(monitor, config: HealthConfig) -> list[Issue]:
    totals = monitor.total_grad_norms()
    n = min(config.window, len(totals) // 2)
    if n < 1:
        return []
    first, last = _finite_median(totals[:n]), _finite_median(totals[-n:])
    if first > 0 and last / first > config.growth_ratio:
        return [Issue("exploding_gradients", "all parameters", "error",
                      f"the total gradient norm grew {last / first:.2e}x during training "
                      f"(median {first:.3g} over the first {n} recorded steps, {last:.3g} over the last {n})",
                      {"first": first, "last": last, "growth": last / first}, ADVICE["exploding_gradients"])]
    return []


def _activations(monitor, config: HealthConfig, window: slice) -> list[Issue]:
    issues = []
    for name, series in monitor.activations.items():
        dead = _finite_median(series["dead_fraction"][window])
        if dead > config.dead_fraction:
            issues.append(Issue(
                "dead_units", name, "warning",
                f"{dead:.0%} of the units of this {monitor.activation_types[name]} output zero for the whole batch",
                {"dead_fraction": dead, "zero_fraction": _finite_median(series["zero_fraction"][window]),
                 "never_active_fraction": monitor.never_active_fraction(name)}, ADVICE["dead_units"]))
        saturated = _finite_median(series["saturated_fraction"][window])
        if saturated > config.saturation_fraction:
            issues.append(Issue(
                "saturated_activations", name, "warning",
                f"{saturated:.0%} of the outputs of this {monitor.activation_types[name]} are saturated",
                {"saturated_fraction": saturated, "mean": _finite_median(series["mean"][window]),
                 "std": _finite_median(series["std"][window])}, ADVICE["saturated_activations"]))
    return issues


def _update_ratios(monitor, config: HealthConfig, window: slice) -> list[Issue]:
    """One issue per direction, listing every parameter outside the band (a deep network would
    otherwise get one line per layer)."""
    low, high = {}, {}
    for name in monitor.param_names:
        if len(monitor.param_shapes[name]) < config.update_ratio_min_ndim:
            continue
        ratio = _finite_median(monitor.update_ratios[name][window])
        if ratio < config.update_ratio_low:
            low[name] = ratio
        elif ratio > config.update_ratio_high:
            high[name] = ratio
    issues = []
    for kind, found, relation, bound in (("update_ratio_too_small", low, "<", config.update_ratio_low),
                                         ("update_ratio_too_large", high, ">", config.update_ratio_high)):
        if not found:
            continue
        names = list(found)
        where = names[0] if len(names) == 1 else f"{len(names)} parameters ({names[0]} .. {names[-1]})"
        extreme = min(found.values()) if relation == "<" else max(found.values())
        issues.append(Issue(kind, where, "warning",
                            f"updates are {_ratio_text(found)} of the weight norm ({relation} {bound:g}; "
                            f"most extreme {extreme:.2e})",
                            {"parameters": found, "low": config.update_ratio_low, "high": config.update_ratio_high},
                            ADVICE[kind]))
    return issues


def _ratio_text(found: dict) -> str:
    values = list(found.values())
    if len(values) == 1:
        return f"{values[0]:.2e}"
    return f"{min(values):.2e} .. {max(values):.2e}"


def _parameter_rows(monitor, window: slice) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(monitor.param_shapes[n]),
             "grad_norm": _finite_median(monitor.grad_norms[n][window]),
             "weight_norm": _finite_median(monitor.weight_norms[n][window]),
             "update_ratio": _finite_median(monitor.update_ratios[n][window])} for n in monitor.param_names]


def _activation_rows(monitor, window: slice) -> list[dict[str, Any]]:
    rows = []
    for name, series in monitor.activations.items():
        row = {"name": name, "type": monitor.activation_types[name]}
        row.update({key: _finite_median(values[window]) for key, values in series.items()})
        row["never_active_fraction"] = monitor.never_active_fraction(name)
        rows.append(row)
    return rows


# ----- helpers -------------------------------------------------------------------------------------

def _geo_mean(values: list[float]) -> float | None:
    kept = [v for v in values if math.isfinite(v)]
    if not kept:
        return None
    if any(v <= 0 for v in kept):
        return 0.0
    return math.exp(sum(math.log(v) for v in kept) / len(kept))


def _orders(ratio: float) -> str:
    if ratio <= 0 or not math.isfinite(ratio):
        return "infinitely"
    orders = abs(math.log10(ratio))
    return f"{orders:.0f} orders of magnitude" if orders >= 1.5 else f"{max(ratio, 1 / ratio):.0f}x"


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    numeric = [i > 0 and all(_looks_numeric(row[i]) for row in rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if numeric[i] else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows])


def _looks_numeric(text: str) -> bool:
    return text == "-" or text.rstrip("%").replace(".", "", 1).replace("e", "", 1).replace("-", "").replace("+", "").isdigit()
