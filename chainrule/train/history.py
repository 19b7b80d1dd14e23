"""History: what a training run recorded, per epoch and per optimizer step.

    history = fit(model, (X, y), loss=loss_fn, optimizer=opt, epochs=5, val_data=(Xv, yv), metrics=["accuracy"])
    history.epochs[-1]        # {"epoch": 4, "step": 160, "loss": ..., "accuracy": ..., "val_loss": ...,
                              #  "val_accuracy": ..., "lr": ..., "seconds": ...}
    history.steps[0]          # {"step": 1, "epoch": 0, "loss": ..., "lr": ...}  (+ "grad_norm" when clipping)
    history.history["val_loss"]   # Keras-style: one list per key, one entry per epoch
    history.best("val_accuracy")  # the epoch record with the best value ("auto" mode: max for accuracies)
    history.to_json("run/history.json"); history.to_csv("run/epochs.csv")
    History.from_json("run/history.json")

Epochs are numbered from 0 (as Keras); ``step`` counts optimizer steps, the first being step 1, and an
epoch record's ``step`` is the count at the end of that epoch. ``lr`` is the learning rate of the first
param group used for the epoch's (or step's) update. The JSON is strict: NaN and infinite values are
written as ``null``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

__all__ = ["History", "resolve_mode"]

_MAX_HINTS = ("acc", "auc", "f1", "precision", "recall", "iou", "dice")


def resolve_mode(mode: str, monitor: str, who: str) -> str:
    """``"min"`` or ``"max"``; ``"auto"`` picks max for accuracy-like names and min otherwise."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(hint in name for hint in _MAX_HINTS) else "min"


def strict_json_value(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (recursively), so ``json.dumps`` is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(v) for v in value]
    return value


class History:
    """Records of a training run.

    Attributes:
        epochs: one dict per completed epoch: ``epoch``, ``step``, ``loss``, the metrics, ``val_loss``
            and ``val_<metric>`` when validating, ``lr`` and ``seconds`` (wall time of the epoch).
        steps: one dict per optimizer step: ``step``, ``epoch``, ``loss``, ``lr`` (and ``grad_norm``
            when gradients are clipped).
        stop_reason: why training stopped early (e.g. a NaN loss, early stopping), or None.
    """

    def __init__(self, epochs: list[dict] | None = None, steps: list[dict] | None = None):
        self.epochs: list[dict[str, Any]] = list(epochs or [])
        self.steps: list[dict[str, Any]] = list(steps or [])
        self.stop_reason: str | None = None

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        last = ""
        if self.epochs:
            shown = {k: v for k, v in self.epochs[-1].items() if k not in ("epoch", "step", "seconds")}
            last = ", last: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        return f"History(epochs={len(self.epochs)}, steps={len(self.steps)}{last})"

    # ----- views ---------------------------------------------------------------------------------------------
    @property
    def epoch(self) -> list[int]:
        """The epoch indices recorded (Keras' ``History.epoch``)."""
        return [record["epoch"] for record in self.epochs]

    @property
    def history(self) -> dict[str, list]:
        """Keras-style: ``{"loss": [...], "val_loss": [...], "accuracy": [...], "lr": [...], ...}``, one
        entry per epoch (None where an epoch lacks the key)."""
        keys: list[str] = []
        for record in self.epochs:
            keys += [k for k in record if k != "epoch" and k not in keys]
        return {key: [record.get(key) for record in self.epochs] for key in keys}

    def keys(self) -> list[str]:
        return list(self.history)

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> dict[str, Any]:
        """The epoch record with the best ``monitor`` value (min for losses, max for accuracies in
        ``"auto"`` mode). Epochs where the value is missing or NaN are skipped."""
        direction = resolve_mode(mode, monitor, "History.best")
        candidates = [r for r in self.epochs if isinstance(r.get(monitor), (int, float)) and not math.isnan(r[monitor])]
        if not candidates:
            available = sorted({k for r in self.epochs for k in r})
            raise ValueError(f"History.best: no epoch has a value for {monitor!r}; recorded keys: {available}")
        pick = max if direction == "max" else min
        return pick(candidates, key=lambda record: record[monitor])

    # ----- files -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(r) for r in self.epochs], "steps": [dict(r) for r in self.steps],
                "stop_reason": self.stop_reason}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The history as strict JSON ``{"epochs": [...], "steps": [...], "stop_reason": ...}``;
        written to ``path`` too when given. Returns the JSON text."""
        text = json.dumps(strict_json_value(self.to_dict()), allow_nan=False)
        if path is not None:
            _ensure_parent(path)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> History:
        """A History read back from :meth:`to_json`'s output (a file path or the JSON text itself);
        ``null`` values come back as NaN."""
        text = os.fspath(path_or_text)
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("epochs"), list):
            raise ValueError("History.from_json: expected an object with an 'epochs' list (from History.to_json)")

        def revive(record: dict) -> dict:
            return {k: (math.nan if v is None else v) for k, v in record.items()}

        history = cls([revive(r) for r in data["epochs"]], [revive(r) for r in data.get("steps", [])])
        history.stop_reason = data.get("stop_reason")
        return history

    def to_csv(self, path: str | os.PathLike, which: str = "epochs") -> None:
        """Write the epoch records (``which="epochs"``) or the step records (``"steps"``) as CSV with a
        header row; missing values are empty cells."""
        if which not in ("epochs", "steps"):
            raise ValueError(f"History.to_csv: which must be 'epochs' or 'steps', got {which!r}")
        records = self.epochs if which == "epochs" else self.steps
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        _ensure_parent(path)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(records)


def _ensure_parent(path: str | os.PathLike) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
