"""DataLoader, samplers, collate, Subset, ConcatDataset and random_split: torch.utils.data semantics."""

import collections

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    default_convert,
    random_split,
)


def arange_dataset(n=10, features=3):
    x = cr.arange(n * features, dtype=cr.float32).reshape(n, features)
    y = cr.arange(n)
    return TensorDataset(x, y)


class ListDataset(Dataset):
    """A plain map-style dataset (not a TensorDataset): exercises the item-by-item route."""

    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def labels_of(loader):
    return [int(v) for batch in loader for v in batch[1].tolist()]


# ----- TensorDataset ---------------------------------------------------------------------------------

def test_tensor_dataset_items_and_len():
    ds = arange_dataset(5, 2)
    assert len(ds) == 5
    x, y = ds[3]
    assert x.tolist() == [6.0, 7.0] and y.item() == 3


def test_tensor_dataset_size_mismatch_names_sizes():
    with pytest.raises(ValueError, match=r"\[4, 5\].*\(4, 2\), \(5,\)"):
        TensorDataset(cr.zeros(4, 2), cr.zeros(5))


def test_tensor_dataset_rejects_non_tensors_and_empty():
    with pytest.raises(TypeError, match="argument 1 is a list"):
        TensorDataset(cr.zeros(2), [1, 2])
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(cr.tensor(1.0))


# ----- DataLoader basics -----------------------------------------------------------------------------

def test_batches_in_order_without_shuffle():
    loader = DataLoader(arange_dataset(10), batch_size=4)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert labels_of(loader) == list(range(10))
    assert batches[1][0].tolist() == [[12.0, 13.0, 14.0], [15.0, 16.0, 17.0], [18.0, 19.0, 20.0], [21.0, 22.0, 23.0]]
    assert batches[0][0].dtype == cr.float32 and batches[0][1].dtype == cr.int64


def test_len_with_and_without_drop_last():
    ds = arange_dataset(10)
    assert len(DataLoader(ds, batch_size=4)) == 3
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=5)) == 2
    assert len(DataLoader(ds, batch_size=20)) == 1
    assert len(DataLoader(ds, batch_size=20, drop_last=True)) == 0


def test_drop_last_drops_short_batch():
    for shuffle in (False, True):
        batches = list(DataLoader(arange_dataset(10), batch_size=4, drop_last=True, shuffle=shuffle))
        assert len(batches) == 2 and all(b[0].shape == (4, 3) for b in batches)


def test_len_matches_iteration_count():
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (1, 5, False), (7, 1, False)]:
        loader = DataLoader(arange_dataset(n), batch_size=bs, drop_last=drop)
        assert len(loader) == len(list(loader))


def test_default_batch_size_is_one():
    batches = list(DataLoader(arange_dataset(3)))
    assert len(batches) == 3 and batches[0][0].shape == (1, 3) and batches[2][1].tolist() == [2]


def test_batch_is_a_copy_of_the_dataset():
    ds = arange_dataset(4)
    xb, _ = next(iter(DataLoader(ds, batch_size=2)))
    xb._data[...] = -1.0  # changing a batch must never change the dataset
    assert ds.tensors[0].tolist()[0] == [0.0, 1.0, 2.0]


# ----- shuffling -------------------------------------------------------------------------------------

def test_shuffle_is_a_permutation_each_epoch_and_epochs_differ():
    cr.manual_seed(0)
    loader = DataLoader(arange_dataset(50), batch_size=8, shuffle=True)
    epochs = [labels_of(loader) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(50))
    assert epochs[0] != list(range(50))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


def test_shuffle_reproducible_with_manual_seed():
    loader = DataLoader(arange_dataset(30), batch_size=7, shuffle=True)
    cr.manual_seed(123)
    first = [labels_of(loader) for _ in range(2)]
    cr.manual_seed(123)
    second = [labels_of(loader) for _ in range(2)]
    assert first == second
    cr.manual_seed(124)
    assert [labels_of(loader) for _ in range(2)] != first


def test_shuffle_with_own_generator_ignores_global_seed():
    orders = []
    for global_seed in (1, 2):
        cr.manual_seed(global_seed)
        loader = DataLoader(arange_dataset(30), batch_size=5, shuffle=True, generator=cr.Generator(7))
        orders.append(labels_of(loader))
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == list(range(30))


def test_fast_path_and_item_route_give_same_batches():
    """A TensorDataset (fast, whole-tensor indexing) and the same data as a plain dataset (item by item,
    default_collate) give identical shuffled batches for the same generator state."""
    ds = arange_dataset(23)
    items = ListDataset([ds[i] for i in range(23)])
    fast = list(DataLoader(ds, batch_size=5, shuffle=True, generator=cr.Generator(3)))
    slow = list(DataLoader(items, batch_size=5, shuffle=True, generator=cr.Generator(3)))
    assert len(fast) == len(slow) == 5
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.tolist() == sx.tolist() and fy.tolist() == sy.tolist()
        assert fx.dtype == sx.dtype and fy.dtype == sy.dtype


def test_fast_path_keeps_grad():
    x = cr.randn(6, 2, requires_grad=True)
    loader = DataLoader(TensorDataset(x, cr.arange(6)), batch_size=3)
    xb, _ = next(iter(loader))
    xb.sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0]] * 3 + [[0.0, 0.0]] * 3


def test_tensor_dataset_subclass_uses_its_getitem():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 2, y

    xb, yb = next(iter(DataLoader(Doubled(cr.ones(4, 2), cr.arange(4)), batch_size=4)))
    assert xb.tolist() == [[2.0, 2.0]] * 4 and yb.tolist() == [0, 1, 2, 3]


# ----- samplers --------------------------------------------------------------------------------------

def test_custom_sampler_order():
    loader = DataLoader(arange_dataset(6), batch_size=2, sampler=[5, 0, 3, 3])
    assert labels_of(loader) == [5, 0, 3, 3] and len(loader) == 2


def test_batch_sampler_argument():
    loader = DataLoader(arange_dataset(6), batch_sampler=[[1, 2, 3], [0], [5, 4]])
    assert [b[1].tolist() for b in loader] == [[1, 2, 3], [0], [5, 4]]
    assert len(loader) == 3 and loader.batch_size is None


def test_sequential_and_batch_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    bs = BatchSampler(range(7), 3, drop_last=True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2


def test_random_sampler_replacement_and_num_samples():
    gen = cr.Generator(0)
    with_rep = list(RandomSampler(range(5), replacement=True, num_samples=40, generator=gen))
    assert len(with_rep) == 40 and set(with_rep) <= set(range(5)) and len(set(with_rep)) < 40
    long = list(RandomSampler(range(5), num_samples=12, generator=gen))
    assert len(long) == 12 and sorted(long[:5]) == list(range(5)) and sorted(long[5:10]) == list(range(5))
    assert all(isinstance(i, int) for i in long)


def test_subset_random_sampler():
    sampler = SubsetRandomSampler([10, 20, 30, 40], generator=cr.Generator(1))
    draws = [list(sampler) for _ in range(5)]
    assert all(sorted(d) == [10, 20, 30, 40] for d in draws) and len(sampler) == 4
    assert len({tuple(d) for d in draws}) > 1


def test_weighted_random_sampler_draws_in_proportion_to_the_weights():
    from chainrule.data import WeightedRandomSampler

    weights = cr.tensor([1.0, 0.0, 3.0, 6.0])
    sampler = WeightedRandomSampler(weights, num_samples=20000, generator=cr.Generator(0))
    counts = np.bincount(np.array(list(sampler)), minlength=4) / 20000
    np.testing.assert_allclose(counts, [0.1, 0.0, 0.3, 0.6], atol=0.015)  # ~4 standard errors
    assert len(sampler) == 20000
    unique = list(WeightedRandomSampler([1, 0, 3, 6], num_samples=3, replacement=False, generator=cr.Generator(1)))
    assert sorted(unique) == [0, 2, 3]
    again = [list(WeightedRandomSampler([1, 2, 3], 5, generator=cr.Generator(7))) for _ in range(2)]
    assert again[0] == again[1]  # the same generator seed gives the same draws
    ds = arange_dataset(4)  # balancing a TensorDataset through the loader's fast path
    batches = list(DataLoader(ds, batch_size=8, sampler=WeightedRandomSampler([0, 0, 0, 1], 16)))
    assert all(b[1].tolist() == [3] * 8 for b in batches)


def test_weighted_random_sampler_errors():
    from chainrule.data import WeightedRandomSampler

    with pytest.raises(ValueError, match="finite and non-negative"):
        WeightedRandomSampler([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        WeightedRandomSampler([[1.0]], 2)
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2 indices"):
        WeightedRandomSampler([1.0, 0.0, 1.0], 3, replacement=False)
    with pytest.raises(ValueError, match="positive integer"):
        WeightedRandomSampler([1.0], 0)


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="positive integer"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="positive integer"):
        BatchSampler(range(3), 0, False)


# ----- batch_size=None, iterable datasets, __getitems__ -----------------------------------------------

def test_batch_size_none_yields_single_converted_samples():
    ds = ListDataset([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    out = list(DataLoader(ds, batch_size=None))
    assert len(out) == 2 and isinstance(out[0], cr.Tensor) and out[1].tolist() == [3.0, 4.0]
    assert out[0].dtype == cr.float64
    assert len(DataLoader(ds, batch_size=None)) == 2


def test_iterable_dataset_batches_in_stream_order():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    loader = DataLoader(Stream(), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]] and len(loader) == 3
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(), shuffle=True)

    class Endless(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    assert [b.tolist() for b in DataLoader(Endless(), batch_size=2)] == [[0, 1], [2]]
    with pytest.raises(TypeError, match="__len__"):
        len(DataLoader(Endless(), batch_size=2))


def test_dataset_getitems_is_used_for_batches():
    class Batched(ListDataset):
        calls = 0

        def __getitems__(self, indices):
            Batched.calls += 1
            return [self.items[i] for i in indices]

    loader = DataLoader(Batched([1, 2, 3, 4, 5]), batch_size=2)
    assert [b.tolist() for b in loader] == [[1, 2], [3, 4], [5]] and Batched.calls == 3


# ----- collate ---------------------------------------------------------------------------------------

def test_collate_tuples_dicts_numbers_strings():
    samples = [({"a": cr.tensor([1.0, 2.0]), "name": "x"}, 3, 0.5, True),
               ({"a": cr.tensor([3.0, 4.0]), "name": "y"}, 4, 1.5, False)]
    out = default_collate(samples)
    assert isinstance(out, list) and len(out) == 4  # tuples collate to a list, as in torch
    assert out[0]["a"].tolist() == [[1.0, 2.0], [3.0, 4.0]] and out[0]["name"] == ["x", "y"]
    assert out[1].tolist() == [3, 4] and out[1].dtype == cr.int64
    assert out[2].tolist() == [0.5, 1.5] and out[2].dtype == cr.float64
    assert out[3].tolist() == [True, False] and out[3].dtype == cr.bool


def test_collate_numpy_and_namedtuple():
    Point = collections.namedtuple("Point", "x y")
    out = default_collate([Point(np.float32(1), np.zeros(2, np.float32)), Point(np.float32(2), np.ones(2, np.float32))])
    assert isinstance(out, Point)
    assert out.x.tolist() == [1.0, 2.0] and out.x.dtype == cr.float32
    assert out.y.shape == (2, 2) and out.y.dtype == cr.float32


def test_loader_over_dict_dataset():
    ds = ListDataset([{"x": cr.full((2,), float(i)), "y": i} for i in range(5)])
    batches = list(DataLoader(ds, batch_size=2))
    assert [b["y"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[1]["x"].tolist() == [[2.0, 2.0], [3.0, 3.0]]


def test_custom_collate_fn_gets_the_sample_list():
    loader = DataLoader(arange_dataset(5), batch_size=2, collate_fn=lambda batch: len(batch))
    assert list(loader) == [2, 2, 1]


def test_collate_errors_are_clear():
    with pytest.raises(RuntimeError, match=r"entry 0 has shape \(2,\) but entry 1 has shape \(3,\)"):
        default_collate([cr.zeros(2), cr.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="non-empty"):
        default_collate([])


def test_default_convert_leaves_tensors_and_python_values():
    t = cr.ones(2)
    out = default_convert((t, 3, "s", np.arange(2)))
    assert out[0] is t and out[1] == 3 and out[2] == "s" and out[3].tolist() == [0, 1]


# ----- loader argument errors ------------------------------------------------------------------------

def test_worker_options_are_checked():
    with pytest.raises(ValueError, match="non-negative"):
        DataLoader(arange_dataset(), num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor option could only be specified with num_workers > 0"):
        DataLoader(arange_dataset(), prefetch_factor=2)
    with pytest.raises(ValueError, match="timeout option should be non-negative"):
        DataLoader(arange_dataset(), num_workers=1, timeout=-1)
    assert DataLoader(arange_dataset(), num_workers=0).num_workers == 0
    assert DataLoader(arange_dataset(), num_workers=3).prefetch_factor == 2


class SlowDataset(ListDataset):
    """Items that take a while (as files being read would) and record which worker made them."""

    def __init__(self, n):
        super().__init__([(cr.tensor([float(i)]), i) for i in range(n)])
        self.seen = collections.Counter()

    def __getitem__(self, i):
        import time

        from chainrule.data import get_worker_info

        time.sleep(0.002)
        info = get_worker_info()
        self.seen[None if info is None else info.id] += 1
        return super().__getitem__(i)


@pytest.mark.parametrize("batch_size", [4, None])
def test_workers_give_the_batches_of_the_main_thread_in_order(batch_size):
    data = SlowDataset(23)
    cr.manual_seed(3)
    expected = [labels for _, labels in DataLoader(data, batch_size=batch_size, shuffle=True)] if batch_size else \
        [label for _, label in DataLoader(data, batch_size=None)]
    started = []
    cr.manual_seed(3)
    loader = DataLoader(data, batch_size=batch_size, shuffle=bool(batch_size), num_workers=3,
                        worker_init_fn=started.append)
    got = [labels for _, labels in loader] if batch_size else [label for _, label in loader]
    to_list = (lambda b: b.tolist()) if batch_size else (lambda b: b)
    assert [to_list(b) for b in got] == [to_list(b) for b in expected]
    assert sorted(started) == [0, 1, 2]
    assert data.seen[None] == 23 and sum(data.seen[w] for w in (0, 1, 2)) == 23  # every item fetched by a worker


def test_a_worker_error_reaches_the_loop_and_stopping_early_releases_the_workers():
    class Broken(ListDataset):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("item 5 is missing")
            return super().__getitem__(i)

    loader = DataLoader(Broken(list(range(10))), batch_size=2, num_workers=2)
    with pytest.raises(KeyError, match="item 5 is missing"):
        list(loader)
    first = next(iter(DataLoader(SlowDataset(50), batch_size=5, num_workers=2)))  # abandoned after one batch
    assert first[1].tolist() == [0, 1, 2, 3, 4]


def test_worker_timeout_is_reported():
    class Stuck(ListDataset):
        def __getitem__(self, i):
            import time

            time.sleep(0.5)
            return super().__getitem__(i)

    with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
        next(iter(DataLoader(Stuck([1, 2]), batch_size=1, num_workers=1, timeout=0.05)))


@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": [0, 1], "shuffle": True}, "mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 4}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "mutually exclusive with drop_last"),
    ({"batch_size": 0}, "positive integer"),
    ({"batch_size": 2.5}, "positive integer"),
])
def test_incompatible_loader_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataLoader(arange_dataset(), **kwargs)


def test_out_of_range_sampler_index():
    with pytest.raises(IndexError, match="out of range"):
        list(DataLoader(arange_dataset(3), batch_size=2, sampler=[0, 7]))


# ----- Subset, ConcatDataset, random_split ------------------------------------------------------------

def test_subset_indexing_and_loader_fast_path():
    ds = arange_dataset(10)
    sub = Subset(ds, [9, 2, 4])
    assert len(sub) == 3 and sub[0][1].item() == 9 and sub[-1][1].item() == 4
    assert labels_of(DataLoader(sub, batch_size=2)) == [9, 2, 4]
    nested = Subset(sub, [2, 0])
    assert labels_of(DataLoader(nested, batch_size=5)) == [4, 9]


def test_subset_out_of_range_index():
    with pytest.raises(IndexError, match="out of range for the 3 items"):
        list(DataLoader(Subset(arange_dataset(3), [0, 3]), batch_size=2))
    with pytest.raises(IndexError, match="out of range for the 2 items"):
        list(DataLoader(Subset(Subset(arange_dataset(5), [4, 1]), [2]), batch_size=2))
    assert labels_of(DataLoader(Subset(arange_dataset(5), [-1, 0]), batch_size=2)) == [4, 0]


def test_subset_list_index():
    sub = Subset(ListDataset(list("abcdef")), [5, 1, 0])
    assert sub.__getitems__([0, 2]) == ["f", "a"]
    assert list(DataLoader(sub, batch_size=3)) == [["f", "b", "a"]]


def test_concat_dataset_and_plus():
    a, b = ListDataset([0, 1, 2]), ListDataset([10, 11])
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 5
    assert [both[i] for i in range(5)] == [0, 1, 2, 10, 11] and both[-1] == 11 and both[-5] == 0
    with pytest.raises(IndexError, match="out of range"):
        both[5]
    with pytest.raises(IndexError, match="out of range"):
        both[-6]


def test_random_split_int_lengths_partition():
    parts = random_split(ListDataset(list(range(20))), [5, 15], generator=cr.Generator(0))
    assert [len(p) for p in parts] == [5, 15]
    items = [p[i] for p in parts for i in range(len(p))]
    assert sorted(items) == list(range(20)) and items != list(range(20))


def test_random_split_fractions_like_torch():
    ds = ListDataset(list(range(11)))
    assert [len(p) for p in random_split(ds, [0.8, 0.2])] == [9, 2]  # floor 8 and 2, remainder 1 to the first
    assert [len(p) for p in random_split(ds, [0.3, 0.3, 0.4])] == [4, 3, 4]  # floors 3, 3, 4
    assert [len(p) for p in random_split(ds, [1])] == [11]  # as torch: [1] sums to 1, a fraction


def test_random_split_reproducible_with_seed_and_generator():
    ds = ListDataset(list(range(30)))
    cr.manual_seed(5)
    a = [list(p) for p in random_split(ds, [10, 20])]
    cr.manual_seed(5)
    b = [list(p) for p in random_split(ds, [10, 20])]
    c = [list(p) for p in random_split(ds, [10, 20], generator=cr.Generator(5))]
    d = [list(p) for p in random_split(ds, [10, 20], generator=cr.Generator(5))]
    assert a == b and c == d


def test_random_split_errors():
    ds = ListDataset(list(range(10)))
    with pytest.raises(ValueError, match="does not equal the length"):
        random_split(ds, [3, 4])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(ds, [1.5, -0.5])
    with pytest.raises(ValueError, match="non-negative ints"):
        random_split(ds, [12, -2])
    with pytest.warns(UserWarning, match="will be empty"):
        random_split(ds, [1.0, 0.0])


def test_random_split_subsets_feed_the_loader():
    cr.manual_seed(0)
    train, val = random_split(arange_dataset(20), [0.75, 0.25])
    seen = labels_of(DataLoader(train, batch_size=4, shuffle=True)) + labels_of(DataLoader(val, batch_size=4))
    assert sorted(seen) == list(range(20)) and len(train) == 15


def test_no_grad_in_a_worker_does_not_switch_off_recording_for_the_training_thread():
    class NoGradInside(ListDataset):
        seen = []

        def __getitem__(self, i):
            with cr.no_grad():  # process-wide in chainrule: ignored in worker threads
                NoGradInside.seen.append(cr.is_grad_enabled())
                return super().__getitem__(i)

    data = NoGradInside([(cr.tensor([float(i)]), i) for i in range(12)])
    w = cr.ones(1, requires_grad=True)
    for x, _ in DataLoader(data, batch_size=3, num_workers=2):
        w.grad = None
        (x * w).sum().backward()
        assert w.grad is not None
    assert NoGradInside.seen and all(NoGradInside.seen)
    assert cr.is_grad_enabled()
    with cr.no_grad():  # the main thread's no_grad still works
        assert not cr.is_grad_enabled()
