"""The bundled data sets: integrity, counts, splits, value ranges, the character vocabulary, sample_batch."""

import hashlib
import shutil

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import (
    SHA256,
    CharVocab,
    DataLoader,
    TensorDataset,
    data_path,
    datasets,
    digits_dataset,
    load_digits,
    load_mnist5k,
    load_tinyshakespeare,
    mnist5k_dataset,
    sample_batch,
    verify_file,
)

# The sha256 values stated by the shared data README (digits has none there; it is pinned from the copy).
README_SHA256 = {
    "mnist5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    "tinyshakespeare.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# ----- files and integrity ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SHA256))
def test_bundled_file_sha256(name):
    path = verify_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SHA256[name]
    assert README_SHA256.get(name, digest) == digest


def test_licence_readme_ships_with_the_files():
    text = (data_path("digits.csv.gz").parent / "README.md").read_text()
    for needle in ("CC BY 4.0", "CC BY-SA 3.0", "public-domain", "digits.csv.gz", "mnist5k.csv.gz", "tinyshakespeare.txt"):
        assert needle in text


def test_unknown_file_name():
    with pytest.raises(ValueError, match="unknown data file 'iris.csv'"):
        data_path("iris.csv")


def test_missing_file_error_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FILES_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "digits.csv.gz")):
        load_digits()
    with pytest.raises(FileNotFoundError, match="tinyshakespeare.txt"):
        load_tinyshakespeare()


def test_corrupt_file_is_refused(tmp_path, monkeypatch):
    source = data_path("tinyshakespeare.txt")
    shutil.copy(source, tmp_path / "tinyshakespeare.txt")
    with open(tmp_path / "tinyshakespeare.txt", "ab") as f:
        f.write(b"extra")
    monkeypatch.setattr(datasets, "FILES_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="corrupt: sha256"):
        load_tinyshakespeare()
    with pytest.raises(RuntimeError, match="corrupt"):
        verify_file("tinyshakespeare.txt")


# ----- digits ----------------------------------------------------------------------------------------

def test_digits_all_counts_and_ranges():
    images, labels = load_digits("all")
    assert images.shape == (1797, 1, 8, 8) and images.dtype == cr.float32
    assert labels.shape == (1797,) and labels.dtype == cr.int64
    x = images.cpu().numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.all(x * 16 == np.round(x * 16))  # the 0..16 levels, scaled exactly
    counts = np.bincount(labels.cpu().numpy())
    assert len(counts) == 10 and counts.sum() == 1797 and counts.min() >= 170


def test_digits_flatten():
    flat, _ = load_digits("test", flatten=True)
    images, _ = load_digits("test")
    assert flat.shape == (len(images), 64)
    assert np.array_equal(flat.cpu().numpy(), images.cpu().numpy().reshape(-1, 64))


def check_stratified(loader, total, classes):
    train_x, train_y = loader("train", flatten=True)
    test_x, test_y = loader("test", flatten=True)
    all_x, all_y = loader("all", flatten=True)
    assert len(train_y) + len(test_y) == total == len(all_y)
    per_class = np.bincount(all_y.cpu().numpy(), minlength=classes)
    per_class_test = np.bincount(test_y.cpu().numpy(), minlength=classes)
    assert np.array_equal(per_class_test, np.floor(per_class * 0.2 + 0.5).astype(int))
    assert np.array_equal(np.bincount(train_y.cpu().numpy(), minlength=classes), per_class - per_class_test)
    # train and test are disjoint and together are every sample: compare (image, label) rows as multisets
    rows = lambda x, y: [bytes(r) for r in np.concatenate([x.cpu().numpy(), y.cpu().numpy()[:, None]], 1).astype(np.float32)]
    assert sorted(rows(train_x, train_y) + rows(test_x, test_y)) == sorted(rows(all_x, all_y))
    return test_y


def test_digits_stratified_split():
    test_y = check_stratified(load_digits, 1797, 10)
    assert len(test_y) == 359


def test_split_is_fixed_and_leaves_the_global_generator_alone():
    cr.manual_seed(1)
    state = cr.get_rng_state()
    a_x, a_y = load_digits("test")
    assert cr.get_rng_state() == state
    cr.manual_seed(2)
    b_x, b_y = load_digits("test")
    assert np.array_equal(a_x.cpu().numpy(), b_x.cpu().numpy()) and np.array_equal(a_y.cpu().numpy(), b_y.cpu().numpy())
    # pinned: the same split on every machine and numpy version (PCG64's raw stream is stable)
    test_idx = datasets._split_indices(str(data_path("digits.csv.gz")), "digits.csv.gz", 65)["test"]
    assert test_idx[:8].tolist() == PINNED_DIGITS_TEST_HEAD
    assert hashlib.sha256(test_idx.astype("<i8").tobytes()).hexdigest()[:16] == PINNED_DIGITS_TEST_HASH


PINNED_DIGITS_TEST_HEAD = [4, 11, 16, 17, 19, 22, 23, 25]
PINNED_DIGITS_TEST_HASH = "7dbbfdfb0904aa40"


def test_returned_tensors_are_fresh():
    images, labels = load_digits("train")
    images._data[...] = -5.0
    labels._data[...] = -1
    again_x, again_y = load_digits("train")
    assert again_x.cpu().numpy().min() == 0.0 and again_y.cpu().numpy().min() == 0


def test_bad_split_names_the_choices():
    with pytest.raises(ValueError, match="load_digits: split must be one of 'train', 'test', 'all', got 'val'"):
        load_digits("val")
    with pytest.raises(ValueError, match="'train', 'val', 'all'"):
        load_tinyshakespeare("test")


def test_digits_dataset_feeds_a_loader():
    ds = digits_dataset("train")
    assert isinstance(ds, TensorDataset) and len(ds) == 1797 - 359
    x, y = next(iter(DataLoader(ds, batch_size=64, shuffle=True)))
    assert x.shape == (64, 1, 8, 8) and y.shape == (64,) and y.dtype == cr.int64


# ----- mnist5k ---------------------------------------------------------------------------------------

def test_mnist5k_counts_split_and_ranges():
    images, labels = load_mnist5k("all")
    assert images.shape == (5000, 1, 28, 28) and images.dtype == cr.float32 and labels.dtype == cr.int64
    assert np.array_equal(np.bincount(labels.cpu().numpy()), [500] * 10)
    x = images.cpu().numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert 0.05 < x.mean() < 0.25  # mostly dark background with bright strokes, as MNIST is
    test_y = check_stratified(load_mnist5k, 5000, 10)
    assert np.array_equal(np.bincount(test_y.cpu().numpy()), [100] * 10)
    train = mnist5k_dataset("train")
    assert len(train) == 4000 and train[0][0].shape == (1, 28, 28)


# ----- tiny shakespeare ------------------------------------------------------------------------------

def test_tinyshakespeare_vocab_and_splits():
    train, vocab = load_tinyshakespeare("train")
    val, vocab_val = load_tinyshakespeare("val")
    everything, _ = load_tinyshakespeare("all")
    assert len(vocab) == 65 and vocab.chars == SHAKESPEARE_CHARS and vocab == vocab_val
    assert len(everything) == 1_115_394
    assert len(train) == int(1_115_394 * 0.9) == 1_003_854 and len(val) == 1_115_394 - 1_003_854
    assert train.dtype == cr.int64 and train.ndim == 1
    assert np.array_equal(np.concatenate([train.cpu().numpy(), val.cpu().numpy()]), everything.cpu().numpy())
    text = data_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    assert vocab.decode(everything) == text
    assert vocab.decode(train[:14]) == "First Citizen:"


def test_char_vocab_round_trip_and_errors():
    _, vocab = load_tinyshakespeare("val")
    line = "To be, or not to be: that is the question.\n"
    ids = vocab.encode(line)
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    assert vocab.decode(ids) == line
    assert vocab.encode_tensor(line).tolist() == ids and vocab.encode_tensor(line).dtype == cr.int64
    assert vocab.decode(np.array(ids)) == line and vocab.decode([]) == ""
    assert vocab.encode("A") == [SHAKESPEARE_CHARS.index("A")] and "z" in vocab and "#" not in vocab
    with pytest.raises(KeyError, match=r"\['#', '~'\]"):
        vocab.encode("a#b~")
    with pytest.raises(KeyError, match="'é'"):
        vocab.encode_tensor("café")
    with pytest.raises(IndexError, match=r"\[0, 64\]"):
        vocab.decode([3, 65])
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(cr.zeros(2, 3, dtype=cr.int64))


def test_char_vocab_from_text():
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == " dehlorw" and len(vocab) == 8
    assert vocab.decode(vocab.encode("low")) == "low"
    with pytest.raises(ValueError, match="unique"):
        CharVocab("aab")


def test_sample_batch_windows():
    ids = cr.arange(1000) * 3
    gen = cr.Generator(0)
    x, y = sample_batch(ids, 16, 32, generator=gen)
    assert x.shape == y.shape == (16, 32) and x.dtype == y.dtype == cr.int64
    xs, ys = x.cpu().numpy(), y.cpu().numpy()
    assert np.array_equal(ys[:, :-1], xs[:, 1:])  # y is x shifted by one
    assert np.array_equal(ys - xs, np.full_like(xs, 3))  # and each y is the token right after its x
    assert np.all(np.diff(xs, axis=1) == 3)  # windows are contiguous runs of ids
    starts = xs[:, 0] // 3
    assert starts.min() >= 0 and starts.max() <= 1000 - 32 - 1


def test_sample_batch_reaches_both_ends_and_is_seeded():
    ids = cr.arange(10)
    cr.manual_seed(0)
    x, _ = sample_batch(ids, 400, 4)
    assert set(x.cpu().numpy()[:, 0].tolist()) == set(range(6))  # every legal start, none past 10 - 4 - 1
    cr.manual_seed(0)
    again, _ = sample_batch(ids, 400, 4)
    assert np.array_equal(x.cpu().numpy(), again.cpu().numpy())
    a, _ = sample_batch(ids, 400, 4, generator=cr.Generator(9))
    b, _ = sample_batch(ids, 400, 4, generator=cr.Generator(9))
    assert np.array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_sample_batch_errors():
    with pytest.raises(ValueError, match="block_size=10 needs more than 10 ids"):
        sample_batch(cr.arange(10), 2, 10)
    with pytest.raises(TypeError, match="1-D tensor"):
        sample_batch(cr.zeros(3, 3), 2, 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sample_batch(cr.arange(10), 0, 2)
