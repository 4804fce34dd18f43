"""Data: real data-set loaders, augmentation and mini-batch iteration.

``load_dataset(name, data_dir)`` reads CIFAR-10/100, MNIST, Fashion-MNIST, an image folder or the
small MNIST subset shipped with fastres into a `Dataset` of float32 NCHW images in [0, 1];
`augment` holds seeded batch transforms and `BatchLoader` shuffles, augments and prefetches.
"""

from fastres.data.augment import (
    Compose,
    ContrastJitter,
    Cutout,
    GaussianNoise,
    HorizontalFlip,
    Normalize,
    RandomCrop,
    RandomRotation,
    RandomShift,
    RandomZoom,
    SaltPepper,
    TintJitter,
    parse_augment,
)
from fastres.data.cifar import RestrictedUnpickler
from fastres.data.dataset import (
    DATASET_NAMES,
    Dataset,
    channel_stats,
    load_dataset,
    normalize,
    split_indices,
)
from fastres.data.folder import FolderDataset, load_folder
from fastres.data.loader import BatchLoader
from fastres.data.mnist import read_idx

__all__ = [
    "DATASET_NAMES", "BatchLoader", "Compose", "ContrastJitter", "Cutout", "Dataset",
    "FolderDataset", "GaussianNoise", "HorizontalFlip", "Normalize", "RandomCrop",
    "RandomRotation", "RandomShift", "RandomZoom", "RestrictedUnpickler", "SaltPepper",
    "TintJitter", "channel_stats", "load_dataset", "load_folder", "normalize", "parse_augment",
    "read_idx", "split_indices",
]
