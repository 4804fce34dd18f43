"""Saliency maps, fooling images and worst errors (fastres.analysis), checked against finite
differences, closed forms for a linear model, and predictions computed independently."""

import numpy as np
import pytest
from scipy.special import softmax

from fastres.analysis import (
    FoolingFailed,
    FoolingResult,
    Misclassified,
    fooling_image,
    misclassified,
    saliency_map,
)
from fastres.gradcheck import numerical_grad
from fastres.layers import Dense, Flatten, Sequential
from fastres.models import resnet_cifar

F64 = np.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_resnet(dtype=F64, seed=0):
    """ResNet-8 with random BN running statistics, so eval mode is not the identity."""
    m = resnet_cifar(8, num_classes=3, in_channels=2, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, b in m.named_buffers():
        b[...] = rng.uniform(0.5, 2.0, b.shape) if name.endswith("var") else \
            rng.normal(0, 0.3, b.shape)
    return m


def linear_model(w, b):
    """Flatten + Dense with given weights: the score gradient is the weight row, in closed form."""
    k, c, h, wd = w.shape
    m = Sequential(Flatten(dtype=F64), Dense(c * h * wd, k, dtype=F64, rng=np.random.default_rng()))
    m[1].weight.data[...] = w.reshape(k, -1)
    m[1].bias.data[...] = b
    return m


# ---- saliency ----------------------------------------------------------------------------------
def test_saliency_equals_finite_differences():
    model = tiny_resnet()
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 8))
    labels = np.array([2, 0, 1])
    model.train()
    sal = saliency_map(model, x, labels, batch_size=2)
    assert model.training  # mode restored
    assert sal.shape == (3, 8, 8) and sal.dtype == F64
    model.eval()  # eval mode: images are independent, so one difference gives every image
    onehot = np.eye(3)[labels]
    xp = x.copy()
    grad = numerical_grad(lambda: model.forward(xp), xp, onehot)
    expected = np.abs(grad).max(axis=1)
    assert expected.min() > 0
    np.testing.assert_allclose(sal, expected, rtol=1e-5, atol=1e-9)


def test_saliency_of_a_linear_model_is_the_weight_row():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3, 5, 6))
    model = linear_model(w, rng.standard_normal(4))
    x = rng.standard_normal((2, 3, 5, 6))
    sal = saliency_map(model, x, np.array([3, 1]))
    np.testing.assert_allclose(sal, np.abs(w[[3, 1]]).max(axis=1), rtol=1e-12)


def test_saliency_leaves_gradients_alone_and_keeps_dtype():
    model = tiny_resnet(np.float32)
    for p in model.parameters():
        p.grad[...] = 0.25
    sal = saliency_map(model, np.ones((2, 2, 8, 8), np.float32), np.array([0, 1]))
    assert sal.dtype == np.float32 and np.all(sal >= 0)
    assert all(np.all(p.grad == 0.25) for p in model.parameters())


def test_saliency_errors():
    model = tiny_resnet()
    x = np.zeros((2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"saliency_map: expected x of shape \(N, C, H, W\) with "
                                         r"N >= 1, got shape \(2, 8, 8\)"):
        saliency_map(model, x[0], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"saliency_map: expected labels of shape \(2,\) to "
                                         r"match the images, got \(3,\)"):
        saliency_map(model, x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"saliency_map: expected labels as an integer "
                                        r"numpy.ndarray of shape \(2,\), got dtype float64"):
        saliency_map(model, x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"saliency_map: expected labels in \[0, 3\) \(the model "
                                         r"has 3 classes\), got 3 at index 1"):
        saliency_map(model, x, np.array([0, 3]))
    with pytest.raises(TypeError, match="saliency_map: expected a fastres Module, got function"):
        saliency_map(lambda x: x, x, np.array([0, 1]))
    assert model.training  # restored after the error


# ---- fooling images ----------------------------------------------------------------------------
def test_fooling_a_linear_model_follows_the_closed_form():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 1, 4, 4))
    b = np.array([5.0, 0.0, 0.0])  # class 0 wins at x = 0
    model = linear_model(w, b)
    x = np.zeros((1, 4, 4))
    r = fooling_image(model, x, 2, step_size=0.5)
    # each step moves x by 0.5 along w[2] / ||w[2]||; it stops at the first step where class 2
    # has the largest score
    direction = w[2] / np.linalg.norm(w[2])

    def pred(k):
        return int(np.argmax(w.reshape(3, -1) @ (k * 0.5 * direction).ravel() + b))

    k = next(k for k in range(1, 1000) if pred(k) == 2)
    assert r.iterations == k and pred(k - 1) != 2
    np.testing.assert_allclose(r.image, k * 0.5 * direction, rtol=1e-12, atol=1e-12)
    assert r.l2 == pytest.approx(k * 0.5)
    assert r.linf == pytest.approx(np.abs(k * 0.5 * direction).max())
    assert (r.target, r.original_class, r.predicted, r.success) == (2, 0, 2, True)
    assert np.all(x == 0)  # the start is not modified


def test_fooling_a_resnet_from_an_image_and_from_noise():
    model = tiny_resnet()
    rng = np.random.default_rng(4)
    for start in (rng.standard_normal((2, 8, 8)), rng.standard_normal((1, 2, 8, 8)) * 0.1):
        first = int(model.eval().forward(start.reshape(1, 2, 8, 8)).argmax())
        target = (first + 1) % 3
        model.train()
        r = fooling_image(model, start, target, step_size=0.5, max_iter=500)
        assert isinstance(r, FoolingResult) and model.training
        assert r.image.shape == start.shape and r.iterations >= 1
        logits = model.eval().forward(r.image.reshape(1, 2, 8, 8))
        assert int(logits.argmax()) == target == r.predicted
        assert r.probability == pytest.approx(softmax(logits[0])[target])
        d = r.image - start
        assert r.l2 == pytest.approx(np.linalg.norm(d)) and r.linf == pytest.approx(
            np.abs(d).max())


def test_already_the_target_takes_no_step():
    model = tiny_resnet()
    x = np.random.default_rng(5).standard_normal((2, 8, 8))
    first = int(model.eval().forward(x[None]).argmax())
    r = fooling_image(model, x, first)
    assert r.iterations == 0 and r.l2 == 0 and np.array_equal(r.image, x)


def test_fooling_failure_is_clear():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((3, 1, 4, 4))
    model = linear_model(w, np.array([100.0, 0.0, 0.0]))
    with pytest.raises(FoolingFailed, match=r"fooling_image: the prediction is still class 0 "
                                            r"\(p=1.000\), not the target 1, after max_iter=3 "
                                            r"steps") as info:
        fooling_image(model, np.zeros((1, 4, 4)), 1, step_size=0.1, max_iter=3)
    assert isinstance(info.value, RuntimeError)
    r = info.value.result
    assert r.iterations == 3 and r.predicted == 0 and not r.success
    assert r.l2 == pytest.approx(0.3)
    w[1] = 0  # the target's score does not depend on the input
    with pytest.raises(FoolingFailed, match="gradient of the class-1 score is 0.0 after 0 steps"):
        fooling_image(linear_model(w, np.array([1.0, 0, 0])), np.zeros((1, 4, 4)), 1)


def test_log_prob_objective_reaches_the_target():
    model = tiny_resnet()
    x = np.random.default_rng(7).standard_normal((2, 8, 8))
    target = (int(model.eval().forward(x[None]).argmax()) + 2) % 3
    r = fooling_image(model, x, target, objective="log_prob", max_iter=500)
    assert int(model.eval().forward(r.image[None]).argmax()) == target


def test_fooling_errors():
    model = tiny_resnet()
    x = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=r"fooling_image: expected one image of shape \(C, H, W\) "
                                         r"or \(1, C, H, W\), got shape \(2, 2, 8, 8\)"):
        fooling_image(model, np.zeros((2, 2, 8, 8)), 0)
    with pytest.raises(ValueError, match=r"fooling_image: expected target in \[0, 3\) \(the "
                                         r"model has 3 classes\), got 5"):
        fooling_image(model, x, 5)
    with pytest.raises(TypeError, match="fooling_image: expected target to be an int"):
        fooling_image(model, x, 1.0)
    with pytest.raises(ValueError, match="fooling_image: expected step_size to be a positive"):
        fooling_image(model, x, 1, step_size=0)
    with pytest.raises(ValueError, match="fooling_image: expected objective 'score' or"):
        fooling_image(model, x, 1, objective="loss")
    with pytest.raises(TypeError, match="fooling_image: expected x to be a float numpy.ndarray"):
        fooling_image(model, np.zeros((2, 8, 8), np.int64), 1)


# ---- worst errors ------------------------------------------------------------------------------
def test_misclassified_matches_independent_predictions():
    model = tiny_resnet(np.float32, seed=8)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 2, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model.train()
    recs = misclassified(model, x, y, 5, batch_size=16)
    assert model.training
    p = softmax(model.eval().forward(x).astype(F64), axis=1)
    pred = p.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    assert len(wrong) >= 5
    worst = wrong[np.argsort(-p[wrong].max(axis=1), kind="stable")][:5]
    assert [r.index for r in recs] == list(worst)
    for r in recs:
        assert isinstance(r, Misclassified)
        i = r.index
        second = np.argsort(-p[i])[1]
        assert (r.label, r.pred, r.second) == (y[i], pred[i], second)
        assert r.pred != r.label
        np.testing.assert_allclose([r.prob, r.second_prob, r.label_prob],
                                   [p[i, pred[i]], p[i, second], p[i, y[i]]], rtol=1e-5)
    probs = [r.prob for r in recs]
    assert probs == sorted(probs, reverse=True)
    # asking for more than there are returns every mistake
    assert {r.index for r in misclassified(model, x, y, 1000)} == set(wrong)
    # labels equal to the predictions: no mistakes at all
    assert misclassified(model, x, pred, 3) == []


def test_misclassified_errors():
    model = tiny_resnet()
    x = np.zeros((4, 2, 8, 8))
    with pytest.raises(ValueError, match=r"misclassified: expected y of shape \(4,\) to match the "
                                         r"images, got \(3,\)"):
        misclassified(model, x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"misclassified: expected y in \[0, 3\).*got 7 at "
                                         r"index 2"):
        misclassified(model, x, np.array([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="misclassified: expected k to be a positive int, got 0"):
        misclassified(model, x, np.zeros(4, np.int64), 0)
    with pytest.raises(TypeError, match=r"misclassified: expected x to be a numpy.ndarray of "
                                        r"images \(N, C, H, W\), got list"):
        misclassified(model, [[0.0]], np.zeros(1, np.int64))
