"""``out=`` and ``workspace=`` of the functional ops: results written into caller arrays are
bit-identical to freshly allocated ones, and bad output arrays raise errors naming the op."""

import numpy as np
import pytest

import fastres.functional as F
from fastres.functional._workspace import clear_scratch

DTYPES = [np.float32, np.float64]


def garbage_like(a):
    """An array like ``a`` full of NaN: a kernel that skips an element shows up."""
    return np.full(a.shape, np.nan, dtype=a.dtype)


def assert_same(got, want, out):
    assert got is out
    np.testing.assert_array_equal(got, want)


def x_w_b(rng, dtype, N, C, H, W, Fo, K, groups=1):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Fo, C // groups, K, K)).astype(dtype)
    return x, w, rng.standard_normal(Fo).astype(dtype)


# (N, C, H, W, C_out, K, stride, padding, groups): direct kernels, im2col, the subsampled strided
# 1x1 path, a strided direct kernel, groups
CONV = [
    (2, 4, 8, 8, 8, 3, 1, 1, 1),
    (2, 3, 7, 5, 6, 3, 2, 1, 1),
    (2, 8, 8, 8, 16, 1, 2, 0, 1),
    (2, 8, 16, 16, 8, 3, 2, 1, 1),
    (2, 8, 6, 6, 8, 3, 1, 1, 4),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_out_matches_fresh(cfg, dtype, bias, rng):
    N, C, H, W, Fo, K, s, p, g = cfg
    x, w, b = x_w_b(rng, dtype, N, C, H, W, Fo, K, g)
    b = b if bias else None
    kw = {"stride": s, "padding": p, "groups": g}
    want, cache = F.conv2d_forward(x, w, b, **kw)
    out = garbage_like(want)
    got, cache2 = F.conv2d_forward(x, w, b, **kw, out=out, workspace={})
    assert_same(got, want, out)
    dout = rng.standard_normal(want.shape).astype(dtype)
    wants = F.conv2d_backward(dout, cache)
    outs = tuple(None if a is None else garbage_like(a) for a in wants)
    gots = F.conv2d_backward(dout, cache2, out=outs)
    for got, want, out in zip(gots, wants, outs):
        if want is None:
            assert got is None
        else:
            assert_same(got, want, out)
    # some entries None: those are allocated
    dx, dw, db = F.conv2d_backward(dout, cache2, out=(None, garbage_like(wants[1]), None))
    np.testing.assert_array_equal(dx, wants[0])
    np.testing.assert_array_equal(dw, wants[1])
    assert (db is None) == (not bias)
    dx, dw, _ = F.conv2d_backward(dout, cache2, input_grad=False,
                                  out=(None, garbage_like(wants[1]), None))
    assert dx is None
    np.testing.assert_array_equal(dw, wants[1])


def test_scratch_reuse_across_shapes_is_exact(rng):
    """The scratch buffers are shared by all calls and grow; a big call between two small ones
    leaves stale data behind, which must not change any result."""
    small = x_w_b(rng, np.float32, 2, 4, 8, 8, 8, 3)
    big = x_w_b(rng, np.float32, 3, 8, 16, 16, 8, 3)
    clear_scratch()
    first, cache = F.conv2d_forward(*small, padding=1)
    grads = F.conv2d_backward(np.ones_like(first), cache)
    out, c = F.conv2d_forward(*big, stride=2, padding=1)
    F.conv2d_backward(np.ones_like(out), c)
    again, cache = F.conv2d_forward(*small, padding=1)
    np.testing.assert_array_equal(again, first)
    for a, b in zip(F.conv2d_backward(np.ones_like(first), cache), grads):
        np.testing.assert_array_equal(a, b)


def test_conv_workspace_keeps_the_subsampled_input(rng):
    x, w, _ = x_w_b(rng, np.float32, 2, 4, 8, 8, 8, 1)
    ws = {}
    _, c1 = F.conv2d_forward(x, w, stride=2, workspace=ws)
    _, c2 = F.conv2d_forward(x * 2, w, stride=2, workspace=ws)
    assert c1.x is c2.x and ws  # the same array, overwritten by the second call
    np.testing.assert_array_equal(c2.x, (x * 2)[:, :, ::2, ::2])
    _, c3 = F.conv2d_forward(x[:1], w, stride=2, workspace=ws)  # new batch size: a new array
    assert c3.x.shape == (1, 4, 4, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_out_matches_fresh(dtype, training, rng):
    x = rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    gamma, beta = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    stats = [np.zeros(4, dtype), np.ones(4, dtype)]
    want, cache = F.batch_norm2d_forward(x, gamma, beta, *[s.copy() for s in stats],
                                         training=training)
    out = garbage_like(want)
    got, cache = F.batch_norm2d_forward(x, gamma, beta, *stats, training=training, out=out)
    assert_same(got, want, out)
    dout = rng.standard_normal(x.shape).astype(dtype)
    wants = F.batch_norm2d_backward(dout, cache)
    outs = tuple(garbage_like(a) for a in wants)
    for got, want, out in zip(F.batch_norm2d_backward(dout, cache, out=outs), wants, outs):
        assert_same(got, want, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_out_matches_fresh(dtype, bias, rng):
    x = rng.standard_normal((5, 7)).astype(dtype)
    w = rng.standard_normal((3, 7)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype) if bias else None
    want, cache = F.linear_forward(x, w, b)
    out = garbage_like(want)
    got, cache = F.linear_forward(x, w, b, out=out)
    assert_same(got, want, out)
    dout = rng.standard_normal(want.shape).astype(dtype)
    wants = F.linear_backward(dout, cache)
    outs = tuple(None if a is None else garbage_like(a) for a in wants)
    for got, want, out in zip(F.linear_backward(dout, cache, out=outs), wants, outs):
        if want is None:
            assert got is None
        else:
            assert_same(got, want, out)


POOLS = [
    (F.max_pool2d_forward, F.max_pool2d_backward, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (F.max_pool2d_forward, F.max_pool2d_backward, {"kernel_size": 2}),
    (F.avg_pool2d_forward, F.avg_pool2d_backward, {"kernel_size": 3, "stride": 1, "padding": 1}),
    (F.global_avg_pool2d_forward, F.global_avg_pool2d_backward, {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fwd, bwd, kw", POOLS)
def test_pool_out_matches_fresh(fwd, bwd, kw, dtype, rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    want, cache = fwd(x, **kw)
    out = garbage_like(want)
    got, cache = fwd(x, **kw, out=out)
    assert_same(got, want, out)
    dout = rng.standard_normal(want.shape).astype(dtype)
    want = bwd(dout, cache)
    out = garbage_like(want)
    assert_same(bwd(dout, cache, out=out), want, out)


def test_max_pool_workspace_keeps_argmax(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    ws = {}
    _, c1 = F.max_pool2d_forward(x, kernel_size=2, workspace=ws)
    want = c1.argmax.copy()
    _, c2 = F.max_pool2d_forward(-x, kernel_size=2, workspace=ws)
    assert c2.argmax is c1.argmax
    _, fresh = F.max_pool2d_forward(-x, kernel_size=2)
    np.testing.assert_array_equal(c2.argmax, fresh.argmax)
    assert not np.array_equal(want, fresh.argmax)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_out_matches_fresh(dtype, rng):
    x = rng.standard_normal((4, 5)).astype(dtype)
    y = rng.standard_normal((4, 5)).astype(dtype)
    want, cache = F.relu_forward(x)
    out = garbage_like(x)
    got, cache = F.relu_forward(x, out=out)
    assert_same(got, want, out)
    assert cache.out is out
    want = F.relu_backward(y, cache)
    out = garbage_like(x)
    assert_same(F.relu_backward(y, cache, out=out), want, out)
    want, _ = F.add_forward(x, y)
    out = garbage_like(x)
    assert_same(F.add_forward(x, y, out=out)[0], want, out)
    for p, training in ((0.5, True), (0.5, False), (0.0, True)):
        want, c1 = F.dropout_forward(x, p=p, training=training, rng=np.random.default_rng(1))
        out, ws = garbage_like(x), {}
        got, c2 = F.dropout_forward(x, p=p, training=training, rng=np.random.default_rng(1),
                                    out=out, workspace=ws)
        assert_same(got, want, out)
        want = F.dropout_backward(y, c1)
        out = garbage_like(y)
        assert_same(F.dropout_backward(y, c2, out=out), want, out)


def test_add_and_dropout_work_in_place(rng):
    a, b = rng.standard_normal((3, 8)), rng.standard_normal((3, 8))
    a0, b0 = a.copy(), b.copy()
    got, _ = F.add_forward(a, b, out=a)
    assert got is a
    np.testing.assert_array_equal(a, a0 + b0)
    got, _ = F.add_forward(a, b, out=b)
    assert got is b
    np.testing.assert_array_equal(b, (a0 + b0) + b0)
    x = rng.standard_normal((3, 8))
    want, _ = F.dropout_forward(x, p=0.5, training=True, rng=np.random.default_rng(2))
    got, cache = F.dropout_forward(x, p=0.5, training=True, rng=np.random.default_rng(2), out=x)
    assert got is x
    np.testing.assert_array_equal(x, want)
    dy = rng.standard_normal((3, 8))
    want = F.dropout_backward(dy, cache)
    assert F.dropout_backward(dy, cache, out=dy) is dy
    np.testing.assert_array_equal(dy, want)


# ---- errors -------------------------------------------------------------------------------------

def _conv_call(rng):
    x, w, b = x_w_b(rng, np.float32, 2, 4, 6, 6, 4, 3)
    return x, w, b, (2, 4, 6, 6)


def test_out_errors_name_op_expected_and_got(rng):
    x, w, b, shape = _conv_call(rng)

    def fwd(out):
        return F.conv2d_forward(x, w, b, padding=1, out=out)

    with pytest.raises(TypeError, match=r"conv2d_forward: expected out to be a numpy.ndarray of "
                                        r"shape \(2, 4, 6, 6\) and dtype float32, got list"):
        fwd([[0.0]])
    with pytest.raises(TypeError, match="conv2d_forward: expected out of dtype float32, "
                                        "got float64"):
        fwd(np.empty(shape))
    with pytest.raises(ValueError, match=r"conv2d_forward: expected out of shape \(2, 4, 6, 6\), "
                                         r"got \(2, 4, 6, 5\)"):
        fwd(np.empty((2, 4, 6, 5), np.float32))
    with pytest.raises(ValueError, match="conv2d_forward: expected out to be C-contiguous"):
        fwd(np.empty((2, 4, 6, 6), np.float32, order="F"))
    ro = np.empty(shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="conv2d_forward: expected out to be writable"):
        fwd(ro)
    with pytest.raises(ValueError, match="conv2d_forward: expected out not to overlap x in "
                                         "memory, got overlapping arrays"):
        fwd(x)
    with pytest.raises(TypeError, match="conv2d_forward: expected workspace to be a dict"):
        F.conv2d_forward(x, w, b, workspace=[])


def test_backward_out_errors(rng):
    x, w, b, _ = _conv_call(rng)
    out, cache = F.conv2d_forward(x, w, b, padding=1)
    dout = np.ones_like(out)
    dx, dw, db = (np.empty_like(a) for a in (x, w, b))
    with pytest.raises(TypeError, match=r"conv2d_backward: expected out to be None or a tuple "
                                        r"\(dx, dw, db\) of arrays or None, got a ndarray"):
        F.conv2d_backward(dout, cache, out=dx)
    with pytest.raises(TypeError, match="got a tuple of length 2"):
        F.conv2d_backward(dout, cache, out=(dx, dw))
    with pytest.raises(ValueError, match=r"conv2d_backward: expected out\[0\] \(dx\) not to "
                                         "overlap dout in memory"):
        F.conv2d_backward(dout, cache, out=(dout, dw, db))
    with pytest.raises(ValueError, match=r"expected out\[0\] \(dx\) not to overlap x"):
        F.conv2d_backward(dout, cache, out=(x, dw, db))
    with pytest.raises(ValueError, match=r"expected out\[1\] \(dw\) not to overlap w"):
        F.conv2d_backward(dout, cache, out=(dx, w, db))
    # the outputs may not overlap each other
    with pytest.raises(ValueError, match=r"expected out\[2\] \(db\) not to overlap out\[1\] "
                                         r"\(dw\)"):
        F.conv2d_backward(dout, cache, out=(dx, dw, dw.reshape(-1)[:4]))
    with pytest.raises(ValueError, match=r"expected out\[1\] \(dw\) of shape \(4, 4, 3, 3\), "
                                         r"got \(4, 4, 3, 2\)"):
        F.conv2d_backward(dout, cache, out=(dx, dw[..., :2].copy(), db))
    with pytest.raises(ValueError, match=r"expected out\[0\] \(dx\) to be None "
                                         r"\(input_grad=False\), got an array"):
        F.conv2d_backward(dout, cache, input_grad=False, out=(dx, dw, db))
    _, nobias = F.conv2d_forward(x, w, padding=1)
    with pytest.raises(ValueError, match=r"expected out\[2\] \(db\) to be None \(the forward "
                                         r"had no bias\)"):
        F.conv2d_backward(dout, nobias, out=(dx, dw, db))


def test_out_errors_other_ops(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    g, bt = np.ones(3, np.float32), np.zeros(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="batch_norm2d_forward: expected out not to overlap x"):
        F.batch_norm2d_forward(x, g, bt, rm, rv, training=True, out=x)
    buf = np.ones(3, np.float32)  # out's memory holds running_var
    with pytest.raises(ValueError, match="batch_norm2d_forward: expected out not to overlap "
                                         "running_var"):
        F.batch_norm2d_forward(np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1), g[:1],
                               bt[:1], rm[:1], buf[:1], training=True,
                               out=buf.reshape(3, 1, 1, 1))
    y, cache = F.batch_norm2d_forward(x, g, bt, rm, rv, training=True)
    with pytest.raises(ValueError, match=r"batch_norm2d_backward: expected out\[0\] \(dx\) not "
                                         "to overlap dout"):
        F.batch_norm2d_backward(y, cache, out=(y, None, None))
    with pytest.raises(TypeError, match=r"batch_norm2d_backward: expected out\[1\] \(dgamma\) "
                                        "of dtype float32, got float64"):
        F.batch_norm2d_backward(y, cache, out=(None, np.empty(3), None))
    # ReLU's kernel does not work in place; add's does, but only exactly in place
    with pytest.raises(ValueError, match="relu_forward: expected out not to overlap x"):
        F.relu_forward(x, out=x)
    r, rc = F.relu_forward(x)
    with pytest.raises(ValueError, match=r"relu_backward: expected out not to overlap cache.out"):
        F.relu_backward(x, rc, out=r)
    flat = np.zeros(2 * x.size + 1, np.float32)
    a = flat[:x.size].reshape(x.shape)
    shifted = flat[1:x.size + 1].reshape(x.shape)
    with pytest.raises(ValueError, match=r"add_forward: expected out not to overlap a in memory "
                                         r"\(it may be exactly a or b\)"):
        F.add_forward(a, x, out=shifted)
    with pytest.raises(ValueError, match="max_pool2d_forward: expected out of shape "
                                         r"\(2, 3, 2, 2\), got \(2, 3, 4, 4\)"):
        F.max_pool2d_forward(x, kernel_size=2, out=np.empty_like(x))
    p, pc = F.max_pool2d_forward(x, kernel_size=2)
    buf = np.zeros(x.size, np.float32)  # dx's memory holds dout
    dout = buf[:p.size].reshape(p.shape)
    dout[...] = p
    with pytest.raises(ValueError, match="max_pool2d_backward: expected out not to overlap dout"):
        F.max_pool2d_backward(dout, pc, out=buf.reshape(x.shape))
    with pytest.raises(TypeError, match="max_pool2d_forward: expected workspace to be a dict"):
        F.max_pool2d_forward(x, kernel_size=2, workspace=())
    with pytest.raises(ValueError, match="global_avg_pool2d_forward: expected out to be "
                                         "C-contiguous"):
        F.global_avg_pool2d_forward(x, out=np.empty((3, 2), np.float32).T)
    d, dc = F.linear_forward(x.reshape(2, -1), np.ones((5, 48), np.float32))
    with pytest.raises(ValueError, match=r"linear_backward: expected out\[2\] \(db\) to be None"):
        F.linear_backward(d, dc, out=(None, None, np.empty(5, np.float32)))
    with pytest.raises(ValueError, match="linear_forward: expected out not to overlap x"):
        F.linear_forward(x.reshape(8, 12), np.ones((12, 12), np.float32),
                         out=x.reshape(8, 12))
