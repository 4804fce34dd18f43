import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastres.functional as F
import fastres.reference as R
from fastres.gradcheck import directional_check, numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]

# (x shape, kernel_size, stride, padding): square/non-square kernels, overlapping (stride <
# kernel) and gapped (stride > kernel) windows, padding, odd/even/non-square inputs, batch 1.
CONFIGS = [
    ((2, 3, 8, 8), 2, None, 0),  # the ResNet/Keras downsampling pool (fast path)
    ((2, 3, 7, 9), 2, 2, 0),  # fast path with a ragged last row and column
    ((1, 2, 5, 5), 3, 1, 1),  # overlapping, padded
    ((2, 2, 9, 7), 3, 2, 1),  # ImageNet-ResNet stem pool
    ((1, 3, 6, 10), (2, 3), (1, 2), (1, 1)),
    ((3, 1, 7, 6), (3, 2), (2, 1), (0, 1)),
    ((2, 2, 10, 11), 2, 3, 0),  # stride > kernel: some inputs in no window
    ((1, 1, 4, 4), 4, None, 2),  # padding = kernel / 2
    ((2, 4, 4, 4), 4, None, 0),  # one window per plane (minimodel's 4x4 average pool)
    ((1, 2, 1, 5), (1, 3), 1, (0, 1)),
    ((2, 3, 3, 3), 1, 1, 0),
    ((1, 1, 5, 5), 5, 2, 2),
    ((1, 2, 3, 1200), (1, 1100), (1, 1), 0),  # window wider than the kernels' stack buffer
    ((1, 1, 2, 5000), (1, 2), (1, 2500), 0),  # stride wider than the kernels' stack buffer
]
IDS = [f"{s}-k{k}-s{st_}-p{p}" for s, k, st_, p in CONFIGS]
OPS = ["max", "avg"]


def _fwd(mod, op):
    return getattr(mod, f"{op}_pool2d_forward")


def _bwd(mod, op):
    return getattr(mod, f"{op}_pool2d_backward")


def _distinct(rng, shape):
    """Values pairwise at least 0.01 apart: no ties, so max pooling is smooth under +-1e-6."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 + rng.uniform(0, 1e-3, n)).reshape(shape) - 0.005 * n


# ---- the reference against hand-computed examples -------------------------------------------


def test_reference_max_pool_by_hand():
    x = np.array([[1, 3, 2, 0],
                  [4, 2, 9, 9],
                  [0, 5, 1, 1],
                  [5, 0, 1, 1]], dtype=np.float64).reshape(1, 1, 4, 4)
    out, cache = R.max_pool2d_forward(x, kernel_size=2)
    np.testing.assert_array_equal(out[0, 0], [[4, 9], [5, 1]])
    # ties go to the first maximum in row-major window order: 9 at (1,2), 5 at (2,1), 1 at (2,2)
    np.testing.assert_array_equal(cache.argmax[0, 0], [[4, 6], [9, 10]])
    dx = R.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[1, 0], expected[1, 2], expected[2, 1], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_reference_max_pool_overlap_and_padding_by_hand():
    # 3x3, stride 1, padding 1 on a 2x3 plane: padding is -inf, so every window's max is real.
    x = np.array([[1.0, 6.0, 2.0], [3.0, 4.0, 5.0]]).reshape(1, 1, 2, 3)
    out, cache = R.max_pool2d_forward(x, kernel_size=3, stride=1, padding=1)
    np.testing.assert_array_equal(out[0, 0], [[6, 6, 6], [6, 6, 6]])
    # every window holds the 6, so its gradient is the sum of all six output gradients
    dx = R.max_pool2d_backward(np.arange(1.0, 7.0).reshape(1, 1, 2, 3), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 21, 0], [0, 0, 0]])
    # all -inf: the index stays at the window's first in-bounds element (PyTorch)
    neg = np.full((1, 1, 2, 3), -np.inf)
    _, c2 = R.max_pool2d_forward(neg, kernel_size=3, stride=1, padding=1)
    np.testing.assert_array_equal(c2.argmax[0, 0], [[0, 0, 1], [0, 0, 1]])


def test_reference_max_pool_nan_by_hand():
    x = np.array([[1.0, np.nan], [np.nan, 7.0]]).reshape(1, 1, 2, 2)
    out, cache = R.max_pool2d_forward(x, kernel_size=2)
    assert np.isnan(out[0, 0, 0, 0])
    assert cache.argmax[0, 0, 0, 0] == 2  # (v > max or isnan(v)) keeps the last NaN


def test_reference_avg_pool_by_hand():
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    out, _ = R.avg_pool2d_forward(x, kernel_size=2)
    np.testing.assert_array_equal(out[0, 0], [[3.5, 5.5], [11.5, 13.5]])
    # padded zeros count: 3x3 windows over a 2x2 plane of ones each hold 4 ones out of 9
    out, cache = R.avg_pool2d_forward(np.ones((1, 1, 2, 2)), kernel_size=3, stride=1, padding=1)
    np.testing.assert_allclose(out[0, 0], np.full((2, 2), 4 / 9), rtol=1e-15)
    # each of the 4 inputs sits in all 4 windows: 4 * (1/9)
    dx = R.avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_allclose(dx[0, 0], np.full((2, 2), 4 / 9), rtol=1e-15)
    # stride 2, padding 1, kernel 2 on 3x3: windows rows (-1,0),(1,2) and the same in w
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, _ = R.avg_pool2d_forward(x, kernel_size=2, stride=2, padding=1)
    np.testing.assert_allclose(out[0, 0],
                               [[0 / 4, (1 + 2) / 4], [(3 + 6) / 4, (4 + 5 + 7 + 8) / 4]])


def test_reference_global_avg_pool_by_hand():
    x = np.arange(12.0).reshape(1, 2, 2, 3)
    out, cache = R.global_avg_pool2d_forward(x)
    np.testing.assert_array_equal(out, [[2.5, 8.5]])
    dx = R.global_avg_pool2d_backward(np.array([[6.0, 12.0]]), cache)
    np.testing.assert_array_equal(dx[0, 0], np.ones((2, 3)))
    np.testing.assert_array_equal(dx[0, 1], np.full((2, 3), 2.0))


# ---- fast path against the reference ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p", CONFIGS, ids=IDS)
@pytest.mark.parametrize("op", OPS)
def test_matches_reference(op, shape, k, s, p, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = _fwd(F, op)(x, kernel_size=k, stride=s, padding=p)
    ref, rcache = _fwd(R, op)(x.astype(np.float64), kernel_size=k, stride=s, padding=p)
    assert out.shape == ref.shape and out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = _bwd(F, op)(dout, cache)
    rdx = _bwd(R, op)(dout.astype(np.float64), rcache)
    assert dx.shape == shape and dx.dtype == dtype
    if op == "max":  # a max is exact and the argmax the same in both dtypes
        np.testing.assert_array_equal(out, ref.astype(dtype))
        np.testing.assert_array_equal(cache.argmax, rcache.argmax)
    else:
        np.testing.assert_allclose(out, ref, **TOL[dtype])
    np.testing.assert_allclose(dx, rdx, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 1, 1), (3, 5, 7, 3), (1, 2, 1, 13),
                                   (2, 4, 7, 7), (1, 3, 32, 33)])
def test_global_avg_pool_matches_reference(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = F.global_avg_pool2d_forward(x)
    ref, rcache = R.global_avg_pool2d_forward(x.astype(np.float64))
    assert out.shape == shape[:2] and out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.global_avg_pool2d_backward(dout, cache)
    assert dx.shape == shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, R.global_avg_pool2d_backward(dout.astype(np.float64), rcache),
                               **TOL[dtype])


@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 1, 1), (3, 2, 1)])
def test_max_pool_ties_nan_and_inf_like_pytorch(k, s, p, rng):
    x = rng.integers(-2, 3, size=(3, 3, 9, 8)).astype(np.float32)  # many ties
    x[0][rng.random((3, 9, 8)) < 0.15] = np.nan  # NaNs at every window position, some paired
    x[1, 2] = -np.inf
    x[1, 1, ::2] = np.inf
    out, cache = F.max_pool2d_forward(x, kernel_size=k, stride=s, padding=p)
    ref, rcache = R.max_pool2d_forward(x.astype(np.float64), kernel_size=k, stride=s, padding=p)
    np.testing.assert_array_equal(out, ref)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(cache.argmax, rcache.argmax)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(F.max_pool2d_backward(dout, cache),
                               R.max_pool2d_backward(dout.astype(np.float64), rcache),
                               **TOL[np.float32])


def _windows(H, W, k, s, p):
    """PyTorch's window bounds per output, row-major: (oh, ow, ih0, ih1, iw0, iw1, divisor)."""
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    for oh in range(H_out):
        for ow in range(W_out):
            h0, w0 = oh * s - p, ow * s - p
            h1, w1 = min(h0 + k, H + p), min(w0 + k, W + p)
            div = (h1 - h0) * (w1 - w0)
            yield oh, ow, max(h0, 0), min(h1, H), max(w0, 0), min(w1, W), div


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_float32_rounding_matches_pytorch_order(k, s, p, rng):
    """Emulate PyTorch's CPU loops in float32 (row-major window sums divided by the divisor;
    backward: zero dx, then add each output's share in row-major output order): the kernels
    must agree bit for bit, including where windows overlap."""
    N, C, H, W = 2, 3, 7, 6
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    out, cache = F.avg_pool2d_forward(x, kernel_size=k, stride=s, padding=p)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    want, want_dx = np.empty_like(out), np.zeros_like(x)
    _, mcache = F.max_pool2d_forward(x, kernel_size=k, stride=s, padding=p)
    want_mdx = np.zeros((N * C, H * W), np.float32)
    for oh, ow, h0, h1, w0, w1, div in _windows(H, W, k, s, p):
        acc = np.zeros((N, C), np.float32)
        for ih in range(h0, h1):
            for iw in range(w0, w1):
                acc += x[:, :, ih, iw]
        want[:, :, oh, ow] = acc / np.float32(div)
        want_dx[:, :, h0:h1, w0:w1] += (dout[:, :, oh, ow] / np.float32(div))[:, :, None, None]
        am = mcache.argmax[:, :, oh, ow].reshape(-1)
        want_mdx[np.arange(N * C), am] += dout[:, :, oh, ow].reshape(-1)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(F.avg_pool2d_backward(dout, cache), want_dx)
    np.testing.assert_array_equal(F.max_pool2d_backward(dout, mcache),
                                  want_mdx.reshape(N, C, H, W))


def test_non_contiguous_input(rng):
    x = rng.standard_normal((2, 3, 10, 12))[:, :, ::2, 1::2]
    for op in OPS:
        out, _ = _fwd(F, op)(x, kernel_size=2)
        ref, _ = _fwd(R, op)(np.ascontiguousarray(x), kernel_size=2)
        np.testing.assert_allclose(out, ref, **TOL[np.float64])


@pytest.mark.parametrize("op", OPS)
def test_stride_longer_than_input_places_one_window(op, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    out, cache = _fwd(F, op)(x, kernel_size=3, stride=2**70, padding=1)
    ref, rcache = _fwd(R, op)(x, kernel_size=3, stride=100, padding=1)
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(out, ref)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(_bwd(F, op)(dout, cache), _bwd(R, op)(dout, rcache),
                               **TOL[np.float64])


# ---- numerical gradients through the real kernels (float64) ----------------------------------


@pytest.mark.parametrize("shape, k, s, p", [
    ((2, 2, 4, 4), 2, None, 0),
    ((1, 2, 5, 4), 3, 1, 1),
    ((2, 1, 5, 6), (3, 2), (2, 1), (1, 1)),
    ((1, 1, 6, 5), 2, 3, 1),
])
@pytest.mark.parametrize("op", OPS)
def test_numerical_gradient(op, shape, k, s, p, rng):
    x = _distinct(rng, shape)
    out, cache = _fwd(F, op)(x, kernel_size=k, stride=s, padding=p)
    dout = rng.standard_normal(out.shape)
    num = numerical_grad(lambda: _fwd(F, op)(x, kernel_size=k, stride=s, padding=p)[0], x, dout)
    np.testing.assert_allclose(_bwd(F, op)(dout, cache), num, rtol=1e-6, atol=1e-8)


def test_global_avg_pool_numerical_gradient(rng):
    x = rng.standard_normal((2, 3, 3, 4))
    out, cache = F.global_avg_pool2d_forward(x)
    dout = rng.standard_normal(out.shape)
    num = numerical_grad(lambda: F.global_avg_pool2d_forward(x)[0], x, dout)
    np.testing.assert_allclose(F.global_avg_pool2d_backward(dout, cache), num, rtol=1e-6,
                               atol=1e-9)


@pytest.mark.parametrize("op, kwargs", [
    ("max", {"kernel_size": 2}),
    ("max", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg", {"kernel_size": 3, "stride": 1, "padding": 1}),
    ("global_avg", {}),
])
def test_directional_derivative(op, kwargs, rng):
    x = _distinct(rng, (8, 16, 16, 16))
    fwd, bwd = getattr(F, f"{op}_pool2d_forward"), getattr(F, f"{op}_pool2d_backward")
    out, cache = fwd(x, **kwargs)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    assert directional_check(lambda: fwd(x, **kwargs)[0], [x], [dx], dout, rng=rng) < 1e-7


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("op, kwargs", [
    ("max", {"kernel_size": 2}),
    ("avg", {"kernel_size": 2}),
    ("max", {"kernel_size": 3, "stride": 1, "padding": 1}),
    ("avg", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg", {"kernel_size": (3, 2), "stride": 1}),
    ("global_avg", {}),
])
def test_thread_invariance(op, kwargs, rng):
    x = rng.standard_normal((16, 13, 33, 31)).astype(np.float32)  # enough work for 3 threads
    x[0, 0, :3, :3] = 1.0  # ties
    fwd, bwd = getattr(F, f"{op}_pool2d_forward"), getattr(F, f"{op}_pool2d_backward")
    out1, cache1 = fwd(x, **kwargs, n_threads=1)
    dout = rng.standard_normal(out1.shape).astype(np.float32)
    dx1 = bwd(dout, cache1, n_threads=1)
    for t in (2, 3):
        out, cache = fwd(x, **kwargs, n_threads=t)
        np.testing.assert_array_equal(out, out1)
        np.testing.assert_array_equal(bwd(dout, cache, n_threads=t), dx1)


# ---- random configurations -------------------------------------------------------------------


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 11))
    w = draw(st.integers(max(1, kw - 2 * pw), 11))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), draw(st.sampled_from(OPS)), draw(
        st.integers(0, 2**32 - 1))


@settings(max_examples=25, deadline=None)
@given(pool_configs())
def test_random_configurations_match_reference(config):
    shape, k, s, p, op, seed = config
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=shape).astype(np.float64)  # small ints: plenty of ties
    out, cache = _fwd(F, op)(x, kernel_size=k, stride=s, padding=p, n_threads=2)
    ref, rcache = _fwd(R, op)(x, kernel_size=k, stride=s, padding=p)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, **TOL[np.float64])
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(_bwd(F, op)(dout, cache), _bwd(R, op)(dout, rcache),
                               **TOL[np.float64])


# ---- bad input -----------------------------------------------------------------------------

X = np.zeros((2, 3, 8, 8))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.max_pool2d_forward(X.tolist(), kernel_size=2), TypeError,
     r"max_pool2d_forward: expected x to be a numpy.ndarray"),
    (lambda: F.max_pool2d_forward(X.astype(np.int32), kernel_size=2), TypeError,
     r"max_pool2d_forward: expected x of dtype float32 or float64, got int32"),
    (lambda: F.avg_pool2d_forward(X[0], kernel_size=2), ValueError,
     r"avg_pool2d_forward: expected 4-D x \(N, C, H, W\), got shape \(3, 8, 8\)"),
    (lambda: F.max_pool2d_forward(np.zeros((0, 3, 8, 8)), kernel_size=2), ValueError,
     r"max_pool2d_forward: expected a non-empty x, got shape \(0, 3, 8, 8\)"),
    (lambda: F.max_pool2d_forward(X, kernel_size=0), ValueError,
     r"max_pool2d_forward: expected kernel_size >= 1, got 0"),
    (lambda: F.max_pool2d_forward(X, kernel_size=2.0), TypeError,
     r"max_pool2d_forward: expected kernel_size to be an int or a pair of ints, got 2.0"),
    (lambda: F.avg_pool2d_forward(X, kernel_size=(2, 2, 2)), TypeError,
     r"avg_pool2d_forward: expected kernel_size to be an int or a pair of ints"),
    (lambda: F.avg_pool2d_forward(X, kernel_size=2, stride=(1, 0)), ValueError,
     r"avg_pool2d_forward: expected stride >= 1, got \(1, 0\)"),
    (lambda: F.max_pool2d_forward(X, kernel_size=2, padding=-1), ValueError,
     r"max_pool2d_forward: expected padding >= 0, got -1"),
    (lambda: F.max_pool2d_forward(X, kernel_size=3, padding=2), ValueError,
     (r"max_pool2d_forward: expected padding <= kernel_size // 2 \(pad should be at most half "
      r"of effective kernel size\), got padding=\(2, 2\) for kernel_size=\(3, 3\)")),
    (lambda: F.avg_pool2d_forward(X, kernel_size=(4, 1), padding=(0, 1)), ValueError,
     (r"avg_pool2d_forward: expected padding <= kernel_size // 2 .* got padding=\(0, 1\) for "
      r"kernel_size=\(4, 1\)")),
    (lambda: F.max_pool2d_forward(X, kernel_size=(9, 2)), ValueError,
     r"max_pool2d_forward: kernel height 9 is larger than the padded input height 8 \+ 2\*0 = 8"),
    (lambda: F.avg_pool2d_forward(X, kernel_size=(2, 12), padding=(0, 1)), ValueError,
     r"avg_pool2d_forward: kernel width 12 is larger than the padded input width 8 \+ 2\*1 = 10"),
    (lambda: F.avg_pool2d_forward(np.broadcast_to(np.float32(0), (1, 1, 2**16, 2**15)),
                                  kernel_size=2), ValueError,
     r"avg_pool2d_forward: expected H\*W <= 2147483647, got x of shape \(1, 1, 65536, 32768\)"),
    (lambda: F.max_pool2d_forward(X, kernel_size=2**40, padding=2**39), ValueError,
     (r"max_pool2d_forward: expected H \+ 2\*padding and W \+ 2\*padding <= 2147483647, got "
      r"x of shape \(2, 3, 8, 8\) with padding=\(549755813888, 549755813888\)")),
    (lambda: F.max_pool2d_forward(X, kernel_size=2, n_threads=0), ValueError,
     r"max_pool2d_forward: expected n_threads to be an int in \[1, 1024\] or None, got 0"),
    (lambda: F.global_avg_pool2d_forward(np.zeros((2, 3, 4))), ValueError,
     r"global_avg_pool2d_forward: expected 4-D x \(N, C, H, W\), got shape \(2, 3, 4\)"),
    (lambda: F.global_avg_pool2d_forward(np.zeros((2, 3, 4, 4), np.float16)), TypeError,
     r"global_avg_pool2d_forward: expected x of dtype float32 or float64, got float16"),
])
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_backward_rejects_inconsistent_dout_and_cache():
    _, mc = F.max_pool2d_forward(X, kernel_size=2)
    _, ac = F.avg_pool2d_forward(X, kernel_size=3, stride=1, padding=1)
    _, gc = F.global_avg_pool2d_forward(X)
    cases = [
        (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 5)), mc), ValueError,
         r"max_pool2d_backward: expected dout of shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)"),
        (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), mc), TypeError,
         r"max_pool2d_backward: expected dout of dtype float64, got float32"),
        (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4)), ac), TypeError,
         (r"max_pool2d_backward: expected cache to be a MaxPool2dCache from "
          r"max_pool2d_forward, got AvgPool2dCache")),
        (lambda: F.avg_pool2d_backward(np.zeros((2, 3, 8)), ac), ValueError,
         r"avg_pool2d_backward: expected 4-D dout, got shape \(2, 3, 8\)"),
        (lambda: F.avg_pool2d_backward(np.zeros((2, 3, 8, 8)), None), TypeError,
         r"avg_pool2d_backward: expected cache to be a AvgPool2dCache .* got NoneType"),
        (lambda: F.global_avg_pool2d_backward(np.zeros((3, 2)), gc), ValueError,
         r"global_avg_pool2d_backward: expected dout of shape \(2, 3\), got \(3, 2\)"),
        (lambda: F.global_avg_pool2d_backward([[0.0] * 3] * 2, gc), TypeError,
         r"global_avg_pool2d_backward: expected dout to be a numpy.ndarray"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


def test_backward_rejects_tampered_caches():
    """Caches are plain dataclasses: a hand-made or edited one must raise, never write out of
    bounds."""
    from dataclasses import replace

    _, c = F.max_pool2d_forward(X, kernel_size=3, stride=1, padding=1)
    dout = np.ones((2, 3, 8, 8))
    bad = c.index.copy()
    bad[1, 2, 7, 7] = 64
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected cache.index values in "
                                         r"\[0, 64\), got values in \[0, 64\]"):
        F.max_pool2d_backward(dout, replace(c, index=bad))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected cache.index to be a "
                                         r"C-contiguous int32 array of shape \(2, 3, 8, 8\), "
                                         r"got int64 array"):
        F.max_pool2d_backward(dout, replace(c, index=c.index.astype(np.int64)))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected cache.x_shape to be 4 "
                                         r"positive ints, got \(2, 3, 8\)"):
        F.max_pool2d_backward(dout, replace(c, x_shape=(2, 3, 8)))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected padding <= kernel_size"):
        F.max_pool2d_backward(dout, replace(c, padding=(2, 2)))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected dout of shape "
                                         r"\(2, 3, 9, 9\)"):
        F.max_pool2d_backward(dout, replace(c, x_shape=(2, 3, 9, 9)))
    # the 2x2 pool keeps one byte per window, and only a code of 0-3 writes a gradient: any
    # other byte is safe and just drops it
    _, c2 = F.max_pool2d_forward(X, kernel_size=2)
    assert c2.index.dtype == np.uint8
    junk = np.full_like(c2.index, 4)
    dx = F.max_pool2d_backward(np.ones((2, 3, 4, 4)), replace(c2, index=junk))
    np.testing.assert_array_equal(dx, 0)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected cache.index to be a "
                                         r"C-contiguous uint8 array of shape \(2, 3, 4, 4\), "
                                         r"got int32 array"):
        F.max_pool2d_backward(np.ones((2, 3, 4, 4)), replace(c2, index=c2.argmax))
    # window codes presented as the cache of another geometry are refused the same way
    with pytest.raises(ValueError, match=r"expected cache.index to be a C-contiguous int32"):
        F.max_pool2d_backward(np.ones((2, 3, 4, 4)), replace(c2, kernel_size=(3, 3),
                                                              stride=(2, 2), padding=(1, 1)))


def test_max_pool_2x2_codes_name_the_window_element():
    """The 2x2 cache's byte per window is 2*row + column of the maximum inside it; ``argmax``
    turns it into the plane's flat index, as the general kernel (and PyTorch) give it."""
    x = np.array([[1, 3, 2, 0, 7],
                  [4, 2, 9, 9, 0],
                  [0, 5, 1, 1, 8],
                  [5, 0, 1, np.nan, 1],
                  [9, 9, 9, 9, 9]], dtype=np.float32).reshape(1, 1, 5, 5)
    out, cache = F.max_pool2d_forward(x, kernel_size=2)
    np.testing.assert_array_equal(cache.index[0, 0], [[2, 2], [1, 3]])
    np.testing.assert_array_equal(cache.argmax[0, 0], [[5, 7], [11, 18]])
    _, general = F.max_pool2d_forward(x, kernel_size=2, stride=(2, 3))  # not 2x2: int32 indices
    assert general.index.dtype == np.int32 and general.argmax is general.index
    _, rcache = R.max_pool2d_forward(x.astype(np.float64), kernel_size=2)
    np.testing.assert_array_equal(cache.argmax, rcache.argmax)


def test_reference_subsample_by_hand():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)
    out, cache = R.subsample2d_forward(x, stride=2, out_channels=2)
    np.testing.assert_array_equal(out[0, 0], [[0, 2], [8, 10]])
    np.testing.assert_array_equal(out[:, 1], 0)
    dx = R.subsample2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, stride, out_channels", [
    ((2, 3, 8, 8), 2, None), ((2, 3, 7, 9), 2, 5), ((1, 4, 10, 11), (3, 2), 4),
    ((3, 2, 5, 5), 1, 3), ((128, 16, 32, 32), 2, 32),  # ResNet-20's option-A shortcut
])
def test_subsample_matches_reference(shape, stride, out_channels, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = F.subsample2d_forward(x, stride=stride, out_channels=out_channels)
    want, rcache = R.subsample2d_forward(x, stride=stride, out_channels=out_channels)
    np.testing.assert_array_equal(out, want)
    dout = rng.standard_normal(out.shape).astype(dtype)
    runs = [F.subsample2d_backward(dout, cache, n_threads=t) for t in (1, 2)]
    np.testing.assert_array_equal(runs[0], R.subsample2d_backward(dout, rcache))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(F.subsample2d_forward(x, stride=stride, n_threads=1)[0],
                                  F.subsample2d_forward(x, stride=stride, n_threads=2)[0])


def test_subsample_bad_input(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="subsample2d_forward: expected stride >= 1, got 0"):
        F.subsample2d_forward(x, stride=0)
    with pytest.raises(ValueError, match=r"subsample2d_forward: expected out_channels >= the 3 "
                                         r"channels of x \(2, 3, 8, 8\), got 2"):
        F.subsample2d_forward(x, stride=2, out_channels=2)
    with pytest.raises(ValueError, match=r"subsample2d_forward: expected 4-D x \(N, C, H, W\), "
                                         r"got shape \(3, 8, 8\)"):
        F.subsample2d_forward(x[0], stride=2)
    out, cache = F.subsample2d_forward(x, stride=2, out_channels=4)
    with pytest.raises(ValueError, match=r"subsample2d_backward: expected dout of shape "
                                         r"\(2, >= 3, 4, 4\), got \(2, 4, 4, 3\)"):
        F.subsample2d_backward(out[..., :3], cache)
    with pytest.raises(TypeError, match="subsample2d_backward: expected dout of dtype float32"):
        F.subsample2d_backward(out.astype(np.float64), cache)
    with pytest.raises(TypeError, match="subsample2d_backward: expected cache to be a "
                                        "Subsample2dCache"):
        F.subsample2d_backward(out, None)
