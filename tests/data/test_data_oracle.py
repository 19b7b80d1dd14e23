"""DataLoader / collate / random_split against torch.utils.data: same batches, same lengths, same types
(orders of random shuffles differ by design: the generators are different)."""

import collections
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils import data as tdata  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import data as cdata  # noqa: E402

pytestmark = pytest.mark.oracle


def as_plain(value):
    """A batch as nested Python lists/dicts, with each tensor's values and dtype name."""
    if isinstance(value, (cr.Tensor, torch.Tensor)):
        return ("tensor", str(value.dtype).split(".")[-1], tuple(value.shape), value.tolist())
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__name__, [as_plain(v) for v in value])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [as_plain(v) for v in value])
    return value


class Items:
    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def tensor_pair(n, lib):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64) % 3
    if lib is torch:
        return tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return cdata.TensorDataset(cr.from_numpy(x), cr.from_numpy(y))


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True), (10, 5, True), (4, 8, False),
                                                       (4, 8, True), (7, 1, False)])
def test_tensor_dataset_batches_match_torch(n, batch_size, drop_last):
    ours = cdata.DataLoader(tensor_pair(n, cr), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(tensor_pair(n, torch), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    assert [as_plain(b) for b in ours] == [as_plain(b) for b in theirs]


Point = collections.namedtuple("Point", "x label")


def sample_sets():
    """The same samples written with each library's tensors: tuples, dicts, namedtuples, numbers, arrays."""
    def build(lib):
        t = torch.tensor if lib is torch else cr.tensor
        return {
            "tuple": [(t([float(i), -1.0]), i, float(i) / 2) for i in range(5)],
            "dict": [{"img": t([[i, i + 1]]), "flag": i % 2 == 0, "name": f"s{i}"} for i in range(5)],
            "namedtuple": [Point(t(float(i)), i) for i in range(5)],
            "numpy": [(np.full(3, i, dtype=np.float32), np.int64(i)) for i in range(5)],
            "list": [[t([i]), [i, i + 1]] for i in range(5)],
        }
    return build(cr), build(torch)


@pytest.mark.parametrize("kind", ["tuple", "dict", "namedtuple", "numpy", "list"])
@pytest.mark.parametrize("batch_size", [2, None])
def test_collated_batches_match_torch(kind, batch_size):
    ours_sets, torch_sets = sample_sets()
    ours = cdata.DataLoader(Items(ours_sets[kind]), batch_size=batch_size)
    theirs = tdata.DataLoader(Items(torch_sets[kind]), batch_size=batch_size)
    assert len(ours) == len(theirs)
    assert [as_plain(b) for b in ours] == [as_plain(b) for b in theirs]


def test_sampler_and_batch_sampler_match_torch():
    order = [4, 1, 1, 0, 3]
    ours = cdata.DataLoader(tensor_pair(5, cr), batch_size=2, sampler=order)
    theirs = tdata.DataLoader(tensor_pair(5, torch), batch_size=2, sampler=order)
    assert [as_plain(b) for b in ours] == [as_plain(b) for b in theirs] and len(ours) == len(theirs)
    batches = [[3, 0], [2], [1, 4, 0]]
    ours = cdata.DataLoader(tensor_pair(5, cr), batch_sampler=batches)
    theirs = tdata.DataLoader(tensor_pair(5, torch), batch_sampler=batches)
    assert [as_plain(b) for b in ours] == [as_plain(b) for b in theirs] and len(ours) == len(theirs)


@pytest.mark.parametrize("n, bs, drop", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, True)])
def test_shuffled_loader_structure_matches_torch(n, bs, drop):
    """Orders differ, but the batch sizes, the count and the covered items agree."""
    ours = list(cdata.DataLoader(tensor_pair(n, cr), batch_size=bs, shuffle=True, drop_last=drop))
    theirs = list(tdata.DataLoader(tensor_pair(n, torch), batch_size=bs, shuffle=True, drop_last=drop))
    assert [tuple(b[0].shape) for b in ours] == [tuple(b[0].shape) for b in theirs]
    if not drop:
        assert sorted(v for b in ours for v in b[0][:, 0].tolist()) == [float(2 * i) for i in range(n)]


@pytest.mark.parametrize("n, lengths", [(11, [0.8, 0.2]), (11, [0.3, 0.3, 0.4]), (10, [0.33, 0.33, 0.34]),
                                        (7, [1]), (100, [0.5, 0.25, 0.25]), (10, [3, 7]), (5, [0.1, 0.9])])
def test_random_split_lengths_match_torch(n, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = [len(s) for s in cdata.random_split(Items(list(range(n))), lengths)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = [len(s) for s in tdata.random_split(Items(list(range(n))), lengths)]
    assert ours == theirs


@pytest.mark.parametrize("bad", [[3, 4], [0.5, 0.6]])
def test_random_split_rejects_what_torch_rejects(bad):
    with pytest.raises(ValueError):
        tdata.random_split(Items(list(range(10))), bad)
    with pytest.raises(ValueError):
        cdata.random_split(Items(list(range(10))), bad)


def test_concat_dataset_matches_torch():
    parts = [Items([0, 1, 2]), Items([]), Items([10, 11])]
    ours, theirs = cdata.ConcatDataset(parts), tdata.ConcatDataset(parts)
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-5, 5)] == [theirs[i] for i in range(-5, 5)]
