"""BatchLoader: seeded per-epoch batches, coverage, prefetch thread behaviour."""

import threading
import time

import numpy as np
import pytest

from fastres.data import BatchLoader, parse_augment


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((103, 3, 8, 8)).astype(np.float32), np.arange(103) % 10


def _collect(loader, epoch):
    return [(xb.copy(), yb.copy()) for xb, yb in loader.iter_epoch(epoch)]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_same_seed_and_epoch_identical(data, prefetch):
    x, y = data
    aug = parse_augment("crop:2,flip,cutout:3,noise:0.01")
    a = _collect(BatchLoader(x, y, 16, augment=aug, seed=3, prefetch=prefetch), 4)
    b = _collect(BatchLoader(x, y, 16, augment=aug, seed=3, prefetch=0), 4)
    assert len(a) == len(b) == 7
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert xa.dtype == np.float32
    c = _collect(BatchLoader(x, y, 16, augment=aug, seed=3, prefetch=prefetch), 5)
    assert not np.array_equal(a[0][1], c[0][1])
    d = _collect(BatchLoader(x, y, 16, augment=aug, seed=4, prefetch=prefetch), 4)
    assert not np.array_equal(a[0][0], d[0][0])


def test_resume_reproduces(data):
    x, y = data
    aug = parse_augment("crop,flip")
    run = BatchLoader(x, y, 32, augment=aug, seed=1)
    full = [_collect(run, e) for e in range(3)]
    resumed = BatchLoader(x, y, 32, augment=aug, seed=1)
    for e in (2, 1):  # a fresh loader asked for epoch e gives epoch e, whatever ran before
        for (xa, ya), (xb, yb) in zip(full[e], _collect(resumed, e), strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_every_sample_once_per_epoch(data):
    x, y = data
    loader = BatchLoader(x, np.arange(103), 10, seed=0)
    assert len(loader) == 11
    seen = np.concatenate([yb for _, yb in loader.iter_epoch(0)])
    assert sorted(seen.tolist()) == list(range(103))
    assert not np.array_equal(seen, np.arange(103))
    for xb, yb in loader.iter_epoch(1):
        np.testing.assert_array_equal(xb, x[yb])  # images stay paired with labels
    dropped = BatchLoader(x, y, 10, drop_last=True)
    assert len(dropped) == 10 and all(len(yb) == 10 for _, yb in dropped.iter_epoch(0))
    ordered = np.concatenate([yb for _, yb in BatchLoader(x, np.arange(103), 10,
                                                          shuffle=False).iter_epoch(0)])
    np.testing.assert_array_equal(ordered, np.arange(103))


def test_iter_advances_epoch(data):
    x, y = data
    loader = BatchLoader(x, y, 50, seed=2)
    first = [yb for _, yb in loader]
    second = [yb for _, yb in loader]
    assert loader.epoch == 2
    np.testing.assert_array_equal(first[0], next(iter(BatchLoader(x, y, 50, seed=2)))[1])
    assert not np.array_equal(first[0], second[0])


def test_worker_exception_propagates(data):
    x, y = data
    calls = []

    def bad(xb, rng):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("augment exploded")
        return xb

    loader = BatchLoader(x, y, 10, augment=bad, prefetch=2)
    got = 0
    with pytest.raises(RuntimeError, match="augment exploded"):
        for _ in loader.iter_epoch(0):
            got += 1
    assert got == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("BatchLoader")]


def test_early_stop_cleans_up_thread(data):
    x, y = data
    before = threading.active_count()
    gen = BatchLoader(x, y, 5, prefetch=1).iter_epoch(0)
    next(gen)
    time.sleep(0.05)  # let the worker block on the full queue
    gen.close()
    assert threading.active_count() == before


def test_bad_arguments(data):
    x, y = data
    with pytest.raises(ValueError, match="103 samples but y has 5"):
        BatchLoader(x, y[:5], 4)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(x, y, 0)
    with pytest.raises(TypeError, match="augment"):
        BatchLoader(x, y, 4, augment="crop")


@pytest.mark.parametrize("kw, message", [
    (dict(batch_size=2.5), "batch_size must be an int >= 1, got 2.5"),  # not truncated to 2
    (dict(batch_size=None), "batch_size must be an int >= 1, got None"),
    (dict(batch_size=2, seed=1.7), "seed must be an int >= 0, got 1.7"),
    (dict(batch_size=2, prefetch=-1), "prefetch must be an int >= 0, got -1"),
])
def test_loader_takes_ints_only(kw, message):
    with pytest.raises(ValueError, match=f"BatchLoader: {message}"):
        BatchLoader(np.zeros((4, 1)), np.zeros(4), **kw)


@pytest.mark.parametrize("spec", ["rotate:inf", "noise:nan", "zoom:-inf"])
def test_augment_arguments_must_be_finite(spec):
    with pytest.raises(ValueError, match=f"parse_augment: bad argument in '{spec}': expected a "
                                         "finite number"):
        parse_augment(spec)
