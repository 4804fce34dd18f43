import numpy as np
import pytest

import fastres
import fastres.functional as F
from fastres.functional.activation import ReluCache
import fastres.reference as R
from fastres.gradcheck import numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["cached", "streamed"])
def stores(request, monkeypatch):
    """Run a test with ordinary stores and again with every output streamed past the caches
    (fastres._config.streaming): the values written must not differ."""
    if request.param == "streamed":
        import fastres._config as cfg
        monkeypatch.setattr(cfg, "STREAM_FROM_BYTES", 0)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (4, 70000)])
def test_relu_matches_reference(dtype, shape, rng, stores):
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:3] = 0  # the gradient at exactly 0 is 0
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = F.relu_forward(x)
    ref, rcache = R.relu_forward(x.astype(np.float64))
    assert out.shape == shape and out.dtype == dtype
    np.testing.assert_array_equal(out, ref.astype(dtype))
    dx = F.relu_backward(dout, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx,
                                  R.relu_backward(dout.astype(np.float64), rcache).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_keeps_nan(dtype, stores):
    # max(NaN, 0) is NaN, as np.maximum (the reference) and torch.relu give: a NaN activation
    # must reach the loss, not turn into a finite 0; its gradient is 0, as the reference's
    x = np.array([np.nan, -1, 2, 0, -0.0, np.inf, -np.inf] * 3, dtype)
    out, cache = F.relu_forward(x)
    ref, rcache = R.relu_forward(x)
    np.testing.assert_array_equal(out, ref)
    assert not np.signbit(out[x == 0]).any()
    dout = np.ones_like(x)
    np.testing.assert_array_equal(F.relu_backward(dout, cache), R.relu_backward(dout, rcache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_matches_reference(dtype, rng, stores):
    a, b = (rng.standard_normal((3, 4, 5, 6)).astype(dtype) for _ in range(2))
    out, cache = F.add_forward(a, b)
    np.testing.assert_array_equal(out, a + b)
    da, db = F.add_backward(a, cache)
    np.testing.assert_array_equal(da, a)
    np.testing.assert_array_equal(db, a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 37, 70001])  # vector tails, several work chunks
def test_gated_add_is_the_sum_through_a_relu(dtype, n, rng, stores):
    a, b, g = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    g[::5] = 0  # the ReLU's gradient is 0 at 0
    out = F.add_forward(a, b, gate=g)[0]
    np.testing.assert_array_equal(out, F.relu_backward(a + b, ReluCache(g)))
    assert not np.signbit(out[g <= 0]).any()  # +0 where masked, as relu_backward


def test_relu_numerical_gradient(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    dout = rng.standard_normal(x.shape)
    _, cache = F.relu_forward(x)
    num = numerical_grad(lambda: F.relu_forward(x)[0], x, dout)
    np.testing.assert_allclose(F.relu_backward(dout, cache), num, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_dropout_matches_reference(dtype, p, rng, stores):
    x = rng.standard_normal((8, 3, 6, 6)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, cache = F.dropout_forward(x, p=p, training=True, rng=np.random.default_rng(7))
    ref, rcache = R.dropout_forward(x, p=p, training=True, rng=np.random.default_rng(7))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    np.testing.assert_allclose(F.dropout_backward(dout, cache), R.dropout_backward(dout, rcache),
                               **TOL[dtype])
    if 0 < p < 1:  # about a fraction p is dropped, the rest scaled by 1/(1-p)
        dropped = np.mean(out == 0)
        assert abs(dropped - p) < 0.05
        kept = out != 0
        np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-6)


def test_dropout_eval_is_identity(rng):
    x = rng.standard_normal((4, 5))
    out, cache = F.dropout_forward(x, p=0.5, training=False, rng=rng)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(F.dropout_backward(x, cache), x)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: F.relu_forward([1.0, 2.0]), TypeError,
         r"relu_forward: expected x to be a numpy.ndarray"),
        (lambda: F.relu_forward(np.ones(3, dtype=np.int64)), TypeError,
         r"relu_forward: expected x of dtype float32 or float64, got int64"),
        (lambda: F.relu_forward(np.ones((0, 3))), ValueError,
         r"relu_forward: expected a non-empty x, got shape \(0, 3\)"),
        (lambda: F.add_forward(np.ones((2, 3)), np.ones((3, 2))), ValueError,
         r"add_forward: expected b of shape \(2, 3\), got \(3, 2\)"),
        (lambda: F.add_forward(np.ones(3), np.ones(3, np.float32)), TypeError,
         r"add_forward: expected all operands to share one dtype, got a=float64, b=float32"),
        (lambda: F.add_forward(np.ones(3), np.ones(3), gate=np.ones(4)), ValueError,
         r"add_forward: expected gate of shape \(3,\), got \(4,\)"),
        (lambda: F.add_forward(np.ones(3), np.ones(3), gate=np.ones(3, np.float32)), TypeError,
         r"add_forward: expected all operands to share one dtype, got a=float64, gate=float32"),
        (lambda: F.dropout_forward(np.ones(3), p=1.5, training=True, rng=np.random.default_rng()),
         ValueError, r"dropout_forward: expected p in \[0.0, 1.0\], got 1.5"),
        (lambda: F.dropout_forward(np.ones(3), p=0.5, training=True, rng=3), TypeError,
         r"dropout_forward: expected rng to be a numpy.random.Generator, got int"),
    ],
)
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_relu_backward_rejects_wrong_dout():
    _, cache = F.relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError,
                       match=r"relu_backward: expected dout of shape \(2, 3\), got \(3, 2\)"):
        F.relu_backward(np.ones((3, 2)), cache)


def test_thread_invariance(rng):
    x = rng.standard_normal((64, 16, 32, 32)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    runs = []
    for t in (1, 2, 3):
        out, cache = F.relu_forward(x, n_threads=t)
        runs.append((out, cache.mask, F.relu_backward(dout, cache, n_threads=t)))
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 255, 256, 257, 32768 + 300])  # partial and whole bit blocks
def test_relu_keeps_one_bit_per_element(dtype, n, rng, stores):
    # relu_forward's cache is a bit mask, 32 bytes per started block of 256 elements (not the
    # output): each element's bit is where fr_elementwise.h says, and the backward reads it back
    x = rng.standard_normal(n).astype(dtype)
    out, cache = F.relu_forward(x)
    assert cache.out is None and cache.mask.nbytes == -(-n // 256) * 32
    lanes = 32 // x.itemsize
    words = cache.mask.view(np.uint32 if dtype == np.float32 else np.uint64)
    bits = 256 // lanes
    for i in range(n):
        block, r = divmod(i, 256)
        word = words[block * lanes + r % lanes]
        assert (int(word) >> (bits - 1 - r // lanes)) & 1 == (x[i] > 0)
    np.testing.assert_array_equal(F.relu_backward(x, cache), out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_reads_any_mask_safely(dtype, rng):
    # whatever bytes a mask holds (a cache built by hand), each element of dx is dout's or 0
    n = 1000
    dout = rng.standard_normal(n).astype(dtype)
    mask = rng.integers(0, 256, -(-n // 256) * 32, dtype=np.uint8)
    dx = F.relu_backward(dout, ReluCache(None, mask, (n,), np.dtype(dtype)))
    assert np.all((dx == dout) | (dx == 0))


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="set_num_threads"):
        fastres.set_num_threads(0)
    with pytest.raises(ValueError, match=r"set_num_threads: expected an int in \[1, 1024\]"):
        fastres.set_num_threads(100000)  # the OpenMP runtime would kill the process
    with pytest.raises(ValueError, match=r"relu_forward: expected n_threads to be an int in "
                                         r"\[1, 1024\] or None, got 1025"):
        F.relu_forward(np.ones(3), n_threads=1025)
    fastres.set_num_threads(1)
    assert fastres.get_num_threads() == 1
    fastres.set_num_threads(None)


@pytest.mark.parametrize("env, expected", [("1", 1), ("3", 3), ("2,1", 2), ("5000", 1024),
                                          ("", None)])
def test_omp_num_threads_is_the_default(env, expected):
    # read at import, as the OpenMP runtime reads it: a fresh interpreter per value
    import os
    import subprocess
    import sys
    code = ("import os, fastres; n = fastres.get_num_threads(); "
            "fastres.set_num_threads(5); m = fastres.get_num_threads(); "
            "fastres.set_num_threads(None); print(n, m, fastres.get_num_threads(), "
            "len(os.sched_getaffinity(0)))")
    # the child imports the fastres this process imported (installed, or built in place), from
    # its own directory: not a source tree without compiled kernels that happens to be the cwd
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastres.__file__)))
    env_vars = {**os.environ, "OMP_NUM_THREADS": env, "PYTHONPATH": home}
    run = subprocess.run([sys.executable, "-c", code], env=env_vars, cwd=home,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = run.stdout.split()
    n, m, back, cpus = map(int, out)
    assert (n, m, back) == (expected or cpus, 5, expected or cpus)


def test_last_level_cache_size_is_read_as_linux_describes_it(tmp_path):
    # /sys/devices/system/cpu/cpu0/cache/index*/size, as lscpu reads it: the largest one
    from fastres._config import _last_level_cache_bytes

    for i, size in enumerate(["32K", "64K", "512K", "8192K"]):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert _last_level_cache_bytes(str(tmp_path)) == 8 * 2**20
    (tmp_path / "index4").mkdir()
    (tmp_path / "index4" / "size").write_text("96M\n")
    (tmp_path / "index5").mkdir()
    (tmp_path / "index5" / "size").write_text("garbage\n")
    assert _last_level_cache_bytes(str(tmp_path)) == 96 * 2**20
    assert _last_level_cache_bytes(str(tmp_path / "absent")) == 0  # not Linux: unknown
