"""Data-set readers against small files written in the official formats, and the real sets when
FASTRES_DATA is set."""

import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from fastres.data import Dataset, channel_stats, load_dataset, normalize, read_idx, split_indices
from fastres.data.cifar import load_pickle

REAL = os.environ.get("FASTRES_DATA")
needs_real = pytest.mark.skipif(not REAL,
                                reason="FASTRES_DATA is not set: real-data checks skipped")


def _real_subdir(name):
    if not REAL or not (Path(REAL) / name).is_dir():
        pytest.skip(f"{name}/ not found under FASTRES_DATA ({REAL!r})")
    return Path(REAL)


# --------------------------------------------------------------------------- writers


def write_cifar_py(root, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else n_train
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(n) + i) % 10]
        with open(d / name, "wb") as f:  # Python-2-style: protocol 2, byte keys
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, f, protocol=2)
        batches[name] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"num_cases_per_batch": n_train, b"label_names": names,
                     b"num_vis": 3072}, f, protocol=2)
    return batches


def write_idx(path, arr, gz):
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    (gzip.open if gz else open)(path, "wb").write(head + arr.tobytes())


def write_mnist(folder, n_train=20, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        sfx = ".gz" if gz else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{sfx}", x, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte{sfx}", y, gz)
        out[split] = (x, y)
    return out


# --------------------------------------------------------------------------- CIFAR


def test_cifar10_python_layout(tmp_path):
    batches = write_cifar_py(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_val.shape == (0, 3, 32, 32) and ds.y_val.shape == (0,)
    data, labels = batches["data_batch_1"]
    # row layout: 1024 R, 1024 G, 1024 B, each row-major 32x32
    np.testing.assert_array_equal(ds.x_train[0, 1, 0, :] * 255,
                                  data[0, 1024:1056].astype(np.float32))
    np.testing.assert_array_equal(ds.y_train[:6], labels)
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][1])
    assert ds.classes[6] == "frog" and ds.name == "cifar10"
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_cifar10_binary_layout_and_preference(tmp_path):
    rng = np.random.default_rng(1)
    b = tmp_path / "cifar-10-batches-bin"
    b.mkdir()
    recs = {}
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        lab = rng.integers(0, 10, size=(3, 1), dtype=np.uint8)
        pix = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        np.hstack([lab, pix]).tofile(b / name)
        recs[name] = (lab[:, 0], pix)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32)
    np.testing.assert_array_equal(ds.y_train[:3], recs["data_batch_1.bin"][0])
    np.testing.assert_array_equal(
        np.rint(ds.x_test * 255).astype(np.uint8).reshape(3, -1), recs["test_batch.bin"][1])
    # with both layouts present, the python one wins
    write_cifar_py(tmp_path)
    assert load_dataset("cifar10", tmp_path).x_train.shape == (30, 3, 32, 32)


def test_cifar_binary_bad_size(tmp_path):
    b = tmp_path / "cifar-10-batches-bin"
    b.mkdir()
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        np.zeros(3073 + 5, np.uint8).tofile(b / name)
    with pytest.raises(ValueError, match="3073-byte records"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("labels, shown", [
    ([0.7, 1.2, 2.0, 3.0, 4.0, 5.0], "float64 [0.7, 1.2, 2.0]"),  # would truncate to 0, 1
    (np.array([2**63, 1, 2, 3, 4, 5], np.uint64),
     "uint64 [9223372036854775808, 1, 2]"),  # would wrap round to a negative label
    (["a", "b", "c", "d", "e", "f"], "<U1 ['a', 'b', 'c']"),
])
def test_cifar_labels_must_be_integers(tmp_path, labels, shown):
    write_cifar_py(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(path, "wb") as f:
        pickle.dump({b"labels": labels, b"data": np.zeros((6, 3072), np.uint8)}, f, protocol=2)
    with pytest.raises(ValueError, match=f"data_batch_2: b'labels' must be integers "
                                         f"\\(int64 range\\), got {re.escape(shown)}"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_python_layout(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(2)
    for name, n in (("train", 8), ("test", 4)):
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(range(90, 90 + n)),
                         b"coarse_labels": [1] * n}, f, protocol=2)
    with open(d / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f, protocol=2)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.num_classes == 100
    np.testing.assert_array_equal(ds.y_train, np.arange(90, 98))
    assert ds.classes[99] == "c99"


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "numpy.load"])
def test_hostile_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / "PWNED"
    d = tmp_path / "cifar-10-batches-py"
    write_cifar_py(tmp_path)
    if payload == "os.system":
        obj = {b"data": _Evil(marker), b"labels": []}
    elif payload == "builtins.eval":
        class E:
            def __reduce__(self):
                return (eval, (f"open({str(marker)!r}, 'w')",))
        obj = {b"data": E()}
    else:
        class E:
            def __reduce__(self):
                return (np.load, (str(marker),))
        obj = {b"data": E()}
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load .*data_batch_3"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_restricted_unpickler_reads_numpy2_pickles(tmp_path):
    # numpy 2 writes numpy._core.multiarray._reconstruct; Python 3 writes bytes via _codecs
    p = tmp_path / "x.pkl"
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    p.write_bytes(pickle.dumps({"data": arr, "n": [1, 2], "s": "t", "b": b""}, protocol=2))
    d = load_pickle(p)
    np.testing.assert_array_equal(d["data"], arr)


def test_missing_cifar_message(tmp_path):
    with pytest.raises(FileNotFoundError) as exc:
        load_dataset("cifar10", tmp_path)
    msg = str(exc.value)
    for part in ("cifar-10-batches-py", "data_batch_1", "test_batch", "cs.toronto.edu",
                 "FASTRES_NO_DOWNLOAD", str(tmp_path)):  # set by conftest: no network in tests
        assert part in msg


def test_no_data_dir(monkeypatch):
    monkeypatch.delenv("FASTRES_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="FASTRES_DATA"):
        load_dataset("mnist")


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet", "/nonexistent")


# --------------------------------------------------------------------------- MNIST / IDX


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    ref = write_mnist(tmp_path / "mnist", gz=gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(np.rint(ds.x_train[:, 0] * 255).astype(np.uint8), ref["train"][0])
    np.testing.assert_array_equal(ds.y_test, ref["t10k"][1])
    assert ds.classes == [str(i) for i in range(10)]


def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch):
    write_mnist(tmp_path / "fashion-mnist")
    monkeypatch.setenv("FASTRES_DATA", str(tmp_path))
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.classes[9] == "Ankle boot"


def test_idx_errors(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 20)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(p)
    write_idx(p, np.zeros((2, 3, 3)), gz=False)
    with pytest.raises(ValueError, match="1 dimension"):
        read_idx(p, ndim=1)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\).*holds 17 bytes"):
        read_idx(p)


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path / "mnist", gz=False)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(9), gz=False)
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        load_dataset("mnist", tmp_path)


def test_mnist_labels_must_be_unsigned_bytes(tmp_path):
    # a label file of signed bytes (-1) or float32 (7.7) is no class index: refused, not
    # passed on as -1 or truncated to 7
    write_mnist(tmp_path / "mnist", gz=False)
    p = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    for code, values in ((0x09, np.array([-1] * 10, ">i1")), (0x0D, np.full(10, 7.7, ">f4"))):
        p.write_bytes(bytes([0, 0, code, 1]) + (10).to_bytes(4, "big") + values.tobytes())
        with pytest.raises(ValueError, match=f"mnist test labels: expected uint8 .IDX type "
                                             f"0x08., got {values.dtype.newbyteorder('=')}"):
            load_dataset("mnist", tmp_path)


def test_corrupt_data_files_are_named(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 8] = b"\xff" * 8  # inside the deflate stream
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: cannot read"):
        load_dataset("mnist", tmp_path)
    write_cifar_py(tmp_path / "c")
    for content in (b"", b"\x80\x02}q\x00(X"):  # empty, truncated
        (tmp_path / "c" / "cifar-10-batches-py" / "test_batch").write_bytes(content)
        with pytest.raises(ValueError, match="test_batch: not a readable pickle"):
            load_dataset("cifar10", tmp_path / "c")
    (tmp_path / "c" / "cifar-10-batches-py" / "test_batch").unlink()
    write_cifar_py(tmp_path / "d")
    with open(tmp_path / "d" / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"cat", b"dog"]}, f, protocol=2)
    with pytest.raises(ValueError, match="batches.meta: expected 10 class names, got 2"):
        load_dataset("cifar10", tmp_path / "d")
    with pytest.raises(TypeError, match="load_dataset: expected the data set's name as a str"):
        load_dataset(None)


def test_missing_mnist_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*yann\.lecun"):
        load_dataset("mnist", tmp_path)


# --------------------------------------------------------------------------- splits and stats


def test_val_split_stratified_and_seeded(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=100)
    a = load_dataset("mnist", tmp_path, val_split=0.2, seed=3)
    b = load_dataset("mnist", tmp_path, val_split=0.2, seed=3)
    c = load_dataset("mnist", tmp_path, val_split=20, seed=4)
    assert a.x_val.shape == (20, 1, 28, 28) and a.x_train.shape == (80, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(a.y_val), [2] * 10)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert len(c.y_val) == 20 and not np.array_equal(a.x_val, c.x_val)


def test_split_indices_partition_and_errors():
    y = np.array([0] * 7 + [1] * 3)
    tr, va = split_indices(y, 0.5, seed=0)
    assert len(va) == 5 and sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
    for bad, err in ((1.0, ValueError), (10, ValueError), (-1, ValueError), (True, TypeError),
                     ("0.1", TypeError)):
        with pytest.raises(err, match="val_split"):
            split_indices(y, bad)


def test_channel_stats_and_normalize(rng):
    x = rng.random((50, 3, 5, 6)).astype(np.float32)
    mean, std = channel_stats(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x64.std(axis=(0, 2, 3)), rtol=1e-9)
    z = normalize(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.astype(np.float64).mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.astype(np.float64).std(axis=(0, 2, 3)), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="3 values"):
        normalize(x, mean[:2], std[:2])


# --------------------------------------------------------------------------- embedded


def test_embedded():
    ds = load_dataset("embedded")
    assert ds.x_train.shape == (6000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.y_train), [600] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    assert 0.12 < ds.x_train.mean() < 0.145  # MNIST's 0.1307
    path = Path(__import__("fastres.data", fromlist=["x"]).__file__).parent / "embedded"
    assert (path / "mnist_small.npz").stat().st_size < 2 * 1024 * 1024


# --------------------------------------------------------------------------- real data


@needs_real
def test_real_cifar10():
    root = _real_subdir("cifar-10-batches-py")
    ds = load_dataset("cifar10", root)
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.y_train[0] == 6 and ds.y_test[0] == 3
    np.testing.assert_array_equal(np.bincount(ds.y_train), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    mean, std = channel_stats(ds.x_train)
    # float32 x/255 conversion moves the means by ~3e-6 grey levels
    np.testing.assert_allclose(mean * 255, [125.30691805, 122.95039414, 113.86538318], atol=1e-4)
    np.testing.assert_allclose(std * 255, [62.99321928, 62.08870764, 66.70489964], atol=1e-4)
    np.testing.assert_array_equal(np.rint(ds.x_train[0, 0, 0, :3] * 255),
                                  [59, 43, 50])  # first row bytes
    assert ds.classes[3] == "cat"


@needs_real
def test_real_mnist():
    root = _real_subdir("mnist")
    ds = load_dataset("mnist", root, val_split=0.1)
    assert ds.x_train.shape == (54000, 1, 28, 28) and ds.x_val.shape == (6000, 1, 28, 28)
    full = load_dataset("mnist", root)
    assert full.y_train[0] == 5 and full.y_test[0] == 7
    np.testing.assert_array_equal(
        np.bincount(full.y_train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    np.testing.assert_array_equal(
        np.bincount(full.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    mean, std = channel_stats(full.x_train)
    np.testing.assert_allclose([mean[0], std[0]], [0.1307, 0.3081], atol=1e-4)
