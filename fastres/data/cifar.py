"""CIFAR-10 / CIFAR-100 readers: the official python-pickle layout and the CIFAR-10 binary layout.

The pickles are read with `RestrictedUnpickler`, which resolves only the handful of globals those
files contain (NumPy's array reconstruction), so a hostile file cannot run code on load.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fastres.data.dataset import missing_files_error

__all__ = [
    "CIFAR10_CLASSES",
    "RestrictedUnpickler",
    "load_cifar10",
    "load_cifar100",
    "load_pickle",
]

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
_PIXELS = 3 * 32 * 32


def _allowed_globals() -> dict:
    from numpy._core import multiarray

    reconstruct = multiarray._reconstruct
    return {
        # NumPy arrays pickled by numpy 1.x (the official files) and by numpy 2.x. Resolved here
        # directly, not via import, so numpy 2 does not warn about the numpy.core alias.
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1");
        # the plain containers appear as globals only for empty/odd values.
        ("_codecs", "encode"): __import__("_codecs").encode,
        ("builtins", "bytes"): bytes,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "int"): int,
        ("builtins", "str"): str,
        ("__builtin__", "bytes"): bytes,
        ("__builtin__", "dict"): dict,
        ("__builtin__", "list"): list,
        ("__builtin__", "int"): int,
        ("__builtin__", "str"): str,
    }


class RefusedPickle(pickle.UnpicklingError):
    """A data pickle asked for something RestrictedUnpickler does not admit."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only the globals the official CIFAR pickles use.

    Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``...) raises
    ``pickle.UnpicklingError`` before it is even imported.
    """

    def __init__(self, file, *, source: str = "<stream>"):
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise RefusedPickle(
                f"fastres: refusing to load {module}.{name} from {self._source}: only NumPy "
                "arrays, dicts, lists, bytes, ints and strs are allowed in a data pickle "
                "(the file may be corrupt or hostile)") from None

    def persistent_load(self, pid):
        raise RefusedPickle(
            f"fastres: refusing persistent id {pid!r} in {self._source}")


def load_pickle(path: str | Path):
    """Unpickle a data file with `RestrictedUnpickler` (``encoding="bytes"``)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, source=str(path)).load()
        except RefusedPickle:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); "
                             "the file may be truncated or corrupt") from exc


def _key(d: dict, key: str, path: Path):
    """d[b'key'] (or d['key'] for files written with str keys)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise ValueError(f"{path}: expected a dict with key {key!r}, found keys "
                     f"{sorted(map(repr, d))[:8]}")


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = load_pickle(path)
    if not isinstance(d, dict):
        raise TypeError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    data = np.asarray(_key(d, "data", path))
    labels = np.asarray(_key(d, label_key, path))
    if labels.dtype.kind not in "iu" or (labels.dtype.kind == "u" and labels.size
                                         and labels.max() > np.iinfo(np.int64).max):
        # not cast: floats would be truncated to other classes, huge values wrap round
        raise ValueError(f"{path}: b'{label_key}' must be integers (int64 range), got "
                         f"{labels.dtype} {labels.ravel()[:3].tolist()}")
    labels = labels.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise ValueError(f"{path}: b'data' must be uint8 of shape (N, {_PIXELS}), got "
                         f"{data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape} labels")
    # row = 1024 R, 1024 G, 1024 B values, each plane row-major 32x32
    return data.reshape(-1, 3, 32, 32), labels


def _names(meta: Path, key: str) -> list[str]:
    if not meta.exists():
        return []
    d = load_pickle(meta)
    names = _key(d, key, meta) if isinstance(d, dict) else None
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"{meta}: expected {key!r} as a list of class names, got "
                         f"{type(names).__name__}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_bin(path: Path, label_bytes: int, label_index: int):
    rec = label_bytes + _PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % rec:
        raise ValueError(f"{path}: size {raw.size} bytes is not a whole number of "
                         f"{rec}-byte records ({label_bytes} label byte(s) + {_PIXELS} pixels)")
    raw = raw.reshape(-1, rec)
    return (np.ascontiguousarray(raw[:, label_bytes:]).reshape(-1, 3, 32, 32),
            raw[:, label_index].astype(np.int64))


def _check_labels(y: np.ndarray, k: int, where: Path):
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"{where}: labels must be in [0, {k}), got range "
                         f"[{y.min()}, {y.max()}]")


def load_cifar10(data_dir: str | Path):
    """CIFAR-10 from ``data_dir/cifar-10-batches-py`` (preferred) or ``cifar-10-batches-bin``.

    Returns
    -------
    x_train (50000, 3, 32, 32) uint8, y_train (50000,) int64, x_test, y_test, classes
    """
    data_dir = Path(data_dir)
    py = data_dir / "cifar-10-batches-py"
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    if all((py / f).exists() for f in train_files + ["test_batch"]):
        parts = [_read_batch(py / f, "labels") for f in train_files]
        x_test, y_test = _read_batch(py / "test_batch", "labels")
        classes = _names(py / "batches.meta", "label_names") or CIFAR10_CLASSES
        if len(classes) != 10:
            raise ValueError(f"{py / 'batches.meta'}: expected 10 class names, got "
                             f"{len(classes)}")
    else:
        b = data_dir / "cifar-10-batches-bin"
        bin_files = [f + ".bin" for f in train_files]
        if not all((b / f).exists() for f in bin_files + ["test_batch.bin"]):
            raise missing_files_error(
                "cifar10", py, train_files + ["test_batch", "batches.meta"], CIFAR_URL,
                extra=f"(Extract cifar-10-python.tar.gz into {data_dir}; the binary version, "
                      f"{', '.join(bin_files)}, test_batch.bin in {b}, is read too.)")
        parts = [_read_bin(b / f, 1, 0) for f in bin_files]
        x_test, y_test = _read_bin(b / "test_batch.bin", 1, 0)
        meta = b / "batches.meta.txt"
        classes = ([ln.strip() for ln in meta.read_text().splitlines() if ln.strip()]
                   if meta.exists() else CIFAR10_CLASSES)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for y in (y_train, y_test):
        _check_labels(y, 10, data_dir)
    return x_train, y_train, x_test, y_test, classes


def load_cifar100(data_dir: str | Path):
    """CIFAR-100 (fine labels) from ``data_dir/cifar-100-python`` or ``cifar-100-binary``."""
    data_dir = Path(data_dir)
    py = data_dir / "cifar-100-python"
    if (py / "train").exists() and (py / "test").exists():
        x_train, y_train = _read_batch(py / "train", "fine_labels")
        x_test, y_test = _read_batch(py / "test", "fine_labels")
        classes = _names(py / "meta", "fine_label_names")
    else:
        b = data_dir / "cifar-100-binary"
        if not ((b / "train.bin").exists() and (b / "test.bin").exists()):
            raise missing_files_error(
                "cifar100", py, ["train", "test", "meta"], CIFAR_URL,
                extra=f"(Extract cifar-100-python.tar.gz into {data_dir}.)")
        # records: coarse label byte, fine label byte, 3072 pixels
        x_train, y_train = _read_bin(b / "train.bin", 2, 1)
        x_test, y_test = _read_bin(b / "test.bin", 2, 1)
        meta = b / "fine_label_names.txt"
        classes = ([ln.strip() for ln in meta.read_text().splitlines() if ln.strip()]
                   if meta.exists() else [])
    classes = classes or [str(i) for i in range(100)]
    for y in (y_train, y_test):
        _check_labels(y, len(classes), data_dir)
    return x_train, y_train, x_test, y_test, classes
