"""The private kernels check every extent they index: called straight from Python with arrays of
the wrong shape (or index arrays with values out of range), they raise a ValueError naming the
kernel instead of reading or writing past an array."""

import numpy as np
import pytest

from fastres._kernels import _activation, _batchnorm, _conv, _linear, _loss, _pool

f32 = np.float32


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


# ---- linear ------------------------------------------------------------------------------

def _linear_fwd(x=None, w=None, b=None, has_bias=True, out=None):
    x = z(3, 4) if x is None else x
    w = z(2, 4) if w is None else w
    b = z(2) if b is None else b
    out = z(3, 2) if out is None else out
    return lambda: _linear.linear_forward(x, w, b, has_bias, out, 1)


def _linear_bwd(dout=None, dx=None, dw=None, db=None, has_bias=True):
    dout = z(3, 2) if dout is None else dout
    dx = z(3, 4) if dx is None else dx
    dw = z(2, 4) if dw is None else dw
    db = z(2) if db is None else db
    return lambda: _linear.linear_backward(dout, z(3, 4), z(2, 4), dx, dw, db, has_bias, 1)


@pytest.mark.parametrize("call, message", [
    (_linear_fwd(w=z(2, 5)), r"linear_forward: expected w of shape \(2, 4\), got \(2, 5\)"),
    (_linear_fwd(out=z(4, 2)), r"linear_forward: expected out of shape \(3, 2\), got \(4, 2\)"),
    (_linear_fwd(out=z(3, 1)), "linear_forward: expected out"),
    (_linear_fwd(b=z(1)), r"linear_forward: expected b of shape \(2,\), got \(1,\)"),
    (lambda: _linear.linear_forward(z(3, 4), z(2, 4), None, True, z(3, 2), 1),
     "linear_forward: expected b .* got None"),
    (_linear_bwd(dout=z(3, 3)), r"linear_backward: expected dout of shape \(3, 2\)"),
    (_linear_bwd(dx=z(2, 4)), r"linear_backward: expected dx of shape \(3, 4\)"),
    (_linear_bwd(dw=z(2, 3)), r"linear_backward: expected dw of shape \(2, 4\)"),
    (_linear_bwd(db=z(1)), r"linear_backward: expected db of shape \(2,\)"),
])
def test_linear_kernels_refuse_wrong_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("shapes, message", [
    (((3, 4), (2, 5), (3, 2), (3, 2), (3, 4), (2, 4)), r"expected w of shape \(2, 4\)"),
    (((3, 4), (2, 4), (3, 3), (3, 2), (3, 4), (2, 4)), r"expected dout of shape \(3, 2\)"),
    (((3, 4), (2, 4), (3, 2), (2, 2), (3, 4), (2, 4)), r"expected out of shape \(3, 2\)"),
    (((3, 4), (2, 4), (3, 2), (0, 2), (3, 4), (2, 4)), r"expected out of shape \(3, 2\)"),
    (((3, 4), (2, 4), (3, 2), (3, 2), (3, 3), (2, 4)), r"expected dx of shape \(3, 4\)"),
    (((3, 4), (2, 4), (3, 2), (3, 2), (3, 4), (1, 4)), r"expected dw of shape \(2, 4\)"),
])
def test_blas_timing_refuses_wrong_shapes(shapes, message):
    # the benchmark's timing of the three products indexes every operand like the kernels
    with pytest.raises(ValueError, match="blas_seconds: " + message):
        _linear.blas_seconds(*(z(*s) for s in shapes), 1)


def test_blas_timing_computes_the_products(rng):
    x, w, d = (rng.standard_normal(s).astype(f32) for s in ((5, 4), (3, 4), (5, 3)))
    out, dx, dw = z(5, 3), z(5, 4), z(3, 4)
    assert _linear.blas_seconds(x, w, d, out, dx, dw, 2) > 0
    for got, want in ((out, x @ w.T), (dx, d @ w), (dw, d.T @ x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_linear_kernels_ignore_b_without_bias():
    out = z(3, 2)
    _linear.linear_forward(np.ones((3, 4), f32), np.ones((2, 4), f32), z(0), False, out, 1)
    np.testing.assert_array_equal(out, 4)
    db = np.full(7, 5, f32)  # never written without a bias
    _linear.linear_backward(z(3, 2), z(3, 4), z(2, 4), z(3, 4), z(2, 4), db, False, 1)
    np.testing.assert_array_equal(db, 5)


# ---- loss --------------------------------------------------------------------------------

def _xent(logits=None, labels=None, dlogits=None):
    logits = z(3, 4) if logits is None else logits
    labels = np.array([0, 3, 1]) if labels is None else labels
    dlogits = z(*logits.shape) if dlogits is None else dlogits
    return lambda: _loss.softmax_cross_entropy(logits, labels, 0.0, dlogits, 1)


@pytest.mark.parametrize("call, message", [
    (_xent(labels=np.array([0, 3])), r"expected labels of shape \(3,\), got \(2,\)"),
    (_xent(labels=np.array([0, 4, 1])), r"expected labels in \[0, 4\), got 4 at index 1"),
    (_xent(labels=np.array([0, 1, -1])), r"expected labels in \[0, 4\), got -1 at index 2"),
    (_xent(dlogits=z(3, 3)), r"expected dlogits of shape \(3, 4\), got \(3, 3\)"),
    (_xent(logits=z(3, 0)), "expected logits with K >= 1"),
])
def test_loss_kernel_refuses_wrong_shapes_and_labels(call, message):
    with pytest.raises(ValueError, match="softmax_cross_entropy: " + message):
        call()


# ---- batch norm --------------------------------------------------------------------------

N, C, HW, BLOCK = 3, 2, 5, 2  # two blocks of samples: [0, 2) and [2, 3)


def _bn_args(kernel, **over):
    x = z(N, C, HW)
    a = dict(
        x=x, dout=z(N, C, HW), gamma=z(C), beta=z(C), running_mean=z(C), running_var=z(C),
        mean=z(C, dtype=np.float64), inv_std=z(C, dtype=np.float64),
        partial=z(C, 2, 2, dtype=np.float64), res=None, add=None, out=z(N, C, HW),
        dx=z(N, C, HW), dgamma=z(C), dbeta=z(C), block=BLOCK,
        coef=z(C, 5 if kernel == "backward_train" else 4), by_channel=False,
    )
    a.update(over)
    if kernel == "forward_train":
        args = (a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"], 0.1, 1e-5,
                a["partial"], a["coef"], a["mean"], a["inv_std"], a["res"], False, a["out"],
                a["block"], False, a["by_channel"], 1)
    elif kernel == "forward_eval":
        args = (a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"], 1e-5,
                a["coef"], a["mean"], a["inv_std"], a["res"], False, a["out"], False, 1)
    elif kernel == "backward_train":
        args = (a["dout"], a["x"], a["mean"], a["inv_std"], a["gamma"], a["partial"], a["coef"],
                a["add"], a["dx"], a["dgamma"], a["dbeta"], a["block"], False, a["by_channel"],
                1)
    else:
        args = (a["dout"], a["x"], a["mean"], a["inv_std"], a["gamma"], a["partial"], a["dx"],
                a["dgamma"], a["dbeta"], a["block"], 1)
    return getattr(_batchnorm, kernel), args


@pytest.mark.parametrize("kernel", ["forward_train", "forward_eval", "backward_train",
                                    "backward_eval"])
@pytest.mark.parametrize("by_channel", [False, True])
def test_batchnorm_kernels_accept_consistent_shapes(kernel, by_channel):
    fn, args = _bn_args(kernel, by_channel=by_channel)
    fn(*args)


@pytest.mark.parametrize("kernel, over, message", [
    ("forward_train", dict(gamma=z(C + 1)), r"expected gamma of shape \(2,\), got \(3,\)"),
    ("forward_train", dict(running_var=z(1)), "expected running_var of shape"),
    ("forward_train", dict(inv_std=z(1, dtype=np.float64)), "expected inv_std of shape"),
    ("forward_train", dict(partial=z(C, 1, 2, dtype=np.float64)),
     r"expected partial of shape \(2, 2, 2\)"),
    ("forward_train", dict(block=0), "expected block >= 1, got 0"),
    ("forward_train", dict(coef=z(C, 3)), r"expected coef of shape \(2, 4\), got \(2, 3\)"),
    ("forward_train", dict(out=z(N, C, HW - 1)), r"expected out of shape \(3, 2, 5\)"),
    ("forward_train", dict(res=z(N - 1, C, HW)), r"expected res of shape \(3, 2, 5\)"),
    ("forward_train", dict(x=z(0, C, HW), partial=z(C, 0, 2, dtype=np.float64)),
     "expected x with N >= 1 and HW >= 1"),
    ("forward_eval", dict(beta=z(1)), "expected beta of shape"),
    ("forward_eval", dict(running_mean=z(3)), "expected running_mean of shape"),
    ("forward_eval", dict(mean=z(1, dtype=np.float64)), "expected mean of shape"),
    ("forward_eval", dict(coef=z(1, 4)), "expected coef of shape"),
    ("forward_eval", dict(out=z(N, C + 1, HW)), "expected out of shape"),
    ("forward_eval", dict(res=z(N, C, HW + 1)), "expected res of shape"),
    ("backward_train", dict(dout=z(N + 1, C, HW)), "expected dout of shape"),
    ("backward_train", dict(dx=z(N, C, 1)), "expected dx of shape"),
    ("backward_train", dict(add=z(1, 1, 1)), "expected add of shape"),
    ("backward_train", dict(coef=z(C, 4)), r"expected coef of shape \(2, 5\)"),
    ("backward_train", dict(gamma=z(1)), "expected gamma of shape"),
    ("backward_train", dict(dgamma=z(1)), "expected dgamma of shape"),
    ("backward_train", dict(partial=z(C, 3, 2, dtype=np.float64)), "expected partial of shape"),
    ("backward_eval", dict(partial=z(C, 2, 1, dtype=np.float64)), "expected partial of shape"),
    ("backward_eval", dict(block=-1), "expected block >= 1"),
    ("backward_eval", dict(dx=z(N, C, HW + 1)), "expected dx of shape"),
    ("backward_eval", dict(dbeta=z(C + 1)), "expected dbeta of shape"),
    ("backward_eval", dict(inv_std=z(C + 1, dtype=np.float64)), "expected inv_std of shape"),
])
@pytest.mark.parametrize("by_channel", [False, True])
def test_batchnorm_kernels_refuse_wrong_shapes(kernel, over, message, by_channel):
    fn, args = _bn_args(kernel, by_channel=by_channel, **over)
    with pytest.raises(ValueError, match=f"{kernel}: {message}"):
        fn(*args)


# ---- elementwise -------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: _activation.relu_forward(z(5), z(4), z(32, dtype=np.uint8), False, 1),
     "relu_forward: expected out of length 5"),
    (lambda: _activation.relu_backward(z(5), z(4), z(5), False, 1),
     "relu_backward: expected y of length 5, got 4"),
    (lambda: _activation.relu_backward(z(5), z(5), z(6), False, 1), "relu_backward: expected dx"),
    (lambda: _activation.relu_forward(z(257), z(257), z(32, dtype=np.uint8), False, 1),
     "relu_forward: expected mask of length 64, got 32"),
    (lambda: _activation.relu_backward_mask(z(5), z(31, dtype=np.uint8), z(5), False, 1),
     "relu_backward: expected mask of length 32, got 31"),
    (lambda: _activation.relu_backward_mask(z(5), z(32, dtype=np.uint8), z(6), False, 1),
     "relu_backward: expected dx of length 5"),
    (lambda: _activation.add(z(5), z(4), z(5), False, 1), "add: expected b of length 5"),
    (lambda: _activation.add(z(5), z(5), z(3), False, 1), "add: expected out of length 5"),
    (lambda: _activation.add_gated(z(5), z(5), z(4), z(5), False, 1), "add_gated: expected gate"),
    (lambda: _activation.add_gated(z(5), z(6), z(5), z(5), False, 1), "add_gated: expected b"),
    (lambda: _activation.add_gated(z(5), z(5), z(5), z(4), False, 1), "add_gated: expected out"),
    (lambda: _activation.multiply(z(5), z(4), z(5), False, 1), "multiply: expected b of length 5"),
    (lambda: _activation.multiply(z(5), z(5), z(4), False, 1),
     "multiply: expected out of length 5"),
])
def test_elementwise_kernels_refuse_wrong_lengths(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- pooling -----------------------------------------------------------------------------

def _maxfwd(x, out, argmax, *params):
    return lambda: _pool.max_pool2d_forward(x, out, argmax, *params, 1)


def _maxbwd(dout, argmax, dx, *params):
    return lambda: _pool.max_pool2d_backward(dout, argmax, dx, *params, 1)


I32, U8 = np.int32, np.uint8
K2 = (2, 2, 2, 2, 0, 0)  # the downsampling pool, through the general kernel
K3 = (3, 3, 2, 2, 1, 1)  # a general window: 6x6 -> 3x3


@pytest.mark.parametrize("call, message", [
    (_maxfwd(z(2, 6, 6), z(1, 3, 3), z(2, 3, 3, dtype=I32), *K2), "expected out with 2 planes"),
    (_maxfwd(z(2, 6, 6), z(2, 3, 3), z(2, 3, 2, dtype=I32), *K3),
     r"expected argmax of shape \(2, 3, 3\)"),
    (_maxfwd(z(2, 5, 5), z(2, 3, 3), z(2, 3, 3, dtype=I32), *K2),
     r"expected output planes of \(2, 2\) for \(5, 5\), got \(3, 3\)"),
    (_maxfwd(z(2, 6, 6), z(2, 4, 3), z(2, 4, 3, dtype=I32), *K3), "expected output planes"),
    (_maxfwd(z(2, 6, 6), z(2, 3, 3), z(2, 3, 3, dtype=I32), 3, 3, 2, -2, 1, 1),
     "expected kernel >= 1, stride >= 1"),
    (_maxfwd(z(2, 6, 6), z(2, 3, 3), z(2, 3, 3, dtype=I32), 2, 2, 2, 2, 2, 0),
     r"expected kernel >= 1, .* padding \(2, 0\)"),
    (_maxfwd(z(2, 2, 2), z(2, 1, 1), z(2, 1, 1, dtype=I32), 3, 3, 1, 1, 0, 0),
     "expected kernel <= the padded plane"),
    (_maxbwd(z(1, 3, 3), z(2, 3, 3, dtype=I32), z(2, 6, 6), *K3), "expected dout with 2 planes"),
    (_maxbwd(z(2, 3, 3), z(2, 3, 3, dtype=I32), z(2, 4, 4), *K2), "expected output planes"),
    (_maxbwd(z(2, 3, 3), z(2, 2, 3, dtype=I32), z(2, 6, 6), *K3),
     r"expected argmax of shape \(2, 3, 3\)"),
    (_maxbwd(z(2, 3, 3), np.full((2, 3, 3), 36, I32), z(2, 6, 6), *K3),
     r"expected argmax values in \[0, 36\), got 18 outside it"),
    (_maxbwd(z(2, 3, 3), np.full((2, 3, 3), -1, I32), z(2, 6, 6), *K3),
     r"expected argmax values in \[0, 36\)"),
])
def test_max_pool_kernels_refuse_wrong_shapes_and_indices(call, message):
    with pytest.raises(ValueError, match=r"max_pool2d_(forward|backward): " + message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: _pool.max_pool2x2_forward(z(2, 6, 6), z(1, 3, 3), z(2, 3, 3, dtype=U8), 1),
     "max_pool2x2_forward: expected out with 2 planes, got 1"),
    (lambda: _pool.max_pool2x2_forward(z(2, 6, 6), z(2, 3, 3), z(2, 3, 2, dtype=U8), 1),
     r"max_pool2x2_forward: expected code of shape \(2, 3, 3\), got \(2, 3, 2\)"),
    (lambda: _pool.max_pool2x2_forward(z(2, 5, 5), z(2, 3, 3), z(2, 3, 3, dtype=U8), 1),
     r"max_pool2x2_forward: expected output planes of \(2, 2\) for \(5, 5\), got \(3, 3\)"),
    (lambda: _pool.max_pool2x2_forward(z(2, 6, 6), z(2, 3, 3), z(2, 3, 3, dtype=U8), 0),
     "max_pool2x2_forward: expected n_threads in"),
    (lambda: _pool.max_pool2x2_backward(z(1, 3, 3), z(2, 3, 3, dtype=U8), z(2, 6, 6), 1),
     "max_pool2x2_backward: expected dout with 2 planes, got 1"),
    (lambda: _pool.max_pool2x2_backward(z(2, 3, 3), z(2, 3, 3, dtype=U8), z(2, 8, 8), 1),
     r"max_pool2x2_backward: expected output planes of \(4, 4\) for \(8, 8\), got \(3, 3\)"),
    (lambda: _pool.max_pool2x2_backward(z(2, 3, 3), z(2, 3, 1, dtype=U8), z(2, 6, 6), 1),
     r"max_pool2x2_backward: expected code of shape \(2, 3, 3\), got \(2, 3, 1\)"),
])
def test_max_pool_2x2_kernels_refuse_wrong_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_max_pool_2x2_backward_is_safe_for_any_code():
    # fr_maxpool2x2_grad_plane writes a window's gradient only where its code is 0-3 (2*row +
    # column); any other byte leaves the whole window zero
    dout = np.arange(1, 5, dtype=f32).reshape(1, 2, 2)
    dx = np.full((1, 4, 4), np.nan, f32)
    _pool.max_pool2x2_backward(dout, np.array([[[4, 255], [128, 7]]], U8), dx, 1)
    np.testing.assert_array_equal(dx, 0)
    _pool.max_pool2x2_backward(dout, np.array([[[3, 1], [2, 0]]], U8), dx, 1)
    want = np.zeros((1, 4, 4), f32)
    want[0, 1, 1], want[0, 0, 3], want[0, 3, 0], want[0, 2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("call, message", [
    (lambda: _pool.avg_pool2d_forward(z(2, 6, 6), z(3, 3, 3), *K3, 1),
     "avg_pool2d_forward: expected out with 2 planes, got 3"),
    (lambda: _pool.avg_pool2d_forward(z(2, 6, 6), z(2, 3, 4), *K3, 1),
     r"avg_pool2d_forward: expected output planes of \(3, 3\)"),
    (lambda: _pool.avg_pool2d_forward(z(2, 6, 6), z(2, 3, 3), 3, 3, 2, 0, 1, 1, 1),
     "avg_pool2d_forward: expected kernel >= 1, stride >= 1"),
    (lambda: _pool.avg_pool2d_backward(z(1, 3, 3), z(2, 6, 6), *K3, 1),
     "avg_pool2d_backward: expected dout with 2 planes, got 1"),
    (lambda: _pool.avg_pool2d_backward(z(2, 4, 4), z(2, 6, 6), *K2, 1),
     r"avg_pool2d_backward: expected output planes of \(3, 3\) for \(6, 6\), got \(4, 4\)"),
    (lambda: _pool.avg_pool2d_backward(z(2, 3, 3), z(2, 6, 6), 3, 3, 0, 2, 1, 1, 1),
     "avg_pool2d_backward: expected kernel >= 1, stride >= 1"),
    (lambda: _pool.subsample2d_forward(z(2, 3, 5, 5), z(2, 3, 2, 3), 2, 2, 1),
     r"subsample2d_forward: expected out of shape \(2, >= 3, 3, 3\) for x \(2, 3, 5, 5\) "
     r"and stride \(2, 2\) >= 1, got \(2, 3, 2, 3\)"),
    (lambda: _pool.subsample2d_backward(z(2, 3, 3, 3), z(2, 4, 5, 5), 0, 2, 1),
     r"subsample2d_backward: expected dout of shape \(2, >= 4, \?, 3\) for dx \(2, 4, 5, 5\) "
     r"and stride \(0, 2\) >= 1, got \(2, 3, 3, 3\)"),
    (lambda: _pool.global_avg_pool2d_forward(z(4, 9), z(3), 1),
     "global_avg_pool2d_forward: expected out with 4 planes, got 3"),
    (lambda: _pool.global_avg_pool2d_forward(z(4, 0), z(4), 1),
     "global_avg_pool2d_forward: expected planes of H.W >= 1, got 0"),
    (lambda: _pool.global_avg_pool2d_backward(z(5), z(4, 9), 1),
     "global_avg_pool2d_backward: expected dout with 4 planes, got 5"),
    (lambda: _pool.global_avg_pool2d_backward(z(4), z(4, 0), 1),
     "global_avg_pool2d_backward: expected planes of H.W >= 1"),
])
def test_avg_pool_kernels_refuse_wrong_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- thread counts -----------------------------------------------------------------------

@pytest.mark.parametrize("n_threads", [0, -1, 1025, 100000])
def test_kernels_refuse_a_thread_count_out_of_range(n_threads):
    # OpenMP reads num_threads=0 as "all" (more threads than scratch rows), aborts the process
    # on a negative count and kills it when it cannot create the threads (100000 segfaulted)
    calls = [
        ("relu_forward", lambda: _activation.relu_forward(z(4), z(4), z(32, dtype=np.uint8),
                                                          False, n_threads)),
        ("linear_forward", lambda: _linear.linear_forward(z(3, 4), z(2, 4), z(2), True, z(3, 2),
                                                          n_threads)),
        ("global_avg_pool2d_forward",
         lambda: _pool.global_avg_pool2d_forward(z(2, 4), z(2), n_threads)),
        ("winograd_weights",
         lambda: _conv.winograd_weights(z(4, 4, 3, 3), False, z(16, 16), n_threads)),
    ]
    for name, call in calls:
        with pytest.raises(ValueError,
                           match=f"{name}: expected n_threads in \\[1, 1024\\], got {n_threads}"):
            call()


# ---- conv --------------------------------------------------------------------------------
# Valid calls built with the functional layer's planners (float32: vectors of L = 8), then one
# shape or one table entry made wrong.

def _conv_args():
    from fastres.functional import conv as fc
    t = lambda a: np.array(a)  # noqa: E731 (a writable copy of a cached, read-only table)
    gap = _conv.winograd_gap
    # direct, stride 1: x (1, 4, 4, 8), 3x3, padding 1 -> (1, 4, 4, 8); Hq, Wq = 6, 10
    d_off, d_vin, d_vout = map(t, fc._direct_plan(4, 4, 8, 3, 3, 1, 1, 1, 1, 4, 8, 8))
    assert fc._phase_dims(4, 8, 1, 1, 1, 1) == (6, 10)
    # batch lanes: x (2, 4, 4, 4), 3x3, padding 1 -> (2, 4, 4, 4)
    l_off, l_vin, l_vout = map(t, fc._lanes_plan(4, 4, 4, 3, 3, 1, 1, 4, 4, 8))
    # stride-2 input gradient: dout (1, 4, 2, 8) -> dx (1, 4, 4, 16)
    s_off, s_kstart, s_vin, s_vout, _ = fc._s2_dx_plan(4, 2, 8, 8)
    s_off, s_kstart, s_vin, s_vout = map(t, (s_off, s_kstart, s_vin, s_vout))
    return {
        "conv2d_forward": dict(
            fn=_conv.conv2d_forward, x=z(1, 2, 5, 5), w=z(3, 2, 3, 3), b=z(3), res=None,
            relu=False, out=z(1, 3, 5, 5), scratch=z(1, 21 * 25), sh=1, sw=1, ph=1, pw=1, groups=1,
            nb=1, n=1),
        "conv2d_backward": dict(
            fn=_conv.conv2d_backward, x=z(1, 2, 5, 5), w=z(3, 2, 3, 3), dout=z(1, 3, 5, 5),
            dx=z(1, 2, 5, 5), dw=z(3, 2, 3, 3), db=z(3), dw_part=z(1, 54), db_part=z(1, 3),
            scratch=z(1, 39 * 25), sh=1, sw=1, ph=1, pw=1, groups=1, nb=1, n=1),
        "direct_forward": dict(
            fn=_conv.direct_forward, x=z(1, 4, 4, 8), wpk=fc._pack4(z(1, 4, 36)), b=z(4),
            res=None, relu=False, gate=None, out=z(1, 4, 4, 8), off=d_off, vin=d_vin,
            vout=d_vout, scratch=z(1, 4 * 6 * 10), ph=1, pw=1, sh=1, sw=1, groups=1, n=1),
        "direct_weight_grad": dict(
            fn=_conv.direct_weight_grad, x=z(1, 4, 4, 8), dout=z(1, 4, 4, 8), dw=z(4, 36),
            db=z(4), dw_part=z(1, 144), db_part=z(1, 4), off=d_off, vin=d_vin, vout=d_vout,
            scratch=z(1, 4 * 6 * 10), ph=1, pw=1, sh=1, sw=1, groups=1, n=1),
        "lanes_forward": dict(
            fn=_conv.lanes_forward, x=z(2, 4, 4, 4), wpk=fc._pack4(z(1, 4, 36)), b=None,
            res=None, relu=False, out=z(2, 4, 4, 4), off=l_off, vin=l_vin, vout=l_vout,
            scratch=z(1, (4 * 36 + 4 * 16) * 8), ph=1, pw=1, groups=1, n=1),
        "lanes_weight_grad": dict(
            fn=_conv.lanes_weight_grad, x=z(2, 4, 4, 4), dout=z(2, 4, 4, 4), dw=z(4, 36),
            db=None, dw_part=z(1, 144), db_part=z(1, 4), off=l_off, vin=l_vin, vout=l_vout,
            scratch=z(1, (4 * 36 + 4 * 16) * 8), ph=1, pw=1, groups=1, n=1),
        "direct_input_grad_s2": dict(
            fn=_conv.direct_input_grad_s2, dout=z(1, 4, 2, 8), wpk=z(4 * int(s_kstart[4])),
            off=s_off, kstart=s_kstart, vin=s_vin, vout=s_vout, res=None, gate=None,
            dx=z(1, 4, 4, 16), scratch=z(1, 4 * 4 * 10 + 4 * 4 * 16), n=1),
        "winograd_forward": dict(
            fn=_conv.winograd_forward, x=z(1, 4, 4, 8), upk=z(16, 16), b=None, res=None,
            relu=False, gate=None, out=z(1, 4, 4, 8),
            scratch=z(1, 6 * 10 + 16 * (8 * 8 + 2 * gap)), ph=1, pw=1, n=1),
        "winograd_weight_grad": dict(
            fn=_conv.winograd_weight_grad, x=z(1, 4, 4, 8), dout=z(1, 4, 4, 8),
            dw=z(4, 4, 3, 3), db=None, dwt=z(16, 16), dwt_part=z(1, 256), db_part=z(1, 4),
            scratch=z(1, 6 * 10 + 16 * (8 * 8 + 2 * gap)), shared=None, ph=1, pw=1, group=1,
            lanes=False, n=1),
        # strided pointwise: x (2, 3, 5, 6), 1x1, stride 2 -> (2, 4, 3, 3)
        "pointwise_forward": dict(
            fn=_conv.pointwise_forward, x=z(2, 3, 5, 6), w=z(4, 3), b=z(4), res=None, relu=False,
            out=z(2, 4, 3, 3), scratch=z(1, 3 * 9), sh=2, sw=2, n=1),
        "pointwise_backward": dict(
            fn=_conv.pointwise_backward, x=z(2, 3, 5, 6), dout=z(2, 4, 3, 3), wt=z(3, 4),
            add=None, gate=None, dx=z(2, 3, 5, 6), dw=z(4, 3), db=z(4), dw_part=z(2, 12),
            db_part=z(2, 4), scratch=z(1, 2 * 3 * 9 + 12 * _conv.pointwise_lanes + 6), sh=2,
            sw=2, stream=True, n=1),
        "winograd_lanes_forward": dict(
            fn=_conv.winograd_lanes_forward, x=z(1, 4, 4, 4), upk=z(16, 16), b=None, res=None,
            relu=False, out=z(1, 4, 4, 4),
            scratch=z(1, (4 * 36 + 4 * 16) * 8 + 16 * (8 * 32 + 2 * gap)), ph=1, pw=1, n=1),
    }


def _conv_call(kernel, **over):
    a = _conv_args()[kernel]
    a.update(over)
    fn = a.pop("fn")
    return lambda: fn(*a.values())


def _entry(kernel, table, i, value):
    """The kernel's valid table with entry i set to value (value(t) computed from the table)."""
    t = _conv_args()[kernel][table].copy()
    t[i] = value(t) if callable(value) else value
    return {table: t}


CONV_KERNELS = list(_conv_args())


@pytest.mark.parametrize("kernel", CONV_KERNELS)
def test_conv_kernels_accept_the_planners_tables(kernel):
    _conv_call(kernel)()


@pytest.mark.parametrize("kernel", [k for k in CONV_KERNELS if "ph" in _conv_args()[k]])
@pytest.mark.parametrize("pad", [dict(ph=2**31 - 1), dict(pw=2**31 - 2), dict(ph=2**30)])
def test_conv_kernels_refuse_a_padding_that_overflows_int(kernel, pad):
    # the C side works out H + 2*ph in int: wrapped round (-fwrapv), a padding of 2**31 - 1 let
    # winograd_forward accept an output 4 rows short and then write far outside its scratch
    with pytest.raises(ValueError, match=f"{kernel}: expected the padded input plus a stride "
                                         f"to stay below 2\\*\\*31"):
        _conv_call(kernel, **pad)()


@pytest.mark.parametrize("kernel, over, message", [
    ("conv2d_forward", dict(out=z(1, 3, 4, 5)), r"expected output planes of \(5, 5\)"),
    ("conv2d_forward", dict(res=z(1, 3, 5, 4)), r"expected res of shape \(1, 3, 5, 5\)"),
    ("conv2d_forward", dict(out=z(2, 3, 5, 5)),
     r"expected out of shape \(1, 3, 5, 5\), got \(2, 3, 5, 5\)"),
    ("conv2d_forward", dict(w=z(3, 1, 3, 3)), r"expected w of shape \(3, 2, 3, 3\)"),
    ("conv2d_forward", dict(groups=0), "expected C >= 1 .* groups = 0"),
    ("conv2d_forward", dict(sh=0), "expected stride >= 1 and padding >= 0"),
    ("conv2d_backward", dict(dx=z(1, 2, 5, 4)), r"expected dx of shape \(1, 2, 5, 5\)"),
    ("conv2d_backward", dict(dw=z(3, 2, 3, 2)), r"expected dw of shape \(3, 2, 3, 3\)"),
    ("conv2d_backward", dict(dout=z(1, 3, 5, 4)), "expected output planes"),
    ("conv2d_backward", dict(dw_part=z(0, 54)), "expected dw_part with 1 <= n_blocks <= 1"),
    ("conv2d_backward", dict(db_part=z(1, 2)), r"expected db_part of at least \(1, 3\)"),
    ("direct_forward", dict(wpk=z(1, 143)), r"expected wpk of shape \(1, 144\)"),
    ("direct_forward", dict(out=z(1, 6, 4, 8), b=None),
     r"expected .*\(F/groups a multiple of 4\), .*F = 6"),
    ("direct_forward", dict(out=z(1, 4, 4, 9)), "expected output planes of a multiple of 8"),
    ("direct_forward", dict(vout=np.zeros(3, I32)), r"expected vout of shape \(4,\)"),
    ("direct_forward", _entry("direct_forward", "off", -1, 10**6),
     r"expected off\[k\] \+ vin\[v\] in \[0, 232\]"),
    ("direct_forward", _entry("direct_forward", "vin", 0, -1), r"expected off\[k\] \+ vin"),
    ("direct_forward", _entry("direct_forward", "vout", -1, 25), r"expected vout in \[0, 24\]"),
    ("direct_forward", _entry("direct_forward", "vout", 0, -8), "expected vout in"),
    ("direct_forward", dict(res=z(1, 4, 4, 16)), r"expected res of shape \(1, 4, 4, 8\)"),
    ("direct_forward", dict(ph=-1), "expected stride >= 1 and padding >= 0"),
    ("direct_weight_grad", dict(dout=z(2, 4, 4, 8)), "expected dout of N = 1 images"),
    ("direct_weight_grad", dict(dw=z(4, 35)), r"expected dw of shape \(4, 36\)"),
    ("direct_weight_grad", dict(dw_part=z(0, 144)), "expected dw_part with 1 <= n_blocks"),
    ("direct_weight_grad", dict(dw_part=z(2, 144), db_part=z(2, 4)),
     "expected dw_part with 1 <= n_blocks <= 1 rows .* got 2"),
    ("direct_weight_grad", dict(dw_part=z(1, 143)), r"expected dw_part of at least \(1, 144\)"),
    ("direct_weight_grad", dict(groups=3), "expected C >= 1 .* groups = 3"),
    ("direct_weight_grad", _entry("direct_weight_grad", "off", 0, lambda t: t.max() + 1),
     r"expected off\[k\] \+ vin\[v\] in"),
    ("direct_weight_grad", _entry("direct_weight_grad", "vout", 1, 100), "expected vout in"),
    ("lanes_forward", dict(wpk=z(2, 72)), r"expected wpk of shape \(1, 144\)"),
    ("lanes_forward", dict(res=z(2, 4, 4, 3)), r"expected res of shape \(2, 4, 4, 4\)"),
    ("winograd_lanes_forward", dict(res=z(1, 4, 4, 5)), r"expected res of shape \(1, 4, 4, 4\)"),
    ("lanes_forward", dict(vin=np.zeros(15, I32), vout=np.zeros(15, I32)),
     r"expected output planes of a multiple of 1 pixels and vin of shape \(16,\)"),
    ("lanes_forward", _entry("lanes_forward", "off", 2, 10**5), r"expected off\[k\] \+ vin"),
    ("lanes_forward", _entry("lanes_forward", "vout", -1, 16 * 8), r"expected vout in \[0, 120\]"),
    ("lanes_forward", dict(ph=-1), "expected stride >= 1 and padding >= 0"),
    ("lanes_weight_grad", dict(dw_part=z(0, 144)), "expected dw_part with 1 <= n_blocks <= 2"),
    ("lanes_weight_grad", dict(db_part=z(1, 3), db=z(4)), r"expected db_part of at least"),
    ("lanes_weight_grad", dict(groups=0), "expected C >= 1 .* groups = 0"),
    ("lanes_weight_grad", _entry("lanes_weight_grad", "vin", 0, -8), r"expected off\[k\] \+ vin"),
    ("lanes_weight_grad", _entry("lanes_weight_grad", "vout", 3, -1), "expected vout in"),
    ("direct_input_grad_s2", dict(dx=z(1, 4, 4, 8)), r"expected dx of shape \(1, 4, 4, 16\)"),
    ("direct_input_grad_s2", _entry("direct_input_grad_s2", "kstart", 2, 0),
     "expected kstart non-decreasing"),
    ("direct_input_grad_s2", dict(wpk=z(5)), "expected wpk of shape"),
    ("direct_input_grad_s2", _entry("direct_input_grad_s2", "off", -1, 4 * 4 * 10),
     r"expected off\[k\] \+ vin\[v\] in \[0, 152\]"),
    ("direct_input_grad_s2", _entry("direct_input_grad_s2", "vout", 0, 9),
     r"expected vout in \[0, 8\]"),
    ("direct_input_grad_s2", dict(gate=z(1, 4, 4, 8)), r"expected gate of shape"),
    ("winograd_forward", dict(out=z(1, 4, 4, 6)), r"expected out of shape \(1, 4, 4, 8\)"),
    ("winograd_forward", dict(upk=z(16, 12)), r"expected upk of shape \(16, 16\)"),
    ("winograd_forward", dict(gate=z(1, 4, 4, 4)), r"expected gate of shape"),
    ("winograd_weight_grad", dict(dwt_part=z(0, 256)), "expected dwt_part with 1 <= n_blocks"),
    ("winograd_weight_grad", dict(dw=z(4, 4, 3, 2)), r"expected dw of shape \(4, 4, 3, 3\)"),
    ("winograd_weight_grad", dict(shared=z(32 * (32 + _conv.winograd_gap) - 1), dwt_part=None),
     "expected shared of at least"),
    ("winograd_weight_grad", dict(dwt_part=None), "expected dwt_part with 1 <= n_blocks"),
    ("winograd_weight_grad", dict(dwt=z(16, 15)), r"expected dwt of shape \(16, 16\)"),
    ("winograd_lanes_forward", dict(x=z(1, 4, 6, 6), out=z(1, 4, 2, 2), ph=-1, pw=-1),
     "expected stride >= 1 and padding >= 0"),
    ("winograd_lanes_forward", dict(out=z(1, 4, 4, 2)), r"expected out of shape \(1, 4, 4, 4\)"),
    ("pointwise_forward", dict(out=z(2, 4, 3, 2)), r"expected output planes of \(3, 3\)"),
    ("pointwise_forward", dict(out=z(1, 4, 3, 3)), r"expected out of shape \(2, 4, 3, 3\)"),
    ("pointwise_forward", dict(w=z(4, 2)), r"expected w of shape \(4, 3\)"),
    ("pointwise_forward", dict(w=z(0, 3), out=z(2, 0, 3, 3)), "expected C >= 1 and F >= 1"),
    ("pointwise_forward", dict(res=z(2, 4, 3, 2)), r"expected res of shape \(2, 4, 3, 3\)"),
    ("pointwise_forward", dict(scratch=z(1, 26)), r"expected scratch of at least \(1, 27\)"),
    ("pointwise_forward", dict(sh=0), "expected stride >= 1"),
    ("pointwise_backward", dict(dx=z(2, 3, 5, 5)), r"expected dx of shape \(2, 3, 5, 6\)"),
    ("pointwise_backward", dict(wt=z(4, 3)), r"expected wt of shape \(3, 4\)"),
    ("pointwise_backward", dict(dout=z(1, 4, 3, 3)), r"expected dout of shape \(2, 4, 3, 3\)"),
    ("pointwise_backward", dict(dout=z(2, 4, 3, 4)), r"expected output planes of \(3, 3\)"),
    ("pointwise_backward", dict(add=z(2, 3, 5, 5)), r"expected add of shape \(2, 3, 5, 6\)"),
    ("pointwise_backward", dict(gate=z(1, 3, 5, 6)), r"expected gate of shape \(2, 3, 5, 6\)"),
    ("pointwise_backward", dict(dx=None, gate=z(2, 3, 5, 6)),
     "expected no add or gate without dx"),
    ("pointwise_backward", dict(dw=z(3, 4)), r"expected dw of shape \(4, 3\)"),
    ("pointwise_backward", dict(db=z(3)), "expected a bias .* of 4 values, got 3"),
    ("pointwise_backward", dict(dw_part=z(3, 12)), "expected dw_part with 1 <= n_blocks <= 2"),
    ("pointwise_backward", dict(db_part=z(2, 3)), r"expected db_part of at least \(2, 4\)"),
    ("pointwise_backward", dict(scratch=z(1, 2 * 3 * 9 + 12 * _conv.pointwise_lanes + 5)),
     "expected scratch of at least"),
])
def test_conv_kernels_refuse_wrong_shapes_and_tables(kernel, over, message):
    with pytest.raises(ValueError, match=f"{kernel}: {message}"):
        _conv_call(kernel, **over)()


def test_winograd_weights_refuses_wrong_shapes():
    with pytest.raises(ValueError, match=r"winograd_weights: expected 3x3 weights"):
        _conv.winograd_weights(z(4, 4, 3, 2), False, z(16, 16), 1)
    with pytest.raises(ValueError, match=r"winograd_weights: expected upk of shape \(16, 16\)"):
        _conv.winograd_weights(z(4, 4, 3, 3), False, z(16, 12), 1)
