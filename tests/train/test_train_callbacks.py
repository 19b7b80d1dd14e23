"""Callbacks and scheduler stepping: hooks, early stopping, checkpoints, loggers, NaN termination, schedules."""

import csv
import json
import math
import os

import numpy as np
import pytest
from train_helpers import make_mlp, params_of

import chainrule as cr
from chainrule import io, nn, optim
from chainrule.optim import lr_scheduler
from chainrule.train import fit
from chainrule.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    LRSchedulerCallback,
    ModelCheckpoint,
    TerminateOnNaN,
)


class Scripted(Callback):
    """Makes the metric ``score`` take ``values[epoch]`` and snapshots the weights at every epoch end."""

    def __init__(self, values):
        self.values = values
        self.epoch = 0
        self.snapshots = []

    def metric(self):
        def score(outputs, targets):
            return self.values[self.epoch]

        return score

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append(params_of(self.model))


def _fit(model, data, callbacks=(), epochs=6, metrics=(), **kwargs):
    (x, y), (xv, yv) = data
    kwargs.setdefault("optimizer", optim.SGD(model.parameters(), lr=0.1))
    return fit(model, (x, y), loss=nn.CrossEntropyLoss(), epochs=epochs, val_data=(xv, yv), callbacks=callbacks,
               metrics=metrics, batch_size=64, verbose=0, **kwargs)


def test_hooks_are_called_in_order_with_counts(data):
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, step, logs=None):
            calls.append(f"batch {step} {logs['batch']}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    recorder = Recorder()
    _fit(make_mlp(), data, [recorder], epochs=2)
    keys = sorted(["epoch", "step", "loss", "val_loss", "lr", "seconds"])
    assert calls == (["train_begin", "epoch_begin 0", "batch 1 0", "batch 2 1", "batch 3 2", f"epoch_end 0 {keys}",
                      "epoch_begin 1", "batch 4 0", "batch 5 1", "batch 6 2", f"epoch_end 1 {keys}", "train_end"])
    assert recorder.trainer.global_step == 6


def test_stop_training_from_a_batch_ends_at_once(data):
    class StopAtStep(Callback):
        def on_batch_end(self, step, logs=None):
            if step == 4:
                self.trainer.stop_training = True

    history = _fit(make_mlp(), data, [StopAtStep()], epochs=5)
    assert len(history.steps) == 4 and history.epoch == [0]  # the unfinished epoch 1 is not recorded


def test_early_stopping_stops_at_the_right_epoch_and_restores_best(data):
    script = Scripted([5.0, 3.0, 4.0, 3.5, 1.0, 0.5, 0.1])
    stopper = EarlyStopping(monitor="val_score", patience=2, restore_best_weights=True)
    model = make_mlp()
    history = _fit(model, data, [script, stopper], epochs=7, metrics=[script.metric()])
    assert history.epoch == [0, 1, 2, 3]  # no improvement in epochs 2 and 3
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and stopper.best == 3.0
    assert "val_score did not improve for 2 epoch(s)" in history.stop_reason
    for restored, best, last in zip(params_of(model), script.snapshots[1], script.snapshots[3]):
        np.testing.assert_array_equal(restored, best)
        assert not np.array_equal(restored, last)


def test_early_stopping_mode_and_min_delta(data):
    script = Scripted([0.5, 0.52, 0.6, 0.605, 0.606, 0.9])
    stopper = EarlyStopping(monitor="val_score_accuracy", patience=1, min_delta=0.01)
    assert stopper.mode == "max"
    history = _fit(make_mlp(), data, [script, stopper], epochs=6, metrics={"score_accuracy": script.metric()})
    assert history.epoch == [0, 1, 2, 3]  # 0.605 is not > 0.6 + 0.01


def test_monitoring_val_values_without_val_data_fails_before_training(data):
    (x, y), _ = data
    model = make_mlp()
    before = params_of(model)
    for callback in (EarlyStopping(), ModelCheckpoint("unused_dir")):
        with pytest.raises(ValueError, match="no val_data"):
            fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                callbacks=[callback], verbose=0)
    for p, b in zip(params_of(model), before):
        np.testing.assert_array_equal(p, b)
    with pytest.raises(ValueError, match="'val_nope' is not among"):
        _fit(model, data, [EarlyStopping(monitor="val_nope")], epochs=1)


def test_model_checkpoint_writes_best_and_last(data, tmp_path):
    script = Scripted([3.0, 1.0, 2.0])
    checkpoint = ModelCheckpoint(tmp_path / "run", monitor="val_score", config={"hidden": 16})
    model = make_mlp()
    opt = optim.AdamW(model.parameters(), lr=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _fit(model, data, [checkpoint, script], epochs=3, metrics=[script.metric()], optimizer=opt, scheduler=sched)
    assert sorted(os.listdir(tmp_path / "run")) == ["best.safetensors", "last.safetensors"]
    best, last = io.load(checkpoint.best_path), io.load(checkpoint.last_path)
    assert (best.epoch, best.step, last.epoch, last.step) == (2, 6, 3, 9)
    assert best.config == {"hidden": 16} and last.config == {"hidden": 16}
    assert checkpoint.best == 1.0 and checkpoint.best_epoch == 1
    for name, saved in zip(best.state_dict, script.snapshots[1]):
        np.testing.assert_array_equal(best.state_dict[name].cpu().numpy(), saved)
    restored = make_mlp()
    last.restore(restored)
    for p, q in zip(params_of(restored), params_of(model)):
        np.testing.assert_array_equal(p, q)
    assert last.scheduler_state_dict["last_epoch"] == 3 and last.optimizer_state_dict["param_groups"][0]["lr"] == 0.01 / 8
    assert [r["epoch"] for r in last.extra["history"]] == [0, 1, 2]


def test_model_checkpoint_file_path_naming(tmp_path):
    both = ModelCheckpoint(tmp_path / "m.safetensors")
    assert (both.best_path, both.last_path) == (str(tmp_path / "m.safetensors"), str(tmp_path / "m.last.safetensors"))
    last_only = ModelCheckpoint(tmp_path / "m.safetensors", save_best=False)
    assert (last_only.best_path, last_only.last_path) == (None, str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="nothing would be saved"):
        ModelCheckpoint(tmp_path, save_best=False, save_last=False)


def test_csv_and_jsonl_loggers_write_parseable_files(data, tmp_path):
    csv_path, jsonl_path = tmp_path / "logs" / "log.csv", tmp_path / "logs" / "log.jsonl"
    script = Scripted([1.0, math.nan, 2.0])
    history = _fit(make_mlp(), data, [CSVLogger(csv_path), JSONLLogger(jsonl_path), script], epochs=3,
                   metrics=["accuracy", script.metric()])
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == list(history.epochs[0])
    for row, record in zip(rows, history.epochs):
        assert int(row["epoch"]) == record["epoch"]
        assert float(row["val_loss"]) == record["val_loss"] and float(row["accuracy"]) == record["accuracy"]

    def strict(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    lines = jsonl_path.read_text().splitlines()
    records = [json.loads(line, parse_constant=strict) for line in lines]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[1]["val_score"] is None and records[2]["val_score"] == 2.0
    assert records[0]["loss"] == history.epochs[0]["loss"]
    # a second run appends when asked to, and starts afresh otherwise
    _fit(make_mlp(), data, [CSVLogger(csv_path, append=True), JSONLLogger(jsonl_path)], epochs=1)
    with open(csv_path, newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert len(jsonl_path.read_text().splitlines()) == 1


def test_terminate_on_nan_stops_at_the_bad_step(data):
    calls = {"n": 0}
    base = nn.CrossEntropyLoss()

    def poisoned(outputs, targets):
        calls["n"] += cr.is_grad_enabled()  # count training steps, not validation batches
        loss = base(outputs, targets)
        return loss * math.nan if calls["n"] == 5 else loss

    ended = []

    class End(Callback):
        def on_train_end(self, logs=None):
            ended.append(True)

    (x, y), (xv, yv) = data
    model = make_mlp()
    terminator = TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match=r"loss is nan at step 5 \(batch 2 of epoch 2\)"):
        history = fit(model, (x, y), loss=poisoned, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=4,
                      batch_size=64, val_data=(xv, yv), callbacks=[terminator, End()], verbose=0)
    assert terminator.stopped_step == 5 and len(history.steps) == 5 and math.isnan(history.steps[-1]["loss"])
    assert history.epoch == [0] and "step 5" in history.stop_reason and ended == [True]


def test_scheduler_steps_per_step_and_per_epoch(data):
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=1.0)
    history = _fit(model, data, epochs=2, optimizer=opt, scheduler=lr_scheduler.StepLR(opt, 1, gamma=0.5),
                   scheduler_interval="step")
    assert [s["lr"] for s in history.steps] == [0.5 ** i for i in range(6)]  # the lr each step used
    assert [r["lr"] for r in history.epochs] == [0.25, 0.5 ** 5]
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=1.0)
    history = _fit(model, data, epochs=3, optimizer=opt, scheduler=lr_scheduler.StepLR(opt, 1, gamma=0.5))
    assert [r["lr"] for r in history.epochs] == [1.0, 0.5, 0.25] and opt.param_groups[0]["lr"] == 0.125
    assert [s["lr"] for s in history.steps] == [1.0] * 3 + [0.5] * 3 + [0.25] * 3


def test_reduce_lr_on_plateau_uses_the_monitored_value(data):
    script = Scripted([1.0] * 4)
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    history = _fit(model, data, [script], epochs=4, metrics=[script.metric()], optimizer=opt, scheduler=plateau,
                   scheduler_monitor="val_score")
    assert [r["lr"] for r in history.epochs] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    # default monitor val_loss: steps with it (here it improves every epoch, so the lr stays)
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    _fit(model, data, epochs=2, optimizer=opt, scheduler=plateau)
    assert plateau.last_epoch == 2 and plateau.best < math.inf
    (x, y), _ = data
    with pytest.raises(ValueError, match="no val_data"):
        fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, scheduler=plateau, verbose=0)
    with pytest.raises(ValueError, match="interval='epoch'"):
        fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, scheduler=plateau, scheduler_interval="step")


def test_explicit_scheduler_callback_is_the_trainer_scheduler(data, tmp_path):
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    history = _fit(model, data, [LRSchedulerCallback(sched), ModelCheckpoint(tmp_path, save_best=False)], epochs=2,
                   optimizer=opt)
    assert [r["lr"] for r in history.epochs] == [1.0, 0.5]
    assert io.load(tmp_path / "last.safetensors").scheduler_state_dict["last_epoch"] == 2
    with pytest.raises(ValueError, match="not both"):
        _fit(model, data, [LRSchedulerCallback(sched)], optimizer=opt, scheduler=sched)


def test_callbacks_must_subclass_callback(data):
    with pytest.raises(TypeError, match="must subclass"):
        _fit(make_mlp(), data, [object()], epochs=1)
    assert cr.is_grad_enabled()
