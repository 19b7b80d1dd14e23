"""fit / Trainer / evaluate / predict: learning, the step semantics, data forms, max_steps, progress output."""

import math

import numpy as np
import pytest
from train_helpers import make_mlp, params_of, separable

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import DataLoader, TensorDataset
from chainrule.train import History, Trainer, evaluate, fit, predict
from chainrule.train import progress as progress_module


def test_mlp_learns_a_separable_problem(data):
    (x, y), (xv, yv) = data
    model = make_mlp()
    opt = optim.AdamW(model.parameters(), lr=0.03)
    history = fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=8, batch_size=32,
                  val_data=(xv, yv), metrics=["accuracy"], verbose=0)
    assert isinstance(history, History)
    assert history.epochs[-1]["accuracy"] > 0.95
    assert history.epochs[-1]["val_accuracy"] > 0.9
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert evaluate(model, (xv, yv), metrics=["accuracy"])["accuracy"] == pytest.approx(history.epochs[-1]["val_accuracy"])


def test_history_records_epochs_and_steps(data):
    (x, y), (xv, yv) = data
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=3, batch_size=50,
                  val_data=(xv, yv), metrics=["accuracy"], verbose=0)
    steps_per_epoch = math.ceil(192 / 50)
    assert len(history) == 3 and history.epoch == [0, 1, 2]
    assert [s["step"] for s in history.steps] == list(range(1, 3 * steps_per_epoch + 1))
    assert [s["epoch"] for s in history.steps] == [e for e in range(3) for _ in range(steps_per_epoch)]
    assert [r["step"] for r in history.epochs] == [steps_per_epoch * (e + 1) for e in range(3)]
    record = history.epochs[0]
    assert list(record) == ["epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert record["lr"] == 0.1 and record["seconds"] >= 0
    keras = history.history
    assert set(keras) == {"step", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert keras["val_loss"] == [r["val_loss"] for r in history.epochs]
    # the epoch's training loss is the sample-weighted mean of its step losses (last batch holds 42)
    sizes = [50, 50, 50, 42]
    first = [s["loss"] for s in history.steps[:steps_per_epoch]]
    assert record["loss"] == pytest.approx(sum(l * n for l, n in zip(first, sizes)) / 192, rel=1e-12)


def test_each_step_is_the_plain_pytorch_loop(data):
    """fit without shuffling == the hand-written loop, bit for bit (clipping included)."""
    (x, y), _ = data
    loss_fn = nn.CrossEntropyLoss()
    cr.manual_seed(3)
    model_a = make_mlp()
    opt_a = optim.SGD(model_a.parameters(), lr=0.5, momentum=0.9)
    cr.manual_seed(3)
    model_b = make_mlp()
    opt_b = optim.SGD(model_b.parameters(), lr=0.5, momentum=0.9)
    history = fit(model_a, (x, y), loss=loss_fn, optimizer=opt_a, epochs=2, batch_size=64, shuffle=False,
                  grad_clip_norm=0.1, verbose=0)
    norms = []
    for _ in range(2):
        for start in range(0, 192, 64):
            model_b.train()
            opt_b.zero_grad()
            loss = loss_fn(model_b(x[start:start + 64]), y[start:start + 64])
            loss.backward()
            norms.append(nn.utils.clip_grad_norm_(model_b.parameters(), 0.1).item())
            opt_b.step()
    for pa, pb in zip(params_of(model_a), params_of(model_b)):
        np.testing.assert_array_equal(pa, pb)
    assert [s["grad_norm"] for s in history.steps] == norms
    assert any(n > 0.1 for n in norms)  # clipping was active


def test_data_forms_give_the_same_training(data):
    (x, y), _ = data
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 192, 64)]
    forms = {
        "tuple": (x, y),
        "numpy": (x.cpu().numpy(), y.cpu().numpy()),
        "dataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=64),
        "list": batches,
    }
    results = {}
    for name, train_data in forms.items():
        cr.manual_seed(5)
        model = make_mlp()
        fit(model, train_data, loss="cross_entropy", optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2,
            batch_size=64, shuffle=False, verbose=0)
        results[name] = params_of(model)
    for name, params in results.items():
        for p, ref in zip(params, results["tuple"]):
            np.testing.assert_array_equal(p, ref, err_msg=name)


def test_one_shot_iterator_needs_max_steps(data):
    (x, y), _ = data
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    gen = ((x[i:i + 32], y[i:i + 32]) for i in range(0, 192, 32))
    with pytest.raises(ValueError, match="yielded no batches in epoch 2"):
        fit(model, gen, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, verbose=0)

    def stream():
        while True:
            yield x[:16], y[:16]

    history = fit(model, stream(), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=1, max_steps=7, verbose=0)
    assert len(history.steps) == 7 and len(history) == 1


def test_max_steps_ends_mid_epoch_but_completes_it(data):
    (x, y), (xv, yv) = data
    model = make_mlp()
    history = fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=10, batch_size=32, max_steps=8, val_data=(xv, yv), verbose=0)
    assert len(history.steps) == 8
    assert history.epoch == [0, 1]  # 6 steps per epoch: the second epoch ends after 2 steps, validated
    assert history.epochs[1]["step"] == 8 and "val_loss" in history.epochs[1]


def test_trainer_evaluate_predict_and_mode_restored(data):
    (x, y), (xv, yv) = data
    model = make_mlp(dropout=0.5)
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), optimizer=optim.AdamW(model.parameters(), lr=0.02),
                      metrics=["accuracy"], verbose=0)
    trainer.fit((x, y), epochs=3, val_data=(xv, yv))
    assert model.training  # left in train mode after validation
    out = trainer.predict(xv, batch_size=10)
    assert out.shape == (64, 2) and not out.requires_grad
    model.eval()
    with cr.no_grad():
        np.testing.assert_allclose(out.cpu().numpy(), model(xv).cpu().numpy(), rtol=1e-6)
    model.train()
    result = trainer.evaluate((xv, yv), batch_size=7)  # uneven batches: still a per-sample mean
    accuracy = float((out.argmax(1) == yv).float().mean().item())
    assert result["accuracy"] == pytest.approx(accuracy)
    assert set(result) == {"loss", "accuracy"} and model.training
    assert predict(model, DataLoader(TensorDataset(xv, yv), batch_size=16)).shape == (64, 2)


def test_bad_arguments_fail_clearly(data):
    (x, y), _ = data
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="same first"):
        fit(model, (x, y[:10]), loss=loss, optimizer=opt, verbose=0)
    with pytest.raises(TypeError, match="single Tensor"):
        fit(model, x, loss=loss, optimizer=opt, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        fit(model, (x, y), loss=loss, optimizer=opt, verbose=3)
    with pytest.raises(ValueError, match="one number"):
        fit(model, (x, y), loss=nn.CrossEntropyLoss(reduction="none"), optimizer=opt, verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(model, (x, y), loss="no_such_loss", optimizer=opt, verbose=0)
    with pytest.raises(ValueError, match="nothing to compute"):
        evaluate(model, (x, y))


def test_quiet_mode_prints_nothing(data, capsys):
    (x, y), (xv, yv) = data
    model = make_mlp()
    fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2,
        val_data=(xv, yv), metrics=["accuracy"], verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_2_prints_one_line_per_epoch(data, capsys):
    (x, y), (xv, yv) = data
    model = make_mlp()
    fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=3,
        val_data=(xv, yv), metrics=["accuracy"], verbose=2)
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and captured.err == ""
    assert lines[0].startswith("Epoch 1/3") and "6 steps" in lines[0]
    assert "val_accuracy: " in lines[2] and "loss: " in lines[2]


def test_progress_bar_and_plain_fallback(data, capsys, monkeypatch):
    (x, y), _ = data
    model = make_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=1, metrics=["accuracy"], verbose=1)
    bar = capsys.readouterr().err
    assert "Epoch 1/1" in bar and "6/6" in bar and "step/s" in bar and "accuracy" in bar
    monkeypatch.setattr(progress_module, "tqdm_or_none", lambda: None)
    fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, verbose=1)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [line.split(" - ")[0] for line in captured.out.strip().splitlines()] == ["Epoch 1/2", "Epoch 2/2"]


def test_separable_helper_is_balanced_enough():
    _, y = separable(256)
    assert 0.3 < float(y.float().mean().item()) < 0.7
