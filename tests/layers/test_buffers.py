"""Arrays kept between training steps (issue 3): after a warm-up step nothing activation- or
gradient-sized is allocated again, results stay bit-identical to a run that allocates everything
afresh, shapes changes reallocate, and what a caller gets back is never overwritten later."""

import contextlib
import tracemalloc

import numpy as np
import pytest

import fastres.functional as F
from fastres.functional import activation as F_activation
from fastres.functional import batchnorm as F_batchnorm
from fastres.functional import conv as F_conv
from fastres.functional import pool as F_pool
from fastres.gradcheck import directional_check
from fastres.layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dense,
    Graph,
    Identity,
    ReLU,
    Sequential,
    base,
    fused,
)
from fastres.models import minimodel, resnet_cifar
from fastres.optim import SGD, Adam

F64 = np.float64


@contextlib.contextmanager
def fresh_arrays(monkeypatch):
    """Switch every reuse off: all ops allocate new outputs, gradients and scratch (the code path
    before issue 3), so runs with reuse can be compared bit for bit."""
    def new(store, key, shape, dtype, avoid=()):
        return np.empty(shape, dtype)

    def new_scratch(role, shape, dtype):
        return np.empty(shape, dtype)

    with monkeypatch.context() as mp:
        mp.setattr(base, "kept", new)
        mp.setattr(base, "reusable", lambda *a, **k: None)
        mp.setattr(fused, "reusable", lambda *a, **k: None)
        mp.setattr(base.Graph, "_sums_in_place", lambda self, steps, consumers: {})
        for mod in (F_conv, F_batchnorm):
            mp.setattr(mod, "scratch", new_scratch)
        for mod in (F_conv, F_pool, F_activation):
            mp.setattr(mod, "kept", new)
        yield


def batch(seed, n, hw=8, c=3, classes=10, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, hw, hw)).astype(dtype), rng.integers(0, classes, n)


def train_step(model, opt, x, y):
    """One SGD step; returns copies of everything it produced."""
    opt.zero_grad()
    logits = model(x)
    loss, dlogits = F.softmax_cross_entropy(logits, y)
    dx = model.backward(dlogits)
    opt.step()
    return [np.float64(loss), logits.copy(), dx.copy()] + [p.grad.copy()
                                                           for p in model.parameters()]


def state(model):
    return [a.copy() for a in model.state_dict().values()]


def assert_all_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


MODELS = {
    "resnet8-A": lambda: resnet_cifar(8, shortcut="A", seed=3),
    "resnet8-B": lambda: resnet_cifar(8, shortcut="B", seed=3),  # strided 1x1 projection
    "preact-B": lambda: resnet_cifar(8, preact=True, shortcut="B", seed=3),
    "stochastic-depth": lambda: resnet_cifar(14, stochastic_depth=0.5, seed=3),
    "minimodel": lambda: minimodel(base_filters=4, units_per_stage=1, seed=3),  # pools, dropout
}


def data_for(name, seed, n):
    return batch(seed, n, hw=32 if name == "minimodel" else 8)


def reseed(model, seed):
    """Dropout and stochastic depth draw from their own generators: restart them."""
    for i, m in enumerate(model.modules()):
        if hasattr(m, "rng"):
            m.rng = np.random.default_rng([seed, i])


def run(model, plan, name):
    """Steps of a plan: ("train", seed, n) steps and ("eval", seed, n) forwards."""
    reseed(model, 0)
    opt = SGD(model, 0.05, momentum=0.9, weight_decay=1e-4)
    out = []
    for kind, seed, n in plan:
        x, y = data_for(name, seed, n)
        if kind == "train":
            model.train()
            out += train_step(model, opt, x, y)
        else:
            model.eval()
            out.append(model(x))
    return out + state(model)


# train steps with an eval pass and a batch-size change in between
PLAN = [("train", 1, 4), ("train", 2, 4), ("eval", 3, 6), ("train", 4, 4), ("train", 5, 3),
        ("eval", 6, 3), ("train", 6, 4)]


@pytest.mark.parametrize("name", list(MODELS))
def test_reuse_is_bit_identical_to_fresh_allocation(name, monkeypatch):
    with_reuse = run(MODELS[name](), PLAN, name)
    with fresh_arrays(monkeypatch):
        fresh = run(MODELS[name](), PLAN, name)
    assert_all_equal(with_reuse, fresh)


@pytest.mark.parametrize("name", ["resnet8-B", "minimodel"])
def test_warm_model_matches_freshly_built_model(name):
    """A model whose kept arrays hold stale data from other batches (and another batch size)
    takes exactly the steps of a freshly built model with the same seed."""
    warm, fresh = MODELS[name](), MODELS[name]()
    opt = SGD(warm, 0.1)
    for seed, n in ((10, 4), (11, 5), (12, 4)):
        train_step(warm, opt, *data_for(name, seed, n))
    warm.eval()
    warm(data_for(name, 13, 2)[0])
    warm.train()
    warm.load_state_dict(fresh.state_dict())  # same weights and running stats again
    results = []
    for model in (warm, fresh):
        reseed(model, 1)
        opt = SGD(model, 0.05, momentum=0.9)
        results.append([r for seed in (20, 21) for r in train_step(model, opt,
                                                                  *data_for(name, seed, 4))])
    assert_all_equal(*results)


def leaves(model):
    return [m for m in model.modules() if not m._modules]


def record_results(model):
    """Wrap every leaf's forward/backward to record the arrays they return."""
    seen = []
    for m in leaves(model):
        def wrap(fn, m=m):
            def call(*a, **k):
                r = fn(*a, **k)
                seen.append((m, r))
                return r
            return call
        object.__setattr__(m, "forward", wrap(m.forward))
        object.__setattr__(m, "backward", wrap(m.backward))
    return seen


def test_second_step_returns_the_same_arrays():
    model = resnet_cifar(8, shortcut="B", seed=0)
    seen = record_results(model)
    opt = SGD(model, 0.1, momentum=0.9)
    grads = [p.grad for p in model.parameters()]
    steps = []
    for seed in (1, 2, 3):
        seen.clear()
        train_step(model, opt, *batch(seed, 4))
        steps.append([(m, id(r) if isinstance(r, np.ndarray) else tuple(map(id, r)))
                      for m, r in seen])
    assert steps[1] == steps[2]  # every layer returned the very same arrays
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    kept = [a for m in model.modules() for a in m._work.values()]
    for _, r in seen:  # ... which are arrays the layers keep
        for a in (r if isinstance(r, tuple) else (r,)):
            assert any(a is b for b in kept)


def test_second_step_allocates_no_activation_sized_arrays():
    model = resnet_cifar(8, shortcut="B", seed=0)
    opt = SGD(model, 0.1, momentum=0.9)
    x, y = batch(1, 8, hw=32)
    activation = x.shape[0] * 16 * 32 * 32 * 4  # bytes of one float32 first-stage activation

    def peak_of_step():
        tracemalloc.start()
        try:
            opt.zero_grad()
            model.backward(F.softmax_cross_entropy(model(x), y)[1])
            opt.step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    cold = peak_of_step()
    warm = peak_of_step()
    assert cold > 10 * activation  # the first step allocates every activation and gradient
    assert warm < activation, (warm, activation)  # later ones only small temporaries


def test_batch_size_change_reallocates():
    model = resnet_cifar(8, seed=0)
    opt = SGD(model, 0.1)
    train_step(model, opt, *batch(1, 4))
    bn = model.bn1
    old = bn._work["out"]
    r = train_step(model, opt, *batch(2, 6))
    assert bn._work["out"].shape == (6, 16, 8, 8) and bn._work["out"] is not old
    assert r[1].shape == (6, 10) and r[2].shape == (6, 3, 8, 8)
    again = bn._work["out"]
    train_step(model, opt, *batch(3, 6))
    assert bn._work["out"] is again


def test_caller_arrays_are_never_overwritten():
    model = resnet_cifar(8, shortcut="B", seed=0)
    x1, y1 = batch(1, 4)
    x2, y2 = batch(2, 4)
    out1 = model(x1)
    d1 = F.softmax_cross_entropy(out1, y1)[1]
    dx1 = model.backward(d1)
    keep = out1.copy(), dx1.copy()
    out2 = model(x2)
    dx2 = model.backward(F.softmax_cross_entropy(out2, y2)[1])
    assert out2 is not out1 and dx2 is not dx1
    np.testing.assert_array_equal(out1, keep[0])
    np.testing.assert_array_equal(dx1, keep[1])
    # an inner container called directly is outermost too; so is an eval pass
    stage = model.stage2
    h1 = stage(np.ones((2, 16, 8, 8), np.float32))
    h1c = h1.copy()
    stage(np.zeros((2, 16, 8, 8), np.float32))
    np.testing.assert_array_equal(h1, h1c)
    model.eval()
    e1 = model(x1)
    e1c = e1.copy()
    model(x2)
    np.testing.assert_array_equal(e1, e1c)


def test_layers_called_directly_return_new_arrays(rng):
    for layer, shape in ((Conv2D(3, 4, 3, padding=1, rng=rng), (2, 3, 5, 5)),
                         (BatchNorm2D(3), (2, 3, 5, 5)), (ReLU(), (2, 3)),
                         (Dense(3, 2, rng=rng), (4, 3))):
        x = rng.standard_normal(shape).astype(np.float32)
        y1 = layer(x)
        d1 = layer.backward(np.ones_like(y1))
        y2 = layer(x)
        d2 = layer.backward(np.ones_like(y2))
        assert y1 is not y2 and d1 is not d2 and not np.shares_memory(y1, y2)


def test_graph_fan_out_sums_never_write_into_a_child_array(rng):
    # y = relu(x) + relu(x) + x, inside a Sequential so that the graph's children reuse arrays
    g = Graph(dtype=F64)
    g.add("a", ReLU(dtype=F64), "input")
    g.add("b", Identity(dtype=F64), "a")
    g.add("c", Add(dtype=F64), "a", "b")
    g.add("d", Add(dtype=F64), "c", "input")
    model = Sequential(Identity(dtype=F64), g)
    for _ in range(3):
        x = rng.standard_normal((3, 4))
        dy = rng.standard_normal((3, 4))
        np.testing.assert_array_equal(model(x), 2 * np.maximum(x, 0) + x)
        dx = model.backward(dy)
        np.testing.assert_allclose(dx, dy * (2 * (x > 0) + 1), rtol=1e-15)
        relu_dx = g.a._work["dx"]  # the ReLU's own gradient: its dy was the (c) fan-out sum
        np.testing.assert_allclose(relu_dx, 2 * dy * (x > 0), rtol=1e-15)


def test_residual_sum_is_written_into_the_bn_output():
    model = resnet_cifar(8, seed=0)
    block = model.stage1[0]
    train_step(model, SGD(model, 0.1), *batch(1, 4))
    assert block.sum._work.get("out") is None  # the sum went into bn2's output array
    model.eval()
    y_fused = model(batch(2, 4)[0])
    for m in model.modules():
        if hasattr(m, "fuse"):
            m.fuse = False
    np.testing.assert_allclose(model(batch(2, 4)[0]), y_fused, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_warm_float64_model_gradients(shortcut):
    """Gradients of a model whose arrays were kept from calls at another batch size and in eval
    mode agree with central differences through the real kernels (float64)."""
    model = resnet_cifar(8, shortcut=shortcut, dtype=F64, seed=2)
    for n in (3, 2):
        x, _ = batch(n, n, dtype=F64)
        model(x)
        model.backward(np.ones((n, 10)))
    model.eval()
    model(batch(5, 5, dtype=F64)[0])
    model.train()
    x = batch(7, 2, dtype=F64)[0]
    y = model(x)
    dout = np.random.default_rng(1).standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dout)
    params = list(model.parameters())
    err = directional_check(lambda: model(x), [x] + [p.data for p in params],
                            [dx] + [p.grad.copy() for p in params], dout, eps=1e-7)
    assert err < 1e-6


def test_optimizers_see_gradients_accumulated_in_place():
    model = resnet_cifar(8, seed=0)
    opt = Adam(model, 1e-3)
    x, y = batch(1, 4)
    grads = [p.grad for p in model.parameters()]
    opt.zero_grad()
    for _ in range(2):  # two backward passes accumulate into the same arrays
        model.backward(F.softmax_cross_entropy(model(x), y)[1])
    once = resnet_cifar(8, seed=0)
    once.backward(F.softmax_cross_entropy(once(x), y)[1])
    for p, q, g in zip(model.parameters(), once.parameters(), grads):
        assert p.grad is g
        np.testing.assert_allclose(p.grad, 2 * q.grad, rtol=1e-5, atol=1e-7)
    opt.step()


def test_free_workspace_drops_kept_arrays():
    model = resnet_cifar(8, seed=0)
    r1 = train_step(model, SGD(model, 0.0), *batch(1, 4))
    assert any(m._work for m in model.modules())
    model.free_workspace()
    assert not any(m._work for m in model.modules())
    r2 = train_step(model, SGD(model, 0.0), *batch(1, 4))
    assert_all_equal(r1[1:3], r2[1:3])


def test_sum_in_place_only_over_outputs_nothing_else_reads(monkeypatch):
    """An Add may overwrite a Conv2D/BatchNorm2D output read by nothing else, never a ReLU's
    (its backward reads its output), a fan-out tensor or the graph's input."""
    def make():
        rng = np.random.default_rng(0)
        g = Graph(dtype=F64)
        g.add("conv", Conv2D(2, 2, 3, padding=1, dtype=F64, rng=rng), "input")
        g.add("relu", ReLU(dtype=F64))
        g.add("bn", BatchNorm2D(2, dtype=F64), "input")
        g.add("sum", Add(dtype=F64), "relu", "bn")
        g.add("conv2", Conv2D(2, 2, 1, dtype=F64, rng=rng), "sum")
        g.add("sum2", Add(dtype=F64), "conv2", "sum")  # conv2 may be overwritten, sum not
        g.add("sum3", Add(dtype=F64), "sum2", "input")
        return g, Sequential(Identity(dtype=F64), g, dtype=F64)

    g, model = make()
    steps = g._steps()
    assert g._sums_in_place(steps, g._consumers()) == {3: 1, 5: 0}

    def run(model):
        out = []
        for seed in (1, 2):
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((2, 2, 4, 4))
            out += [model(x), model.backward(rng.standard_normal((2, 2, 4, 4)))]
            out += [p.grad.copy() for p in model.parameters()]
        return out

    with_reuse = run(model)
    with fresh_arrays(monkeypatch):
        fresh = run(make()[1])
    assert_all_equal(with_reuse, fresh)
