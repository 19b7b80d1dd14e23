"""Samplers, as in ``torch.utils.data``: iterables of dataset indices that decide the order of an epoch.

- ``SequentialSampler(data)``: 0, 1, ..., len(data) - 1.
- ``RandomSampler(data, replacement=False, num_samples=None, generator=None)``: a fresh random order on
  every iteration, drawn from ``generator`` or chainrule's seeded default generator.
- ``SubsetRandomSampler(indices, generator=None)``: the given indices in a fresh random order.
- ``WeightedRandomSampler(weights, num_samples, replacement=True, generator=None)``: indices drawn with
  probabilities proportional to ``weights``.
- ``BatchSampler(sampler, batch_size, drop_last)``: lists of ``batch_size`` indices.

Any iterable of ints with a ``__len__`` works as a sampler. The built-in ones also offer
``_index_array()``, the whole epoch's order as one int64 array, which lets the loader cut batches
without a Python loop over the items.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from numbers import Integral

from chainrule.backend import np
from chainrule.random import Generator, default_generator

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler"]


class Sampler:
    """Base class: subclasses define ``__iter__`` (yielding indices) and usually ``__len__``."""

    def __init__(self, data_source: Sized | None = None):
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")


class _ArraySampler(Sampler):
    """A sampler whose epoch order is one int64 array made by ``_index_array()``."""

    def _index_array(self):
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return iter(self._index_array().tolist())


class SequentialSampler(_ArraySampler):
    """Indices ``0 .. len(data_source) - 1`` in order."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def _index_array(self):
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


def _check_count(name: str, value, op: str) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{op}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


class RandomSampler(_ArraySampler):
    """Random indices into ``data_source``, a new order on every iteration.

    Without replacement each epoch is a permutation (several permutations back to back when
    ``num_samples`` exceeds the dataset); with ``replacement=True`` it draws ``num_samples`` indices
    independently. The draws come from ``generator`` if given, else from chainrule's default
    generator, so ``chainrule.manual_seed(s)`` makes the sequence of epochs reproducible.
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got replacement={replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = None if num_samples is None else _check_count("num_samples", num_samples, "RandomSampler")
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _index_array(self):
        rng = (self.generator if self.generator is not None else default_generator).numpy
        n, want = len(self.data_source), self.num_samples
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.replacement:
            return rng.integers(0, n, size=want, dtype=np.int64)
        rounds = [rng.permutation(n) for _ in range(-(-want // n))]
        return np.concatenate(rounds)[:want].astype(np.int64, copy=False)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_ArraySampler):
    """The given ``indices`` in a random order, a new one on every iteration."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = indices
        self.generator = generator

    def _index_array(self):
        rng = (self.generator if self.generator is not None else default_generator).numpy
        return np.asarray(self.indices, dtype=np.int64)[rng.permutation(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_ArraySampler):
    """``num_samples`` indices in ``[0, len(weights))``, index ``i`` drawn with probability proportional
    to ``weights[i]`` (e.g. the inverse frequency of its class, to balance classes), with replacement by
    default; without replacement no index repeats. Draws as ``RandomSampler`` does."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator: Generator | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(
                f"WeightedRandomSampler: replacement should be a boolean value, but got replacement={replacement!r}")
        values = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"WeightedRandomSampler: weights should be a non-empty 1-D sequence, got shape {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite and non-negative, with a positive sum")
        self.num_samples = _check_count("num_samples", num_samples, "WeightedRandomSampler")
        if not replacement and self.num_samples > np.count_nonzero(values):
            raise ValueError(
                f"WeightedRandomSampler: cannot draw {self.num_samples} samples without replacement from "
                f"{np.count_nonzero(values)} indices of nonzero weight")
        self.weights = values
        self.replacement = replacement
        self.generator = generator

    def _index_array(self):
        rng = (self.generator if self.generator is not None else default_generator).numpy
        p = self.weights / self.weights.sum()
        return rng.choice(self.weights.size, size=self.num_samples, replace=self.replacement, p=p).astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; the last, shorter one is kept
    unless ``drop_last``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = _check_count("batch_size", batch_size, "BatchSampler")
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def _index_arrays(self) -> Iterator:
        """The batches as int64 arrays sliced from the sampler's epoch order (built-in samplers only)."""
        order = self.sampler._index_array()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
