"""History views and files, and the PNG from plot_history."""

import csv
import json
import math

import pytest
from train_helpers import make_mlp

from chainrule import nn, optim
from chainrule.train import History, fit, plot_history
from chainrule.train.plots import smooth


def _history() -> History:
    epochs = [
        {"epoch": 0, "step": 2, "loss": 1.0, "accuracy": 0.5, "val_loss": 0.9, "val_accuracy": 0.6, "lr": 0.1, "seconds": 1.0},
        {"epoch": 1, "step": 4, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.9, "lr": 0.05, "seconds": 1.0},
        {"epoch": 2, "step": 6, "loss": 0.4, "accuracy": 0.9, "val_loss": math.nan, "val_accuracy": 0.85, "lr": 0.025,
         "seconds": 1.0},
    ]
    steps = [{"step": i + 1, "epoch": i // 2, "loss": 1.0 / (i + 1), "lr": 0.1} for i in range(6)]
    return History(epochs, steps)


def test_keras_view_and_best():
    history = _history()
    assert history.history["val_accuracy"] == [0.6, 0.9, 0.85] and history.epoch == [0, 1, 2]
    assert "epoch" not in history.history and len(history) == 3
    assert history.best("val_loss")["epoch"] == 1  # the NaN epoch is skipped
    assert history.best("val_accuracy")["epoch"] == 1  # accuracies: max
    assert history.best("loss", mode="max")["epoch"] == 0
    with pytest.raises(ValueError, match="no epoch has a value for 'val_f1'"):
        history.best("val_f1")


def test_json_round_trip_is_strict(tmp_path):
    history = _history()
    history.stop_reason = "EarlyStopping: ..."
    text = history.to_json(tmp_path / "sub" / "h.json")

    def strict(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    data = json.loads(text, parse_constant=strict)
    assert data["epochs"][2]["val_loss"] is None and len(data["steps"]) == 6
    back = History.from_json(tmp_path / "sub" / "h.json")
    assert math.isnan(back.epochs[2]["val_loss"]) and back.epochs[1] == history.epochs[1]
    assert back.steps == history.steps and back.stop_reason == history.stop_reason


def test_csv_of_epochs_and_steps(tmp_path):
    history = _history()
    history.to_csv(tmp_path / "epochs.csv")
    history.to_csv(tmp_path / "steps.csv", which="steps")
    with open(tmp_path / "epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_accuracy"]) for r in rows] == [0.6, 0.9, 0.85]
    with open(tmp_path / "steps.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 7))
    with pytest.raises(ValueError, match="which"):
        history.to_csv(tmp_path / "x.csv", which="batches")


def test_smooth_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0], span=9) == pytest.approx([2.0, 2.0, 2.0])
    values = smooth([1.0, math.nan, 3.0], span=3)  # alpha 0.5
    assert values[0] == 1.0 and values[1] == 1.0 and values[2] == pytest.approx((0.25 + 1.5) / 0.75)


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_history_writes_a_png(tmp_path, data):
    (x, y), (xv, yv) = data
    model = make_mlp()
    history = fit(model, (x, y), loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=2, val_data=(xv, yv), metrics=["accuracy", "perplexity"], verbose=0)
    path = plot_history(history, tmp_path / "plots" / "curves.png", title="run", dpi=40)
    assert path.endswith("curves.png") and _is_png(path)
    from matplotlib.image import imread

    image = imread(path)  # 2 rows x 3 columns: loss, accuracy, perplexity, lr at 15 x 7.2 inches
    assert image.shape[:2] == (288, 600)
    History(history.epochs).to_json(tmp_path / "h.json")  # epochs only: the loss is drawn against epochs
    assert _is_png(plot_history(str(tmp_path / "h.json"), tmp_path / "from_json.png", dpi=40))
    with pytest.raises(ValueError, match="empty"):
        plot_history(History(), tmp_path / "empty.png")
