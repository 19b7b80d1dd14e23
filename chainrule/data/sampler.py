"""Samplers, as in ``torch.utils.data``: iterables of dataset indices that decide the order of an epoch.

- ``SequentialSampler(data)``: 0, 1, ..., len(data) - 1.
- ``RandomSampler(data, replacement=False, num_samples=None, generator=None)``: a fresh random order on
  every iteration, drawn from ``generator`` or chainrule's seeded default generator.
- ``SubsetRandomSampler(indices, generator=None)``: the given indices in a fresh random order.
- ``WeightedRandomSampler(weights, num_samples, replacement=True, generator=None)``: indices drawn with
  probabilities proportional to ``weights``.
- ``BatchSampler(sampler, batch_size, drop_last)``: lists of ``batch_size`` indices.

Any iterable of ints works as a sampler; ``__len__`` is optional, as in PyTorch (without it
``len(DataLoader)`` raises ``TypeError``). The built-in ones also offer ``_index_chunks()``, the epoch's
order as int64 arrays, which lets the loader cut batches without a Python loop over the items.

Memory does not grow with ``num_samples``: an epoch longer than ``_CHUNK`` indices (the infinite-stream
idiom ``RandomSampler(ds, replacement=True, num_samples=10**10)``) is drawn ``_CHUNK`` at a time, and
permutations back to back one at a time. The indices are still exactly the ones the generator would
give drawing the whole epoch at once when the iteration starts (numpy's PCG64 draws element by element,
keeping its spare 32 bits in the bit generator's state, so chunked calls continue one stream). To keep
that true whatever else draws from the generator while the epoch runs (dropout, init, augmentation in
worker threads), such an epoch draws from a private copy of the generator taken at ``iter()``, and the
generator itself moves on by ``PCG64.jumped()`` (2**127-odd steps, so later draws never meet the copy's).
An epoch of at most ``_CHUNK`` indices is drawn at once from the generator itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from numbers import Integral

from chainrule.backend import np
from chainrule.random import Generator, default_generator

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler"]

_CHUNK = 8192  # indices drawn per step of a long epoch: 64 KiB of int64, a few hundred KiB as Python ints


class Sampler:
    """Base class: subclasses define ``__iter__`` (yielding indices) and usually ``__len__``.

    No default ``__len__`` (as PyTorch's): ``len()`` of a sampler without one raises ``TypeError``, and
    ``list()`` and the DataLoader still iterate it."""

    def __init__(self, data_source: Sized | None = None):
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")


class _ArraySampler(Sampler):
    """A sampler whose epoch order comes from ``_index_chunks()`` as int64 arrays.

    ``_index_chunks()`` makes its random draw (or takes its private generator) when called, so
    ``iter(sampler)`` fixes the epoch, and returns an iterator over the arrays."""

    def _index_chunks(self) -> Iterator:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(chunk.tolist() for chunk in self._index_chunks())


def _epoch_rng(generator: Generator | None, long: bool):
    """The numpy Generator an epoch draws from: ``generator``'s (default: chainrule's default generator)
    for an epoch drawn at once; for a ``long`` epoch drawn in chunks, a private copy of it, while the
    generator itself jumps ahead (see the module docstring)."""
    rng = (generator if generator is not None else default_generator).numpy
    if not long:
        return rng
    shared = rng.bit_generator
    copy = type(shared)()
    with shared.lock:  # no draw from another thread between the copy and the jump
        copy.state = shared.state
        shared.state = shared.jumped().state
    return np.random.Generator(copy)


def _chunked(draw, total: int) -> Iterator:
    """``draw(k)`` for consecutive ``k`` of at most ``_CHUNK`` adding up to ``total``."""
    return (draw(min(_CHUNK, total - start)) for start in range(0, total, _CHUNK))


class SequentialSampler(_ArraySampler):
    """Indices ``0 .. len(data_source) - 1`` in order."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def _index_chunks(self) -> Iterator:
        n = len(self.data_source)
        return (np.arange(start, min(start + _CHUNK, n), dtype=np.int64) for start in range(0, n, _CHUNK))

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

    def _index_chunks(self) -> Iterator:
        n, want = len(self.data_source), self.num_samples
        if n == 0:
            return iter(())
        if self.replacement:
            rng = _epoch_rng(self.generator, long=want > _CHUNK)
            chunks = _chunked(lambda k: rng.integers(0, n, size=k, dtype=np.int64), want)
            return chunks if want > _CHUNK else iter(list(chunks))
        rounds = -(-want // n)
        long = rounds > 1 and want > _CHUNK
        rng = _epoch_rng(self.generator, long)
        chunks = (rng.permutation(n)[:want - r * n].astype(np.int64, copy=False) for r in range(rounds))
        return chunks if long else iter(list(chunks))

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_ArraySampler):
    """The given ``indices`` in a random order, a new one on every iteration."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = indices
        self.generator = generator

    def _index_chunks(self) -> Iterator:
        rng = _epoch_rng(self.generator, long=False)
        return iter([np.asarray(self.indices, dtype=np.int64)[rng.permutation(len(self.indices))]])

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
        host = weights.cpu().numpy() if hasattr(weights, "cpu") else weights  # sampling happens on the host
        values = np.asarray(host, dtype=np.float64)
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

    def _index_chunks(self) -> Iterator:
        long = self.replacement and self.num_samples > _CHUNK
        rng = _epoch_rng(self.generator, long)
        p = self.weights / self.weights.sum()
        if not self.replacement:
            return iter([rng.choice(self.weights.size, size=self.num_samples, replace=False, p=p).astype(np.int64)])
        # Generator.choice(n, k, p=p) with replacement, its steps written out so the cdf is made once:
        # one uniform per index, looked up in the normalised cdf
        cdf = p.cumsum()
        cdf /= cdf[-1]
        chunks = _chunked(lambda k: cdf.searchsorted(rng.random(k), side="right").astype(np.int64), self.num_samples)
        return chunks if long else iter(list(chunks))

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
        """The batches as int64 arrays cut from the sampler's chunks (built-in samplers only); a batch
        that spans chunks is joined from their pieces."""
        size = self.batch_size
        pending, count = [], 0  # pieces of the batch being filled, and their total length
        for chunk in self.sampler._index_chunks():
            start = 0
            if count:
                take = min(size - count, len(chunk))
                pending.append(chunk[:take])
                count, start = count + take, take
                if count < size:
                    continue
                yield np.concatenate(pending)
                pending, count = [], 0
            stop = start + (len(chunk) - start) // size * size
            for begin in range(start, stop, size):
                yield chunk[begin:begin + size]
            if stop < len(chunk):
                pending, count = [chunk[stop:]], len(chunk) - stop
        if count and not self.drop_last:
            yield np.concatenate(pending)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
