"""Data loading with ``torch.utils.data``'s API, and small real data sets bundled with the package.

    import chainrule as cr
    from chainrule.data import DataLoader, digits_dataset, random_split

    cr.manual_seed(0)
    train = digits_dataset("train", flatten=True)          # TensorDataset of (image, label)
    loader = DataLoader(train, batch_size=64, shuffle=True)
    for images, labels in loader:                          # (64, 64) float32, (64,) int64
        ...

Datasets (``dataset``): ``Dataset``, ``IterableDataset``, ``TensorDataset``, ``Subset``,
``ConcatDataset``, ``ChainDataset``, ``StackDataset``, ``random_split``. Samplers (``sampler``):
``Sampler``, ``SequentialSampler``, ``RandomSampler``, ``SubsetRandomSampler``,
``WeightedRandomSampler``, ``BatchSampler``, ``DistributedSampler`` (``distributed``: one rank's share).
Loading (``dataloader``): ``DataLoader``, ``default_collate``, ``default_convert``. Bundled data (``datasets``): ``load_digits``,
``load_mnist5k``, ``load_tinyshakespeare``, ``digits_dataset``, ``mnist5k_dataset``, ``CharVocab``,
``sample_batch``, ``verify_file``.

Randomness (shuffling, ``random_split``, ``sample_batch``) draws from ``chainrule.random``'s default
generator unless a ``generator=`` is passed, so ``chainrule.manual_seed`` makes it reproducible.
"""

from .dataloader import DataLoader, WorkerInfo, default_collate, default_convert, get_worker_info
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .datasets import (
    SHA256,
    CharVocab,
    data_path,
    digits_dataset,
    load_digits,
    load_mnist5k,
    load_tinyshakespeare,
    mnist5k_dataset,
    sample_batch,
    verify_file,
)
from .distributed import DistributedSampler
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "StackDataset",
    "random_split",
    "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
    "DistributedSampler",
    "DataLoader", "default_collate", "default_convert", "get_worker_info", "WorkerInfo",
    "load_digits", "load_mnist5k", "load_tinyshakespeare", "digits_dataset", "mnist5k_dataset", "CharVocab",
    "sample_batch", "verify_file", "data_path", "SHA256",
]
