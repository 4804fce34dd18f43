import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastres.functional as F
import fastres.reference as R
from fastres.gradcheck import directional_check, numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]


def _problem(rng, N, K, dtype, scale=3.0):
    logits = (scale * rng.standard_normal((N, K))).astype(dtype)
    labels = rng.integers(0, K, N)
    return logits, labels


def _check_against_reference(logits, labels, eps, dtype):
    loss, dlogits = F.softmax_cross_entropy(logits, labels, label_smoothing=eps)
    rloss, rdlogits = R.softmax_cross_entropy(
        logits.astype(np.float64), labels, label_smoothing=eps
    )
    assert isinstance(loss, float)
    assert dlogits.shape == logits.shape and dlogits.dtype == dtype
    np.testing.assert_allclose(loss, rloss, **TOL[dtype])
    np.testing.assert_allclose(dlogits, rdlogits, **TOL[dtype])
    return loss, dlogits


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
# 64-row blocks with remainders, rows either side of the plain-loop limit (64 classes)
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (7, 3), (128, 10), (1000, 17), (70, 63),
                                   (70, 64), (33, 1000), (5, 4099)])
def test_matches_reference(dtype, eps, shape, rng):
    _check_against_reference(*_problem(rng, *shape, dtype), eps, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [2, 128, 129, 8192])
def test_blocks_of_large_row_sums(dtype, K, rng):
    """A block's logarithms are taken as one, of the product of its rows' sums of exponentials
    (each in [1, K]); near-equal logits make every sum about K, and 64 rows of 128 classes the
    largest product a block of the kernel's work items can have (2^448)."""
    logits = (1e-3 * rng.standard_normal((200, K))).astype(dtype)
    labels = rng.integers(0, K, 200)
    loss, _ = _check_against_reference(logits, labels, 0.1, dtype)
    assert loss == pytest.approx(math.log(K), rel=1e-3)


def _by_hand(row, y, eps):
    """One row's smoothed cross-entropy and its gradient, straight from the definitions."""
    K = len(row)
    lse = math.log(sum(math.exp(v) for v in row))
    neg_log_p = [lse - v for v in row]
    loss = (1 - eps) * neg_log_p[y] + eps / K * sum(neg_log_p)
    grad = [math.exp(v - lse) - eps / K - (1 - eps) * (j == y) for j, v in enumerate(row)]
    return loss, grad


@pytest.mark.parametrize("impl", [R, F], ids=["reference", "fast"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_hand_computed(impl, eps):
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    labels = np.array([0, 2])
    (l0, g0), (l1, g1) = _by_hand([1.0, 2.0, 3.0], 0, eps), _by_hand([0.5, -1.0, 2.0], 2, eps)
    loss, dlogits = impl.softmax_cross_entropy(logits, labels, label_smoothing=eps)
    assert loss == pytest.approx((l0 + l1) / 2, rel=1e-14)
    np.testing.assert_allclose(dlogits, np.array([g0, g1]) / 2, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("impl", [R, F], ids=["reference", "fast"])
def test_known_values(impl):
    # torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.]]), torch.tensor([0]))
    # = log(e + e^2 + e^3) - 1 = 2.40760596444438...
    loss, _ = impl.softmax_cross_entropy(np.array([[1.0, 2.0, 3.0]]), np.array([0]))
    assert loss == pytest.approx(2.4076059644443806, rel=1e-14)
    # ... with label_smoothing=0.1: 0.9 * 2.40760596 + 0.1 * mean(2.40760596, 1.40760596,
    # 0.40760596) = 2.3076059644443806
    loss, _ = impl.softmax_cross_entropy(
        np.array([[1.0, 2.0, 3.0]]), np.array([0]), label_smoothing=0.1
    )
    assert loss == pytest.approx(2.3076059644443806, rel=1e-14)


@pytest.mark.parametrize("impl", [R, F], ids=["reference", "fast"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0])
def test_uniform_logits_give_log_k(impl, dtype, eps):
    N, K = 6, 7
    labels = np.array([0, 1, 2, 3, 4, 6])
    loss, dlogits = impl.softmax_cross_entropy(
        np.full((N, K), 2.5, dtype), labels, label_smoothing=eps
    )
    assert loss == pytest.approx(math.log(K), rel=1e-6 if dtype == np.float32 else 1e-14)
    target = np.full((N, K), eps / K)
    target[np.arange(N), labels] += 1 - eps
    np.testing.assert_allclose(dlogits, (1 / K - target) / N, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_are_stable(dtype, rng):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype)
    labels = np.array([0, 1, 2])
    loss, dlogits = F.softmax_cross_entropy(logits, labels)
    # Row losses 0, 1e4 and log(3): exp(-1e4) underflows to 0 without poisoning anything.
    assert loss == pytest.approx((0.0 + 1e4 + math.log(3)) / 3, rel=1e-12)
    expected = np.array([[0, 0, 0], [1, -1, 0], [1 / 3, 1 / 3, -2 / 3]]) / 3
    np.testing.assert_allclose(dlogits, expected, **TOL[dtype])
    # Large, close logits keep their differences: softmax depends on them only.
    logits, labels = _problem(rng, 64, 50, dtype, scale=1.0)
    big = logits + dtype(1e4)
    for eps in (0.0, 0.2):
        loss, dlogits = _check_against_reference(big, labels, eps, dtype)
        assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    _check_against_reference((1e4 * logits).astype(dtype), labels, 0.1, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_minus_inf_logits_are_masked_classes(dtype):
    # A -inf logit is a class with probability 0: finite loss without smoothing, an infinite one
    # with it (its -log p enters the smoothing term), finite gradients either way, as in PyTorch.
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf]], dtype)
    labels = np.array([2, 0])
    loss, dlogits = F.softmax_cross_entropy(logits, labels)
    rloss, rdlogits = R.softmax_cross_entropy(logits.astype(np.float64), labels)
    assert math.isfinite(loss)
    np.testing.assert_allclose(loss, rloss, **TOL[dtype])
    np.testing.assert_allclose(dlogits, rdlogits, **TOL[dtype])
    loss, dlogits = F.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    assert loss == math.inf
    rdlogits = R.softmax_cross_entropy(logits.astype(np.float64), labels, label_smoothing=0.1)[1]
    np.testing.assert_allclose(dlogits, rdlogits, **TOL[dtype])


def test_nan_logits_propagate():
    logits = np.zeros((3, 4))
    logits[1, 2] = np.nan
    loss, dlogits = F.softmax_cross_entropy(logits, np.array([0, 1, 2]))
    assert math.isnan(loss)
    assert np.all(np.isnan(dlogits[1]))
    assert np.all(np.isfinite(dlogits[[0, 2]]))


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_numerical_gradient(eps, rng):
    logits, labels = _problem(rng, 3, 5, np.float64, scale=1.0)
    _, dlogits = F.softmax_cross_entropy(logits, labels, label_smoothing=eps)
    num = numerical_grad(
        lambda: np.array(F.softmax_cross_entropy(logits, labels, label_smoothing=eps)[0]),
        logits,
        np.array(1.0),
    )
    np.testing.assert_allclose(dlogits, num, rtol=1e-6, atol=1e-10)


def test_directional_derivative(rng):
    logits, labels = _problem(rng, 128, 100, np.float64)
    _, dlogits = F.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    err = directional_check(
        lambda: np.array(F.softmax_cross_entropy(logits, labels, label_smoothing=0.1)[0]),
        [logits],
        [dlogits],
        np.array(1.0),
    )
    assert err < 1e-7


@pytest.mark.parametrize(
    "label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_any_integer_label_dtype(label_dtype, rng):
    logits, labels = _problem(rng, 20, 9, np.float64)
    expected = F.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    loss, dlogits = F.softmax_cross_entropy(logits, labels.astype(label_dtype), label_smoothing=0.1)
    assert loss == expected[0]
    np.testing.assert_array_equal(dlogits, expected[1])


def test_non_contiguous_inputs(rng):
    logits, labels = _problem(rng, 30, 12, np.float64)
    loss, dlogits = F.softmax_cross_entropy(np.asfortranarray(logits), np.repeat(labels, 2)[::2])
    rloss, rdlogits = R.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(loss, rloss, **TOL[np.float64])
    np.testing.assert_allclose(dlogits, rdlogits, **TOL[np.float64])


def test_read_only_inputs(rng):
    logits, labels = _problem(rng, 6, 5, np.float32)
    logits.flags.writeable = False
    labels.flags.writeable = False
    _check_against_reference(logits, labels, 0.1, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3000, 37), (300, 1000)])
def test_thread_invariance(dtype, shape, rng):
    logits, labels = _problem(rng, *shape, dtype)
    results = [
        F.softmax_cross_entropy(logits, labels, label_smoothing=0.1, n_threads=t) for t in (1, 2, 3)
    ]
    for loss, dlogits in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(dlogits, results[0][1])


Z, Y = np.zeros((4, 3)), np.array([0, 1, 2, 0])
OP = "softmax_cross_entropy"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: F.softmax_cross_entropy([[0.0, 1.0]], np.array([0])),
            TypeError,
            rf"{OP}: expected logits to be a numpy.ndarray of float32 or float64, got list",
        ),
        (
            lambda: F.softmax_cross_entropy(np.zeros((4, 3), np.int64), Y),
            TypeError,
            rf"{OP}: expected logits of dtype float32 or float64, got int64",
        ),
        (
            lambda: F.softmax_cross_entropy(np.zeros(3), Y),
            ValueError,
            rf"{OP}: expected 2-D logits \(N, K\), got shape \(3,\)",
        ),
        (
            lambda: F.softmax_cross_entropy(np.zeros((0, 3)), Y[:0]),
            ValueError,
            rf"{OP}: expected a non-empty logits, got shape \(0, 3\)",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, [0, 1, 2, 0]),
            TypeError,
            rf"{OP}: expected labels to be a numpy.ndarray of integers, got list",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y.astype(np.float64)),
            TypeError,
            rf"{OP}: expected labels of an integer dtype, got float64",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y.astype(bool)),
            TypeError,
            rf"{OP}: expected labels of an integer dtype, got bool",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y[:3]),
            ValueError,
            rf"{OP}: expected labels of shape \(4,\) to match logits' batch, got \(3,\)",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y.reshape(4, 1)),
            ValueError,
            rf"{OP}: expected labels of shape \(4,\) to match logits' batch, got \(4, 1\)",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, np.array([0, 1, 3, 0])),
            ValueError,
            rf"{OP}: expected labels in \[0, 3\), got 3 at index 2",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, np.array([0, -100, 1, 0])),
            ValueError,
            rf"{OP}: expected labels in \[0, 3\), got -100 at index 1",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, np.array([0, 1, 2, 2**63], np.uint64)),
            ValueError,
            rf"{OP}: expected labels in \[0, 3\), got 9223372036854775808 at index 3",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y, label_smoothing=1.5),
            ValueError,
            rf"{OP}: expected label_smoothing in \[0.0, 1.0\], got 1.5",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y, label_smoothing=-0.1),
            ValueError,
            rf"{OP}: expected label_smoothing in \[0.0, 1.0\], got -0.1",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y, label_smoothing=float("nan")),
            ValueError,
            rf"{OP}: expected label_smoothing in \[0.0, 1.0\], got nan",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y, label_smoothing="0.1"),
            TypeError,
            rf"{OP}: expected label_smoothing to be a real number, got '0.1'",
        ),
        (
            lambda: F.softmax_cross_entropy(Z, Y, n_threads=-1),
            ValueError,
            r"softmax_cross_entropy: expected n_threads to be an int in \[1, 1024\] or None, "
            r"got -1",
        ),
    ],
)
def test_bad_input_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 40),
    K=st.integers(1, 60),
    eps=st.floats(0.0, 1.0),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_random_configurations(N, K, eps, scale, dtype, seed):
    logits, labels = _problem(np.random.default_rng(seed), N, K, dtype, scale)
    loss, dlogits = _check_against_reference(logits, labels, eps, dtype)
    assert loss >= -TOL[dtype]["atol"]  # cross-entropy against a distribution is >= 0
    # softmax and target both sum to 1, so each gradient row sums to 0.
    np.testing.assert_allclose(
        dlogits.astype(np.float64).sum(axis=1), 0.0, atol=10 * K * np.finfo(dtype).eps / N
    )
