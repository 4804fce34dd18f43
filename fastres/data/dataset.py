"""The `Dataset` record, `load_dataset` (name dispatch), validation splits and channel statistics.

Readers (`cifar`, `mnist`, `folder`, `embedded`) return raw arrays; this module turns them into the
one public form: float32 NCHW images in [0, 1] and int64 labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "MissingDataError",
    "channel_stats",
    "load_dataset",
    "normalize",
    "resolve_data_dir",
    "split_indices",
]

DATASET_NAMES = ("cifar10", "cifar100", "mnist", "fashion-mnist", "folder:PATH", "embedded")


@dataclass(frozen=True, repr=False)
class Dataset:
    """An image-classification data set held in memory.

    Attributes
    ----------
    x_train, x_val, x_test : ndarray, float32, shape (N, C, H, W), values in [0, 1]
    y_train, y_val, y_test : ndarray, int64, shape (N,)
        ``x_val``/``y_val`` have N = 0 when no validation split was asked for.
    classes : list of str
        Class names; label ``k`` is ``classes[k]``.
    name : str
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, image_shape={self.image_shape}, "
                f"classes={self.num_classes})")


# ---------------------------------------------------------------------------------------------
# data directory


def resolve_data_dir(data_dir: str | os.PathLike | None, dataset: str) -> Path:
    """`data_dir`, else ``$FASTRES_DATA``; a FileNotFoundError that says how to set it otherwise."""
    if data_dir is None:
        data_dir = os.environ.get("FASTRES_DATA")
        if not data_dir:
            raise FileNotFoundError(
                f"load_dataset({dataset!r}): no data directory given. Pass data_dir=... (CLI: "
                "--data-dir DIR) or set the FASTRES_DATA environment variable to the folder "
                "holding cifar-10-batches-py/, mnist/ etc. in their official layouts.")
    return Path(data_dir).expanduser()


class MissingDataError(FileNotFoundError):
    """A data set's files are absent; ``dataset``, ``where``, ``files``, ``url`` say which."""

    def __init__(self, message, dataset, where, files, url, extra=""):
        super().__init__(message)
        self.dataset, self.where, self.files, self.url, self.extra = (dataset, where, files,
                                                                       url, extra)


def missing_files_error(dataset: str, where: Path, files: list[str], url: str,
                        extra: str = "", reason: str = "") -> MissingDataError:
    """The one error for absent data: expected path and files, why they were not downloaded
    (`reason`, from `load_dataset`) and how to get them by hand."""
    listed = ", ".join(files)
    how = f"{reason}; download them from {url}" if reason else f"Download them from {url}"
    return MissingDataError(
        f"{dataset}: expected the files {listed} under {where}, but they are not there. "
        f"{how} and place them in {where}.{(' ' + extra) if extra else ''}",
        dataset, where, files, url, extra)


def _read_or_fetch(reader, key: str, root, download: bool | None):
    """``reader(root)``; if its files are missing, download them (see `fastres.data.download`)
    and read again. Without a network, the missing-files error says the download failed."""
    from fastres.data import download as dl

    try:
        return reader(root)
    except MissingDataError as missing:
        if root is None:
            raise
        if not dl.download_enabled(download):
            reason = ("Automatic download is off (download=False)" if download is False else
                      "Automatic download is off (FASTRES_NO_DOWNLOAD is set)")
        else:
            try:
                dl.fetch_dataset(key, root)
            except dl.DownloadError as exc:
                reason = f"Downloading them failed ({exc})"
            else:
                return reader(root)
        raise missing_files_error(missing.dataset, missing.where, missing.files, missing.url,
                                  missing.extra, reason=reason) from None


# ---------------------------------------------------------------------------------------------
# conversion, splits, statistics


def to_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 in [0, 1] (exact division, so x / 255 round-trips)."""
    out = x.astype(np.float32)
    out /= np.float32(255.0)
    return out


def split_indices(y: np.ndarray, val_split: float, seed: int = 0,
                  stratified: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified) split of ``range(len(y))`` into (train_idx, val_idx), both sorted.

    `val_split` is a fraction in [0, 1) or an int count in [0, len(y)). Stratified: each class
    gives its share of the validation set (largest-remainder rounding, so the total is exact).
    """
    y = np.asarray(y)
    n = len(y)
    if isinstance(val_split, (bool, np.bool_)):
        raise TypeError(f"val_split must be a float fraction or an int count, got {val_split!r}")
    if isinstance(val_split, (int, np.integer)):
        n_val = int(val_split)
        if not 0 <= n_val < n:
            raise ValueError(f"val_split: an int count must be in [0, {n}) for {n} training "
                             f"samples, got {n_val}")
    elif isinstance(val_split, (float, np.floating)):
        if not 0.0 <= val_split < 1.0:
            raise ValueError(f"val_split: a fraction must be in [0, 1), got {val_split}")
        n_val = round(float(val_split) * n)
    else:
        raise TypeError(f"val_split must be a float fraction or an int count, got "
                        f"{type(val_split).__name__}")
    if n_val == 0:
        return np.arange(n), np.zeros(0, dtype=np.intp)
    rng = np.random.default_rng([seed, 0x5EED])
    if not stratified:
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * (n_val / n)
    take = np.floor(quota).astype(np.int64)
    short = n_val - int(take.sum())
    if short:  # largest fractional parts first; ties by class order (stable sort)
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:short]] += 1
    val = []
    for k in range(len(classes)):
        members = np.flatnonzero(inverse == k)
        val.append(members[rng.permutation(len(members))[: take[k]]])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of an NCHW array, accumulated in float64.

    Compute them on the training split only and pass them to `normalize` for every split.

    Returns
    -------
    mean, std : ndarray, float64, shape (C,)
    """
    if x.ndim != 4:
        raise ValueError(f"channel_stats: expected NCHW (4-d) input, got shape {x.shape}")
    n, c = x.shape[:2]
    if n == 0:
        raise ValueError("channel_stats: empty input (N = 0)")
    s = np.zeros(c)
    s2 = np.zeros(c)
    # chunks bound the float64 temporaries (CIFAR-10 at once would be 1.2 GB)
    step = max(1, (1 << 22) // max(1, x[0].size))
    for i in range(0, n, step):
        chunk = x[i:i + step].astype(np.float64)
        s += chunk.sum(axis=(0, 2, 3))
        s2 += np.square(chunk).sum(axis=(0, 2, 3))
    count = n * x.shape[2] * x.shape[3]
    mean = s / count
    var = np.maximum(s2 / count - mean * mean, 0.0)
    return mean, np.sqrt(var)


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean[c]) / std[c]`` per channel, in x's dtype (a new array)."""
    if x.ndim != 4:
        raise ValueError(f"normalize: expected NCHW (4-d) input, got shape {x.shape}")
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape != (x.shape[1],) or std.shape != (x.shape[1],):
        raise ValueError(f"normalize: mean and std need {x.shape[1]} values (one per channel), "
                         f"got {mean.shape} and {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"normalize: std must be > 0, got {std}")
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    m = mean.astype(dt).reshape(1, -1, 1, 1)
    inv = (1.0 / std).astype(dt).reshape(1, -1, 1, 1)
    return (x.astype(dt, copy=False) - m) * inv


# ---------------------------------------------------------------------------------------------
# dispatch


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 val_split: float = 0.0, seed: int = 0,
                 image_size: int | tuple[int, int] = 32,
                 download: bool | None = None) -> Dataset:
    """Load a data set by name into memory.

    Parameters
    ----------
    name : str
        ``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashion-mnist"``, ``"folder:PATH"`` (one
        subfolder per class) or ``"embedded"`` (the MNIST subset shipped with fastres).
    data_dir : path, optional
        Folder holding ``cifar-10-batches-py/``, ``mnist/`` ... in their official layouts.
        Defaults to ``$FASTRES_DATA``. Not used by ``"embedded"``.
    val_split : float in [0, 1) or int
        Fraction or count of the training set held out (seeded, stratified) as validation.
    seed : int
        Seeds the validation split (and the 80/20 split of an image folder without train/test).
    image_size : int or (H, W)
        Only for ``folder:``: the size images are resized to.
    download : bool, optional
        For CIFAR-10/100, MNIST and Fashion-MNIST whose files are missing under `data_dir`:
        download them from the official source and verify the published MD5s. None (default)
        downloads unless ``$FASTRES_NO_DOWNLOAD`` is set; False never touches the network. If
        the network is unreachable, the error names the expected path and files.

    Returns
    -------
    Dataset
        float32 NCHW images in [0, 1], int64 labels.
    """
    from fastres.data import cifar, embedded, folder, mnist

    if not isinstance(name, str):
        raise TypeError(f"load_dataset: expected the data set's name as a str, got "
                        f"{type(name).__name__}")
    key = name.strip()
    low = key.lower()
    if low in ("cifar10", "cifar-10"):
        raw = _read_or_fetch(cifar.load_cifar10, "cifar10", resolve_data_dir(data_dir, name),
                             download)
    elif low in ("cifar100", "cifar-100"):
        raw = _read_or_fetch(cifar.load_cifar100, "cifar100", resolve_data_dir(data_dir, name),
                             download)
    elif low == "mnist":
        raw = _read_or_fetch(mnist.load_mnist, "mnist", resolve_data_dir(data_dir, name),
                             download)
    elif low in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        root = data_dir if data_dir is not None else (os.environ.get("FASTRES_DATA") or None)
        raw = _read_or_fetch(mnist.load_fashion_mnist, "fashion-mnist",
                             None if root is None else Path(root).expanduser(), download)
    elif low == "embedded":
        raw = embedded.load_embedded()
    elif low.startswith("folder:"):
        path = Path(key[len("folder:"):]).expanduser()
        if not path.is_absolute() and not path.exists():
            base = data_dir if data_dir is not None else os.environ.get("FASTRES_DATA")
            if base:
                path = Path(base).expanduser() / path
        raw = folder.load_folder(path, image_size=image_size, seed=seed)
    else:
        raise ValueError(f"load_dataset: unknown data set {name!r}; expected one of "
                         f"{', '.join(DATASET_NAMES)}")
    x_train, y_train, x_test, y_test, classes = raw
    return make_dataset(x_train, y_train, x_test, y_test, classes,
                        val_split=val_split, seed=seed, name=key)


def make_dataset(x_train, y_train, x_test, y_test, classes, *, val_split, seed,
                 name: str) -> Dataset:
    """Convert raw reader output (uint8 or float images) and split off validation."""
    def prep(x):
        return to_float_images(x) if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)

    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    tr, va = split_indices(y_train, val_split, seed)
    if len(va):
        x_val, y_val = prep(x_train[va]), y_train[va]
        x_train, y_train = x_train[tr], y_train[tr]
    else:
        x_val = np.zeros((0,) + tuple(x_train.shape[1:]), dtype=np.float32)
        y_val = np.zeros(0, dtype=np.int64)
    return Dataset(prep(x_train), y_train, x_val, y_val, prep(x_test), y_test,
                   [str(c) for c in classes], name)
