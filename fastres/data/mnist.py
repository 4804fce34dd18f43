"""MNIST and Fashion-MNIST from IDX files, gzipped or not."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from fastres.data.dataset import missing_files_error

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "load_idx_dataset", "load_mnist",
           "read_idx"]

MNIST_URL = (
    "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
)
FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip detected from its magic bytes, not the name).

    Checks the magic number (two zero bytes, a type code, the number of dimensions), the
    expected `ndim` and that the payload size matches the header exactly.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read ({exc}); the file may be truncated or corrupt") \
            from exc
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic {buf[:4].hex() or 'empty'}; "
                         "expected 0000 08 0d, e.g. 0x00000803 for images, 0x00000801 for labels)")
    nd = buf[3]
    if ndim is not None and nd != ndim:
        raise ValueError(f"{path}: expected an IDX file with {ndim} dimension(s) (magic "
                         f"0x0000080{ndim}), got {nd} (magic 0x{buf[:4].hex()})")
    if len(buf) < 4 + 4 * nd:
        raise ValueError(f"{path}: header truncated ({len(buf)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(buf, dtype=">u4", count=nd, offset=4))
    dtype = np.dtype(_IDX_DTYPES[buf[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(buf) - 4 - 4 * nd
    if payload != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data) but the "
                         f"file holds {payload} bytes")
    arr = np.frombuffer(buf, dtype=dtype, offset=4 + 4 * nd).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find(folder: Path, stem: str) -> Path | None:
    # official names, gzipped or not; also the "train-images.idx3-ubyte" spelling some mirrors use
    alt = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, alt + ".gz", alt):
        if (folder / name).exists():
            return folder / name
    return None


def load_idx_dataset(folder: str | Path, dataset: str = "mnist", url: str = MNIST_URL,
                     classes: list[str] | None = None, extra: str = ""):
    """The four MNIST-named IDX files in `folder` (any MNIST-format set, e.g. KMNIST).

    Returns
    -------
    x_train (N, 1, 28, 28) uint8, y_train (N,) int64, x_test, y_test, classes
    """
    folder = Path(folder)
    classes = [str(i) for i in range(10)] if classes is None else classes
    paths = {k: _find(folder, v) for k, v in _FILES.items()}
    if any(p is None for p in paths.values()):
        missing = [_FILES[k] + "(.gz)" for k, p in paths.items() if p is None]
        raise missing_files_error(dataset, folder, missing, url, extra=extra)
    x_train = read_idx(paths["train_images"], ndim=3)
    y_train = read_idx(paths["train_labels"], ndim=1)
    x_test = read_idx(paths["test_images"], ndim=3)
    y_test = read_idx(paths["test_labels"], ndim=1)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{dataset} {split} images: expected uint8 (N, 28, 28), got "
                             f"{x.dtype} {x.shape}")
        if len(x) != len(y):
            raise ValueError(f"{dataset} {split}: {len(x)} images but {len(y)} labels")
        if y.dtype != np.uint8:  # the format's labels are unsigned bytes: -1 or 7.7 is no class
            raise ValueError(f"{dataset} {split} labels: expected uint8 (IDX type 0x08), got "
                             f"{y.dtype}")
        if y.size and int(y.max()) >= len(classes):
            raise ValueError(f"{dataset} {split}: label {int(y.max())} out of range "
                             f"[0, {len(classes)})")
    return (x_train[:, None], y_train.astype(np.int64), x_test[:, None],
            y_test.astype(np.int64), list(classes))


def load_mnist(data_dir: str | Path):
    """MNIST from ``data_dir/mnist/`` (the four official IDX files, ``.gz`` or raw).

    Returns
    -------
    x_train (60000, 1, 28, 28) uint8, y_train (60000,) int64, x_test, y_test, classes
    """
    return load_idx_dataset(Path(data_dir) / "mnist", "mnist", MNIST_URL,
                         [str(i) for i in range(10)])


def load_fashion_mnist(data_dir: str | Path | None = None):
    """Fashion-MNIST from ``data_dir/fashion-mnist/``, else ``/usr/share/datasets/fashion-mnist``.

    `data_dir` defaults to ``$FASTRES_DATA``; the system folder is what Debian's
    ``dataset-fashion-mnist`` package installs.
    """
    if data_dir is None:
        data_dir = os.environ.get("FASTRES_DATA") or None
    candidates = ([Path(data_dir).expanduser() / "fashion-mnist"] if data_dir else [])
    candidates.append(FASHION_SYSTEM_DIR)
    for folder in candidates:
        if all(_find(folder, stem) for stem in _FILES.values()):
            return load_idx_dataset(folder, "fashion-mnist", FASHION_URL, FASHION_MNIST_CLASSES)
    # none complete: raise the missing-files error for the first candidate
    return load_idx_dataset(candidates[0], "fashion-mnist", FASHION_URL, FASHION_MNIST_CLASSES,
                         extra=f"(On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` "
                               f"installs them under {FASHION_SYSTEM_DIR}, which is also read.)")
