"""ChainDataset, StackDataset, default_collate / default_convert on nested structures and samplers without
``__len__``, against torch.utils.data; and samplers whose memory does not grow with ``num_samples``
(``RandomSampler(ds, replacement=True, num_samples=10**10)``), whose indices are exactly the ones the
generator gives drawing the whole epoch at once."""

import collections
import itertools
import time
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from chainrule import data as cdata
from chainrule.data import sampler as csampler

torch = pytest.importorskip("torch")
from test_data_oracle import Items, as_plain  # noqa: E402  (tests/data is on sys.path, as for every test module)
from torch.utils import data as tdata  # noqa: E402


def streams(lib):
    class Stream(lib.IterableDataset):
        def __init__(self, values, sized=True):
            self.values, self.sized = values, sized

        def __iter__(self):
            return iter(self.values)

        def __len__(self):
            if not self.sized:
                raise TypeError("no length")
            return len(self.values)

    return Stream


# ----- ChainDataset ---------------------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("batch_size", [None, 2, 3])
def test_chain_dataset_matches_torch(batch_size):
    results = []
    for lib, data in ((cdata, cdata), (tdata, tdata)):
        Stream = streams(lib)
        chain = data.ChainDataset([Stream([1, 2, 3]), Stream([]), Stream([4, 5])])
        added = Stream([1, 2]) + Stream([7])
        assert isinstance(added, data.ChainDataset)
        loader = data.DataLoader(chain, batch_size=batch_size)
        results.append((list(chain), len(chain), list(added), len(loader), [as_plain(b) for b in loader]))
    assert results[0] == results[1]
    assert results[0][0] == [1, 2, 3, 4, 5] and results[0][1] == 5


@pytest.mark.oracle
def test_chain_dataset_rejects_map_style_members_as_torch():
    for lib, data in ((cdata, cdata), (tdata, tdata)):
        chain = data.ChainDataset([streams(lib)([1]), Items([2])])
        with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
            list(chain)
        with pytest.raises(AssertionError):
            len(chain)


# ----- StackDataset ---------------------------------------------------------------------------------

def stack_parts(lib):
    t = torch.tensor if lib is tdata else cr.tensor
    images = lib.TensorDataset(t(np.arange(12, dtype=np.float32).reshape(4, 3)))
    labels = Items([0, 1, 0, 2])
    names = Items(["a", "b", "c", "d"])
    return images, labels, names


@pytest.mark.oracle
@pytest.mark.parametrize("keyword", [False, True])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_stack_dataset_matches_torch(keyword, batch_size):
    results = []
    for lib in (cdata, tdata):
        images, labels, names = stack_parts(lib)
        stack = (lib.StackDataset(image=images, label=labels, name=names) if keyword
                 else lib.StackDataset(images, labels, names))
        loader = lib.DataLoader(stack, batch_size=batch_size)
        results.append((len(stack), [as_plain(stack[i]) for i in range(len(stack))],
                        as_plain(stack.__getitems__([3, 0])), [as_plain(b) for b in loader]))
    assert results[0] == results[1]


@pytest.mark.oracle
@pytest.mark.parametrize("lib", [cdata, tdata], ids=["chainrule", "torch"])
def test_stack_dataset_rejects_what_torch_rejects(lib):
    a, b = Items([1, 2]), Items([1, 2, 3])
    for args, kwargs in (((a, b), {}), ((), {"x": a, "y": b}), ((a,), {"y": a}), ((), {})):
        with pytest.raises(ValueError):
            lib.StackDataset(*args, **kwargs)


# ----- default_collate / default_convert on nested structures -----------------------------------------

Pair = collections.namedtuple("Pair", "left right")


def nested_samples(lib):
    t = torch.tensor if lib is tdata else cr.tensor
    return [
        {"x": (t([float(i), 2.0 * i]), [i, i + 1]), "meta": {"id": i, "w": i / 4, "tag": f"t{i}",
                                                             "ok": bool(i % 2)},
         "pair": Pair(np.float32(i), np.arange(2, dtype=np.int32) + i),
         "od": collections.OrderedDict(b=t([[i]]), a=np.float64(i))}
        for i in range(3)
    ]


@pytest.mark.oracle
def test_default_collate_on_nested_structures_matches_torch():
    ours = cdata.default_collate(nested_samples(cdata))
    theirs = tdata.default_collate(nested_samples(tdata))
    assert as_plain(ours) == as_plain(theirs)
    assert type(ours["od"]) is collections.OrderedDict and type(ours["pair"]) is Pair


@pytest.mark.oracle
def test_default_convert_on_nested_structures_matches_torch():
    sample = {"a": np.arange(3, dtype=np.float32), "b": (np.int64(4), [np.ones((2, 2)), "s", 7]),
              "p": Pair(np.float32(1.5), 2.0)}
    assert as_plain(cdata.default_convert(sample)) == as_plain(tdata.default_convert(sample))


# ----- samplers without __len__ ---------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("batch_size", [None, 1, 2])
def test_sampler_without_len_works_in_the_loader_as_in_torch(batch_size):
    results = []
    for lib in (cdata, tdata):
        class Order(lib.Sampler):
            def __iter__(self):
                return iter([3, 1, 4, 0])

        loader = lib.DataLoader(Items([10, 11, 12, 13, 14]), batch_size=batch_size, sampler=Order())
        with pytest.raises(TypeError, match="has no len"):
            len(loader)
        with pytest.raises(TypeError):
            len(Order())
        results.append([as_plain(b) for b in loader])
    assert results[0] == results[1]


def test_exported_names():
    for name in ("ChainDataset", "StackDataset", "default_collate", "default_convert"):
        assert getattr(cdata, name) is not None and name in cdata.__all__


# ----- samplers: memory independent of num_samples, numbers of one whole draw --------------------------

def whole_draw(seed, make):
    """``make(rng)`` on a fresh numpy Generator in the state chainrule's Generator(seed) starts in."""
    return make(cr.random.Generator(seed).numpy)


LONG = 3 * csampler._CHUNK + 17  # spans several chunks, with a partial one at the end


@pytest.mark.parametrize("n", [1, 7, 1000, 2**31 + 11, 2**40 + 3])
@pytest.mark.parametrize("chunk", [1, 3, 32, 4096, 4097])
def test_numpy_draws_in_chunks_continue_one_stream(n, chunk):
    """The property the lazy samplers rely on: PCG64's integers/random drawn k at a time give the numbers
    (and leave the state) of one call for all of them."""
    total = 3 * 4096 + 5
    rng = np.random.Generator(np.random.PCG64(5))
    whole = rng.integers(0, n, size=total, dtype=np.int64)
    parts = np.random.Generator(np.random.PCG64(5))
    pieces = [parts.integers(0, n, size=min(chunk, total - i), dtype=np.int64) for i in range(0, total, chunk)]
    assert np.array_equal(np.concatenate(pieces), whole)
    assert parts.bit_generator.state == rng.bit_generator.state


@pytest.mark.parametrize("n", [1, 5, 997])
def test_random_sampler_with_replacement_equals_one_whole_draw(n):
    expected = whole_draw(3, lambda rng: rng.integers(0, n, size=LONG, dtype=np.int64))
    for num_samples in (LONG, 10**10):
        sampler = cdata.RandomSampler(Items(range(n)), replacement=True, num_samples=num_samples,
                                      generator=cr.random.Generator(3))
        assert list(itertools.islice(sampler, LONG)) == expected.tolist()
    short = whole_draw(3, lambda rng: rng.integers(0, n, size=100, dtype=np.int64))
    assert list(cdata.RandomSampler(Items(range(n)), True, 100, generator=cr.random.Generator(3))) == short.tolist()


def test_random_sampler_permutations_back_to_back_equal_one_whole_draw():
    n = 5000
    for num_samples in (12, n, 2 * n + 3, 3 * n):
        rounds = -(-num_samples // n)
        expected = whole_draw(4, lambda rng, rounds=rounds: np.concatenate([rng.permutation(n) for _ in range(rounds)]))
        sampler = cdata.RandomSampler(Items(range(n)), num_samples=num_samples, generator=cr.random.Generator(4))
        got = list(sampler)
        assert got == expected[:num_samples].tolist() and len(got) == len(sampler) == num_samples
    endless = cdata.RandomSampler(Items(range(n)), num_samples=10**12, generator=cr.random.Generator(4))
    expected = whole_draw(4, lambda rng: np.concatenate([rng.permutation(n) for _ in range(3)]))
    assert list(itertools.islice(endless, 3 * n)) == expected.tolist()


def test_weighted_random_sampler_equals_numpy_choice():
    weights = np.random.default_rng(0).random(50)
    weights[[3, 49]] = 0.0
    p = weights / weights.sum()
    for num_samples in (10, LONG):
        expected = whole_draw(6, lambda rng, k=num_samples: rng.choice(50, size=k, replace=True, p=p))
        sampler = cdata.WeightedRandomSampler(cr.tensor(weights), num_samples, generator=cr.random.Generator(6))
        assert list(sampler) == expected.tolist()
    endless = cdata.WeightedRandomSampler(weights.tolist(), 10**10, generator=cr.random.Generator(6))
    assert list(itertools.islice(endless, LONG)) == expected.tolist()
    distinct = list(cdata.WeightedRandomSampler(weights, 48, replacement=False, generator=cr.random.Generator(6)))
    assert sorted(distinct) == [i for i in range(50) if i not in (3, 49)]


def test_long_epoch_ignores_draws_made_while_it_runs():
    """A long epoch draws from a private copy taken at iter(): dropout or augmentation drawing from the same
    generator meanwhile changes nothing, and later draws never repeat the epoch's stream."""
    cr.manual_seed(11)
    expected = cr.random.Generator(11).numpy.integers(0, 100, size=LONG, dtype=np.int64).tolist()
    it = iter(cdata.RandomSampler(Items(range(100)), replacement=True, num_samples=10**10))
    got = []
    for _ in range(LONG // 100 + 1):
        got.extend(itertools.islice(it, 100))
        cr.rand(3)  # another consumer of the default generator
    assert got[:LONG] == expected
    after = cr.random.default_generator.numpy.integers(0, 100, size=LONG, dtype=np.int64).tolist()
    assert after != expected  # the default generator moved on (jumped), it did not replay the epoch
    cr.manual_seed(11)
    assert list(itertools.islice(cdata.RandomSampler(Items(range(100)), True, 10**10), LONG)) == expected


def test_short_epoch_draws_from_the_generator_itself():
    gen = cr.random.Generator(2)
    order = list(cdata.RandomSampler(Items(range(10)), generator=gen))
    reference = cr.random.Generator(2).numpy
    assert order == reference.permutation(10).tolist()
    assert gen.numpy.bit_generator.state == reference.bit_generator.state


@pytest.mark.parametrize("make", [
    lambda ds: cdata.RandomSampler(ds, replacement=True, num_samples=10**10),
    lambda ds: cdata.RandomSampler(ds, num_samples=10**10),
    lambda ds: cdata.WeightedRandomSampler(np.ones(len(ds)), 10**10),
], ids=["replacement", "permutations", "weighted"])
@pytest.mark.parametrize("fast_path", [True, False])
def test_endless_sampler_in_a_loader_starts_at_once_in_little_memory(make, fast_path):
    x = cr.arange(2000 * 3, dtype=cr.float32).reshape(2000, 3)
    ds = cdata.TensorDataset(x) if fast_path else Items(list(range(2000)))
    tracemalloc.start()
    try:
        start = time.perf_counter()
        loader = cdata.DataLoader(ds, batch_size=64, sampler=make(ds))
        assert len(loader) == -(-10**10 // 64)
        batches = list(itertools.islice(loader, 300))
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(batches) == 300 and all(len(b[0] if fast_path else b) == 64 for b in batches)
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert elapsed < 5.0


@pytest.mark.parametrize("batch_size", [1, 5, 64, csampler._CHUNK, csampler._CHUNK + 3, 3 * csampler._CHUNK])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_samples", [7, csampler._CHUNK, LONG])
def test_batches_cut_across_chunks_equal_the_item_route(batch_size, drop_last, num_samples):
    def batches():
        sampler = cdata.RandomSampler(Items(range(1000)), True, num_samples, generator=cr.random.Generator(9))
        return cdata.BatchSampler(sampler, batch_size, drop_last)

    fast = [b.tolist() for b in batches()._index_arrays()]
    assert fast == list(batches()) and len(fast) == len(batches())
    loader = cdata.DataLoader(cdata.TensorDataset(cr.arange(1000)), batch_sampler=batches())
    assert [b[0].tolist() for b in loader] == fast


def test_sequential_sampler_in_chunks():
    n = 2 * csampler._CHUNK + 5
    assert list(cdata.SequentialSampler(range(n))) == list(range(n))
    loader = cdata.DataLoader(cdata.TensorDataset(cr.arange(n)), batch_size=1000)
    assert [v for b in loader for v in b[0].tolist()] == list(range(n))
