"""Build fastres/data/embedded/mnist_small.npz: a stratified, seeded MNIST subset.

    python scripts/make_embedded.py /path/to/mnist [--train 6000] [--test 1000] [--seed 0]

MNIST_DIR holds the four official IDX files (gzipped or not). The subset takes the same number
of images from every digit (train/10 and test/10), chosen with a seeded generator, in the
original file order, stored as uint8 with np.savez_compressed. It must stay under 2 MB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    from fastres.data.mnist import load_idx_dataset
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fastres.data.mnist import load_idx_dataset

LIMIT = 2 * 1024 * 1024
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "fastres" / "data" / "embedded" / "mnist_small.npz"
)


def stratified_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes = np.unique(y)
    if n % len(classes):
        raise SystemExit(f"count {n} is not a multiple of {len(classes)} classes")
    per = n // len(classes)
    picks = [rng.choice(np.flatnonzero(y == c), size=per, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir", type=Path, help="folder with the official MNIST IDX files")
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    # the mnist folder itself, or a data dir holding mnist/
    d = args.mnist_dir / "mnist" if (args.mnist_dir / "mnist").is_dir() else args.mnist_dir
    x_train, y_train, x_test, y_test, _ = load_idx_dataset(d)
    rng = np.random.default_rng(args.seed)
    tr = stratified_subset(y_train, args.train, rng)
    te = stratified_subset(y_test, args.test, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x_train=x_train[tr, 0], y_train=y_train[tr].astype(np.uint8),
                        x_test=x_test[te, 0], y_test=y_test[te].astype(np.uint8))
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(tr)} train + {len(te)} test, {size / 1e6:.2f} MB")
    if size >= LIMIT:
        print(f"too large (limit {LIMIT} bytes): rerun with smaller --train/--test, e.g. "
              "--train 5000 --test 1000", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
