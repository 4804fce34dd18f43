"""Image folders: one subfolder per class (sorted names), JPEG/PNG, resized with scikit-image.

Layouts: ``root/train/<class>/*`` with an optional ``root/test/<class>/*`` (a ``test/`` without
class subfolders, as in State Farm's release, is unlabelled and ignored), or ``root/<class>/*``
split 80/20 (seeded, stratified). `load_folder` decodes everything into memory; `FolderDataset`
decodes per batch for sets that do not fit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "FolderDataset", "load_folder", "read_image", "scan_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _size(image_size) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        image_size = (int(image_size), int(image_size))
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in image_size)):
        raise ValueError(f"image_size: expected a positive int or an (h, w) pair of them, got "
                         f"{image_size!r}")
    return int(image_size[0]), int(image_size[1])


def read_image(path: str | Path, image_size=32) -> np.ndarray:
    """Decode one JPEG/PNG as RGB, resize (anti-aliased) and return float32 (3, H, W) in [0, 1]."""
    from skimage.io import imread
    from skimage.transform import resize

    h, w = _size(image_size)
    try:
        img = imread(str(path))
        if img.ndim == 3 and img.shape[-1] == 4:
            from PIL import Image  # imageio hands CMYK (a JPEG mode) over as if it were RGBA

            with Image.open(path) as im:
                if im.mode == "CMYK":
                    img = np.asarray(im.convert("RGB"))
    except Exception as e:  # a corrupt, truncated or unsupported file: each decoder its own
        raise ValueError(f"read_image: cannot decode {path}: {type(e).__name__}: {e}") from e
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]  # drop alpha
    elif img.ndim == 3 and img.shape[-1] in (1, 2):  # gray (and alpha, dropped)
        img = np.repeat(img[..., :1], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{path}: expected a grayscale, RGB or RGBA image, got shape {img.shape}")
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / np.float32(255.0)
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / np.float32(65535.0)
    else:
        img = img.astype(np.float32)
    if img.shape[:2] != (h, w):
        img = resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(img, 0.0, 1.0).astype(np.float32).transpose(2, 0, 1).copy()


def _class_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _labelled(root: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for k, name in enumerate(classes):
        files = _images(root / name) if (root / name).is_dir() else []
        paths += files
        labels += [k] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def scan_folder(root: str | Path, *, seed: int = 0, test_fraction: float = 0.2):
    """Find images and labels without decoding them.

    Returns
    -------
    train_paths, y_train, test_paths, y_test, classes
    """
    from fastres.data.dataset import split_indices

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder data set: {root} is not a directory (expected one "
                                "subfolder of JPEG/PNG images per class, or train/ and test/)")
    train_root = root / "train" if (root / "train").is_dir() else root
    classes = [p.name for p in _class_dirs(train_root)]
    if train_root is root:
        classes = [c for c in classes if c != "test"]
    if not classes:
        raise ValueError(f"folder data set: no class subfolders in {train_root}")
    train_paths, y_train = _labelled(train_root, classes)
    if not train_paths:
        raise ValueError(f"folder data set: no {'/'.join(IMAGE_EXTENSIONS)} images under "
                         f"{train_root}/<class>/")
    test_root = root / "test"
    has_test = (train_root is not root and test_root.is_dir()
                and any((test_root / c).is_dir() for c in classes))
    if has_test:
        test_paths, y_test = _labelled(test_root, classes)
    else:
        tr, te = split_indices(y_train, float(test_fraction), seed)
        test_paths = [train_paths[i] for i in te]
        y_test = y_train[te]
        train_paths = [train_paths[i] for i in tr]
        y_train = y_train[tr]
    return train_paths, y_train, test_paths, y_test, classes


class FolderDataset:
    """Lazily decoded images: ``ds[i]`` -> (3, H, W); ``ds[idx_array]`` -> (n, 3, H, W).

    Indexable and sized like an array, so it can stand in for ``x`` in `BatchLoader`
    (``BatchLoader(ds, ds.labels, ...)``): each batch is decoded when it is prepared.

    Parameters
    ----------
    paths : sequence of paths
    labels : int array, shape (len(paths),)
    image_size : int or (H, W)
    n_workers : int
        Threads decoding one batch (the decoders release the GIL for most of the work).
    """

    def __init__(self, paths, labels, *, image_size=32, n_workers: int = 2):
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"FolderDataset: {len(self.paths)} paths but "
                             f"{len(self.labels)} labels")
        self.image_size = _size(image_size)
        self.n_workers = max(1, int(n_workers))

    @classmethod
    def from_directory(cls, root, *, split: str = "train", image_size=32, seed: int = 0,
                       test_fraction: float = 0.2) -> FolderDataset:
        """The `split` ("train" or "test") of an image folder, as laid out in `scan_folder`."""
        if split not in ("train", "test"):
            raise ValueError(f"FolderDataset: split must be 'train' or 'test', got {split!r}")
        tr, ytr, te, yte, classes = scan_folder(root, seed=seed, test_fraction=test_fraction)
        ds = cls(tr, ytr, image_size=image_size) if split == "train" else cls(
            te, yte, image_size=image_size)
        ds.classes = classes
        return ds

    @property
    def shape(self) -> tuple:
        return (len(self.paths), 3) + self.image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            return read_image(self.paths[idx], self.image_size)
        idx = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
        return self.load(idx)

    def load(self, idx) -> np.ndarray:
        """Decode the images at `idx` into one float32 (n, 3, H, W) array."""
        idx = np.asarray(idx, dtype=np.intp).reshape(-1)
        out = np.empty((len(idx), 3) + self.image_size, dtype=np.float32)

        def one(j):
            out[j] = read_image(self.paths[idx[j]], self.image_size)

        if self.n_workers > 1 and len(idx) > 1:
            with ThreadPoolExecutor(self.n_workers) as pool:
                list(pool.map(one, range(len(idx))))
        else:
            for j in range(len(idx)):
                one(j)
        return out

    def __repr__(self) -> str:
        return f"FolderDataset({len(self)} images, image_size={self.image_size})"


def load_folder(root: str | Path, *, image_size=32, seed: int = 0, test_fraction: float = 0.2):
    """Decode a whole image folder into memory (see `scan_folder` for the layouts).

    Returns
    -------
    x_train float32 (N, 3, H, W) in [0, 1], y_train int64, x_test, y_test, classes
    """
    tr, ytr, te, yte, classes = scan_folder(root, seed=seed, test_fraction=test_fraction)
    x_train = FolderDataset(tr, ytr, image_size=image_size).load(np.arange(len(tr)))
    x_test = FolderDataset(te, yte, image_size=image_size).load(np.arange(len(te)))
    return x_train, ytr, x_test, yte, classes
