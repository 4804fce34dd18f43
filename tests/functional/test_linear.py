import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastres.functional as F
import fastres.reference as R
from fastres._kernels import _linear
from fastres.gradcheck import directional_check, numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]


def _problem(rng, N, in_features, out_features, dtype, bias=True):
    """Realistic scales (He-like weights, a 1/sqrt(N) upstream gradient) so that every entry of
    the outputs and gradients is O(1) and float32 rounding stays within TOL[np.float32]."""
    x = rng.standard_normal((N, in_features)).astype(dtype)
    w = (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype) if bias else None
    dout = (rng.standard_normal((N, out_features)) / np.sqrt(N)).astype(dtype)
    return x, w, b, dout


def _f64(a):
    return None if a is None else a.astype(np.float64)


def _check_against_reference(x, w, b, dout, dtype):
    out, cache = F.linear_forward(x, w, b)
    ref, rcache = R.linear_forward(_f64(x), _f64(w), _f64(b))
    assert out.shape == ref.shape and out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    grads = F.linear_backward(dout, cache)
    rgrads = R.linear_backward(_f64(dout), rcache)
    for g, r, like in zip(grads, rgrads, (x, w, b)):
        if like is None:
            assert g is None and r is None
            continue
        assert g.shape == like.shape and g.dtype == dtype
        np.testing.assert_allclose(g, r, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1), (1, 64, 10), (3, 5, 7), (128, 64, 10), (130, 300, 600), (300, 17, 1030)],
)
def test_matches_reference(dtype, bias, shape, rng):
    _check_against_reference(*_problem(rng, *shape, dtype, bias), dtype)


def test_reference_hand_computed():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.5, -1.0, 0.0])
    out, cache = R.linear_forward(x, w, b)
    np.testing.assert_array_equal(out, [[1.5, 1.0, 3.0]])
    dx, dw, db = R.linear_backward(np.array([[1.0, 2.0, 3.0]]), cache)
    np.testing.assert_array_equal(dx, [[4.0, 5.0]])  # 1*[1, 0] + 2*[0, 1] + 3*[1, 1]
    np.testing.assert_array_equal(dw, [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    np.testing.assert_array_equal(db, [1.0, 2.0, 3.0])
    _, cache = R.linear_forward(x, w)
    assert R.linear_backward(np.ones((1, 3)), cache)[2] is None


def test_fast_hand_computed():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out, cache = F.linear_forward(x, w, np.array([0.5, -1.0, 0.0]))
    np.testing.assert_array_equal(out, [[1.5, 1.0, 3.0]])
    dx, dw, db = F.linear_backward(np.array([[1.0, 2.0, 3.0]]), cache)
    np.testing.assert_array_equal(dx, [[4.0, 5.0]])
    np.testing.assert_array_equal(dw, [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    np.testing.assert_array_equal(db, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("bias", [True, False])
def test_numerical_gradient(bias, rng):
    x, w, b, dout = _problem(rng, 3, 4, 5, np.float64, bias)
    _, cache = F.linear_forward(x, w, b)
    dx, dw, db = F.linear_backward(dout, cache)

    def f():
        return F.linear_forward(x, w, b)[0]

    np.testing.assert_allclose(dx, numerical_grad(f, x, dout), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dw, numerical_grad(f, w, dout), rtol=1e-7, atol=1e-9)
    if bias:
        np.testing.assert_allclose(db, numerical_grad(f, b, dout), rtol=1e-7, atol=1e-9)


def test_directional_derivative(rng):
    x, w, b, dout = _problem(rng, 96, 300, 200, np.float64)
    _, cache = F.linear_forward(x, w, b)
    grads = F.linear_backward(dout, cache)
    err = directional_check(lambda: F.linear_forward(x, w, b)[0], [x, w, b], grads, dout)
    assert err < 1e-7


def test_non_contiguous_inputs(rng):
    x, w, b, dout = _problem(rng, 20, 16, 12, np.float64)
    x_strided = np.asfortranarray(x)
    w_strided = np.repeat(w, 2, axis=1)[:, ::2]
    out, cache = F.linear_forward(x_strided, w_strided, b)
    np.testing.assert_allclose(out, R.linear_forward(x, w, b)[0], **TOL[np.float64])
    grads = F.linear_backward(np.asfortranarray(dout), cache)
    rgrads = R.linear_backward(dout, R.linear_forward(x, w, b)[1])
    for g, r in zip(grads, rgrads):
        np.testing.assert_allclose(g, r, **TOL[np.float64])


def test_read_only_inputs(rng):
    x, w, b, dout = _problem(rng, 6, 5, 4, np.float32)
    for a in (x, w, b, dout):
        a.flags.writeable = False
    _check_against_reference(x, w, b, dout, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(300, 700, 500), (1000, 40, 10), (50, 1000, 900)])
def test_thread_invariance(dtype, shape, rng):
    x, w, b, dout = _problem(rng, *shape, dtype)
    results = []
    for n_threads in (1, 2, 3):
        out, cache = F.linear_forward(x, w, b, n_threads=n_threads)
        results.append((out, *F.linear_backward(dout, cache, n_threads=n_threads)))
    for res in results[1:]:
        for a, ref in zip(res, results[0]):
            np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize(
    "rows, cols, depth",
    [(1, 1, 1), (128, 10, 64), (128, 100, 512), (300, 500, 700), (50000, 10, 100), (3, 10**5, 9)],
)
def test_tiles_depend_on_shape_only(rows, cols, depth):
    tr, tc = _linear.tiles(rows, cols, depth)
    assert 1 <= tr <= 256 and 1 <= tc <= 256
    n_tiles = -(-rows // tr) * -(-cols // tc)
    # Enough tiles to spread over threads, unless the tiles are at their minimum size or
    # halving them would leave too little work per gemm call.
    assert n_tiles >= 8 or (tr <= 32 and tc <= 64) or tr * tc * depth < 2 * 65536


X, W = np.ones((4, 3)), np.ones((5, 3))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.linear_forward([[1.0]], W),
            TypeError,
            r"linear_forward: expected x to be a numpy.ndarray of float32 or float64, got list",
        ),
        (
            lambda: F.linear_forward(np.ones((4, 3), np.int32), W),
            TypeError,
            r"linear_forward: expected x of dtype float32 or float64, got int32",
        ),
        (
            lambda: F.linear_forward(np.ones(3), W),
            ValueError,
            r"linear_forward: expected 2-D x \(N, in_features\), got shape \(3,\)",
        ),
        (
            lambda: F.linear_forward(np.ones((2, 2, 3)), W),
            ValueError,
            r"linear_forward: expected 2-D x \(N, in_features\), got shape \(2, 2, 3\)",
        ),
        (
            lambda: F.linear_forward(X, np.ones(3)),
            ValueError,
            r"linear_forward: expected 2-D w \(out_features, in_features\), got shape \(3,\)",
        ),
        (
            lambda: F.linear_forward(np.ones((0, 3)), W),
            ValueError,
            r"linear_forward: expected a non-empty x, got shape \(0, 3\)",
        ),
        (
            lambda: F.linear_forward(X, np.ones((5, 4))),
            ValueError,
            (
                r"linear_forward: expected w of shape \(out_features, 3\) to match x of shape "
                r"\(4, 3\), got w of shape \(5, 4\)"
            ),
        ),
        (
            lambda: F.linear_forward(X, W, np.ones(4)),
            ValueError,
            r"linear_forward: expected b of shape \(5,\), got \(4,\)",
        ),
        (
            lambda: F.linear_forward(X, W, np.ones((1, 5))),
            ValueError,
            r"linear_forward: expected 1-D b \(out_features,\), got shape \(1, 5\)",
        ),
        (
            lambda: F.linear_forward(X, W.astype(np.float32)),
            TypeError,
            r"linear_forward: expected all operands to share one dtype, got x=float64, w=float32",
        ),
        (
            lambda: F.linear_forward(X, W, np.ones(5, np.float32)),
            TypeError,
            (
                r"linear_forward: expected all operands to share one dtype, "
                r"got x=float64, w=float64, b=float32"
            ),
        ),
        (
            lambda: F.linear_forward(X, W, n_threads=0),
            ValueError,
            r"linear_forward: expected n_threads to be an int in \[1, 1024\] or None, got 0",
        ),
    ],
)
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_backward_rejects_inconsistent_dout_and_cache():
    _, cache = F.linear_forward(X, W, np.ones(5))
    op = "linear_backward"
    with pytest.raises(ValueError, match=rf"{op}: expected dout of shape \(4, 5\), got \(4, 3\)"):
        F.linear_backward(np.ones((4, 3)), cache)
    with pytest.raises(ValueError, match=rf"{op}: expected dout of shape \(4, 5\), got \(5, 5\)"):
        F.linear_backward(np.ones((5, 5)), cache)
    with pytest.raises(
        ValueError, match=rf"{op}: expected 2-D dout \(N, out_features\), got shape \(20,\)"
    ):
        F.linear_backward(np.ones(20), cache)
    with pytest.raises(TypeError, match=rf"{op}: expected dout of dtype float64, got float32"):
        F.linear_backward(np.ones((4, 5), np.float32), cache)
    with pytest.raises(TypeError, match=rf"{op}: expected cache to be a LinearCache, got tuple"):
        F.linear_backward(np.ones((4, 5)), (X, W))
    bad = type(cache)(x=np.ones((4, 3)), w=np.ones((5, 2)), has_bias=True)
    with pytest.raises(ValueError, match=rf"{op}: expected a cache made by linear_forward"):
        F.linear_backward(np.ones((4, 5)), bad)


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 80),
    in_features=st.integers(1, 80),
    out_features=st.integers(1, 80),
    bias=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_random_configurations(N, in_features, out_features, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    _check_against_reference(*_problem(rng, N, in_features, out_features, dtype, bias), dtype)
