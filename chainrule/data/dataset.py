"""Datasets, as in ``torch.utils.data``: anything with ``__getitem__`` and ``__len__``.

- ``Dataset``: the map-style base class; ``a + b`` concatenates (a ``ConcatDataset``).
- ``IterableDataset``: a stream; the loader iterates it instead of indexing it; ``a + b`` chains
  (a ``ChainDataset``).
- ``ChainDataset(datasets)``: several IterableDatasets one after another, read on the fly.
- ``StackDataset(*datasets)`` / ``StackDataset(**datasets)``: same-length datasets side by side; item
  ``i`` is the tuple (or dict) of their items ``i``.
- ``TensorDataset(*tensors)``: item ``i`` is ``tuple(t[i] for t in tensors)``.
- ``Subset(dataset, indices)`` and ``random_split(dataset, lengths)``: views onto part of a dataset.
- ``ConcatDataset(datasets)``: several datasets end to end.
"""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from numbers import Integral
from typing import Any

from chainrule.random import Generator, default_generator
from chainrule.tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "StackDataset",
           "random_split"]


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read as a stream: subclasses define ``__iter__``. DataLoader batches it in order;
    it takes no sampler and cannot be shuffled by the loader."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Tensors that share their first dimension; item ``i`` is ``tuple(t[i] for t in tensors)``.

    ``DataLoader`` batches a TensorDataset by indexing each whole tensor once per batch.
    """

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset: expects at least one tensor, e.g. TensorDataset(inputs, targets)")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, expected a Tensor "
                                "(convert with chainrule.tensor(...) or chainrule.from_numpy(...))")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is a 0-d tensor; every tensor needs a first "
                                 "dimension indexing the samples")
        sizes = [t.shape[0] for t in tensors]
        if any(n != sizes[0] for n in sizes):
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions {sizes} "
                             f"(shapes {shapes}); every tensor must hold the same number of samples")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in self.tensors)
        return f"TensorDataset({shapes})"


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order: ``Subset(ds, idx)[i] == ds[idx[i]]``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        """Several items at once (the loader's batch fetch), delegated when the dataset has its own."""
        mapped = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(mapped)
        return [self.dataset[i] for i in mapped]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"Subset({type(self.dataset).__name__}, {len(self)} items)"


class ConcatDataset(Dataset):
    """Several map-style datasets end to end; index ``i`` runs through them in order."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset: dataset {i} is an IterableDataset; only map-style datasets concatenate")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n}")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n}")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Several ``IterableDataset``s read one after another, on the fly (nothing is loaded ahead).

    Each member is checked when the chain reaches it, as PyTorch does (``AssertionError`` for a
    map-style one); ``len()`` is the sum of the members' lengths."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = datasets

    def __iter__(self) -> Iterator[Any]:
        for i, d in enumerate(self.datasets):
            _check_chained(d, i)
            yield from d

    def __len__(self) -> int:
        total = 0
        for i, d in enumerate(self.datasets):
            _check_chained(d, i)
            total += len(d)
        return total


def _check_chained(dataset, i: int) -> None:
    if not isinstance(dataset, IterableDataset):
        raise AssertionError(f"ChainDataset only supports IterableDataset: dataset {i} is a "
                             f"{type(dataset).__name__}; concatenate map-style datasets with ConcatDataset")


class StackDataset(Dataset):
    """Same-length datasets side by side: ``StackDataset(a, b)[i] == (a[i], b[i])`` and
    ``StackDataset(x=a, y=b)[i] == {"x": a[i], "y": b[i]}`` (positional or keyword, not both)."""

    def __init__(self, *args: Dataset, **kwargs: Dataset):
        if args and kwargs:
            raise ValueError("StackDataset: supported either tuple-like (via args) or dict-like (via kwargs) "
                             "input/output, but both types are given")
        if not args and not kwargs:
            raise ValueError("StackDataset: at least one dataset should be passed")
        self.datasets: tuple | dict = args if args else kwargs
        named = list(enumerate(args)) if args else list(kwargs.items())
        self._length = len(named[0][1])
        if any(len(d) != self._length for _, d in named):
            sizes = ", ".join(f"{k}: {len(d)}" for k, d in named)
            raise ValueError(f"StackDataset: size mismatch between datasets ({sizes}); they must have equal lengths")

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: list) -> list:
        """A batch of items, each member fetching its column with its own ``__getitems__`` if it has one."""
        named = self.datasets.items() if isinstance(self.datasets, dict) else enumerate(self.datasets)
        columns = {}
        for key, d in named:
            if callable(getattr(d, "__getitems__", None)):
                items = d.__getitems__(indices)
                if len(items) != len(indices):
                    raise ValueError(f"StackDataset: nested dataset {key!r}'s output size mismatch: "
                                     f"expected {len(indices)}, got {len(items)}")
                columns[key] = items
            else:
                columns[key] = [d[i] for i in indices]
        if isinstance(self.datasets, dict):
            return [dict(zip(columns, row)) for row in zip(*columns.values())]
        return list(zip(*columns.values()))

    def __len__(self) -> int:
        return self._length


def _lengths_from_fractions(fractions: Sequence[float], total: int) -> list[int]:
    """torch's rule: floor(total * f) each, then the remainder one by one round-robin from the first."""
    lengths = []
    for i, frac in enumerate(fractions):
        if frac < 0 or frac > 1:
            raise ValueError(f"random_split: fraction at index {i} is {frac}, not between 0 and 1")
        lengths.append(math.floor(total * frac))
    for i in range(total - sum(lengths)):
        lengths[i % len(lengths)] += 1
    for i, n in enumerate(lengths):
        if n == 0:
            warnings.warn(f"random_split: length of split at index {i} is 0; this split will be empty", stacklevel=3)
    return lengths


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given ``lengths``.

    ``lengths`` are item counts summing to ``len(dataset)``, or fractions summing to 1 (turned into
    counts as torch does: floor each, then hand out the remainder round-robin). The permutation comes
    from ``generator`` (default: chainrule's seeded default generator, so ``manual_seed`` fixes it).
    """
    total = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty; give item counts or fractions, e.g. [0.8, 0.2]")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:  # torch's test, so [1] also means "everything"
        lengths = _lengths_from_fractions(lengths, total)
    elif any(not isinstance(n, Integral) or isinstance(n, bool) or n < 0 for n in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative ints summing to {total} "
                         "or fractions summing to 1")
    else:
        lengths = [int(n) for n in lengths]
    if sum(lengths) != total:
        raise ValueError(f"random_split: sum of input lengths {lengths} is {sum(lengths)}, which does not equal "
                         f"the length of the input dataset ({total})")
    gen = generator if generator is not None else default_generator
    order = gen.numpy.permutation(total).tolist()
    return [Subset(dataset, order[end - n:end]) for end, n in zip(itertools.accumulate(lengths), lengths)]
