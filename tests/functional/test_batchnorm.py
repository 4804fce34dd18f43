from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastres.functional as F
import fastres.reference as R
from fastres.functional import batchnorm as fbn
from fastres.gradcheck import directional_check, numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]
# odd/even/non-square spatial sizes, batch 1, H = W = 1, a single channel
SHAPES = [(2, 3, 5, 7), (1, 4, 3, 3), (3, 2, 1, 1), (1, 1, 1, 2), (4, 5, 6, 4), (2, 16, 8, 8),
          (1, 3, 17, 9), (5, 1, 4, 4)]


def _inputs(rng, shape, dtype, *, offset=0.7):
    """x (off-centre, so the mean matters), dout and the four (C,) vectors."""
    C = shape[1]
    x = (1.5 * rng.standard_normal(shape) + offset).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    running_mean = rng.standard_normal(C).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, C).astype(dtype)
    return x, dout, gamma, beta, running_mean, running_var


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def _every_output(x, dout, gamma, beta, rm, rv, res, *, training, n_threads):
    """The forward's output, alone and fused with res and the ReLU, the running statistics it
    leaves (on copies), and the backward's gradients, alone and with dx_add=res."""
    rm_t, rv_t = rm.copy(), rv.copy()
    out, cache = F.batch_norm2d_forward(x, gamma, beta, rm_t, rv_t, training=training,
                                        n_threads=n_threads)
    fused = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                                   residual=res, relu=True, n_threads=n_threads)[0]
    return (out, fused, rm_t, rv_t, *F.batch_norm2d_backward(dout, cache, n_threads=n_threads),
            F.batch_norm2d_backward(dout, cache, dx_add=res, n_threads=n_threads)[0])


def _check_against_reference(x, dout, gamma, beta, rm, rv, *, training, momentum=0.1,
                             eps=1e-5, n_threads=None):
    """Run both tiers (the reference in float64) and compare everything."""
    dtype = x.dtype.type
    rm_f, rv_f = rm.copy(), rv.copy()
    rm_r, rv_r = _f64(rm, rv)
    out, cache = F.batch_norm2d_forward(x, gamma, beta, rm_f, rv_f, training=training,
                                        momentum=momentum, eps=eps, n_threads=n_threads)
    ref, rcache = R.batch_norm2d_forward(*_f64(x, gamma, beta), rm_r, rv_r, training=training,
                                         momentum=momentum, eps=eps)
    assert out.shape == x.shape and out.dtype == dtype
    assert rm_f.dtype == dtype and rv_f.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    np.testing.assert_allclose(rm_f, rm_r, **TOL[dtype])
    np.testing.assert_allclose(rv_f, rv_r, **TOL[dtype])
    if not training:
        np.testing.assert_array_equal(rm_f, rm)
        np.testing.assert_array_equal(rv_f, rv)

    dx, dgamma, dbeta = F.batch_norm2d_backward(dout, cache, n_threads=n_threads)
    rdx, rdgamma, rdbeta = R.batch_norm2d_backward(dout.astype(np.float64), rcache)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert dgamma.shape == dbeta.shape == gamma.shape
    assert dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_allclose(dx, rdx, **TOL[dtype])
    np.testing.assert_allclose(dgamma, rdgamma, **TOL[dtype])
    np.testing.assert_allclose(dbeta, rdbeta, **TOL[dtype])


# --- the reference on its own -------------------------------------------------------------


def test_reference_hand_example_training():
    # One channel holding 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 1, 2)
    gamma, beta = np.array([2.0]), np.array([0.5])
    rm, rv = np.array([1.0]), np.array([2.0])
    s = np.sqrt(1.25)
    for mod in (R, F):
        rm_i, rv_i = rm.copy(), rv.copy()
        out, cache = mod.batch_norm2d_forward(x, gamma, beta, rm_i, rv_i, training=True,
                                              momentum=0.1, eps=0.0)
        x_hat = np.array([-1.5, -0.5, 0.5, 1.5]) / s
        np.testing.assert_allclose(out.ravel(), 2 * x_hat + 0.5, rtol=1e-14)
        np.testing.assert_allclose(rm_i, [0.9 * 1.0 + 0.1 * 2.5], rtol=1e-14)
        np.testing.assert_allclose(rv_i, [0.9 * 2.0 + 0.1 * 5 / 3], rtol=1e-14)
        # dout = e_0: dbeta = 1, dgamma = x_hat_0, and by hand
        # dx = gamma / (M s) * (M e_0 - 1 - x_hat * x_hat_0) = [0.6, -0.8, -0.2, 0.4] / s.
        dout = np.array([1.0, 0.0, 0.0, 0.0]).reshape(x.shape)
        dx, dgamma, dbeta = mod.batch_norm2d_backward(dout, cache)
        np.testing.assert_allclose(dx.ravel(), np.array([0.6, -0.8, -0.2, 0.4]) / s, rtol=1e-13)
        np.testing.assert_allclose(dgamma, [-1.5 / s], rtol=1e-14)
        np.testing.assert_allclose(dbeta, [1.0], rtol=1e-14)


def test_reference_hand_example_eval():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    gamma, beta = np.array([2.0]), np.array([0.5])
    for mod in (R, F):
        rm, rv = np.array([1.0]), np.array([3.0])
        out, cache = mod.batch_norm2d_forward(x, gamma, beta, rm, rv, training=False, eps=1.0)
        # inv_std = 1 / sqrt(3 + 1) = 0.5: out = 2 * 0.5 * (x - 1) + 0.5
        np.testing.assert_allclose(out.ravel(), [0.5, 1.5, 2.5, 3.5], rtol=1e-15)
        assert rm[0] == 1.0 and rv[0] == 3.0
        dout = np.array([1.0, 2.0, 0.0, -1.0]).reshape(x.shape)
        dx, dgamma, dbeta = mod.batch_norm2d_backward(dout, cache)
        np.testing.assert_allclose(dx, dout, rtol=1e-15)  # gamma * inv_std = 1
        np.testing.assert_allclose(dgamma, [0.5 * (0 * 1 + 1 * 2 + 2 * 0 + 3 * -1)], rtol=1e-15)
        np.testing.assert_allclose(dbeta, [2.0], rtol=1e-15)


@pytest.mark.parametrize("training", [True, False])
def test_reference_backward_is_the_gradient_of_its_forward(training, rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, (3, 2, 2, 3), np.float64)
    _, cache = R.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)
    grads = R.batch_norm2d_backward(dout, cache)

    def f():
        return R.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)[0]

    for arr, g in zip((x, gamma, beta), grads):
        np.testing.assert_allclose(g, numerical_grad(f, arr, dout), rtol=1e-6, atol=1e-8)


def test_reference_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, dout, gamma, beta, rm, rv = _inputs(rng, (4, 3, 5, 6), np.float64)
    for training in (True, False):
        xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
        rmt, rvt = torch.tensor(rm), torch.tensor(rv)
        out_t = torch.nn.functional.batch_norm(xt, rmt, rvt, gt, bt, training=training,
                                               momentum=0.1, eps=1e-5)
        out_t.backward(torch.tensor(dout))
        rm_r, rv_r = rm.copy(), rv.copy()
        out, cache = R.batch_norm2d_forward(x, gamma, beta, rm_r, rv_r, training=training)
        grads = R.batch_norm2d_backward(dout, cache)
        np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL[np.float64])
        np.testing.assert_allclose(rm_r, rmt.numpy(), **TOL[np.float64])
        np.testing.assert_allclose(rv_r, rvt.numpy(), **TOL[np.float64])
        for g, t in zip(grads, (xt, gt, bt)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-11)


# --- fast path vs reference ---------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(dtype, shape, training, rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    _check_against_reference(x, dout, gamma, beta, rm, rv, training=training)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference_at_resnet_shapes(dtype, rng):
    # batch 32 at the three ResNet-20 stage shapes; several sample blocks per channel at 32x32
    for shape in [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8)]:
        x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
        _check_against_reference(x, dout, gamma, beta, rm, rv, training=True, momentum=0.3)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 16, 8, 8), (1, 1, 1, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_relu_epilogue(dtype, shape, training, rng):
    # relu(bn(x) + residual) in the normalising pass: against the float64 reference, and
    # bit-identical to the three separate ops (what the fused training step relies on)
    x, _, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    res = rng.standard_normal(shape).astype(dtype)
    rm_r, rv_r = _f64(rm, rv)
    ref = R.batch_norm2d_forward(*_f64(x, gamma, beta), rm_r, rv_r, training=training)[0]
    for residual, relu in ((res, False), (None, True), (res, True)):
        rm1, rv1, rm2, rv2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
        out, cache = F.batch_norm2d_forward(x, gamma, beta, rm1, rv1, training=training,
                                            residual=residual, relu=relu)
        want = ref + (0 if residual is None else residual)
        want = np.maximum(want, 0) if relu else want
        np.testing.assert_allclose(out, want, **TOL[dtype])
        plain, cache2 = F.batch_norm2d_forward(x, gamma, beta, rm2, rv2, training=training)
        if residual is not None:
            plain = F.add_forward(plain, residual)[0]
        if relu:
            plain = F.relu_forward(plain)[0]
        np.testing.assert_array_equal(out, plain)
        for a, b in ((rm1, rm2), (rv1, rv2), (cache.mean, cache2.mean),
                     (cache.inv_std, cache2.inv_std)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 16, 8, 8)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dx_add(dtype, shape, training, rng):
    # dx + dx_add as dx is stored: bit-identical to the separate sum; bad dx_add rejected
    x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    other = rng.standard_normal(shape).astype(dtype)
    cache = F.batch_norm2d_forward(x, gamma, beta, rm, rv, training=training)[1]
    dx, dg, db = F.batch_norm2d_backward(dout, cache)
    gx, gg, gb = F.batch_norm2d_backward(dout, cache, dx_add=other)
    np.testing.assert_array_equal(gx, dx + other)
    np.testing.assert_array_equal(gg, dg)
    np.testing.assert_array_equal(gb, db)
    with pytest.raises(ValueError, match=r"batch_norm2d_backward: expected dx_add of shape"):
        F.batch_norm2d_backward(dout, cache, dx_add=other[:1])
    with pytest.raises(TypeError, match="batch_norm2d_backward: .*dx_add"):
        F.batch_norm2d_backward(dout, cache, dx_add=other.astype(
            np.float64 if dtype == np.float32 else np.float32))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_relu_keeps_nan(dtype, training, rng):
    # relu(bn(x) + res) with a NaN: NaN where the reference has NaN (in training the whole
    # channel, through its mean), as max(NaN, 0) and torch.relu give, not a finite 0
    x, _dout, gamma, beta, rm, rv = _inputs(rng, (3, 4, 5, 9), dtype)
    x[1, 2, 3, 4] = np.nan
    res = rng.standard_normal(x.shape).astype(dtype)
    out = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                                 residual=res, relu=True)[0]
    ref = np.maximum(R.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                            training=training)[0] + res, 0)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    assert np.isnan(ref).sum() == (x[:, 2].size if training else 1)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_stores_write_the_same_values(dtype, training, rng, monkeypatch):
    # Large passes write through fastres._config.streaming's stack buffer and streaming stores:
    # forced on and off, every output bit-identical and against the reference. Rows of 35, 257
    # and 600 elements start at every alignment and end in partial chunks of the buffer.
    import fastres._config as cfg

    for shape in [(3, 2, 5, 7), (2, 3, 5, 7), (2, 2, 1, 257), (2, 3, 20, 30)]:
        x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
        res = rng.standard_normal(shape).astype(dtype)
        results = []
        for above in (2**62, 0):  # never, always
            monkeypatch.setattr(cfg, "STREAM_FROM_BYTES", above)
            if above == 0:
                _check_against_reference(x, dout, gamma, beta, rm, rv, training=training)
            out, cache = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                                training=training)
            fused = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                           training=training, residual=res, relu=True)[0]
            results.append((out, fused, *F.batch_norm2d_backward(dout, cache),
                            F.batch_norm2d_backward(dout, cache, dx_add=res)[0]))
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_by_channel_schedule_gives_the_same_bits(dtype, rng, monkeypatch):
    # The training kernels' two schedules (threads own items and rows, or whole channels; the
    # caller picks by size): every output bit-identical, at 1-3 threads, and on the reference.
    # (small _BLOCK_ELEMS: several sample blocks per channel, and threads for tiny tensors)
    for shape, block_elems in [((3, 5, 4, 7), 30), ((9, 3, 2, 3), 7), ((2, 7, 1, 33), 40)]:
        monkeypatch.setattr(fbn, "_BLOCK_ELEMS", block_elems)
        x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
        res = rng.standard_normal(shape).astype(dtype)
        results = []
        for by_channel, t in [(False, 1), (True, 1), (True, 2), (True, 3)]:
            monkeypatch.setattr(fbn, "_by_channel", lambda *a, v=by_channel: v)
            if by_channel and t == 1:
                _check_against_reference(x, dout, gamma, beta, rm, rv, training=True)
            results.append(_every_output(x, dout, gamma, beta, rm, rv, res, training=True,
                                         n_threads=t))
        for other in results[1:]:
            for a, b in zip(results[0], other):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_many_sample_blocks(dtype, training, rng, monkeypatch):
    # Tiny blocks: each channel's sums are split over many work items, combined in order.
    monkeypatch.setattr(fbn, "_BLOCK_ELEMS", 7)
    for shape in [(9, 3, 2, 3), (5, 2, 4, 5), (6, 4, 1, 1)]:
        x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
        _check_against_reference(x, dout, gamma, beta, rm, rv, training=training)


@pytest.mark.parametrize("momentum, eps", [(0.0, 1e-5), (1.0, 1e-3), (0.37, 0.0)])
def test_momentum_and_eps(momentum, eps, rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, (3, 4, 5, 2), np.float64)
    _check_against_reference(x, dout, gamma, beta, rm, rv, training=True, momentum=momentum,
                             eps=eps)
    _check_against_reference(x, dout, gamma, beta, rm, rv, training=False, eps=eps)


def test_running_stats_updated_in_place_with_unbiased_variance(rng):
    x, _, gamma, beta, rm, rv = _inputs(rng, (3, 4, 5, 2), np.float64)
    rm0, rv0 = rm.copy(), rv.copy()
    F.batch_norm2d_forward(x, gamma, beta, rm, rv, training=True, momentum=0.25)
    mean = x.mean(axis=(0, 2, 3))
    var_unbiased = x.transpose(1, 0, 2, 3).reshape(4, -1).var(axis=1, ddof=1)
    np.testing.assert_allclose(rm, 0.75 * rm0 + 0.25 * mean, rtol=1e-13)
    np.testing.assert_allclose(rv, 0.75 * rv0 + 0.25 * var_unbiased, rtol=1e-13)
    # momentum 0 keeps them bit for bit
    rm1, rv1 = rm.copy(), rv.copy()
    F.batch_norm2d_forward(x, gamma, beta, rm, rv, training=True, momentum=0.0)
    np.testing.assert_array_equal(rm, rm1)
    np.testing.assert_array_equal(rv, rv1)


def test_float32_large_offset(rng):
    # |mean| / std = 1e4. A float32 sum of squares would lose every digit of the variance, and
    # subtracting the mean rounded to float32 would be off by up to 5e-4 standard deviations.
    x = (1e4 + rng.standard_normal((8, 3, 6, 6))).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    _check_against_reference(x, dout, gamma, beta, rm, rv, training=True)


@pytest.mark.parametrize("make", [
    lambda z: np.maximum(z, 0),  # ReLU outputs: half zeros, a skewed channel
    lambda z: 3 + z,
    lambda z: 1e4 + z,  # |mean| / std = 1e4
    lambda z: 1e-3 * z,
])
def test_float32_statistics_to_float32_resolution(make, rng):
    # float32 input's statistics are summed in float32 chunks of at most 8 elements per lane,
    # then in double (fr_batchnorm.h): over 65536 values per channel they must stay within
    # float32's resolution (2**-24 = 6e-8) of the exact statistics of the same values; a plain
    # float32 sum of that many values would be off by ~1e-5.
    x = make(rng.standard_normal((64, 3, 32, 32))).astype(np.float32)
    _, cache = F.batch_norm2d_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32),
                                      np.zeros(3, np.float32), np.ones(3, np.float32),
                                      training=True, eps=0.0)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    assert np.all(np.abs(cache.mean - mean) <= 2**-24 * np.sqrt(var)), (cache.mean, mean)
    np.testing.assert_allclose(1 / cache.inv_std ** 2, var, rtol=2**-24)


def test_float64_large_offset_statistics_are_exact_to_rounding(rng):
    # |mean| / std = 1e4: E[x^2] - E[x]^2 in float64 would keep only ~8 digits of the variance.
    # (The outputs themselves cannot be checked at float64 rounding level here: the mean's own
    # representation error, ulp(1e4) / 2 ~ 1e-12, is the size of the absolute tolerance.)
    x = 1e4 + rng.standard_normal((8, 3, 6, 6))
    rm, rv = np.zeros(3), np.zeros(3)
    _, cache = F.batch_norm2d_forward(x, np.ones(3), np.zeros(3), rm, rv, training=True,
                                      momentum=1.0, eps=0.0)
    for c in range(3):
        vals = [Fraction(v) for v in x[:, c].ravel()]
        mean = sum(vals) / len(vals)
        var = sum((v - mean) ** 2 for v in vals) / len(vals)
        np.testing.assert_allclose(cache.mean[c], float(mean), rtol=1e-16)
        np.testing.assert_allclose(rm[c], float(mean), rtol=1e-16)
        np.testing.assert_allclose(1 / cache.inv_std[c] ** 2, float(var), rtol=1e-13)
        np.testing.assert_allclose(rv[c], float(var * len(vals) / (len(vals) - 1)), rtol=1e-13)


def test_constant_channel_gives_finite_output():
    x = np.full((2, 2, 3, 3), 3.25)
    out, cache = F.batch_norm2d_forward(x, np.ones(2), np.full(2, 0.5), np.zeros(2), np.ones(2),
                                        training=True)
    np.testing.assert_array_equal(out, 0.5)  # var exactly 0, x - mean exactly 0
    grads = F.batch_norm2d_backward(np.ones_like(x), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_non_contiguous_and_read_only_inputs(rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, (3, 4, 5, 6), np.float64)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # F-ordered HW
    assert not xt.flags.c_contiguous
    g2 = np.repeat(gamma, 2)[::2]
    _check_against_reference(xt, dout[:, :, :, ::-1], g2, beta, rm, rv, training=True)
    x_ro = x.copy()
    x_ro.flags.writeable = False
    _check_against_reference(x_ro, dout, gamma, beta, rm, rv, training=True)
    # eval only reads the running statistics: any layout is fine
    rm2, rv2 = np.repeat(rm, 2)[::2], np.repeat(rv, 2)[::2]
    assert not rm2.flags.c_contiguous
    out, cache = F.batch_norm2d_forward(x, gamma, beta, rm2, rv2, training=False)
    ref, rcache = R.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=False)
    np.testing.assert_allclose(out, ref, **TOL[np.float64])
    for g, r in zip(F.batch_norm2d_backward(dout, cache), R.batch_norm2d_backward(dout, rcache)):
        np.testing.assert_allclose(g, r, **TOL[np.float64])


# --- gradient checks through the kernels (float64) ----------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 2, 3), (1, 2, 3, 1), (3, 1, 1, 1), (2, 2, 1, 2)])
def test_numerical_gradient(shape, training, rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, shape, np.float64)
    _, cache = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)
    grads = F.batch_norm2d_backward(dout, cache)

    def f():
        return F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)[0]

    for arr, g in zip((x, gamma, beta), grads):
        np.testing.assert_allclose(g, numerical_grad(f, arr, dout), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("training", [True, False])
def test_directional_derivative(training, rng):
    x, dout, gamma, beta, rm, rv = _inputs(rng, (8, 16, 8, 8), np.float64)
    _, cache = F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)
    grads = F.batch_norm2d_backward(dout, cache)

    def f():
        return F.batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)[0]

    assert directional_check(f, [x, gamma, beta], grads, dout, rng=rng) < 1e-7


# --- thread-count invariance --------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype, shape, block_elems", [
    (np.float32, (16, 16, 32, 32), None),
    (np.float64, (64, 8, 16, 16), None),
    (np.float32, (200, 3, 7, 7), 100),  # many sample blocks per channel: threads split one
])
def test_thread_invariance(dtype, shape, block_elems, training, rng, monkeypatch):
    if block_elems is not None:
        monkeypatch.setattr(fbn, "_BLOCK_ELEMS", block_elems)
    x, dout, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    results = [_every_output(x, dout, gamma, beta, rm, rv, dout, training=training, n_threads=t)
               for t in (1, 2, 3)]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# --- property test ------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 6), C=st.integers(1, 5), H=st.integers(1, 9), W=st.integers(1, 9),
    dtype=st.sampled_from(DTYPES), training=st.booleans(),
    momentum=st.floats(0.0, 1.0), eps=st.floats(1e-6, 1e-1), offset=st.floats(-5.0, 5.0),
    n_threads=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(N, C, H, W, dtype, training, momentum, eps, offset,
                                    n_threads, seed):
    assume(not training or N * H * W > 1)
    rng = np.random.default_rng(seed)
    x, dout, gamma, beta, rm, rv = _inputs(rng, (N, C, H, W), dtype, offset=offset)
    _check_against_reference(x, dout, gamma, beta, rm, rv, training=training,
                             momentum=momentum, eps=eps, n_threads=n_threads)


# --- errors -------------------------------------------------------------------------------


def _args(C=3, dtype=np.float64, shape=None):
    shape = (2, C, 4, 4) if shape is None else shape
    return [np.ones(shape, dtype), np.ones(C, dtype), np.zeros(C, dtype), np.zeros(C, dtype),
            np.ones(C, dtype)]


def _fwd(*, replace=None, training=True, **kw):
    args = _args()
    for i, v in (replace or {}).items():
        args[i] = v
    return F.batch_norm2d_forward(*args, training=training, **kw)


_ro = np.ones(3)
_ro.flags.writeable = False
_shared = np.ones(6)
_x_alias = np.ones((2, 3, 4, 4))

FWD = "batch_norm2d_forward: "
FORWARD_ERRORS = [
    ({"replace": {0: [[1.0]]}}, TypeError, FWD + r"expected x to be a numpy.ndarray"),
    ({"replace": {0: np.ones((2, 3, 4, 4), np.int32)}}, TypeError,
     FWD + r"expected x of dtype float32 or float64, got int32"),
    ({"replace": {0: np.ones((2, 3, 4))}}, ValueError,
     FWD + r"expected 4-D x \(N, C, H, W\), got shape \(2, 3, 4\)"),
    ({"replace": {0: np.ones((0, 3, 4, 4))}}, ValueError,
     FWD + r"expected a non-empty x, got shape \(0, 3, 4, 4\)"),
    ({"replace": {1: np.ones(4)}}, ValueError, FWD + r"expected gamma of shape \(3,\), got \(4,\)"),
    ({"replace": {1: np.ones((3, 1))}}, ValueError,
     FWD + r"expected 1-D gamma \(C,\), got shape \(3, 1\)"),
    ({"replace": {2: None}}, TypeError,
     FWD + r"expected beta to be a numpy.ndarray of float32 or float64, got NoneType"),
    ({"replace": {1: np.ones(3, np.float32)}}, TypeError,
     FWD + r"expected all operands to share one dtype, got x=float64, gamma=float32, "
     r"beta=float64, running_mean=float64, running_var=float64"),
    ({"replace": {4: np.ones(3, np.float32)}, "training": False}, TypeError,
     FWD + r"expected all operands to share one dtype"),
    ({"replace": {3: np.ones(2)}}, ValueError,
     FWD + r"expected running_mean of shape \(3,\), got \(2,\)"),
    ({"replace": {3: np.ones(6)[::2]}}, ValueError,
     FWD + r"expected running_mean to be C-contiguous \(it is updated in place when training\), "
     r"got strides \(16,\)"),
    ({"replace": {4: _ro}}, ValueError,
     FWD + r"expected running_var to be writable \(it is updated in place when training\)"),
    ({"replace": {3: _shared[:3], 4: _shared[:3]}}, ValueError,
     FWD + r"expected running_mean and running_var not to overlap in memory"),
    ({"replace": {0: _x_alias, 3: _x_alias[0, 0, 0, :3]}}, ValueError,
     FWD + r"expected running_mean not to overlap x in memory"),
    ({"training": 1}, TypeError, FWD + r"expected training to be a bool, got 1"),
    ({"residual": np.ones((2, 3, 4, 5))}, ValueError,
     FWD + r"expected residual of shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)"),
    ({"residual": np.ones((2, 3, 4, 4), np.float32)}, TypeError,
     FWD + r"expected all operands to share one dtype, got x=float64, residual=float32"),
    ({"residual": [1.0]}, TypeError, FWD + r"expected residual to be a numpy.ndarray"),
    ({"relu": 1}, TypeError, FWD + r"expected relu to be a bool, got 1"),
    ({"momentum": 1.5}, ValueError, FWD + r"expected momentum in \[0.0, 1.0\], got 1.5"),
    ({"momentum": "0.1"}, TypeError, FWD + r"expected momentum to be a real number, got '0.1'"),
    ({"eps": -1e-5}, ValueError, FWD + r"expected eps in \[0.0, inf\), got -1e-05"),
    ({"eps": float("nan")}, ValueError, FWD + r"expected eps in \[0.0, inf\), got nan"),
    ({"n_threads": 0}, ValueError,
     FWD + r"expected n_threads to be an int in \[1, 1024\] or None, got 0"),
]


@pytest.mark.parametrize("kw, exc, match", FORWARD_ERRORS)
def test_forward_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        _fwd(**kw)


def test_training_needs_more_than_one_value_per_channel():
    args = _args(shape=(1, 3, 1, 1))
    with pytest.raises(ValueError, match=FWD + r"expected more than 1 value per channel when "
                       r"training, got input size \(1, 3, 1, 1\)"):
        F.batch_norm2d_forward(*args, training=True)
    F.batch_norm2d_forward(*args, training=False)  # eval is fine with one value


def test_backward_errors():
    BWD = "batch_norm2d_backward: "
    x = np.ones((2, 3, 4, 4))
    _, cache = F.batch_norm2d_forward(*_args(), training=True)
    _, rcache = R.batch_norm2d_forward(*_args(), training=True)
    cases = [
        (lambda: F.batch_norm2d_backward(x, rcache), TypeError,
         BWD + r"expected the BatchNormCache returned by fastres.functional.batch_norm2d_forward,"
         r" got BatchNormCache"),
        (lambda: F.batch_norm2d_backward(x, None), TypeError, BWD + r".*got NoneType"),
        (lambda: F.batch_norm2d_backward(np.ones((2, 3, 4, 5)), cache), ValueError,
         BWD + r"expected dout of shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)"),
        (lambda: F.batch_norm2d_backward(np.ones((2, 3, 16)), cache), ValueError,
         BWD + r"expected 4-D dout \(N, C, H, W\), got shape \(2, 3, 16\)"),
        (lambda: F.batch_norm2d_backward(x.astype(np.float32), cache), TypeError,
         BWD + r"expected dout of dtype float64 \(as x\), got float32"),
        (lambda: F.batch_norm2d_backward(x.astype(np.int64), cache), TypeError,
         BWD + r"expected dout of dtype float32 or float64, got int64"),
        (lambda: F.batch_norm2d_backward(x, fbn.BatchNormCache(x, cache.mean[:2], cache.inv_std,
                                                               cache.gamma, True)),
         ValueError, BWD + r"expected cache.mean of dtype float64 and shape \(3,\) "
                           r"\(C-contiguous\), got float64 \(2,\)"),
        (lambda: F.batch_norm2d_backward(x, fbn.BatchNormCache(x, cache.mean, cache.inv_std,
                                                               cache.gamma.astype(np.float32),
                                                               True)),
         ValueError, BWD + r"expected cache.gamma of dtype float64"),
        (lambda: F.batch_norm2d_backward(x, fbn.BatchNormCache(x[:, :, ::2], cache.mean,
                                                               cache.inv_std, cache.gamma,
                                                               True)),
         ValueError, BWD + r"expected cache.x to be a non-empty C-contiguous 4-D float array"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
