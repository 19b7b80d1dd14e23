"""The gradient-flow monitor as a fit-loop callback.

    from chainrule.diagnostics import GradientMonitorCallback
    cb = GradientMonitorCallback(every=10, out_dir="runs/exp/diagnostics")
    fit(model, data, loss=..., optimizer=opt, callbacks=[cb])
    print(cb.monitor.report())

or, with a monitor made beforehand: ``fit(..., callbacks=[monitor.callback()])``.
"""

from __future__ import annotations

from pathlib import Path

from chainrule.diagnostics.config import HealthConfig
from chainrule.diagnostics.monitor import GradientMonitor, watch
from chainrule.train.callbacks import Callback

__all__ = ["GradientMonitorCallback"]


class GradientMonitorCallback(Callback):
    """Records gradient flow during ``fit`` and, with ``out_dir``, writes the report and plots when
    training ends (see :meth:`GradientMonitor.save`).

    Args:
        monitor: a monitor from :func:`~chainrule.diagnostics.watch`; when None, one is made on the
            trainer's model when training begins (with ``every``, ``config``, ``activations``) and its
            hooks are removed when training ends (its records stay readable as ``callback.monitor``).
        out_dir: where to save the report and plots at the end of training (nothing saved when None).
    """

    def __init__(self, monitor: GradientMonitor | None = None, *, every: int = 1, config: HealthConfig | None = None,
                 activations: bool = True, out_dir: str | Path | None = None):
        if monitor is not None and not isinstance(monitor, GradientMonitor):
            raise TypeError(f"GradientMonitorCallback: monitor must be a GradientMonitor, got {type(monitor).__name__}")
        self.monitor = monitor
        self.out_dir = None if out_dir is None else Path(out_dir)
        self._options = {"every": every, "config": config, "activations": activations}
        self._owns_monitor = monitor is None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.monitor is None or (self._owns_monitor and self.monitor.removed):
            self.monitor = watch(self.trainer.model, **self._options)  # a second fit starts a new record

    def on_batch_end(self, step: int, logs: dict | None = None) -> None:
        if not self.monitor.hooks_optimizer:
            self.monitor.step(self.trainer.optimizer, step=step)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.out_dir is not None:
            self.monitor.save(self.out_dir)
        if self._owns_monitor:
            self.monitor.remove()

    def report(self, config: HealthConfig | None = None):
        if self.monitor is None:
            raise RuntimeError("GradientMonitorCallback.report: training has not started, nothing was recorded")
        return self.monitor.report(config)
