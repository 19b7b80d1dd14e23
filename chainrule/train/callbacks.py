"""Callbacks: code that runs at fixed points of the fit loop, with access to the trainer.

    from chainrule.train import fit
    from chainrule.train.callbacks import EarlyStopping, ModelCheckpoint, CSVLogger, TerminateOnNaN

    fit(model, (X, y), loss=loss_fn, optimizer=opt, epochs=50, val_data=(Xv, yv),
        callbacks=[EarlyStopping(patience=5, restore_best_weights=True),
                   ModelCheckpoint("runs/exp1", config={"width": 128}),
                   CSVLogger("runs/exp1/log.csv"), TerminateOnNaN()])

A callback subclasses :class:`Callback` and overrides any of ``on_train_begin(logs)``,
``on_train_end(logs)``, ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)`` and
``on_batch_end(step, logs)``. ``self.trainer`` is the running :class:`~chainrule.train.Trainer`
(``trainer.model``, ``.optimizer``, ``.scheduler``, ``.history``, ``.global_step``, ``.epoch``);
setting ``trainer.stop_training = True`` ends training: at the end of the epoch when set in
``on_epoch_end``, and at once when set in ``on_batch_end`` (that unfinished epoch is then not
validated, recorded, or passed to ``on_epoch_end``).

Epochs are numbered from 0. ``step`` counts optimizer steps (the first is step 1). ``on_epoch_end``
gets the epoch's record (``loss``, metrics, ``val_*``, ``lr``, ``seconds``, ...); ``on_batch_end``
gets ``{"step", "epoch", "batch", "loss", "lr"}`` (+ ``"grad_norm"`` when clipping).

Order: the trainer runs its learning-rate scheduler callback first, then the given callbacks in order,
with every :class:`ModelCheckpoint` moved last, so a checkpoint holds the state *after* the epoch's
scheduler step and after the other callbacks (e.g. early stopping's patience count) have updated.

A callback with state worth resuming implements ``state_dict()`` / ``load_state_dict()`` (plain data
and tensors); :class:`ModelCheckpoint` saves those states in the checkpoint and ``fit(resume_from=...)``
restores them, so early stopping and "best" tracking continue where they were.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chainrule.autograd.grad_mode import no_grad
from chainrule.train.distributed import is_writer, unwrapped
from chainrule.train.history import resolve_mode, strict_json_value

if TYPE_CHECKING:  # pragma: no cover
    from chainrule.train.trainer import Trainer

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "JSONLLogger",
           "TerminateOnNaN", "LRSchedulerCallback"]


class Callback:
    """Base class of callbacks; every hook does nothing by default."""

    trainer: Trainer | None = None

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    @property
    def model(self):
        return None if self.trainer is None else self.trainer.model

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch (after a checkpoint given to ``resume_from`` has been restored)."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch, or after training was stopped."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Before the epoch's first step."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """After the epoch's training and validation; ``logs`` is the epoch's record."""

    def on_batch_end(self, step: int, logs: dict | None = None) -> None:
        """After each optimizer step; ``step`` is the number of steps taken so far."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints for resuming (plain data and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called after ``on_train_begin`` when resuming)."""


class CallbackList:
    """The callbacks of one fit, called in order (``on_batch_end`` only on those that override it)."""

    def __init__(self, callbacks: Iterable[Callback], trainer: Trainer):
        self.callbacks = list(callbacks)
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks[{i}] is a {type(cb).__name__}; callbacks must subclass "
                                "chainrule.train.callbacks.Callback")
            cb.set_trainer(trainer)
        self._batch_end = [cb for cb in self.callbacks if type(cb).on_batch_end is not Callback.on_batch_end]

    def __iter__(self):
        return iter(self.callbacks)

    def on_train_begin(self, logs: dict) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, step: int, logs: dict) -> None:
        for cb in self._batch_end:
            cb.on_batch_end(step, logs)

    def state_keys(self) -> list[str]:
        """A stable key per callback for its saved state: the class name, ``#n`` added for repeats."""
        keys, seen = [], {}
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name] - 1}")
        return keys

    def state_dicts(self) -> dict[str, dict]:
        states = {key: cb.state_dict() for key, cb in zip(self.state_keys(), self.callbacks)}
        return {key: state for key, state in states.items() if state}

    def load_state_dicts(self, states: dict[str, dict]) -> None:
        for key, cb in zip(self.state_keys(), self.callbacks):
            if key in states:
                cb.load_state_dict(states[key])


# ----- helpers ---------------------------------------------------------------------------------------------

def _check_monitor_available(trainer: Trainer, monitor: str, who: str) -> None:
    """Fail before training, not after the first epoch, when a val_ metric is monitored without val_data."""
    if monitor.startswith("val_") and not trainer.validating:
        raise ValueError(f"{who} monitors {monitor!r}, but fit() was given no val_data; pass val_data=... or "
                         f"monitor a training value such as monitor='loss'")


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        raise ValueError(f"{who}: the monitored value {monitor!r} is not among this epoch's values {sorted(logs)}; "
                         "set monitor= to one of them (metrics are named as given to fit(metrics=...))")
    return float(logs[monitor])


def _improves(current: float, best: float | None, mode: str, min_delta: float) -> bool:
    if math.isnan(current):
        return False
    if best is None:
        return True
    return current < best - min_delta if mode == "min" else current > best + min_delta


def _say(trainer: Trainer | None, text: str) -> None:
    if trainer is not None:
        trainer.log(text)


# ----- early stopping ----------------------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs in a row.

    Args:
        monitor: the epoch value to watch, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        patience: epochs without improvement after which training stops (0: at the first one).
        min_delta: an improvement must beat the best value by more than this.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names, else min).
        restore_best_weights: at the end of training, load the weights of the best epoch back into
            the model (they are kept as a copy in memory, and saved in checkpoints for resuming).

    After training, ``best``, ``best_epoch`` and ``stopped_epoch`` (None if it never stopped) tell
    what happened.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or min_delta < 0 or math.isnan(min_delta):
            raise ValueError(f"EarlyStopping: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict | None = None

    def on_train_begin(self, logs=None) -> None:
        _check_monitor_available(self.trainer, self.monitor, "EarlyStopping")
        self._reset()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        current = _monitored(logs or {}, self.monitor, "EarlyStopping")
        if _improves(current, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            best = "none yet" if self.best is None else f"best {self.best:.6g} at epoch {self.best_epoch + 1}"
            self.trainer.stop_reason = (f"EarlyStopping: {self.monitor} did not improve for {self.wait} epoch(s) "
                                        f"({best}); stopped after epoch {epoch + 1}")
            _say(self.trainer, self.trainer.stop_reason)

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            _say(self.trainer, f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                               f"({self.monitor} = {self.best:.6g})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")
        self.best_weights = state.get("best_weights")


def _copy_state(model) -> dict:
    with no_grad():
        return {name: value.detach().clone() for name, value in model.state_dict().items()}


# ----- checkpoints -----------------------------------------------------------------------------------------

class ModelCheckpoint(Callback):
    """Save checkpoints (``chainrule.io.save``) at the end of epochs: the best so far and the last.

    Each file holds the model, the optimizer, the scheduler, the RNG state, ``step`` (optimizer steps
    taken), ``epoch`` (epochs completed), ``config`` and, in ``extra``, the epoch history and the
    callbacks' states, so ``fit(..., resume_from=path)`` continues the run exactly.

    Args:
        directory_or_path: a folder, which gets ``best.safetensors`` and ``last.safetensors``; or a
            file path ending in ``.safetensors``, which gets the best checkpoint (or the last when
            ``save_best=False``), the last then going next to it as ``<name>.last.safetensors``.
        monitor: the epoch value that decides "best" (``"val_loss"`` by default).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        save_best: write the best checkpoint whenever ``monitor`` improves.
        save_last: write the last checkpoint after every epoch.
        config: plain data saved as the checkpoint's ``config`` (e.g. the model's settings), passed
            through unchanged; defaults to the trainer's ``config``.

    ``best_path`` / ``last_path`` are the files written (None when not saved); ``best`` and
    ``best_epoch`` the best value so far and its epoch.
    """

    def __init__(self, directory_or_path: str | os.PathLike, monitor: str = "val_loss", mode: str = "auto",
                 save_best: bool = True, save_last: bool = True, config: Any = None):
        if not (save_best or save_last):
            raise ValueError("ModelCheckpoint: save_best and save_last are both False, so nothing would be saved")
        target = os.fspath(directory_or_path)
        if target.endswith(".safetensors"):
            stem = target[: -len(".safetensors")]
            self.best_path = target if save_best else None
            self.last_path = (f"{stem}.last.safetensors" if save_best else target) if save_last else None
        else:
            self.best_path = os.path.join(target, "best.safetensors") if save_best else None
            self.last_path = os.path.join(target, "last.safetensors") if save_last else None
        self.monitor = monitor
        self.mode = resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_best = save_best
        self.save_last = save_last
        self.config = config
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_train_begin(self, logs=None) -> None:
        if self.save_best:
            _check_monitor_available(self.trainer, self.monitor, "ModelCheckpoint")
        self.best, self.best_epoch = None, None
        for path in (self.best_path, self.last_path):
            if path and os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        improved = False
        if self.save_best:
            current = _monitored(logs or {}, self.monitor, "ModelCheckpoint")
            improved = _improves(current, self.best, self.mode, 0.0)
            if improved:
                self.best, self.best_epoch = current, epoch
        if improved:
            self._save(self.best_path, epoch)
        if self.save_last:
            self._save(self.last_path, epoch)

    def _save(self, path: str, epoch: int) -> None:
        from chainrule import io

        trainer = self.trainer
        config = self.config if self.config is not None else trainer.config
        if is_writer(trainer):  # under a process group rank 0 writes, and the others wait until it has
            io.save(unwrapped(trainer.model), path, optimizer=trainer.optimizer, scheduler=trainer.scheduler,
                    config=config, step=trainer.global_step, epoch=epoch + 1, extra=trainer.checkpoint_extra())
        if trainer._group is not None:
            trainer._group.barrier()

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")


# ----- loggers -----------------------------------------------------------------------------------------------

def _appending(append: bool | None, trainer: Trainer | None) -> bool:
    """``append=None``: append when the fit resumes from a checkpoint, start afresh otherwise."""
    if append is None:
        return trainer is not None and trainer.resumed_from is not None
    return bool(append)


def _prepare_log_file(path: str, append: bool) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if not append:
        open(path, "w", encoding="utf-8").close()  # start empty even if no epoch completes


class CSVLogger(Callback):
    """Append one CSV row per epoch (the epoch's record) to ``path``, with a header row.

    The file is opened, written and closed at every epoch, so it is complete on disk whenever an
    epoch has ended. With ``append=True`` rows go after the existing ones, under the existing header;
    with ``False`` the file starts empty; ``None`` (default) appends when ``fit`` resumes from a
    checkpoint and starts afresh otherwise. Columns are fixed by the first row.
    """

    def __init__(self, path: str | os.PathLike, separator: str = ",", append: bool | None = None):
        self.path = os.fspath(path)
        self.separator = separator
        self.append = append
        self._columns: list[str] | None = None

    def on_train_begin(self, logs=None) -> None:
        if not is_writer(self.trainer):  # under a process group only rank 0 writes logs
            return
        append = _appending(self.append, self.trainer)
        _prepare_log_file(self.path, append)
        self._columns = None
        if append and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._columns = header or None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not is_writer(self.trainer):
            return
        logs = dict(logs or {})
        new_file = self._columns is None
        if new_file:
            self._columns = list(logs)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, delimiter=self.separator, restval="",
                                    extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(logs)


class JSONLLogger(Callback):
    """Append one JSON object per epoch (the epoch's record) to ``path``, one per line.

    Each line is strict JSON (NaN and infinities become ``null``) and is on disk when the epoch ends.
    With ``append=True`` lines go after the existing ones; with ``False`` the file starts empty;
    ``None`` (default) appends when ``fit`` resumes from a checkpoint and starts afresh otherwise.
    """

    def __init__(self, path: str | os.PathLike, append: bool | None = None):
        self.path = os.fspath(path)
        self.append = append

    def on_train_begin(self, logs=None) -> None:
        if is_writer(self.trainer):  # under a process group only rank 0 writes logs
            _prepare_log_file(self.path, _appending(self.append, self.trainer))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not is_writer(self.trainer):
            return
        line = json.dumps(strict_json_value(dict(logs or {})), allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ----- safety ------------------------------------------------------------------------------------------------

class TerminateOnNaN(Callback):
    """Stop training as soon as a step's loss is NaN or infinite.

    The check runs after the step, so the parameters may already hold NaNs from that update (as in
    Keras); the unfinished epoch is not validated or checkpointed. The reason, naming the step, goes to
    ``trainer.stop_reason`` / ``history.stop_reason`` and is issued as a ``RuntimeWarning``.
    """

    def __init__(self):
        self.stopped_step: int | None = None

    def on_train_begin(self, logs=None) -> None:
        self.stopped_step = None

    def on_batch_end(self, step: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        self.stopped_step = step
        where = f"step {step}"
        if logs and "epoch" in logs and "batch" in logs:
            where += f" (batch {logs['batch'] + 1} of epoch {logs['epoch'] + 1})"
        message = f"TerminateOnNaN: the training loss is {loss} at {where}; training stopped"
        self.trainer.stop_training = True
        self.trainer.stop_reason = message
        warnings.warn(message, RuntimeWarning, stacklevel=2)


# ----- learning-rate schedules ---------------------------------------------------------------------------------

def _is_plateau(scheduler) -> bool:
    from chainrule.optim.lr_scheduler import ReduceLROnPlateau

    return isinstance(scheduler, ReduceLROnPlateau)


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler from the fit loop.

    ``interval="epoch"``: ``scheduler.step()`` after each epoch (after validation); ``"step"``: after
    each optimizer step. A ``ReduceLROnPlateau`` is stepped at the end of each epoch with the epoch's
    ``monitor`` value (``"val_loss"`` by default). ``fit(scheduler=..., scheduler_interval=...)``
    creates one of these; pass it yourself only to decouple scheduling from ``fit``'s arguments.
    """

    def __init__(self, scheduler, interval: str = "epoch", monitor: str = "val_loss"):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'step', got {interval!r}")
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"LRSchedulerCallback: the scheduler must have a step() method, got {type(scheduler).__name__}")
        self.scheduler = scheduler
        self.plateau = _is_plateau(scheduler)
        if self.plateau and interval == "step":
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau is stepped with an epoch's metric, so it needs "
                             "interval='epoch' (got 'step')")
        self.interval = interval
        self.monitor = monitor

    def on_train_begin(self, logs=None) -> None:
        if self.plateau:
            _check_monitor_available(self.trainer, self.monitor, "ReduceLROnPlateau")

    def on_batch_end(self, step: int, logs=None) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.interval != "epoch":
            return
        if self.plateau:
            self.scheduler.step(_monitored(logs or {}, self.monitor, "ReduceLROnPlateau"))
        else:
            self.scheduler.step()
