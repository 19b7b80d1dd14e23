"""Seeing backpropagation: gradient-flow monitoring, health reports, plots, and why-no-gradient answers.

    from chainrule import diagnostics

    with diagnostics.watch(model, every=10) as monitor:     # gradient/weight/update norms, activation stats
        for x, y in batches:
            ...; loss.backward(); opt.step()
            monitor.step()
    report = monitor.report()                               # .issues, .to_json(), print(report)
    monitor.save("runs/exp/diagnostics")                    # report + PNG plots

    diagnostics.explain_grad(loss, tensor)                  # why tensor.grad is None or zero

    from chainrule.diagnostics.experiment import run_vanishing_gradient_experiment
    run_vanishing_gradient_experiment("runs/diagnose")      # sigmoid vs ReLU+He vs residual+LayerNorm

- :mod:`~chainrule.diagnostics.monitor`: :func:`watch`, :class:`GradientMonitor`;
- :mod:`~chainrule.diagnostics.report`: :class:`HealthReport`, :class:`Issue`; thresholds in
  :class:`HealthConfig` (:mod:`~chainrule.diagnostics.config`);
- :mod:`~chainrule.diagnostics.plots`: gradient flow, its evolution, activation histograms (matplotlib);
- :mod:`~chainrule.diagnostics.callback`: :class:`GradientMonitorCallback` for ``chainrule.train.fit``;
- :mod:`~chainrule.diagnostics.explain`: :func:`explain_grad`;
- :mod:`~chainrule.diagnostics.experiment`: the vanishing-gradient experiment.
The graph drawing lives in :mod:`chainrule.viz`.
"""

from chainrule.diagnostics.config import HealthConfig
from chainrule.diagnostics.explain import REASONS, GradExplanation, explain_grad
from chainrule.diagnostics.monitor import ACTIVATION_SATURATION, GradientMonitor, watch
from chainrule.diagnostics.report import HealthReport, Issue

__all__ = ["watch", "GradientMonitor", "HealthConfig", "HealthReport", "Issue", "explain_grad", "GradExplanation",
           "REASONS", "ACTIVATION_SATURATION", "GradientMonitorCallback", "run_vanishing_gradient_experiment"]


def __getattr__(name: str):
    # imported on first use: the callback pulls in the fit loop, the experiment the data and optimizers
    if name == "GradientMonitorCallback":
        from chainrule.diagnostics.callback import GradientMonitorCallback

        return GradientMonitorCallback
    if name == "run_vanishing_gradient_experiment":
        from chainrule.diagnostics.experiment import run_vanishing_gradient_experiment

        return run_vanishing_gradient_experiment
    raise AttributeError(f"module 'chainrule.diagnostics' has no attribute {name!r}")
