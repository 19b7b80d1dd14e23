"""Metrics: built-ins against numpy, layouts, sample weighting, callables, errors."""

import math

import numpy as np
import pytest
from train_helpers import make_mlp

import chainrule as cr
from chainrule import nn
from chainrule.train import evaluate
from chainrule.train.metrics import MetricTracker, accuracy_counts, binary_accuracy_counts, resolve_metrics, topk_accuracy_counts


def _np_topk(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    target_scores = np.take_along_axis(scores, targets[:, None], 1)
    return float(((scores > target_scores).sum(1) < k).mean())


def test_accuracy_and_topk_match_numpy():
    scores, targets = cr.randn(50, 7), cr.randint(0, 7, (50,))
    s, t = scores.cpu().numpy(), targets.cpu().numpy()
    correct, count = accuracy_counts(scores, targets)
    assert count == 50 and correct == (s.argmax(1) == t).sum()
    for k in (1, 3, 5):
        hits, count = topk_accuracy_counts(scores, targets, k)
        assert hits / count == pytest.approx(_np_topk(s, t, k))
    assert topk_accuracy_counts(scores, targets, 7)[0] == 50


def test_accuracy_layouts_and_ignored_targets():
    logits = cr.randn(2, 5, 9)  # (B, T, V): a language model's layout
    targets = cr.randint(0, 9, (2, 5))
    targets[0, :2] = -100  # padding, as cross_entropy's ignore_index
    expected = (logits.cpu().numpy().argmax(-1) == targets.cpu().numpy())[targets.cpu().numpy() >= 0]
    assert accuracy_counts(logits, targets) == (float(expected.sum()), 8.0)
    assert accuracy_counts(logits.reshape(10, 9), targets) == (float(expected.sum()), 8.0)  # flattened scores
    nchw = cr.randn(2, 4, 3, 3)  # PyTorch's (N, C, d1, d2) layout
    seg = cr.randint(0, 4, (2, 3, 3))
    assert accuracy_counts(nchw, seg)[0] == (nchw.cpu().numpy().argmax(1) == seg.cpu().numpy()).sum()
    one_hot = cr.zeros(6, 3)
    labels = [0, 2, 1, 1, 0, 2]
    for i, c in enumerate(labels):
        one_hot[i, c] = 1.0
    scores = cr.randn(6, 3)
    assert accuracy_counts(scores, one_hot)[0] == (scores.cpu().numpy().argmax(1) == np.array(labels)).sum()


def test_binary_accuracy_on_logits():
    logits = cr.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    targets = cr.tensor([1.0, 1.0, 0.0, 0.0])
    assert binary_accuracy_counts(logits, targets) == (2.0, 4.0)


def test_metrics_are_weighted_by_samples_not_batches():
    model = make_mlp(n_in=3, n_out=4)
    x, y = cr.randn(23, 3), cr.randint(0, 4, (23,))
    with cr.no_grad():
        full = model(x)

    def mean_abs_logit(outputs, targets):
        return outputs.abs().mean()

    loss = nn.CrossEntropyLoss()
    batched = evaluate(model, (x, y), loss=loss, metrics=["accuracy", mean_abs_logit, "perplexity"], batch_size=5)
    assert batched["loss"] == pytest.approx(loss(full, y).item(), rel=1e-6)
    assert batched["accuracy"] == pytest.approx(float((full.argmax(1) == y).float().mean().item()))
    # a per-batch mean weighted by batch size equals the overall mean (equal-width rows)
    assert batched["mean_abs_logit"] == pytest.approx(full.abs().mean().item(), rel=1e-6)
    assert batched["perplexity"] == pytest.approx(math.exp(batched["loss"]))


def test_tracker_weights_loss_by_batch_size():
    tracker = MetricTracker(resolve_metrics([]))
    tracker.update(None, cr.zeros(3), loss=1.0)
    tracker.update(None, cr.zeros(1), loss=5.0)
    assert tracker.result() == {"loss": 2.0}
    assert tracker.result("val_") == {"val_loss": 2.0}


def test_metric_specs_and_errors():
    assert [s.name for s in resolve_metrics(["acc", "top3_accuracy", ("f", lambda o, t: 0.0), "ppl"])] == \
        ["acc", "top3_accuracy", "f", "ppl"]
    assert [s.name for s in resolve_metrics({"score": lambda o, t: 1.0})] == ["score"]
    with pytest.raises(ValueError, match="lambda"):
        resolve_metrics([lambda o, t: 0.0])
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        resolve_metrics(["f1"])
    with pytest.raises(ValueError, match="distinct"):
        resolve_metrics(["accuracy", "accuracy"])
    with pytest.raises(ValueError, match="class scores"):
        accuracy_counts(cr.randn(4, 3), cr.randint(0, 3, (5,)))
    with pytest.raises(ValueError, match="integer class indices"):
        accuracy_counts(cr.randn(4, 3), cr.randn(4))
    with pytest.raises(ValueError, match="computed from the loss"):
        evaluate(make_mlp(), (cr.randn(4, 4), cr.randint(0, 2, (4,))), metrics=["perplexity"])
