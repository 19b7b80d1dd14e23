"""The fit loop: :class:`Trainer` (fit / evaluate / predict) and the functions :func:`fit`, :func:`evaluate`.

    from chainrule.train import fit
    history = fit(model, (X, y), loss=nn.CrossEntropyLoss(), optimizer=optim.AdamW(model.parameters()),
                  epochs=10, val_data=(Xv, yv), metrics=["accuracy"], scheduler=sched, grad_clip_norm=1.0)

Each step is exactly the PyTorch loop a user would write: ``model.train()``, ``optimizer.zero_grad()``,
``out = model(*inputs)``, ``l = loss(out, targets)``, ``l.backward()``, optional
``chainrule.nn.utils.clip_grad_norm_`` over the optimizer's parameters, ``optimizer.step()``, then the
scheduler when it steps per step. After each epoch the model is validated under ``no_grad`` in eval
mode, and a per-epoch scheduler is stepped (``ReduceLROnPlateau`` with the monitored value).

Data (``train_data``, ``val_data``, and what ``evaluate``/``predict`` take) may be:

- a ``DataLoader`` or any re-iterable of batches (e.g. a list of ``(inputs, targets)`` pairs);
- a map-style ``Dataset`` (batched with ``batch_size``, shuffled when ``shuffle``; validation never is);
- a tuple ``(X, y)`` of tensors (or numpy arrays), wrapped in a ``TensorDataset`` + ``DataLoader``.

``batch_size`` and ``shuffle`` apply to the last two only. A batch is ``(inputs, targets)``; a batch of
more entries is ``(*inputs, targets)`` and the model is called as ``model(*inputs)``. A one-shot iterator
(e.g. a generator) serves one epoch only; use ``max_steps`` to train on a stream.

Counting: epochs are numbered from 0, ``epochs`` is the number to reach (a run resumed after epoch 3
of ``epochs=10`` trains epochs 3..9), and ``global_step`` counts optimizer steps. ``max_steps`` stops
training after that many steps in all (the epoch it falls in still ends normally: validation,
callbacks, record). Resuming (``resume_from=path`` of a :class:`~chainrule.train.callbacks.ModelCheckpoint`
file) restores the model, optimizer, scheduler, RNG state, counters, epoch records and callback
states, so the run continues as if never stopped (checkpoints are taken at epoch ends; the per-step
records of the resumed History start at the resumed step).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from chainrule.autograd.grad_mode import no_grad
from chainrule.backend import ARRAY_TYPES, get_device
from chainrule.backend.allocator import keep_freed_memory
from chainrule.tensor import Tensor
from chainrule.train.callbacks import Callback, CallbackList, LRSchedulerCallback, ModelCheckpoint
from chainrule.train.distributed import RankGroup, current_group, is_writer, unwrapped
from chainrule.train.history import History
from chainrule.train.metrics import MetricTracker, batch_size_of, resolve_metrics
from chainrule.train.progress import Progress

__all__ = ["Trainer", "fit", "evaluate", "predict"]

_SAME = object()  # evaluate(): "use the trainer's loss / metrics"


# ----- data --------------------------------------------------------------------------------------------------

def _as_tensor(value, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if type(value) in ARRAY_TYPES:
        from chainrule.creation import as_tensor

        return as_tensor(value)
    raise TypeError(f"{where}: expected a Tensor or an array, got {type(value).__name__}")


def _is_array_pair(data: Any) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(v, Tensor) or type(v) in ARRAY_TYPES for v in data))


def as_batches(data: Any, *, batch_size: int, shuffle: bool, where: str) -> Iterable:
    """``data`` as an iterable of batches (see the module docstring for what is accepted)."""
    from chainrule.data import DataLoader, Dataset, IterableDataset, TensorDataset

    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Tensor) or type(data) in ARRAY_TYPES:
        raise TypeError(f"{where}: got a single {type(data).__name__} of shape {tuple(data.shape)}; pass a tuple "
                        "(inputs, targets), a Dataset or a DataLoader")
    if _is_array_pair(data):
        x, y = (_as_tensor(v, where) for v in data)
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: inputs of shape {tuple(x.shape)} and targets of shape {tuple(y.shape)} must have "
                             "the same first (sample) dimension")
        return DataLoader(TensorDataset(x, y), batch_size=_check_batch_size(batch_size), shuffle=shuffle)
    if isinstance(data, IterableDataset):
        return DataLoader(data, batch_size=_check_batch_size(batch_size))
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                     and not isinstance(data, (list, tuple, dict, str, bytes))):
        return DataLoader(data, batch_size=_check_batch_size(batch_size), shuffle=shuffle)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        return data
    raise TypeError(f"{where}: expected a DataLoader, a Dataset, a tuple (inputs, targets) of tensors, or an iterable "
                    f"of (inputs, targets) batches; got {type(data).__name__}")


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def split_batch(batch: Any, where: str) -> tuple[tuple, Any]:
    """``(inputs tuple, targets)`` from a batch ``(x, y)`` or ``(x1, ..., xn, y)``."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    raise ValueError(f"{where}: a batch must be (inputs, targets) (or (*inputs, targets)); got "
                     f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


def _moved(data: Any, device) -> Any:
    """``data`` with every tensor in it (through lists, tuples and dicts) on ``device``; a copy from pinned
    host memory is asynchronous, ordered before the step's work on the device's stream."""
    if isinstance(data, Tensor):
        return data.to(device, non_blocking=True)
    if isinstance(data, dict):
        return {key: _moved(value, device) for key, value in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # a named tuple
        return type(data)(*(_moved(value, device) for value in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_moved(value, device) for value in data)
    return data


def _predict_inputs(batch: Any) -> tuple:
    """The model inputs of a batch for predict(): a tensor alone, ``(x,)``, or all but the targets."""
    if isinstance(batch, (tuple, list)):
        return tuple(batch) if len(batch) == 1 else tuple(batch[:-1])
    return (batch,)


def _length(batches: Iterable) -> int | None:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return None


def _resolve_loss(loss: Any) -> Callable | None:
    """A loss module/callable, or the name of a ``chainrule.nn.functional`` loss (``"cross_entropy"``)."""
    if loss is None or callable(loss):
        return loss
    if isinstance(loss, str):
        from chainrule.nn import functional

        fn = getattr(functional, loss, None)
        if fn is None and hasattr(functional, f"{loss}_loss"):
            fn = getattr(functional, f"{loss}_loss")  # "mse" -> mse_loss
        if callable(fn):
            return fn
        raise ValueError(f"unknown loss {loss!r}: pass a loss module (nn.CrossEntropyLoss()), a callable "
                         "loss(outputs, targets), or the name of a chainrule.nn.functional loss such as 'cross_entropy'")
    raise TypeError(f"loss must be callable (a loss module or function) or a name, got {type(loss).__name__}")


def _scalar_loss(value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"fit: the loss function returned {type(value).__name__}, expected a Tensor")
    if value.numel() != 1:
        raise ValueError(f"fit: the loss function returned a tensor of shape {tuple(value.shape)}; it must return one "
                         "number (use reduction='mean' or 'sum')")
    return value


def _set_sampler_epoch(batches, epoch: int) -> None:
    """Tell a DataLoader's DistributedSampler (anything with ``set_epoch``) which epoch starts."""
    sampler = getattr(batches, "sampler", None)
    if not hasattr(sampler, "set_epoch"):
        sampler = getattr(getattr(batches, "batch_sampler", None), "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _first_lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ----- the trainer ---------------------------------------------------------------------------------------------

class Trainer:
    """Trains, evaluates and runs a model; see the module docstring for the loop and the data it takes.

    Args:
        model: a ``chainrule.nn.Module`` (anything callable with ``train()``/``eval()``/``state_dict()``).
        loss: a loss module or callable ``loss(outputs, targets) -> scalar Tensor``, or the name of a
            ``chainrule.nn.functional`` loss (``"cross_entropy"``, ``"mse"``). Required by :meth:`fit`.
        optimizer: a ``chainrule.optim`` optimizer over the model's parameters. Required by :meth:`fit`.
        metrics: metric names or callables (see :mod:`chainrule.train.metrics`), reported for training
            and validation (``val_`` prefix).
        scheduler: a learning-rate scheduler, stepped per ``scheduler_interval`` (``"epoch"`` or
            ``"step"``); a ``ReduceLROnPlateau`` is stepped per epoch with ``scheduler_monitor``.
        callbacks: :class:`~chainrule.train.callbacks.Callback` instances.
        grad_clip_norm: clip the total gradient norm to this before every optimizer step.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        config: plain data that :class:`ModelCheckpoint` saves as the checkpoint's ``config``.
        compile: replay each training step as a compiled program (``chainrule.compile``): call 1 of each
            batch shape runs eagerly, call 2 captures, call 3 verifies; results are bit for bit eager's. A
            step it cannot compile runs eagerly, with one warning.
        device: where to train (``"cuda"``, ``"cpu"``, a device): the model is moved there in place (its
            Parameters keep their identity, so an optimizer made earlier still holds them) and every batch
            is copied there (asynchronously from a DataLoader's pinned memory). None leaves both where they are.

    While fitting: ``history``, ``global_step``, ``epoch``, ``stop_training`` (set it to stop),
    ``stop_reason``, ``validating`` (whether there is val_data), ``resumed_from`` (the checkpoint
    path when resuming, else None).
    """

    def __init__(self, model, *, loss: Any = None, optimizer=None, metrics: Any = (), scheduler=None,
                 scheduler_interval: str = "epoch", scheduler_monitor: str = "val_loss",
                 callbacks: Iterable[Callback] = (), grad_clip_norm: float | None = None, verbose: int = 1,
                 config: Any = None, compile: bool = False, device: Any = None):
        if not callable(model):
            raise TypeError(f"Trainer: model must be callable (an nn.Module), got {type(model).__name__}")
        self.device = None if device is None else get_device(device)
        if self.device is not None and callable(getattr(model, "to", None)):
            model.to(self.device)
        self.model = model
        self.loss_fn = _resolve_loss(loss)
        self.optimizer = optimizer
        self.metrics = resolve_metrics(metrics)
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.callbacks = list(callbacks)
        if grad_clip_norm is not None and not (isinstance(grad_clip_norm, (int, float)) and grad_clip_norm > 0):
            raise ValueError(f"Trainer: grad_clip_norm must be a positive number or None, got {grad_clip_norm!r}")
        self.grad_clip_norm = grad_clip_norm
        self.verbose = verbose
        self.config = config
        self._scheduler_callback = self._make_scheduler_callback()
        Progress(verbose)  # check verbose now rather than at fit time
        self.history = History()
        self.global_step = 0
        self.epoch = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.validating = False
        self.resumed_from: str | None = None
        self._progress: Progress | None = None
        self._callback_list: CallbackList | None = None
        self._group: RankGroup | None = None  # the process group of a fit over several ranks
        self._step_core = self._tensors_step
        if compile:  # the step replayed as a flat program (chainrule.compiler); what it cannot do runs eagerly
            from chainrule.compiler import compile as compile_step

            self._step_core = compile_step(self._tensors_step, fallback="eager")

    def _make_scheduler_callback(self) -> LRSchedulerCallback | None:
        if self.scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {self.scheduler_interval!r}")
        given = [cb for cb in self.callbacks if isinstance(cb, LRSchedulerCallback)]
        if self.scheduler is None:
            if len(given) == 1:
                self.scheduler = given[0].scheduler  # so checkpoints save it
            elif len(given) > 1:
                raise ValueError("Trainer: several LRSchedulerCallbacks were given; checkpoints save one scheduler, so "
                                 "combine them (e.g. optim.lr_scheduler.ChainedScheduler) or pass scheduler=")
            return None
        if given:
            raise ValueError("Trainer: pass the scheduler either as scheduler= or in an LRSchedulerCallback, not both")
        return LRSchedulerCallback(self.scheduler, interval=self.scheduler_interval, monitor=self.scheduler_monitor)

    def _ordered_callbacks(self) -> list[Callback]:
        """The scheduler first, checkpoints last, the rest in the order given."""
        first = [self._scheduler_callback] if self._scheduler_callback is not None else []
        middle = [cb for cb in self.callbacks if not isinstance(cb, ModelCheckpoint)]
        last = [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]
        return first + middle + last

    def log(self, text: str) -> None:
        """Show a line of text unless silent (used by callbacks); under a process group, on rank 0 only."""
        if not is_writer(self):
            return
        if self._progress is not None:
            self._progress.message(text)
        elif self.verbose:
            print(text, flush=True)

    def checkpoint_extra(self) -> dict[str, Any]:
        """What :class:`ModelCheckpoint` saves in ``extra`` for resuming: epoch history and callback states."""
        states = self._callback_list.state_dicts() if self._callback_list is not None else {}
        return {"history": [dict(r) for r in self.history.epochs], "callbacks": states}

    # ----- fit -------------------------------------------------------------------------------------------------
    def fit(self, train_data: Any, *, epochs: int = 1, val_data: Any = None, batch_size: int = 32, shuffle: bool = True,
            max_steps: int | None = None, resume_from: str | os.PathLike | None = None) -> History:
        """Train for ``epochs`` epochs (or ``max_steps`` steps); returns the :class:`History`.

        Turns on :func:`chainrule.backend.allocator.keep_freed_memory` for the process (once), so the
        steps' large temporaries reuse freed memory."""
        self._check_fit_args(epochs, max_steps)
        keep_freed_memory()
        train_batches = as_batches(train_data, batch_size=batch_size, shuffle=shuffle, where="fit: train_data")
        val_batches = None if val_data is None else as_batches(val_data, batch_size=batch_size, shuffle=False,
                                                               where="fit: val_data")
        self.history, self.global_step, self.epoch = History(), 0, 0
        self.stop_training, self.stop_reason = False, None
        self.validating = val_batches is not None
        self.resumed_from = None if resume_from is None else os.fspath(resume_from)
        callbacks = CallbackList(self._ordered_callbacks(), self)
        self._callback_list = callbacks
        self._group = current_group()
        self._progress = progress = Progress(self.verbose if is_writer(self) else 0)
        saved_states = self._resume(resume_from) if resume_from is not None else None
        try:
            callbacks.on_train_begin({"epoch": self.epoch, "step": self.global_step})
            if saved_states:
                callbacks.load_state_dicts(saved_states)
            for epoch in range(self.epoch, epochs):
                if max_steps is not None and self.global_step >= max_steps:
                    break
                record = self._run_epoch(epoch, epochs, train_batches, val_batches, max_steps, callbacks, progress)
                if record is None or self.stop_training:
                    break
        finally:
            progress.close()
        callbacks.on_train_end({"epoch": self.epoch, "step": self.global_step})
        self.history.stop_reason = self.stop_reason
        self._progress = None
        return self.history

    def _check_fit_args(self, epochs: int, max_steps: int | None) -> None:
        if self.loss_fn is None or self.optimizer is None:
            missing = [name for name, v in (("loss", self.loss_fn), ("optimizer", self.optimizer)) if v is None]
            raise ValueError(f"fit: {' and '.join(missing)} must be given to train")
        if not callable(getattr(self.optimizer, "step", None)) or not hasattr(self.optimizer, "param_groups"):
            raise TypeError(f"fit: optimizer must be a chainrule.optim optimizer, got {type(self.optimizer).__name__}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
            raise ValueError(f"fit: max_steps must be an int >= 0 or None, got {max_steps!r}")

    def _run_epoch(self, epoch: int, epochs: int, train_batches, val_batches, max_steps, callbacks: CallbackList,
                   progress: Progress) -> dict | None:
        """One epoch: train, validate, record, callbacks. None when stopped in the middle."""
        self.epoch = epoch
        started = time.perf_counter()
        callbacks.on_epoch_begin(epoch, {"step": self.global_step})
        _set_sampler_epoch(train_batches, epoch)
        total = _length(train_batches)
        if self._group is not None and max_steps is None:
            self._group.check_same_count(total, epoch)
        if max_steps is not None:
            total = max_steps - self.global_step if total is None else min(total, max_steps - self.global_step)
        progress.epoch_begin(epoch, epochs, total)
        tracker, lr = self._train_epoch(epoch, train_batches, max_steps, callbacks, progress)
        if self.stop_training:
            progress.close()
            return None  # stopped mid-epoch (e.g. a NaN loss): the unfinished epoch is not recorded
        trained = tracker.result() if self._group is None else self._group.mean_values(tracker.result())
        record: dict[str, Any] = {"epoch": epoch, "step": self.global_step, **trained}
        if val_batches is not None:
            record.update(self._evaluate_batches(val_batches, self.loss_fn, self.metrics, "fit: val_data", prefix="val_"))
        record["lr"] = lr
        record["seconds"] = time.perf_counter() - started
        self.history.epochs.append(record)
        progress.epoch_end(record, record["seconds"])
        callbacks.on_epoch_end(epoch, record)
        self.epoch = epoch + 1
        return record

    def _train_epoch(self, epoch: int, batches, max_steps, callbacks: CallbackList,
                     progress: Progress) -> tuple[MetricTracker, float]:
        tracker = MetricTracker(self.metrics)
        lr = _first_lr(self.optimizer)
        running = lambda: {**tracker.result(), "lr": _first_lr(self.optimizer)}
        index = -1
        for index, batch in enumerate(batches):
            inputs, targets = split_batch(self._on_device(batch), "fit: train_data")
            lr = _first_lr(self.optimizer)
            loss_value, outputs, grad_norm = self._train_step(inputs, targets)
            if self._group is not None:
                loss_value = self._group.mean_loss(loss_value, batch_size_of(targets))
            self.global_step += 1
            tracker.update(outputs, targets, loss_value)
            logs = {"step": self.global_step, "epoch": epoch, "loss": loss_value, "lr": lr}
            if grad_norm is not None:
                logs["grad_norm"] = grad_norm
            self.history.steps.append(dict(logs))
            logs["batch"] = index
            callbacks.on_batch_end(self.global_step, logs)
            progress.step(running)
            if self._group is not None:
                self.stop_training = self._group.any(self.stop_training)  # all ranks stop together
            if self.stop_training or (max_steps is not None and self.global_step >= max_steps):
                break
        if index < 0:
            raise ValueError(f"fit: train_data yielded no batches in epoch {epoch + 1}; it is empty, or a one-shot "
                             "iterator that an earlier epoch used up (pass a DataLoader, a list, or use max_steps)")
        return tracker, lr

    def _train_step(self, inputs: tuple, targets: Any) -> tuple[float, Any, float | None]:
        if not getattr(self.model, "training", True):
            self.model.train()
        loss, outputs, grad_norm = self._step_core(inputs, targets)
        return float(loss.item()), outputs, None if grad_norm is None else float(grad_norm.item())

    def _tensors_step(self, inputs: tuple, targets: Any) -> tuple[Tensor, Any, Tensor | None]:
        """The step without reading any value (what ``compile=True`` compiles): loss, detached outputs and
        the gradient norm before clipping, as tensors."""
        model, optimizer = self.model, self.optimizer
        optimizer.zero_grad()
        outputs = model(*inputs)
        loss = _scalar_loss(self.loss_fn(outputs, targets))
        loss.backward()
        grad_norm = None
        if self.grad_clip_norm is not None:
            grad_norm = self._clip_gradients()
        optimizer.step()
        if isinstance(outputs, Tensor):
            outputs = outputs.detach()
        return loss, outputs, grad_norm

    def _on_device(self, batch: Any) -> Any:
        """``batch`` with its tensors on the trainer's device (as it is without ``device=``)."""
        return batch if self.device is None else _moved(batch, self.device)

    def _clip_gradients(self) -> Tensor:
        from chainrule.nn.utils import clip_grad_norm_

        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        return clip_grad_norm_(params, self.grad_clip_norm)

    # ----- resume ----------------------------------------------------------------------------------------------
    def _resume(self, path: str | os.PathLike) -> dict | None:
        """Restore everything from a ModelCheckpoint file; returns the saved callback states."""
        from chainrule import io

        local = os.fspath(path) if self._group is None else self._group.file_from_rank0(os.fspath(path))
        try:
            ckpt = io.load(local)
        finally:
            if local != os.fspath(path):
                os.remove(local)
        step, epoch = ckpt.step, ckpt.epoch
        if not (isinstance(step, int) and isinstance(epoch, int)):
            raise ValueError(f"fit: the checkpoint '{os.fspath(path)}' has no integer step and epoch (step={step!r}, "
                             f"epoch={epoch!r}); resume from a file written by ModelCheckpoint, or save step= and epoch=")
        if self.scheduler is None and ckpt.scheduler_state_dict is not None:
            raise ValueError(f"fit: the checkpoint '{os.fspath(path)}' holds scheduler state but no scheduler was "
                             "given; pass the same kind of scheduler to resume exactly")
        ckpt.restore(unwrapped(self.model), optimizer=self.optimizer, scheduler=self.scheduler, rng=True)
        self.global_step, self.epoch = step, epoch
        extra = ckpt.extra if isinstance(ckpt.extra, dict) else {}
        self.history.epochs = [dict(r) for r in extra.get("history", [])]
        self.stop_reason = None
        self.log(f"Resumed from {os.fspath(path)}: {epoch} epoch(s), {step} step(s) done")
        states = extra.get("callbacks")
        return states if isinstance(states, dict) else None

    # ----- evaluate / predict ------------------------------------------------------------------------------------
    def _evaluate_batches(self, batches: Iterable, loss_fn, metrics, where: str, prefix: str = "") -> dict[str, float]:
        model = self.model
        was_training = getattr(model, "training", False)
        tracker = MetricTracker(metrics, with_loss=loss_fn is not None)
        if hasattr(model, "eval"):
            model.eval()
        try:
            with no_grad():
                for batch in batches:
                    inputs, targets = split_batch(self._on_device(batch), where)
                    outputs = model(*inputs)
                    loss_value = None if loss_fn is None else float(_scalar_loss(loss_fn(outputs, targets)).item())
                    tracker.update(outputs, targets, loss_value, batch_size_of(targets))
        finally:
            if hasattr(model, "train"):
                model.train(was_training)
        if tracker.batches == 0:
            raise ValueError(f"{where}: the data yielded no batches (empty, or a one-shot iterator already used up)")
        return tracker.result(prefix)

    def evaluate(self, data: Any, *, batch_size: int = 32, loss: Any = _SAME, metrics: Any = _SAME) -> dict[str, float]:
        """Mean loss and metrics of the model over ``data`` (eval mode, no gradients), e.g.
        ``{"loss": 0.12, "accuracy": 0.97}``. ``loss`` and ``metrics`` default to the trainer's."""
        loss_fn = self.loss_fn if loss is _SAME else _resolve_loss(loss)
        specs = self.metrics if metrics is _SAME else resolve_metrics(metrics)
        if loss_fn is None and not specs:
            raise ValueError("evaluate: nothing to compute; pass loss= and/or metrics=")
        batches = as_batches(data, batch_size=batch_size, shuffle=False, where="evaluate: data")
        return self._evaluate_batches(batches, loss_fn, specs, "evaluate: data")

    def predict(self, data: Any, *, batch_size: int = 32) -> Any:
        """The model's outputs over ``data`` (a tensor of inputs, a Dataset, a DataLoader or batches), in
        eval mode without gradients, concatenated along the first dimension (a list when the outputs are
        not tensors)."""
        from chainrule.ops.shape import cat

        if isinstance(data, Tensor) or type(data) in ARRAY_TYPES:
            from chainrule.data import DataLoader, TensorDataset

            batches: Iterable = DataLoader(TensorDataset(_as_tensor(data, "predict")), batch_size=_check_batch_size(batch_size))
        else:
            batches = as_batches(data, batch_size=batch_size, shuffle=False, where="predict: data")
        model = self.model
        was_training = getattr(model, "training", False)
        outputs = []
        if hasattr(model, "eval"):
            model.eval()
        try:
            with no_grad():
                outputs = [model(*_predict_inputs(self._on_device(batch))) for batch in batches]
        finally:
            if hasattr(model, "train"):
                model.train(was_training)
        if outputs and all(isinstance(o, Tensor) for o in outputs):
            return cat(outputs, 0)
        return outputs


# ----- functions ---------------------------------------------------------------------------------------------------

def fit(model, train_data: Any, *, loss: Any, optimizer, epochs: int = 1, val_data: Any = None, metrics: Any = (),
        scheduler=None, scheduler_interval: str = "epoch", scheduler_monitor: str = "val_loss",
        callbacks: Iterable[Callback] = (), batch_size: int = 32, shuffle: bool = True, max_steps: int | None = None,
        grad_clip_norm: float | None = None, verbose: int = 1, resume_from: str | os.PathLike | None = None,
        config: Any = None, compile: bool = False, device: Any = None) -> History:
    """Train ``model`` on ``train_data``, Keras-style; returns the :class:`History`.

    A shortcut for ``Trainer(model, loss=..., optimizer=..., ...).fit(train_data, ...)``; see
    :class:`Trainer` for the arguments and the module docstring for the loop, the data accepted,
    and resuming.
    """
    trainer = Trainer(model, loss=loss, optimizer=optimizer, metrics=metrics, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, scheduler_monitor=scheduler_monitor, callbacks=callbacks,
                      grad_clip_norm=grad_clip_norm, verbose=verbose, config=config, compile=compile, device=device)
    return trainer.fit(train_data, epochs=epochs, val_data=val_data, batch_size=batch_size, shuffle=shuffle,
                       max_steps=max_steps, resume_from=resume_from)


def evaluate(model, data: Any, loss: Any = None, metrics: Any = (), *, batch_size: int = 32,
             device: Any = None) -> dict[str, float]:
    """Mean ``loss`` (when given) and ``metrics`` of ``model`` over ``data``, in eval mode without
    gradients: e.g. ``evaluate(model, (X, y), loss=F.cross_entropy, metrics=["accuracy"])`` gives
    ``{"loss": 0.12, "accuracy": 0.97}``. At least one of the two is needed. The model's train/eval
    mode is restored after."""
    return Trainer(model, loss=loss, verbose=0, device=device).evaluate(data, batch_size=batch_size, metrics=metrics)


def predict(model, data: Any, *, batch_size: int = 32, device: Any = None) -> Any:
    """The outputs of ``model`` over ``data`` (see :meth:`Trainer.predict`)."""
    return Trainer(model, verbose=0, device=device).predict(data, batch_size=batch_size)
