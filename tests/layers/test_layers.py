"""Layers and containers: gradients against central differences (float64, real kernels),
accumulation, naming, state dicts, errors, and the fused eval path."""

import numpy as np
import pytest

from fastres.gradcheck import directional_check, numerical_grad, rel_error
from fastres.layers import (
    Add,
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Graph,
    Identity,
    MaxPool2D,
    Parameter,
    ReLU,
    Sequential,
    StochasticDepth,
    ZeroPadShortcut,
)

F64 = np.float64


def full_check(layer, x, *, tol=1e-6, rng=None):
    """Full central differences for the input and every parameter of ``layer``."""
    rng = np.random.default_rng(0) if rng is None else rng
    y = layer.forward(x)
    dout = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dout)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert rel_error(dx, numerical_grad(lambda: layer.forward(x), x, dout)) < tol
    for name, p in layer.named_parameters():
        num = numerical_grad(lambda: layer.forward(x), p.data, dout)
        assert rel_error(p.grad, num) < tol, name


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"groups": 2, "padding": (1, 0)}])
def test_conv2d_gradients(rng, kw):
    conv = Conv2D(4, 6, 3, dtype=F64, rng=rng, **kw)
    full_check(conv, rng.standard_normal((2, 4, 6, 5)))


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(rng, training):
    bn = BatchNorm2D(3, dtype=F64)
    bn.weight.data[...] = rng.standard_normal(3)
    bn.bias.data[...] = rng.standard_normal(3)
    bn.running_mean[...] = rng.standard_normal(3)
    bn.running_var[...] = rng.uniform(0.5, 2, 3)
    bn.train(training)
    full_check(bn, rng.standard_normal((3, 3, 4, 4)))


def test_batchnorm_running_stats(rng):
    bn = BatchNorm2D(2, momentum=0.5, dtype=F64)
    x = rng.standard_normal((4, 2, 3, 3)) * 3 + 1
    bn.forward(x)
    m = x.mean(axis=(0, 2, 3))
    v = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.5 * m, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * v, rtol=1e-12)


@pytest.mark.parametrize("layer", [
    lambda: Dense(5, 3, dtype=F64), lambda: Dense(5, 3, bias=False, dtype=F64),
])
def test_dense_gradients(rng, layer):
    full_check(layer(), rng.standard_normal((4, 5)))


@pytest.mark.parametrize("make", [
    lambda: MaxPool2D(2, dtype=F64), lambda: MaxPool2D(3, stride=2, padding=1, dtype=F64),
    lambda: AvgPool2D(2, dtype=F64), lambda: AvgPool2D(3, stride=1, padding=1, dtype=F64),
    lambda: GlobalAvgPool2D(dtype=F64), lambda: ReLU(dtype=F64), lambda: Flatten(dtype=F64),
    lambda: ZeroPadShortcut(3, 5, 2, dtype=F64), lambda: Identity(dtype=F64),
])
def test_parameter_free_gradients(rng, make):
    full_check(make(), rng.standard_normal((2, 3, 5, 5)))


def test_zero_pad_shortcut_values(rng):
    x = rng.standard_normal((2, 2, 5, 5))
    y = ZeroPadShortcut(2, 4, 2, dtype=F64).forward(x)
    assert y.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(y[:, :2], x[:, :, ::2, ::2])
    assert not y[:, 2:].any()


def test_stochastic_depth_modes(rng):
    sd = StochasticDepth(0.5, seed=0, dtype=F64)
    x = rng.standard_normal((2, 3))
    kept = [bool(sd.forward(x).any()) for _ in range(200)]
    assert 60 < sum(kept) < 140  # about half the mini-batches keep the branch
    for _ in range(4):  # backward follows the same draw as its forward
        y = sd.forward(x)
        np.testing.assert_array_equal(sd.backward(x), y)
    sd.eval()
    np.testing.assert_allclose(sd.forward(x), 0.5 * x)
    np.testing.assert_allclose(sd.backward(x), 0.5 * x)


def test_dropout_train_eval(rng):
    d = Dropout(0.5, seed=0, dtype=F64)
    x = np.ones((100, 100))
    y = d.forward(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(d.backward(x), y)
    d.eval()
    np.testing.assert_array_equal(d.forward(x), x)


def test_gradients_accumulate_until_zero_grad(rng):
    conv = Conv2D(2, 3, 3, dtype=F64, rng=rng)
    x = rng.standard_normal((1, 2, 4, 4))
    y = conv.forward(x)
    conv.backward(np.ones_like(y))
    g1 = conv.weight.grad.copy()
    conv.forward(x)
    conv.backward(np.ones_like(y))
    np.testing.assert_allclose(conv.weight.grad, 2 * g1)
    conv.zero_grad()
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


def residual_graph(dtype=F64):
    g = Graph(dtype=dtype)
    g.add("conv1", Conv2D(2, 2, 3, padding=1, bias=False, dtype=dtype), "input")
    g.add("bn1", BatchNorm2D(2, dtype=dtype))
    g.add("relu1", ReLU(dtype=dtype))
    g.add("sum", Add(dtype=dtype), "relu1", "input")
    g.add("relu_out", ReLU(dtype=dtype))
    return g


def basic_block_graph(dtype=F64, rng=None):
    """conv-bn-relu-conv-bn, + input, relu: the CIFAR basic block, BN statistics non-trivial."""
    rng = rng or np.random.default_rng(1)
    g = Graph(dtype=dtype)
    g.add("conv1", Conv2D(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=rng), "input")
    g.add("bn1", BatchNorm2D(4, dtype=dtype))
    g.add("relu1", ReLU(dtype=dtype))
    g.add("conv2", Conv2D(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=rng))
    g.add("bn2", BatchNorm2D(4, dtype=dtype))
    g.add("sum", Add(dtype=dtype), "bn2", "input")
    g.add("relu_out", ReLU(dtype=dtype))
    for bn in (g.bn1, g.bn2):
        bn.weight.data[...] = rng.uniform(0.5, 2, 4)
        bn.bias.data[...] = rng.standard_normal(4)
        bn.running_mean[...] = rng.standard_normal(4)
        bn.running_var[...] = rng.uniform(0.5, 2, 4)
    return g


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (F64, 1e-12)])
def test_fused_residual_block(rng, dtype, tol):
    # eval: conv2 + bn2 + the residual add + the final ReLU run as one convolution
    g = basic_block_graph(dtype)
    g.eval()
    x = rng.standard_normal((3, 4, 8, 8)).astype(dtype)  # W = 8: the direct kernel
    dout = rng.standard_normal(x.shape).astype(dtype)
    outs = []
    for fuse in (True, False):
        g.fuse = fuse
        out = g.forward(x)
        g.zero_grad()
        dx = g.backward(dout)
        outs.append([out, dx] + [p.grad.copy() for p in g.parameters()])
    assert [names for names, _, _ in g._plan[False]] == [
        ("conv1", "bn1", "relu1"), ("conv2", "bn2", "sum", "relu_out")]
    assert g._plan[False][1][2] == ("relu1", "input")
    for a, b in zip(*outs):
        assert rel_error(a, b) < tol


def test_graph_residual_gradient(rng):
    full_check(residual_graph(), rng.standard_normal((2, 2, 4, 4)))


def test_graph_fan_out_sums_gradients(rng):
    # y = relu(x) + x * 1 through two branches that share the input and an intermediate tensor
    g = Graph(dtype=F64)
    g.add("a", ReLU(dtype=F64), "input")
    g.add("b", Identity(dtype=F64), "a")
    g.add("c", Add(dtype=F64), "a", "b")
    g.add("d", Add(dtype=F64), "c", "input")
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(g.forward(x), 2 * np.maximum(x, 0) + x)
    dx = g.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, 2 * (x > 0) + 1)


def test_graph_errors():
    g = Graph()
    g.add("conv", Conv2D(1, 1, 1))
    with pytest.raises(ValueError, match="'nope'.*not defined"):
        g.add("x", ReLU(), "nope")
    with pytest.raises(ValueError, match="already used"):
        g.add("conv", ReLU())
    with pytest.raises(ValueError, match="takes 2 input"):
        g.add("s", Add(), "conv")
    with pytest.raises(ValueError, match="reuses a module"):
        g.add("again", g.conv)
    with pytest.raises(TypeError, match="float64"):
        g.add("r64", ReLU(dtype=F64))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2D(1, 1, 1).backward(np.zeros((1, 1, 1, 1), np.float32))


def test_named_parameters_and_state_dict():
    inner = Sequential(residual_graph(np.float32), residual_graph(np.float32))
    model = Sequential(("stem", Conv2D(3, 2, 3, bias=False)), ("stage2", inner))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["stem.weight", "stage2.0.conv1.weight", "stage2.0.bn1.weight",
                     "stage2.0.bn1.bias", "stage2.1.conv1.weight", "stage2.1.bn1.weight",
                     "stage2.1.bn1.bias"]
    sd = model.state_dict()
    assert "stage2.1.bn1.running_var" in sd and len(sd) == len(names) + 4
    sd["stem.weight"] += 1
    model.load_state_dict(sd)
    np.testing.assert_array_equal(model.stem.weight.data, sd["stem.weight"])
    bad = dict(sd)
    del bad["stage2.0.bn1.running_mean"]
    with pytest.raises(ValueError, match="missing key 'stage2.0.bn1.running_mean'"):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected key 'extra'"):
        model.load_state_dict({**sd, "extra": np.zeros(2)})
    with pytest.raises(ValueError, match=r"'stem.weight'.*\(2, 3, 3, 3\).*\(2, 3, 1, 1\)"):
        model.load_state_dict({**sd, "stem.weight": np.zeros((2, 3, 1, 1))})


def test_input_errors_name_the_layer():
    conv = Conv2D(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2D\(3, 4, kernel_size=3\).*3 input channels.*"
                                         r"\(1, 2, 5, 5\)"):
        conv.forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="dtype float32, got float64"):
        conv.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"Dense\(4, 2\).*\(N, 4\).*\(3, 5\)"):
        Dense(4, 2).forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="groups to divide"):
        Conv2D(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="kernel_size"):
        Conv2D(3, 4, 2.5)
    with pytest.raises(ValueError, match="two inputs of one shape"):
        Add().forward(np.zeros((1, 2), np.float32), np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        ReLU(dtype=np.int32)


def test_repr_shows_non_defaults():
    assert repr(Conv2D(3, 8, 3)) == "Conv2D(3, 8, kernel_size=3)"
    assert repr(Conv2D(3, 8, 3, stride=2, padding=1, groups=1, bias=False, dtype=F64)) == (
        "Conv2D(3, 8, kernel_size=3, stride=2, padding=1, bias=False, dtype=float64)")
    assert repr(BatchNorm2D(4, momentum=0.01)) == "BatchNorm2D(4, momentum=0.01)"
    assert repr(MaxPool2D(3, stride=2, padding=1)) == (
        "MaxPool2D(kernel_size=3, stride=2, padding=1)")
    assert repr(Parameter(np.zeros(3))) == "Parameter(shape=(3,), dtype=float64)"


def test_init_schemes():
    rng = np.random.default_rng(0)
    conv = Conv2D(64, 128, 3, rng=rng)
    # He normal, fan-out mode: std = sqrt(2 / (C_out * KH * KW))
    assert abs(conv.weight.data.std() / np.sqrt(2 / (128 * 9)) - 1) < 0.02
    dense = Dense(100, 50, rng=rng)
    assert np.abs(dense.weight.data).max() <= 0.1


def test_fused_eval_winograd_follows_weight_changes(rng):
    # the folded convolution keeps its Winograd-transformed weights between eval forwards
    # (conv2d_forward's weight_cache) and drops them when a parameter changes
    seq = Sequential(Conv2D(16, 16, 3, padding=1, rng=rng), BatchNorm2D(16), ReLU())
    x = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    seq.eval()
    first = seq.forward(x).copy()
    np.testing.assert_array_equal(seq.forward(x), first)
    for change in (lambda: seq[0].weight.data.__imul__(2), lambda: seq[1].bias.data.__iadd__(1)):
        change()
        fused = seq.forward(x).copy()
        seq.fuse = False
        plain = seq.forward(x)
        seq.fuse = True
        assert not np.array_equal(fused, first) and rel_error(fused, plain) < 1e-5
        first = fused


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (F64, 1e-12)])
def test_fused_eval_equals_unfused(rng, dtype, tol):
    seq = Sequential(Conv2D(3, 4, 3, padding=1, dtype=dtype, rng=rng), BatchNorm2D(4, dtype=dtype),
                     ReLU(dtype=dtype), Conv2D(4, 4, 1, bias=False, dtype=dtype, rng=rng),
                     BatchNorm2D(4, dtype=dtype))
    for m in seq:
        if isinstance(m, BatchNorm2D):
            m.weight.data[...] = rng.uniform(0.5, 2, 4)
            m.bias.data[...] = rng.standard_normal(4)
            m.running_mean[...] = rng.standard_normal(4)
            m.running_var[...] = rng.uniform(0.5, 2, 4)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    seq.eval()
    fused = seq.forward(x)
    assert len(seq._last_steps) == 2  # two folded convolutions
    seq.fuse = False
    plain = seq.forward(x)
    assert fused.dtype == dtype and rel_error(fused, plain) < tol
    # the folded weights follow parameter changes (e.g. an optimizer step)
    seq.fuse = True
    seq[1].weight.data *= 3
    seq[0].weight.data[0] += 1
    fused = seq.forward(x)
    seq.fuse = False
    assert rel_error(fused, seq.forward(x)) < tol
    # ... down to one element's last bit, and a running statistic swapped for a new array
    for change in (lambda: seq[3].weight.data.reshape(-1)[5:6].view(f"u{dtype().itemsize}")
                   .__iadd__(1),
                   lambda: setattr(seq[4], "running_var", seq[4].running_var * 2)):
        seq.fuse = True
        before = seq.forward(x).copy()
        change()
        fused = seq.forward(x)
        seq.fuse = False
        plain = seq.forward(x)
        assert not np.array_equal(fused, before) and rel_error(fused, plain) < tol


def _train_run(model, x, dout, fuse):
    """Training forward and backward with fusion on or off: outputs, every gradient, the
    running statistics."""
    for m in model.modules():
        if hasattr(m, "fuse"):
            m.fuse = fuse
    model.train()
    out = model.forward(x)
    model.zero_grad()
    dx = model.backward(dout)
    return [out, dx] + [p.grad.copy() for p in model.parameters()] + [
        b.copy() for _, b in model.named_buffers()]


def _backward_kwargs(steps, calls):
    """Make each step record the keyword arguments its backward gets, into calls[i]."""
    for i, step in enumerate(steps):
        def spy(*a, _f=step.backward, _i=i, **kw):
            calls[_i] = kw
            return _f(*a, **kw)
        step.backward = spy


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_training_fusion_is_bit_identical(rng, dtype):
    # training: bn1 + relu1 in one pass with conv2 applying relu1's gradient to its dx, and
    # bn2 + the residual add + the final ReLU in one pass; the same numbers as the plain graph.
    # W = 8 and 7: the direct dx kernel applies the mask, the GEMM path after it.
    for W in (8, 7):
        x = rng.standard_normal((3, 4, 8, W)).astype(dtype)
        dout = rng.standard_normal(x.shape).astype(dtype)
        runs = [_train_run(basic_block_graph(dtype), x, dout, fuse) for fuse in (True, False)]
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
    g = basic_block_graph(dtype)
    _train_run(g, x, dout, True)
    steps = g._plan[True]
    assert [names for names, _, _ in steps] == [
        ("conv1",), ("bn1", "relu1"), ("conv2",), ("bn2", "sum", "relu_out")]
    assert steps[3][2] == ("conv2", "input")
    calls = {}
    _backward_kwargs([r for _, r, _ in steps], calls)
    g.backward(dout)
    # conv2 applies relu1's gradient and relu1's step skips it; the block's last ReLU is kept;
    # conv1, the input's last consumer, adds the shortcut's gradient as it stores dx
    assert calls[2] == {"relu_input": True} and calls[1] == {"premasked": True}
    assert calls[3] == {}
    assert calls[0].keys() == {"dx_add"}
    # a relu output with a second consumer: its gradients meet in the conv that comes last,
    # which sums them and applies the ReLU's gradient; the same numbers as the plain graph
    def with_extra():
        g2 = basic_block_graph(dtype)
        g2.add("extra", Add(dtype=dtype), "relu1", "relu_out")
        return g2
    runs = [_train_run(with_extra(), x, dout, fuse) for fuse in (True, False)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    g2 = with_extra()
    _train_run(g2, x, dout, True)
    calls = {}
    _backward_kwargs([r for _, r, _ in g2._plan[True]], calls)
    g2.backward(np.ones_like(x))
    assert calls[1] == {"premasked": True} and calls[2].keys() == {"relu_input", "dx_add"}


@pytest.mark.parametrize("chain", ["bn", "conv"])
def test_training_fusion_leaves_a_thrice_used_input_unfused(rng, chain):
    # bn(input) + input, then + input: the chain would return the input's gradient at the
    # add's place instead of the batch norm's, and three gradients summed in another order
    # round differently (38 of 200 elements, by up to 9e-16); such a chain is not fused, so
    # training stays bit-identical. With two uses it is (one addition: either order).
    def make(uses):
        g = Graph(dtype=F64)
        g.add("a", BatchNorm2D(4, dtype=F64) if chain == "bn" else
              Conv2D(4, 4, 3, padding=1, dtype=F64, rng=np.random.default_rng(3)), "input")
        g.add("s1", Add(dtype=F64), "a", "input")
        if uses == 3:
            g.add("s2", Add(dtype=F64), "s1", "input")
        return g
    x = rng.standard_normal((2, 4, 5, 5))
    dout = rng.standard_normal(x.shape)
    for uses, fused in ((3, False), (2, True)):
        runs = [_train_run(make(uses), x, dout, fuse) for fuse in (True, False)]
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
        g = make(uses)
        _train_run(g, x, dout, True)
        assert (("a", "s1") in [names for names, _, _ in g._plan[True]]) == fused


def test_conv_bn_folding_follows_eps(rng):
    # the folded weights depend on eps too: changed after an eval forward, it is refolded
    seq = Sequential(Conv2D(4, 8, 3, padding=1, rng=rng, dtype=F64), BatchNorm2D(8, dtype=F64))
    seq[1].running_var[...] = rng.random(8) + 0.5
    x = rng.standard_normal((2, 4, 6, 6))
    seq.eval()
    seq.forward(x)
    seq[1].eps = 0.5
    fused = seq.forward(x).copy()
    seq.fuse = False
    assert rel_error(fused, seq.forward(x)) < 1e-12


def test_training_fusion_in_sequential(rng):
    def make():
        return Sequential(BatchNorm2D(3, dtype=F64), ReLU(dtype=F64),
                          Conv2D(3, 4, 3, padding=1, dtype=F64, rng=np.random.default_rng(2)),
                          BatchNorm2D(4, dtype=F64), ReLU(dtype=F64), Flatten(dtype=F64))

    x = rng.standard_normal((2, 3, 5, 8))
    dout = rng.standard_normal((2, 4 * 5 * 8))
    runs = [_train_run(make(), x, dout, fuse) for fuse in (True, False)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    seq = make()
    _train_run(seq, x, dout, True)
    kinds = [type(s).__name__ for s in seq._plan[True]]
    assert kinds == ["BatchNormAct", "Conv2D", "BatchNormAct", "Flatten"]
    calls = {}
    _backward_kwargs(seq._plan[True], calls)
    seq.backward(dout)
    # the conv applies the first ReLU's gradient; the second's (before Flatten) stays its own
    assert calls[1] == {"relu_input": True} and calls[0] == {"premasked": True}
    assert calls[2] == {} and calls[3] == {}


def test_eval_plan_runs_a_preactivation_bn_relu_as_one_pass(rng):
    from fastres.models import MiniUnit
    unit = MiniUnit(4, 4, dtype=F64)
    x = rng.standard_normal((2, 4, 8, 8))
    unit.train()
    unit.forward(x)  # running statistics
    unit.eval()
    outs = []
    for fuse in (True, False):
        unit.fuse = fuse
        outs.append(unit.forward(x))
    assert rel_error(*outs) < 1e-12  # conv1 + bn2 folded: equal up to rounding
    assert [(names, type(r).__name__) for names, r, _ in unit._plan[False]] == [
        (("bn1", "relu1"), "BatchNormAct"), (("conv1", "bn2", "relu2"), "FusedConvBN"),
        (("conv2", "sum"), "ConvAdd")]


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_training_fusion_of_a_preactivation_unit_is_bit_identical(rng, dtype):
    # a conv adds the other input of the sum as it stores its output (ConvAdd); backward, bn1
    # (the input's last consumer, in the unit without pooling) adds the shortcut's gradient as
    # it stores dx; the same numbers as unfused
    from fastres.models import MiniUnit
    for cin, cout, pool in ((8, 8, False), (4, 8, True)):
        x = rng.standard_normal((3, cin, 8, 8)).astype(dtype)
        dout = rng.standard_normal((3, cout, 4 if pool else 8, 4 if pool else 8)).astype(dtype)
        units = [MiniUnit(cin, cout, pool=pool, dtype=dtype) for _ in range(2)]
        for p in units[0].parameters():
            p.data[...] = rng.standard_normal(p.shape)
        units[1].load_state_dict(units[0].state_dict())
        runs = [_train_run(u, x, dout, fuse) for u, fuse in zip(units, (True, False))]
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
        unit = MiniUnit(cin, cout, pool=pool, dtype=dtype)
        _train_run(unit, x, dout, True)
        steps = unit._plan[True]
        # (the pooling unit's shortcut conv, declared first, takes the add)
        assert (("shortcut" if pool else "conv2", "sum"), "ConvAdd") in [
            (n, type(r).__name__) for n, r, _ in steps]
        calls = {}
        _backward_kwargs([r for _, r, _ in steps], calls)
        unit.backward(dout)
        first = [i for i, (n, _, _) in enumerate(steps) if n[0] == "bn1"][0]
        assert ("dx_add" in calls[first]) == (not pool)


@pytest.mark.parametrize("layer", ["conv", "bn"])
def test_an_add_of_two_fusable_steps_fuses_one(rng, layer):
    # Add(a, b) with a and b both convs (or both batch norms) that feed nothing else: one of
    # them takes the add, the other runs alone before it
    def make():
        r = np.random.default_rng(3)
        g = Graph(dtype=F64)
        for name in ("a", "b"):
            g.add(name, Conv2D(4, 4, 3, padding=1, dtype=F64, rng=r) if layer == "conv"
                  else BatchNorm2D(4, dtype=F64), "input")
        g.add("sum", Add(dtype=F64), "a", "b")
        return g
    x = rng.standard_normal((2, 4, 8, 8))
    dout = rng.standard_normal(x.shape)
    runs = [_train_run(make(), x, dout, fuse) for fuse in (True, False)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_containers_return_the_gradient_through_a_relu_on_their_input(rng):
    # backward(relu_input=True) == the plain input gradient masked by (input > 0): the block
    # (mask in the fan-out sum), an Add of the input with itself, a Sequential whose first
    # layer cannot take the mask (applied at the end) and one whose first layer is a conv
    g2 = Graph(dtype=F64)
    g2.add("twice", Add(dtype=F64), "input", "input")
    g2.add("bn", BatchNorm2D(4, dtype=F64))
    makers = [lambda: basic_block_graph(F64), lambda: g2,
              lambda: Sequential(Flatten(dtype=F64)),
              lambda: Sequential(Conv2D(4, 4, 3, padding=1, dtype=F64, rng=rng),
                                 Flatten(dtype=F64))]
    x = np.maximum(rng.standard_normal((2, 4, 8, 8)), 0)  # a ReLU's output
    for make in makers:
        m = make()
        out = m.forward(x)
        dout = rng.standard_normal(out.shape)
        plain = m.backward(dout)
        gated = m.backward(dout, relu_input=True)
        np.testing.assert_array_equal(gated, np.where(x > 0, plain, 0))


def test_fused_backward_matches_unfused(rng):
    g = residual_graph()
    g.bn1.running_var[...] = [0.5, 2.0]
    g.eval()
    x = rng.standard_normal((2, 2, 4, 4))
    dout = rng.standard_normal((2, 2, 4, 4))
    grads = []
    for fuse in (True, False):
        g.fuse = fuse
        g.forward(x)
        g.zero_grad()
        dx = g.backward(dout)
        grads.append([dx] + [p.grad.copy() for p in g.parameters()])
    assert len(g._plan[False]) == 3  # conv1+bn1+relu1 folded, then sum, relu_out
    for a, b in zip(*grads):
        assert rel_error(a, b) < 1e-12
    ps = [p.data for p in g.parameters()]
    g.fuse = True
    g.forward(x)
    g.zero_grad()
    dx = g.backward(dout)
    err = directional_check(lambda: g.forward(x), [x, *ps], [dx] + [p.grad for p in g.parameters()],
                            dout)
    assert err < 1e-7


def test_backward_without_input_gradient(rng, monkeypatch):
    # backward(input_grad=False) returns None, gives every parameter the same gradient bit for
    # bit, and the convolutions fed by the input alone skip its gradient: the basic block (its
    # input also feeds the shortcut), a Sequential that starts with a conv inside a Sequential,
    # one that starts with a batch norm (it cannot skip) and a CIFAR ResNet
    from fastres.layers import conv as conv_layer
    from fastres.models import resnet_cifar

    makers = [lambda: basic_block_graph(F64),
              lambda: Sequential(Sequential(Conv2D(4, 4, 3, padding=1, dtype=F64, rng=rng)),
                                 BatchNorm2D(4, dtype=F64), ReLU(dtype=F64)),
              lambda: Sequential(BatchNorm2D(4, dtype=F64), Conv2D(4, 2, 1, dtype=F64, rng=rng)),
              lambda: resnet_cifar(8, dtype=F64)]
    flags = []
    real = conv_layer.F.conv2d_backward
    monkeypatch.setattr(conv_layer.F, "conv2d_backward",
                        lambda *a, **kw: flags.append(kw.get("input_grad", True)) or real(*a, **kw))
    for make in makers:
        m = make()
        x = rng.standard_normal((2, 3 if make is makers[-1] else 4, 8, 8))
        grads = []
        for input_grad in (True, False):
            flags.clear()
            out = m.forward(x)
            m.zero_grad()
            dx = m.backward(np.ones_like(out), input_grad=input_grad)
            assert (dx is None) == (not input_grad)
            grads.append([p.grad.copy() for p in m.parameters()])
            skipped = flags.count(False)
        assert skipped == (0 if make is makers[2] else 1)
        for a, b in zip(*grads):
            np.testing.assert_array_equal(a, b)
