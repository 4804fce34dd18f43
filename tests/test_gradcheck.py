"""The public gradient-check helpers: correct layers, ops and models pass, deliberately broken
ones are caught and named, and the checked objects are left exactly as they were."""

import numpy as np
import pytest

import fastres.functional as F
from fastres.gradcheck import (
    check_function, check_layer, check_model, directional_check, numerical_grad,
)
from fastres.layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    ReLU,
    Sequential,
)
from fastres.models import resnet_cifar

F64 = np.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- deliberately broken layers ----------------------------------------------------------------
class WeightGradOff(Dense):
    """Dense whose weight gradient is 0.1% too large (dx and bias stay right)."""

    def backward(self, dy):
        before = self.weight.grad.copy()
        dx = super().backward(dy)
        self.weight.grad[...] = before + 1.001 * (self.weight.grad - before)
        return dx


class UnmaskedReLU(ReLU):
    """ReLU whose backward forgets the mask."""

    def backward(self, dy):
        return dy.copy()


class EvalFormulaBN(BatchNorm2D):
    """Batch norm that back-propagates dx with the eval-mode formula even in training (drops the
    terms through the batch mean and variance): a classic bug that only the input and the layers
    below can reveal."""

    def backward(self, dy):
        super().backward(dy)  # parameter gradients are right
        x = self._last_x
        var = x.var(axis=(0, 2, 3))
        return dy * (self.weight.data / np.sqrt(var + self.eps))[None, :, None, None]

    def forward(self, x):
        self._last_x = x
        return super().forward(x)


def small_net(bn_cls=BatchNorm2D, seed=0):
    rng = np.random.default_rng(seed)
    net = Sequential(("conv", Conv2D(2, 3, 3, padding=1, bias=False, dtype=F64, rng=rng)),
                     ("bn", bn_cls(3, dtype=F64)), ("relu", ReLU(dtype=F64)),
                     ("pool", GlobalAvgPool2D(dtype=F64)), ("fc", Dense(3, 4, dtype=F64, rng=rng)))
    net.bn.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    net.bn.bias.data[...] = rng.standard_normal(3)
    return net


# ---- models ------------------------------------------------------------------------------------
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_tiny_resnet_passes_and_is_left_untouched(train):
    model = resnet_cifar(8, num_classes=3, in_channels=1, dtype=F64, seed=1)
    model.eval()  # check_model switches to the requested mode and back
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8))
    y = np.array([0, 2])
    model.forward(x)  # leave something in the caches and the running statistics
    for p in model.parameters():
        p.grad[...] = 0.5
    before = model.state_dict()
    errors = check_model(model, x, y, train=train, max_full=32)
    assert set(errors) == {"x"} | {n for n, _ in model.named_parameters()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, (worst, errors[worst])
    assert not model.training
    after = model.state_dict()
    for k in before:  # parameters and BN running statistics
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert all(np.all(p.grad == 0.5) for p in model.parameters())


def test_broken_layer_inside_a_model_is_named():
    x = np.random.default_rng(3).standard_normal((4, 2, 5, 5))
    y = np.array([0, 1, 2, 3])
    good = check_model(small_net(), x, y, assert_ok=True)
    assert max(good.values()) < 1e-6
    bad = small_net(EvalFormulaBN)
    errors = check_model(bad, x, y)
    # the layers after the BN get the right gradient; the BN's input gradient is wrong, so
    # the input and the conv below it are wrong
    for name in ("fc.weight", "fc.bias", "bn.weight", "bn.bias"):
        assert errors[name] < 1e-6, name
    assert errors["x"] > 1e-3 and errors["conv.weight"] > 1e-3
    with pytest.raises(AssertionError, match=r"check_model: wrong gradient for '(x|conv\.weight)'"
                                             r": relative error \d\.\d+e[-+]\d+ > tol"):
        check_model(bad, x, y, assert_ok=True)


def test_check_model_errors():
    model = resnet_cifar(8, dtype=F64)
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(TypeError, match="check_model: expected a float64 model"):
        check_model(resnet_cifar(8), x, np.array([0, 1]))
    with pytest.raises(TypeError, match=r"check_model: expected input 'x' of dtype float64.*"
                                        r"float32 with shape \(2, 3, 8, 8\)"):
        check_model(model, x.astype(np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"check_model: expected integer labels y of shape "
                                         r"\(2,\) to match x \(2, 3, 8, 8\), got shape \(3,\)"):
        check_model(model, x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="check_model: expected method in"):
        check_model(model, x, np.array([0, 1]), method="exact")


# ---- layers ------------------------------------------------------------------------------------
def test_correct_layers_pass(rng):
    conv = Conv2D(3, 4, 3, stride=2, padding=1, dtype=F64, rng=rng)
    errs = check_layer(conv, rng.standard_normal((2, 3, 5, 5)), assert_ok=True)
    assert set(errs) == {"x", "weight", "bias"}
    assert max(errs.values()) < 1e-7
    # two inputs, named after forward's parameters
    errs = check_layer(Add(dtype=F64), rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
    assert set(errs) == {"a", "b"} and max(errs.values()) < 1e-8


def test_wrong_weight_gradient_is_named(rng):
    layer = WeightGradOff(6, 5, dtype=F64, rng=rng)
    x = rng.standard_normal((4, 6))
    errs = check_layer(layer, x)
    assert errs["x"] < 1e-8 and errs["bias"] < 1e-8
    # 0.1% too large: max|a - n| / max(|a| + |n|) is about 0.001 / 2
    assert 4e-4 < errs["weight"] < 6e-4
    with pytest.raises(AssertionError, match=r"check_layer: wrong gradient for 'weight': relative "
                                             r"error [45]\.\d+e-04 > tol 1\.0e-06 \(central "
                                             r"differences on all 30 entries\); 1 of 3"):
        check_layer(layer, x, assert_ok=True)
    # random directions see it too
    with pytest.raises(AssertionError, match=r"'weight'.*directional derivative"):
        check_layer(layer, x, method="directional", assert_ok=True)


def test_wrong_input_gradient_is_named(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(AssertionError, match=r"check_layer: wrong gradient for 'x'"):
        check_layer(UnmaskedReLU(dtype=F64), x, assert_ok=True)
    assert check_layer(ReLU(dtype=F64), x)["x"] < 1e-8


def test_dropout_masks_repeat_and_generator_is_restored(rng):
    layer = Dropout(0.5, seed=3, dtype=F64)
    x = rng.standard_normal((4, 6))
    state = layer.rng.bit_generator.state
    errs = check_layer(layer, x, assert_ok=True)  # would fail if each forward drew a new mask
    assert errs["x"] < 1e-8
    assert layer.rng.bit_generator.state == state


def test_zero_gradient_is_not_failed_for_noise(rng):
    # a conv bias followed by training-mode BN has gradient exactly 0: its numerical estimate
    # is float64 noise, which the floor of the relative error keeps from failing the check
    net = Sequential(Conv2D(2, 3, 3, dtype=F64, rng=rng), BatchNorm2D(3, dtype=F64))
    errs = check_layer(net, rng.standard_normal((2, 2, 5, 5)), assert_ok=True)
    assert errs["0.bias"] < 1e-6


def test_missing_or_misshapen_gradient_fails(rng):
    class NoGrad(Add):
        def backward(self, dy):
            return dy, None

    class Flat(ReLU):
        def backward(self, dy):
            return super().backward(dy).ravel()

    errs = check_layer(NoGrad(dtype=F64), rng.standard_normal(3), rng.standard_normal(3))
    assert errs["a"] < 1e-8 and errs["b"] == np.inf
    with pytest.raises(AssertionError, match=r"'x'.*gradient of shape \(6,\) for an array of "
                                             r"shape \(2, 3\)"):
        check_layer(Flat(dtype=F64), rng.standard_normal((2, 3)), assert_ok=True)


def test_check_layer_errors(rng):
    with pytest.raises(TypeError, match="check_layer: expected a float64 layer"):
        check_layer(ReLU(), rng.standard_normal((2, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"check_layer: Add takes 2 input\(s\), got 1"):
        check_layer(Add(dtype=F64), rng.standard_normal(3))
    with pytest.raises(TypeError, match="check_layer: expected a fastres.layers.Module"):
        check_layer(lambda x: x, rng.standard_normal(3))
    with pytest.raises(ValueError, match=r"check_layer: expected dout of the output's shape "
                                         r"\(2, 2\), got \(3,\)"):
        check_layer(ReLU(dtype=F64), rng.standard_normal((2, 2)), dout=np.ones(3))
    with pytest.raises(ValueError, match="check_layer: expected eps to be a positive number"):
        check_layer(ReLU(dtype=F64), rng.standard_normal(3), eps=0)


# ---- functions ---------------------------------------------------------------------------------
def test_functional_pairs_pass(rng):
    x, w, b = (rng.standard_normal(s) for s in ((2, 3, 5, 5), (4, 3, 3, 3), (4,)))
    errs = check_function(lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, padding=1), x, w, b,
                          backward=F.conv2d_backward, assert_ok=True)
    assert set(errs) == {"x", "w", "b"}
    # batch norm: the running statistics past the last gradient are held constant
    g, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    xb = rng.standard_normal((4, 3, 2, 2))
    rm, rv = np.zeros(3), np.ones(3)
    errs = check_function(
        lambda x, gamma, beta, mean, var: F.batch_norm2d_forward(x, gamma, beta, mean, var,
                                                                 training=True),
        xb, g, beta, rm, rv, backward=F.batch_norm2d_backward, assert_ok=True)
    assert set(errs) == {"x", "gamma", "beta"}
    assert np.all(rm == 0) and np.all(rv == 1)  # the caller's arrays are not touched
    # a loss with its gradient; integer labels are constants
    errs = check_function(F.softmax_cross_entropy, rng.standard_normal((5, 4)),
                          np.array([0, 1, 2, 3, 0]), assert_ok=True)
    assert list(errs) == ["logits"]


def test_hand_written_gradients():
    x = np.linspace(-2, 2, 7)
    assert check_function(lambda x: (np.sum(x ** 3), 3 * x ** 2), x)["x"] < 1e-9
    errs = check_function(lambda x: (np.sum(x ** 3), 2 * x ** 2), x)
    # numeric 3x^2, analytic 2x^2: max|x^2| / max(5x^2) = 1/5
    assert errs["x"] == pytest.approx(0.2, rel=1e-6)


def test_broken_backward_is_named(rng):
    def bad_backward(dout, cache):
        dx, dw = F.linear_backward(dout, cache)[:2]
        return dx, dw * 1.01

    x, w = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    with pytest.raises(AssertionError, match="check_function: wrong gradient for 'w'"):
        check_function(F.linear_forward, x, w, backward=bad_backward, assert_ok=True)


def test_check_function_errors(rng):
    with pytest.raises(TypeError, match=r"check_function: expected input 'x' of dtype float64"):
        check_function(lambda x: (float(np.sum(x)), np.ones_like(x)), np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"without backward=, expected fn to return \(scalar "
                                        r"loss, gradients\), got a value of shape \(3,\)"):
        check_function(lambda x: (x * 2, np.full(3, 2.0)), np.ones(3))
    with pytest.raises(TypeError, match="expected fn to return a pair"):
        check_function(lambda x: x, np.ones(3))
    with pytest.raises(ValueError, match="no float64 array input has a gradient"):
        check_function(lambda n: (1.0, None), 3)


def test_numerical_grad_perturbs_x_itself_in_any_layout():
    # a transposed or sliced x: reshape(-1) would perturb a copy and give a zero gradient
    base = np.arange(12.0).reshape(3, 4)
    for x in (base.T, base[:, ::2]):
        g = numerical_grad(lambda: x ** 2, x, np.ones(x.shape))
        np.testing.assert_allclose(g, 2 * x, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="directional_check: expected arrays of dtype float64"):
        x = np.ones(3, np.float32)
        directional_check(lambda: x * 2, [x], [np.full(3, 2.0)], np.ones(3))
