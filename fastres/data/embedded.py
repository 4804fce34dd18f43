"""The small real data set shipped inside the package: a stratified MNIST subset.

Built by ``scripts/make_embedded.py`` from the official MNIST files into
``fastres/data/embedded/mnist_small.npz`` (uint8, compressed, loaded without pickle).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["EMBEDDED_FILE", "load_embedded"]

EMBEDDED_FILE = "embedded/mnist_small.npz"


def load_embedded():
    """The shipped MNIST subset.

    Returns
    -------
    x_train (N, 1, 28, 28) uint8, y_train (N,) int64, x_test, y_test, classes ("0".."9")
    """
    ref = resources.files("fastres.data").joinpath(EMBEDDED_FILE)
    if not ref.is_file():
        raise FileNotFoundError(
            f"fastres: the embedded data set {EMBEDDED_FILE} is missing from the installed "
            "package (check [tool.setuptools.package-data] ships fastres/data/embedded/*.npz); "
            "rebuild it with scripts/make_embedded.py MNIST_DIR")
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return (arrays["x_train"][:, None], arrays["y_train"].astype(np.int64),
            arrays["x_test"][:, None], arrays["y_test"].astype(np.int64),
            [str(i) for i in range(10)])
