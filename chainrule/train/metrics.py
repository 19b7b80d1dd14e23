"""Metrics for the fit loop: named built-ins, plain callables, and their sample-weighted running means.

A metric is given to :func:`chainrule.train.fit` (or :func:`evaluate`) as

- a name: ``"accuracy"`` (alias ``"acc"``), ``"top5_accuracy"`` (any ``"top{k}_accuracy"``),
  ``"binary_accuracy"``, ``"perplexity"`` (alias ``"ppl"``);
- a callable ``fn(outputs, targets) -> float`` (a number or a one-element tensor, the batch mean),
  named by ``fn.__name__``;
- a ``(name, fn)`` pair, or a dict ``{name: fn}``, to name a callable explicitly (needed for lambdas).

Every metric is averaged over samples, not over batches: a batch's value is weighted by its size
(the first dimension of the targets), so a smaller last batch counts for what it holds.

``accuracy`` compares the arg-max of class scores with integer targets. The class dimension is found
from the shapes: outputs ``(N, C)`` with targets ``(N,)``; ``(N, C, d1, ...)`` with ``(N, d1, ...)``
(PyTorch's layout); ``(B, T, C)`` with ``(B, T)`` (a language model's layout; preferred when both fit);
or ``(M, C)`` with targets of ``M`` elements in any shape. Targets below 0 (``ignore_index=-100``
padding) are not counted. Float targets of the outputs' own shape (one-hot or soft labels) are
compared by their arg-max. It counts every element, so for sequences it is token accuracy.
``top{k}_accuracy`` counts a target as hit when fewer than ``k`` classes score strictly higher (ties
count in the target's favour). ``binary_accuracy`` takes logits: predicts 1 where the output is > 0,
against targets thresholded at 0.5 (as ``BCEWithLogitsLoss`` expects). ``perplexity`` is
``exp(mean loss)``, derived from the loss, so it needs a loss (a mean cross-entropy in nats).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chainrule.autograd.grad_mode import no_grad
from chainrule.tensor import Tensor

__all__ = ["MetricSpec", "MetricTracker", "resolve_metrics", "accuracy_counts", "topk_accuracy_counts",
           "binary_accuracy_counts", "batch_size_of"]

MetricFn = Callable[[Any, Any], Any]
_TOPK = re.compile(r"top[_-]?(\d+)(?:_accuracy|_acc)?$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``counts(outputs, targets) -> (weighted sum, weight)`` for a batch, or, when
    ``from_loss`` is set, a function of the mean loss instead."""

    name: str
    counts: Callable[[Any, Any], tuple[float, float]] | None = None
    from_loss: Callable[[float], float] | None = None


# ----- built-in metrics -----------------------------------------------------------------------------------

def _class_dim(outputs: Tensor, targets: Tensor) -> int | None:
    """The dimension of ``outputs`` that holds class scores for integer ``targets``, or None."""
    o, t = tuple(outputs.shape), tuple(targets.shape)
    if len(o) != len(t) + 1:
        return None
    if o[:-1] == t:
        return len(o) - 1  # class scores last: (N, C) or (B, T, C)
    if o[:1] + o[2:] == t:
        return 1  # PyTorch's (N, C, d1, ...) layout
    return None


def _is_integer(t: Tensor) -> bool:
    return not t.dtype.is_floating_point and t.dtype.name != "bool"


def _shape_error(metric: str, outputs: Tensor, targets: Tensor, what: str) -> ValueError:
    return ValueError(f"metric '{metric}': outputs of shape {tuple(outputs.shape)} ({outputs.dtype}) and targets of "
                      f"shape {tuple(targets.shape)} ({targets.dtype}) do not fit: {what}")


def _class_layout(metric: str, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, int]:
    """``(outputs, targets, class_dim)`` with the targets reshaped if needed to line up with the scores."""
    if not isinstance(outputs, Tensor) or not isinstance(targets, Tensor):
        raise TypeError(f"metric '{metric}': expected Tensor outputs and targets, got {type(outputs).__name__} and "
                        f"{type(targets).__name__}")
    if not _is_integer(targets):
        raise _shape_error(metric, outputs, targets, "class targets must be integer class indices (e.g. int64)")
    dim = _class_dim(outputs, targets)
    if dim is None and outputs.ndim == 2 and targets.numel() == outputs.shape[0]:
        return outputs, targets.reshape(-1), 1  # flattened scores (B*T, C) against (B, T) targets
    if dim is None:
        raise _shape_error(metric, outputs, targets, "expected class scores with one more dimension than the "
                           "targets, e.g. (N, C) with (N,), (N, C, L) with (N, L) or (B, T, C) with (B, T)")
    return outputs, targets, dim


def accuracy_counts(outputs: Tensor, targets: Tensor) -> tuple[float, float]:
    """``(number correct, number counted)`` for top-1 accuracy of class scores against class indices
    (or against the arg-max of one-hot / soft float targets of the same shape)."""
    with no_grad():
        if isinstance(targets, Tensor) and targets.dtype.is_floating_point and targets.shape == outputs.shape \
                and outputs.ndim >= 2:
            dim = outputs.ndim - 1
            return float((outputs.argmax(dim) == targets.argmax(dim)).sum().item()), float(targets[..., 0].numel())
        outputs, targets, dim = _class_layout("accuracy", outputs, targets)
        counted = targets >= 0
        correct = (outputs.argmax(dim) == targets) & counted
        return float(correct.sum().item()), float(counted.sum().item())


def topk_accuracy_counts(outputs: Tensor, targets: Tensor, k: int) -> tuple[float, float]:
    """``(hits, number counted)``: a target is hit when fewer than ``k`` classes score strictly higher."""
    with no_grad():
        outputs, targets, dim = _class_layout(f"top{k}_accuracy", outputs, targets)
        counted = targets >= 0
        index = targets.clamp(min=0).unsqueeze(dim)
        target_score = outputs.gather(dim, index)
        higher = (outputs > target_score).sum(dim)
        hits = (higher < k) & counted
        return float(hits.sum().item()), float(counted.sum().item())


def binary_accuracy_counts(outputs: Tensor, targets: Tensor) -> tuple[float, float]:
    """``(number correct, number of elements)`` for logits (predict 1 where > 0) against 0/1 targets."""
    with no_grad():
        if not isinstance(outputs, Tensor) or not isinstance(targets, Tensor):
            raise TypeError("metric 'binary_accuracy': expected Tensor outputs and targets")
        if outputs.shape != targets.shape:
            if outputs.numel() != targets.numel():
                raise _shape_error("binary_accuracy", outputs, targets, "expected one logit per target")
            outputs = outputs.reshape(targets.shape)  # e.g. (N, 1) logits against (N,) targets
        correct = (outputs > 0) == (targets > 0.5)
        return float(correct.sum().item()), float(targets.numel())


def batch_size_of(targets: Any) -> int:
    """The number of samples in a batch: the first dimension of the targets (1 for a scalar target)."""
    if isinstance(targets, Tensor) or hasattr(targets, "shape"):
        return int(targets.shape[0]) if len(targets.shape) else 1
    if isinstance(targets, (list, tuple)) and targets:
        return batch_size_of(targets[0])
    return 1


def _callable_counts(name: str, fn: MetricFn) -> Callable[[Any, Any], tuple[float, float]]:
    def counts(outputs, targets) -> tuple[float, float]:
        with no_grad():
            value = fn(outputs, targets)
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"metric '{name}' returned a tensor of shape {tuple(value.shape)}; a metric must "
                                 "return one number (the batch mean)")
            value = value.item()
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric '{name}' returned {type(value).__name__}; a metric must return a number") from None
        n = batch_size_of(targets)
        return value * n, float(n)

    return counts


def _exp_or_inf(mean_loss: float) -> float:
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


# ----- resolving what the user passed ---------------------------------------------------------------------

def _named(name: str) -> MetricSpec:
    key = name.strip().lower()
    if key in ("accuracy", "acc"):
        return MetricSpec(name, accuracy_counts)
    if key in ("binary_accuracy", "binary_acc"):
        return MetricSpec(name, binary_accuracy_counts)
    if key in ("perplexity", "ppl"):
        return MetricSpec(name, from_loss=_exp_or_inf)
    match = _TOPK.fullmatch(key)
    if match and int(match.group(1)) >= 1:
        k = int(match.group(1))
        return MetricSpec(name, functools.partial(topk_accuracy_counts, k=k))
    raise ValueError(f"unknown metric {name!r}: use 'accuracy', 'top5_accuracy' (any top{{k}}_accuracy), "
                     "'binary_accuracy', 'perplexity', or pass a callable fn(outputs, targets) -> float")


def _callable_name(fn: MetricFn) -> str:
    base = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(base, "__name__", None) or type(base).__name__
    if name == "<lambda>":
        raise ValueError("a lambda metric has no usable name: pass it as a (name, fn) pair or in a dict {name: fn}")
    return name


def _one_spec(item: Any) -> MetricSpec:
    if isinstance(item, MetricSpec):
        return item
    if isinstance(item, str):
        return _named(item)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and callable(item[1]):
        return MetricSpec(item[0], _callable_counts(item[0], item[1]))
    if callable(item):
        name = _callable_name(item)
        return MetricSpec(name, _callable_counts(name, item))
    raise TypeError(f"a metric must be a name, a callable fn(outputs, targets) or a (name, fn) pair, got {item!r}")


def resolve_metrics(metrics: Iterable | Mapping | str | Callable | None) -> list[MetricSpec]:
    """The metric specs for ``metrics`` (see the module docstring); names must be distinct."""
    if metrics is None:
        return []
    if isinstance(metrics, Mapping):
        items = [(str(name), fn) for name, fn in metrics.items()]
    elif isinstance(metrics, str) or callable(metrics):
        items = [metrics]
    else:
        items = list(metrics)
    specs = [_one_spec(item) for item in items]
    names = [spec.name for spec in specs]
    reserved = {"loss", "lr", "epoch", "step", "seconds"}
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & reserved))
    if clashes:
        raise ValueError(f"metric names must be distinct and differ from {sorted(reserved)}; got {clashes} in {names}")
    return specs


# ----- running means ----------------------------------------------------------------------------------------

class MetricTracker:
    """Sample-weighted running means of the loss and the metrics over one pass through the data."""

    def __init__(self, specs: list[MetricSpec], *, with_loss: bool = True):
        needs_loss = [s.name for s in specs if s.from_loss is not None]
        if needs_loss and not with_loss:
            raise ValueError(f"metric(s) {needs_loss} are computed from the loss, but no loss was given; pass loss=")
        self.specs = specs
        self.with_loss = with_loss
        self.loss_sum = 0.0
        self.loss_weight = 0.0
        self.sums = {s.name: 0.0 for s in specs if s.counts is not None}
        self.weights = dict.fromkeys(self.sums, 0.0)
        self.batches = 0

    def update(self, outputs: Any, targets: Any, loss: float | None = None, n: int | None = None) -> None:
        """Add one batch: its mean ``loss`` (weighted by ``n``, the batch size) and its metrics."""
        self.batches += 1
        if loss is not None:
            n = batch_size_of(targets) if n is None else n
            self.loss_sum += loss * n
            self.loss_weight += n
        for spec in self.specs:
            if spec.counts is not None:
                total, weight = spec.counts(outputs, targets)
                self.sums[spec.name] += total
                self.weights[spec.name] += weight

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.loss_weight if self.loss_weight else math.nan

    def result(self, prefix: str = "") -> dict[str, float]:
        """``{prefix + "loss": ..., prefix + name: ...}`` (the loss only when one was tracked)."""
        out: dict[str, float] = {}
        if self.with_loss:
            out[prefix + "loss"] = self.mean_loss
        for spec in self.specs:
            if spec.from_loss is not None:
                out[prefix + spec.name] = spec.from_loss(self.mean_loss)
            else:
                weight = self.weights[spec.name]
                out[prefix + spec.name] = self.sums[spec.name] / weight if weight else math.nan
        return out
