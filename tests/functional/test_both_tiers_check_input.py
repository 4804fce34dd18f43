"""API.md's bad input, given to both tiers: fastres.functional and fastres.reference raise the
same exception with the same message (the checks are shared, fastres._validate), naming the op."""

import re

import numpy as np
import pytest

import fastres.functional as F
import fastres.reference as R

X = np.ones((2, 4, 8, 8))
W3 = np.ones((8, 4, 3, 3))
V = np.ones(4)
RNG = np.random.default_rng(0)


def _bn(m, x=X, **kw):
    args = dict(gamma=V.copy(), beta=V.copy(), running_mean=np.zeros(4), running_var=V.copy(),
                training=True)
    args.update(kw)
    return m.batch_norm2d_forward(x, **args)


CASES = [
    # conv
    (lambda m: m.conv2d_forward(X[0], W3), ValueError,
     r"conv2d_forward: expected 4-D x \(N, C_in, H, W\), got shape \(4, 8, 8\)"),
    (lambda m: m.conv2d_forward(X, W3[:, :3]), ValueError,
     r"conv2d_forward: expected w of shape \(C_out, C_in/groups, KH, KW\) = \(8, 4, 3, 3\)"),
    (lambda m: m.conv2d_forward(X.astype(np.int64), W3), TypeError,
     "conv2d_forward: expected x of dtype float32 or float64, got int64"),
    (lambda m: m.conv2d_forward(X, W3.astype(np.float32)), TypeError,
     "conv2d_forward: expected all operands to share one dtype, got x=float64, w=float32"),
    (lambda m: m.conv2d_forward(X, np.ones((8, 4, 11, 3))), ValueError,
     r"conv2d_forward: kernel height 11 is larger than the padded input height 8 \+ 2\*0 = 8"),
    (lambda m: m.conv2d_forward(X, W3, stride=0), ValueError,
     "conv2d_forward: expected stride >= 1, got 0"),
    (lambda m: m.conv2d_forward(X, W3, padding=(1, -1)), ValueError,
     r"conv2d_forward: expected padding >= 0, got \(1, -1\)"),
    (lambda m: m.conv2d_forward(X, np.ones((9, 2, 3, 3)), groups=2), ValueError,
     "conv2d_forward: expected groups to divide C_in and C_out, got groups=2"),
    (lambda m: m.conv2d_forward(X, W3, np.ones(7)), ValueError,
     r"conv2d_forward: expected b of shape \(8,\), got \(7,\)"),
    (lambda m: m.conv2d_forward(X, W3, stride=float("nan")), TypeError,
     "conv2d_forward: expected stride to be an int or a pair of ints, got nan"),
    (lambda m: m.conv2d_backward(np.ones((2, 8, 6, 5)), m.conv2d_forward(X, W3)[1]), ValueError,
     r"conv2d_backward: expected dout of shape \(2, 8, 6, 6\), got \(2, 8, 6, 5\)"),
    (lambda m: m.conv2d_backward(np.ones((2, 8, 6, 6), np.float32), m.conv2d_forward(X, W3)[1]),
     TypeError, "conv2d_backward: expected dout of dtype float64, got float32"),
    # pooling
    (lambda m: m.max_pool2d_forward(X, kernel_size=0), ValueError,
     "max_pool2d_forward: expected kernel_size >= 1, got 0"),
    (lambda m: m.avg_pool2d_forward(X, kernel_size=3, padding=2), ValueError,
     r"avg_pool2d_forward: expected padding <= kernel_size // 2"),
    (lambda m: m.max_pool2d_forward(X, kernel_size=(9, 2)), ValueError,
     r"max_pool2d_forward: kernel height 9 is larger than the padded input height 8"),
    (lambda m: m.avg_pool2d_forward(X.astype(np.float16), kernel_size=2), TypeError,
     "avg_pool2d_forward: expected x of dtype float32 or float64, got float16"),
    (lambda m: m.max_pool2d_backward(np.ones((2, 4, 4, 3)),
                                     m.max_pool2d_forward(X, kernel_size=2)[1]), ValueError,
     r"max_pool2d_backward: expected dout of shape \(2, 4, 4, 4\), got \(2, 4, 4, 3\)"),
    (lambda m: m.avg_pool2d_backward(np.ones((2, 4, 4, 4), np.float32),
                                     m.avg_pool2d_forward(X, kernel_size=2)[1]), TypeError,
     "avg_pool2d_backward: expected dout of dtype float64, got float32"),
    (lambda m: m.global_avg_pool2d_forward(X[0]), ValueError,
     r"global_avg_pool2d_forward: expected 4-D x \(N, C, H, W\), got shape \(4, 8, 8\)"),
    (lambda m: m.global_avg_pool2d_backward(np.ones((2, 5)),
                                            m.global_avg_pool2d_forward(X)[1]), ValueError,
     r"global_avg_pool2d_backward: expected dout of shape \(2, 4\), got \(2, 5\)"),
    # batch norm
    (lambda m: _bn(m, gamma=np.ones(3)), ValueError,
     r"batch_norm2d_forward: expected gamma of shape \(4,\), got \(3,\)"),
    (lambda m: _bn(m, beta=V.astype(np.float32)), TypeError,
     "batch_norm2d_forward: expected all operands to share one dtype"),
    (lambda m: _bn(m, training=1), TypeError,
     "batch_norm2d_forward: expected training to be a bool, got 1"),
    (lambda m: _bn(m, momentum=1.5), ValueError,
     r"batch_norm2d_forward: expected momentum in \[0.0, 1.0\], got 1.5"),
    (lambda m: _bn(m, eps=-1.0), ValueError, r"batch_norm2d_forward: expected eps in \[0.0, inf\)"),
    (lambda m: _bn(m, x=np.ones((1, 4, 1, 1))), ValueError,
     "batch_norm2d_forward: expected more than 1 value per channel when training"),
    (lambda m: _bn(m, running_var=np.ones(8)[::2]), ValueError,
     "batch_norm2d_forward: expected running_var to be C-contiguous"),
    (lambda m: m.batch_norm2d_backward(np.ones((2, 4, 8, 7)), _bn(m)[1]), ValueError,
     r"batch_norm2d_backward: expected dout of shape \(2, 4, 8, 8\), got \(2, 4, 8, 7\)"),
    # ReLU, add, dropout
    (lambda m: m.relu_forward([1.0, -1.0]), TypeError,
     "relu_forward: expected x to be a numpy.ndarray of float32 or float64, got list"),
    (lambda m: m.relu_backward(np.ones(3), m.relu_forward(np.ones(4))[1]), ValueError,
     r"relu_backward: expected dout of shape \(4,\), got \(3,\)"),
    (lambda m: m.add_forward(X, X[:1]), ValueError,
     r"add_forward: expected b of shape \(2, 4, 8, 8\), got \(1, 4, 8, 8\)"),
    (lambda m: m.dropout_forward(X, p=1.5, training=True, rng=RNG), ValueError,
     r"dropout_forward: expected p in \[0.0, 1.0\], got 1.5"),
    (lambda m: m.dropout_forward(X, p=0.5, training=True, rng=0), TypeError,
     "dropout_forward: expected rng to be a numpy.random.Generator, got int"),
    # linear
    (lambda m: m.linear_forward(np.ones((2, 5)), np.ones((3, 4))), ValueError,
     r"linear_forward: expected w of shape \(out_features, 5\) to match x of shape \(2, 5\)"),
    (lambda m: m.linear_forward(np.ones((2, 4)), np.ones((3, 4)), np.ones(2)), ValueError,
     r"linear_forward: expected b of shape \(3,\), got \(2,\)"),
    (lambda m: m.linear_backward(np.ones((2, 4)),
                                 m.linear_forward(np.ones((2, 4)), np.ones((3, 4)))[1]),
     ValueError, r"linear_backward: expected dout of shape \(2, 3\), got \(2, 4\)"),
    # softmax cross-entropy
    (lambda m: m.softmax_cross_entropy(np.ones((3, 4)), np.array([0, 4, 1])), ValueError,
     r"softmax_cross_entropy: expected labels in \[0, 4\), got 4 at index 1"),
    (lambda m: m.softmax_cross_entropy(np.ones((3, 4)), np.array([0, -1, 1])), ValueError,
     r"softmax_cross_entropy: expected labels in \[0, 4\), got -1 at index 1"),
    (lambda m: m.softmax_cross_entropy(np.ones((3, 4)), np.zeros(3)), TypeError,
     "softmax_cross_entropy: expected labels of an integer dtype, got float64"),
    (lambda m: m.softmax_cross_entropy(np.ones((3, 4)), np.zeros(3, int), label_smoothing=2),
     ValueError, r"softmax_cross_entropy: expected label_smoothing in \[0.0, 1.0\], got 2"),
]


@pytest.mark.parametrize("call, exc, match", CASES)
def test_both_tiers_refuse_bad_input_alike(call, exc, match):
    messages = []
    for module in (F, R):
        with pytest.raises(exc, match=match) as info:
            call(module)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_the_reference_refuses_a_cache_of_the_other_tier():
    # each tier's backward takes its own forward's cache (they hold different things)
    cache = F.conv2d_forward(X, W3)[1]
    with pytest.raises(TypeError, match=re.escape(
            "conv2d_backward: expected cache to be a fastres.reference.conv.ConvCache from "
            "conv2d_forward, got fastres.functional.conv.ConvCache")):
        R.conv2d_backward(np.ones((2, 8, 6, 6)), cache)
