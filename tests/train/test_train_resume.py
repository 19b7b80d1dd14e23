"""Resuming: 2 epochs in one go == 1 epoch, checkpoint, then a fresh process-like restart for epoch 2."""

import json

import numpy as np
import pytest
from train_helpers import make_mlp, params_of, separable

import chainrule as cr
from chainrule import io, nn, optim
from chainrule.optim import lr_scheduler
from chainrule.train import fit
from chainrule.train.callbacks import EarlyStopping, JSONLLogger, ModelCheckpoint


def _setup(interval: str):
    """A float64 model with dropout (so training draws random numbers too), AdamW and a scheduler."""
    model = make_mlp(dropout=0.2).double()
    opt = optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
    sched = (lr_scheduler.CosineAnnealingLR(opt, T_max=20) if interval == "step"
             else lr_scheduler.StepLR(opt, step_size=1, gamma=0.7))
    return model, opt, sched


def _run(data, epochs, interval, callbacks=(), resume_from=None):
    (x, y), (xv, yv) = data
    model, opt, sched = _setup(interval)
    history = fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, scheduler=sched, scheduler_interval=interval,
                  epochs=epochs, batch_size=40, shuffle=True, val_data=(xv, yv), metrics=["accuracy"],
                  callbacks=callbacks, resume_from=resume_from, verbose=0)
    return model, opt, sched, history


@pytest.fixture
def data64():
    x, y = separable(200, dtype=cr.float64)
    return (x[:160], y[:160]), (x[160:], y[160:])


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_resumed_training_is_bit_identical(data64, tmp_path, interval):
    cr.manual_seed(11)
    model_a, opt_a, sched_a, history_a = _run(data64, 2, interval)
    rng_after_a = cr.get_rng_state()

    cr.manual_seed(11)
    stopper = EarlyStopping(monitor="val_loss", patience=5)
    _run(data64, 1, interval, callbacks=[ModelCheckpoint(tmp_path, save_best=False), stopper])
    cr.manual_seed(999)  # the restart draws other numbers until the checkpoint restores the generator
    stopper_b = EarlyStopping(monitor="val_loss", patience=5)
    model_b, opt_b, sched_b, history_b = _run(data64, 2, interval, callbacks=[stopper_b],
                                              resume_from=tmp_path / "last.safetensors")

    for pa, pb in zip(params_of(model_a), params_of(model_b)):
        assert pa.dtype == np.float64
        np.testing.assert_array_equal(pa, pb)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    assert sched_b.last_epoch == sched_a.last_epoch
    for group_a, group_b in zip(opt_a.state_dict()["state"].values(), opt_b.state_dict()["state"].values()):
        np.testing.assert_array_equal(group_a["exp_avg_sq"].cpu().numpy(), group_b["exp_avg_sq"].cpu().numpy())
    assert cr.get_rng_state() == rng_after_a
    # the history continues: epoch 0 from the checkpoint, epoch 1 trained now, both as in the straight run
    assert history_b.epoch == [0, 1]
    for ra, rb in zip(history_a.epochs, history_b.epochs):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {k: v for k, v in rb.items() if k != "seconds"}
    assert [s["step"] for s in history_b.steps] == [5, 6, 7, 8]
    assert [s["loss"] for s in history_b.steps] == [s["loss"] for s in history_a.steps[4:]]
    assert stopper_b.best == min(r["val_loss"] for r in history_a.epochs)


def test_resume_restores_callback_state_and_counters(data64, tmp_path):
    cr.manual_seed(2)
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    log = tmp_path / "log.jsonl"
    _run(data64, 1, "epoch", callbacks=[ModelCheckpoint(tmp_path), stopper, JSONLLogger(log)])
    ckpt = io.load(tmp_path / "last.safetensors")
    assert (ckpt.epoch, ckpt.step) == (1, 4)
    assert ckpt.extra["callbacks"]["EarlyStopping"]["best"] == stopper.best
    stopper_b = EarlyStopping(monitor="val_loss", patience=3)
    _, _, _, history = _run(data64, 1, "epoch", callbacks=[stopper_b, JSONLLogger(log)],
                            resume_from=tmp_path / "last.safetensors")
    assert len(history.steps) == 0 and history.epoch == [0]  # already done: nothing to train
    assert stopper_b.best == stopper.best and stopper_b.best_epoch == stopper.best_epoch == 0
    assert len(log.read_text().splitlines()) == 1  # a resumed run appends to its logs by default
    _run(data64, 2, "epoch", callbacks=[JSONLLogger(log)], resume_from=tmp_path / "last.safetensors")
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [0, 1]


def test_resume_needs_matching_objects(data64, tmp_path):
    cr.manual_seed(2)
    _run(data64, 1, "epoch", callbacks=[ModelCheckpoint(tmp_path, save_best=False)])
    (x, y), _ = data64
    model = make_mlp(dropout=0.2).double()
    opt = optim.AdamW(model.parameters(), lr=0.02)
    with pytest.raises(ValueError, match="holds scheduler state but no scheduler"):
        fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, verbose=0,
            resume_from=tmp_path / "last.safetensors")
    wrong = make_mlp(hidden=8).double()
    opt = optim.AdamW(wrong.parameters(), lr=0.02)
    with pytest.raises(io.CheckpointError, match="size mismatch"):
        fit(wrong, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, scheduler=lr_scheduler.StepLR(opt, 1), epochs=2,
            verbose=0, resume_from=tmp_path / "last.safetensors")
    io.save(model, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="no integer step and epoch"):
        fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, verbose=0,
            resume_from=tmp_path / "plain.safetensors")
