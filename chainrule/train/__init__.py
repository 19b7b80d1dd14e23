"""A Keras-style fit loop for PyTorch-style models: fit, evaluate, predict, callbacks, history, plots.

    import chainrule as cr
    from chainrule import nn, optim
    from chainrule.train import fit, evaluate, plot_history
    from chainrule.train.callbacks import EarlyStopping, ModelCheckpoint

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    history = fit(model, (X, y), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=20,
                  val_data=(Xv, yv), metrics=["accuracy"],
                  scheduler=optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20),
                  callbacks=[EarlyStopping(patience=3, restore_best_weights=True), ModelCheckpoint("runs/a")])
    history.history["val_accuracy"]            # one value per epoch
    evaluate(model, (Xt, yt), loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
    plot_history(history, "runs/a/curves.png")
    fit(model, (X, y), loss=..., optimizer=opt, epochs=40, resume_from="runs/a/last.safetensors")

- :func:`fit` / :class:`Trainer` (``trainer.py``): the loop, the data it accepts, resuming.
- :mod:`chainrule.train.metrics`: ``"accuracy"``, ``"top5_accuracy"``, ``"binary_accuracy"``,
  ``"perplexity"`` and callables, averaged over samples.
- :class:`History` (``history.py``): per-epoch and per-step records, Keras' ``history.history``,
  ``best()``, JSON/CSV.
- :mod:`chainrule.train.callbacks`: ``Callback``, ``EarlyStopping``, ``ModelCheckpoint``,
  ``CSVLogger``, ``JSONLLogger``, ``TerminateOnNaN``, ``LRSchedulerCallback``.
- :func:`plot_history` (``plots.py``): loss, metric and learning-rate curves as a PNG (matplotlib).
- Progress (``progress.py``): ``verbose=0`` silent, ``1`` a tqdm bar per epoch (plain lines without
  tqdm), ``2`` one line per epoch.
"""

from chainrule.train import callbacks, metrics
from chainrule.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    LRSchedulerCallback,
    ModelCheckpoint,
    TerminateOnNaN,
)
from chainrule.train.history import History
from chainrule.train.plots import plot_history
from chainrule.train.trainer import Trainer, evaluate, fit, predict

__all__ = ["fit", "evaluate", "predict", "Trainer", "History", "plot_history", "callbacks", "metrics", "Callback",
           "EarlyStopping", "ModelCheckpoint", "CSVLogger", "JSONLLogger", "TerminateOnNaN", "LRSchedulerCallback"]
