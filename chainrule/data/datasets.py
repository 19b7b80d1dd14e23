"""Real data sets that ship inside the package (``chainrule/data/files/``); nothing is downloaded, ever.

- ``load_digits(split)``: 1,797 handwritten digits, 8x8, as float32 images in [0, 1] of shape
  (N, 1, 8, 8) (or (N, 64) with ``flatten=True``) and int64 labels 0..9 (UCI, CC BY 4.0).
- ``load_mnist5k(split)``: 5,000 MNIST digits, 500 per class, 28x28, float32 in [0, 1], shape
  (N, 1, 28, 28) (or (N, 784)), int64 labels (CC BY-SA 3.0).
- ``load_tinyshakespeare(split)``: the 1,115,394-character tiny-Shakespeare corpus as int64 character
  ids, with its ``CharVocab`` (65 characters, sorted); ``sample_batch`` draws (x, y) windows for a
  character-level language model.
- ``digits_dataset`` / ``mnist5k_dataset``: the same as ``TensorDataset``s, ready for a DataLoader.

Splits: the image sets use a stratified 80/20 train/test split made with a fixed seed from a bit
stream numpy guarantees stable, so it is identical on every machine and run and never touches
chainrule's global generator (``split="all"`` gives every sample in file order). Tiny Shakespeare
uses its first 90% of characters for training and the last 10% for validation.

Every file is checked against its sha256 (``SHA256``, ``verify_file``) when first read; parsed arrays
are cached per process, and every call returns fresh tensors (changing them never alters the cache).
See ``files/README.md`` for sources and licences.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

from chainrule.backend import get_device, np
from chainrule.random import Generator, default_generator
from chainrule.tensor import Tensor, wrap

from .dataset import TensorDataset

__all__ = ["load_digits", "load_mnist5k", "load_tinyshakespeare", "digits_dataset", "mnist5k_dataset",
           "CharVocab", "sample_batch", "verify_file", "data_path", "SHA256"]

FILES_DIR = Path(__file__).resolve().parent / "files"

SHA256 = {
    "digits.csv.gz": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
    "mnist5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    "tinyshakespeare.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}

SPLIT_SEED = 20_240_601  # fixes the train/test split of the image sets; never change it
TEST_FRACTION = 0.2
TRAIN_FRACTION_TEXT = 0.9


# ----- files -----------------------------------------------------------------------------------------

def data_path(name: str) -> Path:
    """The path of the bundled file ``name`` (one of ``SHA256``'s keys)."""
    if name not in SHA256:
        raise ValueError(f"data_path: unknown data file {name!r}; the bundled files are {sorted(SHA256)}")
    return FILES_DIR / name


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _loader_name(name: str) -> str:
    return "load_" + name.split(".")[0]


def _read_verified(name: str, op: str) -> bytes:
    """The bytes of bundled file ``name``, after checking that it exists and has the expected sha256."""
    path = data_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{op}: the bundled data file {path} is missing; chainrule's package data was not installed "
            "(reinstall chainrule, e.g. `pip install -e .`, which ships chainrule/data/files/*); nothing is downloaded"
        )
    raw = path.read_bytes()
    digest = _sha256(raw)
    if digest != SHA256[name]:
        raise RuntimeError(f"{op}: the bundled data file {path} is corrupt: sha256 {digest}, expected {SHA256[name]}; "
                           "reinstall chainrule to restore it")
    return raw


def verify_file(name: str) -> Path:
    """Check that bundled file ``name`` is present with its expected sha256; return its path."""
    _read_verified(name, "verify_file")
    return data_path(name)


@functools.cache
def _csv_arrays(path: str, name: str, width: int) -> tuple:
    """(pixels uint8 (N, width - 1), labels int64 (N,)) from a gzipped CSV of integer rows, each
    ending in the label; cached by path, read-only so the cache cannot be changed by accident."""
    op = _loader_name(name)
    text = gzip.decompress(_read_verified(name, op)).decode("ascii")
    rows = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    if rows.shape[1] != width:
        raise RuntimeError(f"{op}: {path} has {rows.shape[1]} columns per row, expected {width}")
    pixels = rows[:, :-1].astype(np.uint8)
    labels = np.ascontiguousarray(rows[:, -1])
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


@functools.cache
def _split_indices(path: str, name: str, width: int) -> dict:
    labels = _csv_arrays(path, name, width)[1]
    train, test = _stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    everything = np.arange(len(labels))
    for arr in (train, test, everything):
        arr.flags.writeable = False
    return {"train": train, "test": test, "all": everything}


def _stratified_split(labels, test_fraction: float, seed: int) -> tuple:
    """(train, test) index arrays, each sorted: per class, ``round(n_class * test_fraction)`` samples
    go to test, picked by a random key per sample from the PCG64 bit stream (whose raw output numpy
    keeps stable across versions, unlike its distribution methods)."""
    keys = np.random.PCG64(seed).random_raw(len(labels))
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        shuffled = members[np.argsort(keys[members], kind="stable")]
        n_test = int(np.floor(len(members) * test_fraction + 0.5))
        test_parts.append(shuffled[:n_test])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train.astype(np.int64), test.astype(np.int64)


def _check_split(split: str, allowed: tuple[str, ...], op: str) -> None:
    if split not in allowed:
        raise ValueError(f"{op}: split must be one of {', '.join(map(repr, allowed))}, got {split!r}")


def _to_tensor(array, device) -> Tensor:
    return wrap(get_device(device).xp.asarray(array))


def _load_images(name: str, side: int, scale: float, split: str, flatten: bool, device):
    _check_split(split, ("train", "test", "all"), _loader_name(name))
    key = (str(data_path(name)), name, side * side + 1)
    pixels, labels = _csv_arrays(*key)
    idx = _split_indices(*key)[split]
    images = pixels[idx].astype(np.float32) / np.float32(scale)  # a fresh array: the cache stays untouched
    images = images.reshape(len(idx), side * side) if flatten else images.reshape(len(idx), 1, side, side)
    return _to_tensor(images, device), _to_tensor(labels[idx], device)


# ----- image data sets -----------------------------------------------------------------------------

def load_digits(split: str = "train", *, flatten: bool = False, device=None) -> tuple[Tensor, Tensor]:
    """The UCI handwritten digits (the set scikit-learn calls load_digits): 1,797 8x8 images.

    Returns ``(images, labels)``: float32 images scaled from 0..16 to [0, 1], shape (N, 1, 8, 8), or
    (N, 64) with ``flatten=True``; int64 labels 0..9, shape (N,). ``split`` is "train" (80%, stratified
    by class, fixed seed), "test" (the other 20%) or "all" (every image, file order).
    """
    return _load_images("digits.csv.gz", 8, 16.0, split, flatten, device)


def load_mnist5k(split: str = "train", *, flatten: bool = False, device=None) -> tuple[Tensor, Tensor]:
    """5,000 real MNIST digits, 500 per class: 28x28 images.

    Returns ``(images, labels)``: float32 images scaled from 0..255 to [0, 1], shape (N, 1, 28, 28), or
    (N, 784) with ``flatten=True``; int64 labels 0..9, shape (N,). ``split`` is "train" (4,000: 400 per
    class, fixed seed), "test" (1,000: 100 per class) or "all".
    """
    return _load_images("mnist5k.csv.gz", 28, 255.0, split, flatten, device)


def digits_dataset(split: str = "train", *, flatten: bool = False, device=None) -> TensorDataset:
    """``load_digits(split)`` as a ``TensorDataset`` of (image, label) pairs."""
    return TensorDataset(*load_digits(split, flatten=flatten, device=device))


def mnist5k_dataset(split: str = "train", *, flatten: bool = False, device=None) -> TensorDataset:
    """``load_mnist5k(split)`` as a ``TensorDataset`` of (image, label) pairs."""
    return TensorDataset(*load_mnist5k(split, flatten=flatten, device=device))


# ----- characters ----------------------------------------------------------------------------------

class UnknownCharacterError(KeyError):
    """A character outside a ``CharVocab`` (a KeyError, printed without KeyError's extra quoting)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CharVocab:
    """A character-level vocabulary: id ``i`` is ``chars[i]``.

    ``CharVocab.from_text(text)`` uses the sorted unique characters of ``text``, so the ids are the
    same on every run. ``encode(text)`` gives a list of ids, ``encode_tensor(text)`` an int64 tensor
    (vectorised, for long texts), ``decode(ids)`` the string back.
    """

    def __init__(self, chars: Iterable[str]):
        chars = "".join(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("CharVocab: characters must be unique; build it with CharVocab.from_text(text)")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        self._lookup = np.full(int(codes.max()) + 1 if len(codes) else 1, -1, dtype=np.int64)
        self._lookup[codes] = np.arange(len(chars))
        self._char_array = np.array(list(chars)) if chars else np.zeros(0, dtype="<U1")

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} chars: {self.chars!r})"

    def _unknown(self, text: str, op: str) -> UnknownCharacterError:
        missing = sorted(set(text) - set(self.stoi))
        return UnknownCharacterError(f"CharVocab.{op}: character(s) {missing} not in the vocabulary of {len(self)} characters "
                        f"({self.chars!r})")

    def encode(self, text: str) -> list[int]:
        """The ids of the characters of ``text``, as a list of ints."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            raise self._unknown(text, "encode") from None

    def encode_tensor(self, text: str, device=None) -> Tensor:
        """The ids of the characters of ``text`` as an int64 tensor, computed without a Python loop."""
        return _to_tensor(self._encode_array(text, "encode_tensor"), device)

    def _encode_array(self, text: str, op: str):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        ids = self._lookup[np.minimum(codes, len(self._lookup) - 1)]
        bad = (ids < 0) | (codes >= len(self._lookup))
        if bad.any():
            raise self._unknown(text, op)
        return ids

    def decode(self, ids) -> str:
        """The string spelled by ``ids`` (a 1-D tensor, array or sequence of ints)."""
        arr = np.asarray(ids)  # a tensor on any device comes to the host through __array__
        if arr.ndim > 1:
            raise ValueError(f"CharVocab.decode: expects a 1-D sequence of ids, got shape {arr.shape}; decode each row")
        arr = arr.reshape(-1)
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"CharVocab.decode: ids must be integers, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= len(self):
            raise IndexError(f"CharVocab.decode: ids must be in [0, {len(self) - 1}], got values from "
                             f"{arr.min()} to {arr.max()}")
        return "".join(self._char_array[arr].tolist())


@functools.cache
def _shakespeare(path: str) -> tuple:
    text = _read_verified("tinyshakespeare.txt", "load_tinyshakespeare").decode("utf-8")
    vocab = CharVocab.from_text(text)
    ids = vocab._encode_array(text, "load_tinyshakespeare")
    ids.flags.writeable = False
    return ids, vocab


def load_tinyshakespeare(split: str = "train", *, device=None) -> tuple[Tensor, CharVocab]:
    """Tiny Shakespeare as character ids: ``(ids, vocab)``.

    ``ids`` is an int64 tensor of shape (N,): the first 90% of the 1,115,394 characters for
    ``split="train"``, the last 10% for ``"val"``, everything for ``"all"``. ``vocab`` is the
    ``CharVocab`` of the whole text (65 sorted characters), the same for every split.
    """
    _check_split(split, ("train", "val", "all"), "load_tinyshakespeare")
    ids, vocab = _shakespeare(str(data_path("tinyshakespeare.txt")))
    cut = int(len(ids) * TRAIN_FRACTION_TEXT)
    part = {"train": ids[:cut], "val": ids[cut:], "all": ids}[split]
    return _to_tensor(part.copy(), device), vocab


def sample_batch(ids: Tensor, batch_size: int, block_size: int,
                 generator: Generator | None = None) -> tuple[Tensor, Tensor]:
    """Random windows of a 1-D id tensor for next-token training: ``(x, y)``, both int64 of shape
    (batch_size, block_size), with ``y[b, t] == ids[start_b + t + 1]`` the token after ``x[b, t]``.

    Window starts are uniform over every position that leaves room for the shifted target, drawn
    from ``generator`` or chainrule's default generator (so ``manual_seed`` fixes them).
    """
    if not isinstance(ids, Tensor) or ids.ndim != 1:
        kind = f"a tensor of shape {tuple(ids.shape)}" if isinstance(ids, Tensor) else f"a {type(ids).__name__}"
        raise TypeError(f"sample_batch: ids must be a 1-D tensor of token ids, got {kind}")
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"sample_batch: {name} must be a positive int, got {value!r}")
    n = ids.shape[0]
    if n <= block_size:
        raise ValueError(f"sample_batch: block_size={block_size} needs more than {block_size} ids (one extra for the "
                         f"shifted target), but ids has {n}; use a smaller block_size")
    rng = (generator if generator is not None else default_generator).numpy
    starts = rng.integers(0, n - block_size, size=batch_size, dtype=np.int64)
    window = starts[:, None] + np.arange(block_size, dtype=np.int64)
    xp = ids.xp
    x = xp.take(ids._data, xp.asarray(window))
    y = xp.take(ids._data, xp.asarray(window + 1))
    return wrap(x), wrap(y)
