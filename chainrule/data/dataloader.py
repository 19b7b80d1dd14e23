"""DataLoader and the default collate function, with ``torch.utils.data`` semantics.

    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    for xb, yb in loader:     # each epoch a new order, drawn from chainrule's seeded generator
        ...

``DataLoader`` walks a sampler (sequential, or random with ``shuffle=True``), groups the indices into
batches and turns each batch into tensors with ``collate_fn`` (by default ``default_collate``, which
stacks tensors, arrays and numbers and recurses into tuples, lists and dicts).

Workers: with ``num_workers > 0`` the batches of a map-style dataset are fetched and collated ahead, in
order, by that many threads of this process (not processes as in PyTorch: no pickling, and numpy releases
the GIL while it copies, decodes files or computes). ``get_worker_info()`` tells a dataset's code which
worker it runs in; ``worker_init_fn(worker_id)`` runs once in each. Grad mode is process-wide in
chainrule, so ``no_grad()`` and friends do nothing inside a worker (they would switch recording off in
the training thread). An ``IterableDataset`` is read in the
main thread whatever ``num_workers`` says (one shared iterator, so no sample is repeated).

Fast path: a ``TensorDataset`` (or a ``Subset`` of one, e.g. from ``random_split``) batched with the
default collate and a built-in sampler is served by indexing each whole tensor once per batch, with
no Python loop over the items. The batches are the same as the item-by-item route would give.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import copy
import itertools
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from chainrule.autograd.grad_mode import ignore_mode_changes_in_this_thread
from chainrule.backend import gpu, np, xp_of
from chainrule.random import Generator
from chainrule.tensor import Tensor, wrap

from .dataset import Dataset, IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _ArraySampler

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info", "WorkerInfo"]


# ----- pinning ---------------------------------------------------------------------------------------

def pin_memory(data: Any) -> Any:
    """``data`` with every CPU tensor in it pinned (``Tensor.pin_memory``), through dicts, lists, tuples and
    named tuples; tensors on a device and other values are left as they are."""
    if isinstance(data, Tensor):
        return data.pin_memory() if data.device.type == "cpu" else data
    if isinstance(data, cabc.Mapping):
        pinned = {key: pin_memory(value) for key, value in data.items()}
        try:
            return type(data)(pinned)
        except TypeError:  # a mapping type not built from a dict (defaultdict): a plain dict, as PyTorch's
            return pinned
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(pin_memory(value) for value in data))
    if isinstance(data, (list, tuple)):
        return type(data)(pin_memory(value) for value in data)
    return data


# ----- collate -------------------------------------------------------------------------------------

def _stack_tensors(batch: list[Tensor]) -> Tensor:
    """Stack same-shaped tensors on a new first dim (through autograd if any requires grad)."""
    ref = batch[0]
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: entry 0 of the batch is a Tensor but entry {i} is a {type(t).__name__}")
        if t.shape != ref.shape:
            raise RuntimeError(
                f"default_collate: can't stack the batch's tensors: entry 0 has shape {tuple(ref.shape)} but entry "
                f"{i} has shape {tuple(t.shape)}; make the samples the same shape (pad or crop) or pass a collate_fn"
            )
    same_dtype = all(t._data.dtype == ref._data.dtype for t in batch)
    if same_dtype and not any(t._rg for t in batch):
        return wrap(xp_of(ref._data).stack([t._data for t in batch]))
    from chainrule.ops.shape import stack

    return stack(batch, 0)


def _collate_numbers(batch: list) -> Tensor:
    from chainrule.creation import tensor

    if isinstance(batch[0], float):
        from chainrule.dtypes import float64

        return tensor(batch, dtype=float64)  # as torch: Python floats collate to float64
    return tensor(batch)  # ints -> int64, bools -> bool


def _is_text_array(array) -> bool:
    return array.dtype.kind in "OSUV"


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors are stacked (new first dim); numpy arrays and numpy scalars become tensors and are
    stacked; Python floats become a float64 tensor, ints int64, bools bool; strings stay as they come
    (the list, or a tuple when they are fields of tuple samples, as torch gives).
    Dicts collate key by key, namedtuples field by field, and tuples and lists position by position
    (returning a list, as torch does, so ``for x, y in loader`` works).
    """
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise TypeError(f"default_collate: expected a non-empty list of samples, got {type(batch).__name__}"
                        + (" of length 0" if isinstance(batch, (list, tuple)) else ""))
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(list(batch))
    if isinstance(elem, np.ndarray):
        if _is_text_array(elem):
            raise TypeError(f"default_collate: numpy arrays of dtype {elem.dtype} can't become tensors; "
                            "pass a collate_fn that handles them")
        from chainrule.creation import as_tensor

        return _stack_tensors([as_tensor(np.asarray(a)) for a in batch])
    if isinstance(elem, np.generic) and not _is_text_array(np.asarray(elem)):
        from chainrule.creation import as_tensor

        return as_tensor(np.asarray(batch))
    if isinstance(elem, (float, int)):  # bool is an int
        return _collate_numbers(list(batch))
    if isinstance(elem, (str, bytes)):
        return batch  # as torch: the list (or, from inside a tuple sample, the tuple) it was given
    if isinstance(elem, cabc.Mapping):
        return _collate_mapping(batch)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, cabc.Sequence):
        return _collate_sequence(batch)
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, strings, dicts or lists; "
                    f"found {type(elem).__name__}. Pass a collate_fn that handles it.")


def _collate_mapping(batch: list) -> dict:
    elem = batch[0]
    for i, d in enumerate(batch):
        missing = [k for k in elem if k not in d]
        if missing:
            raise KeyError(f"default_collate: sample {i} lacks key(s) {missing} that sample 0 has")
    merged = {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, cabc.MutableMapping):
        try:
            clone = copy.copy(elem)  # keep the mapping type (OrderedDict, defaultdict, ...)
            clone.update(merged)
            return clone
        except TypeError:
            return merged
    return merged


def _collate_sequence(batch: list) -> list:
    size = len(batch[0])
    for i, sample in enumerate(batch):
        if len(sample) != size:
            raise RuntimeError(f"default_collate: each element in list of batch should be of equal size; sample 0 "
                               f"has {size} fields but sample {i} has {len(sample)}")
    return [default_collate(field) for field in zip(*batch)]


def default_convert(data: Any) -> Any:
    """What the loader applies to each sample when batching is off (``batch_size=None``): numpy arrays
    and scalars become tensors, containers are converted inside, everything else is left alone."""
    from chainrule.creation import as_tensor

    if isinstance(data, np.ndarray) and not _is_text_array(data):
        return as_tensor(data)
    if isinstance(data, np.generic) and not _is_text_array(np.asarray(data)):
        return as_tensor(data)
    if isinstance(data, cabc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data


# ----- the fast path for tensor datasets ----------------------------------------------------------

class _TensorSource:
    """The tensors behind a TensorDataset, possibly seen through Subsets (``index_map`` composes their
    indices), from which a whole batch is taken with one fancy-index per tensor."""

    def __init__(self, tensors: tuple[Tensor, ...], index_map):
        self.tensors = tensors
        self.index_map = index_map

    def take(self, idx) -> list[Tensor]:
        if self.index_map is not None:
            idx = self.index_map[idx]
        out = []
        for t in self.tensors:
            if t._rg:  # go through autograd, as t[i] per item would
                out.append(t[wrap(t.xp.asarray(idx))])
            else:
                out.append(wrap(_take_rows(t, idx)))
        return out


def _take_rows(t: Tensor, idx):
    try:
        return t.xp.take(t._data, t.xp.asarray(idx), axis=0)
    except IndexError as err:
        raise IndexError(f"DataLoader: a batch index is out of range for the TensorDataset of length {t.shape[0]} "
                         f"({err}); check the sampler's indices") from None


def _tensor_source(dataset) -> _TensorSource | None:
    """A _TensorSource if ``dataset`` is exactly a TensorDataset or Subsets of one, else None.
    Subclasses are excluded: they may override ``__getitem__``."""
    maps = []
    while type(dataset) is Subset:
        maps.append(dataset.indices)
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    index_map, length = None, len(dataset)
    for indices in reversed(maps):  # innermost Subset first
        arr = np.asarray(indices, dtype=np.int64).reshape(-1)
        if arr.size and (arr.max() >= length or arr.min() < -length):
            raise IndexError(f"DataLoader: a Subset index ({arr.min()} .. {arr.max()}) is out of range for the "
                             f"{length} items beneath it")
        index_map = arr if index_map is None else index_map[arr]
        length = len(arr)
    return _TensorSource(dataset.tensors, index_map)


# ----- the loader ----------------------------------------------------------------------------------

class DataLoader:
    """Iterate over ``dataset`` in batches, with ``torch.utils.data.DataLoader``'s arguments and rules.

    Args:
        dataset: a map-style ``Dataset`` (anything with ``__getitem__`` and ``__len__``) or an
            ``IterableDataset``.
        batch_size: samples per batch; ``None`` turns batching off (each sample is yielded alone,
            through ``default_convert``).
        shuffle: reshuffle at every epoch (every ``iter(loader)``), drawing from ``generator`` or
            chainrule's default generator, so ``chainrule.manual_seed(s)`` makes epochs reproducible.
        sampler: an iterable of indices deciding the order (excludes ``shuffle``).
        batch_sampler: an iterable of lists of indices (excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``).
        num_workers: threads that fetch and collate batches ahead (0: in the calling thread).
        collate_fn: merges a list of samples into a batch (default ``default_collate``).
        pin_memory: put the batches' CPU tensors in page-locked (pinned) host memory, from which
            ``to("cuda", non_blocking=True)`` copies asynchronously; without a GPU it warns, as PyTorch does,
            and does nothing.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        timeout: seconds to wait for a worker's batch before raising (0: no limit).
        worker_init_fn: called with the worker id (0 .. num_workers - 1) in each worker thread first.
        generator: a ``chainrule.random.Generator`` for the shuffling.
        prefetch_factor: batches fetched ahead per worker (default 2 with workers).
        persistent_workers, multiprocessing_context, pin_memory_device: accepted for compatibility
            (worker threads are cheap to start each epoch and share this process's memory).
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], None] | None = None, multiprocessing_context=None,
                 generator: Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = ""):
        _check_workers(num_workers, timeout, prefetch_factor)
        self.dataset = dataset
        self.num_workers = num_workers
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None else (2 if num_workers else None)
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.generator = generator
        self._iterable = isinstance(dataset, IterableDataset)
        _check_exclusive(self._iterable, batch_size, shuffle, sampler, batch_sampler, drop_last)
        if batch_sampler is not None:  # as torch: a batch_sampler replaces batch_size and drop_last
            batch_size, drop_last = None, False
        elif batch_size is not None:
            batch_size = _positive_int(batch_size, "batch_size")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_sampler is None and batch_size is not None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self._auto_collation = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)

    # ----- iteration -----
    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        if not self.pin_memory:
            return batches
        if not gpu.pinning_available():
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned "
                          "memory won't be used.", UserWarning, stacklevel=2)
            return batches
        return map(pin_memory, batches)

    def _batches(self) -> Iterator[Any]:
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is None:
            return self._load(lambda i: self.collate_fn(self.dataset[i]), self.sampler)
        source = _tensor_source(self.dataset) if self.collate_fn is default_collate else None
        if source is not None:  # one fancy-index per tensor: nothing for workers to do
            return (source.take(idx) for idx in self._index_batches())
        return self._load(lambda batch: self.collate_fn(self._fetch(batch)), self.batch_sampler)

    def _load(self, make: Callable[[Any], Any], keys) -> Iterator[Any]:
        """``make(key)`` for each key in order: in this thread, or ahead on the worker threads."""
        if self.num_workers == 0:
            return (make(key) for key in keys)
        return self._load_on_workers(make, keys)

    def _load_on_workers(self, make: Callable[[Any], Any], keys) -> Iterator[Any]:
        ids = itertools.count()

        def start_worker() -> None:
            info = WorkerInfo(id=next(ids), num_workers=self.num_workers, dataset=self.dataset)
            _WORKER.info = info
            ignore_mode_changes_in_this_thread()  # a no_grad() in dataset code must not reach the training step
            if self.worker_init_fn is not None:
                self.worker_init_fn(info.id)

        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="chainrule-data", initializer=start_worker)
        ahead: collections.deque = collections.deque()
        keys = iter(keys)
        try:
            for key in itertools.islice(keys, self.num_workers * self.prefetch_factor):
                ahead.append(pool.submit(make, key))
            while ahead:
                batch = self._result(ahead.popleft())
                for key in itertools.islice(keys, 1):
                    ahead.append(pool.submit(make, key))
                yield batch
        finally:  # also when the loop that iterates stops early
            for future in ahead:
                future.cancel()
            pool.shutdown(wait=True)

    def _result(self, future):
        try:
            return future.result(timeout=self.timeout or None)
        except FutureTimeout:
            raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds waiting for a worker's batch") from None

    def _index_batches(self) -> Iterator:
        """Batches of indices as int64 arrays, sliced without a Python loop for the built-in samplers."""
        bs = self.batch_sampler
        if type(bs) is BatchSampler and isinstance(bs.sampler, _ArraySampler):
            return bs._index_arrays()
        return (np.asarray(batch, dtype=np.int64).reshape(-1) for batch in bs)

    def _fetch(self, batch) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(list(batch))
        return [self.dataset[i] for i in batch]

    def _iter_stream(self) -> Iterator[Any]:
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch: list = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self) -> int:
        if self._iterable:
            if not hasattr(self.dataset, "__len__"):
                raise TypeError("DataLoader: len() of a loader over an IterableDataset needs the dataset to define __len__")
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"sampler={type(self.sampler).__name__}, drop_last={self.drop_last})")


def _check_workers(num_workers, timeout, prefetch_factor) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers option should be a non-negative int, got {num_workers!r}")
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
    if prefetch_factor is not None and num_workers == 0:
        raise ValueError("DataLoader: prefetch_factor option could only be specified with num_workers > 0 "
                         "(it counts batches fetched ahead per worker)")
    if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int)
                                        or prefetch_factor < 1):
        raise ValueError(f"DataLoader: prefetch_factor should be a positive int, got {prefetch_factor!r}")


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a DataLoader worker thread."""

    id: int
    num_workers: int
    dataset: Any


_WORKER = threading.local()


def get_worker_info() -> WorkerInfo | None:
    """The calling worker thread's id, the worker count and the dataset; None outside the workers."""
    return getattr(_WORKER, "info", None)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"DataLoader: {name} should be a positive integer value, but got {name}={value!r}")
    return value


def _check_exclusive(iterable: bool, batch_size, shuffle, sampler, batch_sampler, drop_last) -> None:
    """torch's rules about which loader options combine."""
    if iterable:
        if shuffle:
            raise ValueError("DataLoader: an IterableDataset can't be shuffled by the loader (shuffle=True); "
                             "shuffle inside the dataset's __iter__")
        if sampler is not None or batch_sampler is not None:
            raise ValueError("DataLoader: an IterableDataset takes no sampler or batch_sampler; it decides its own order")
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle; "
                         "shuffle inside the sampler or drop shuffle=True")
    if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
        raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                         "and drop_last; leave those at their defaults when you pass a batch_sampler")
    if batch_size is None and drop_last:
        raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                         "with drop_last")
