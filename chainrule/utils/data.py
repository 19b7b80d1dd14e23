"""``torch.utils.data``: the same objects as :mod:`chainrule.data` (re-exported, not copied)."""

from chainrule.data import (
                            BatchSampler,
                            ChainDataset,
                            ConcatDataset,
                            DataLoader,
                            Dataset,
                            DistributedSampler,
                            IterableDataset,
                            RandomSampler,
                            Sampler,
                            SequentialSampler,
                            StackDataset,
                            Subset,
                            SubsetRandomSampler,
                            TensorDataset,
                            WeightedRandomSampler,
                            WorkerInfo,
                            default_collate,
                            default_convert,
                            get_worker_info,
                            random_split,
)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset", "StackDataset",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DistributedSampler", "DataLoader", "default_collate", "default_convert",
           "get_worker_info", "WorkerInfo"]
