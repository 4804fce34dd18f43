"""Optimizers against hand-written PyTorch update formulas (float64, a few steps)."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fastres.layers import BatchNorm2D, Conv2D, Parameter, Sequential
from fastres.optim import SGD, Adam, AdamW, RMSprop, no_bn_bias

P0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.1, 0.2, -0.3]), np.array([-0.5, 0.4, 0.0]), np.array([0.3, -0.1, 0.2])]


def run(make, steps=3):
    p = Parameter(P0.copy())
    opt = make([p])
    for g in GRADS[:steps]:
        p.grad[...] = g
        opt.step()
    return p.data


def test_sgd_plain():
    got = run(lambda ps: SGD(ps, 0.1))
    assert_allclose(got, P0 - 0.1 * sum(GRADS), rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_weight_decay(nesterov):
    lr, mu, wd, damp = 0.1, 0.9, 0.01, 0.0
    got = run(lambda ps: SGD(ps, lr, momentum=mu, weight_decay=wd, nesterov=nesterov,
                             dampening=damp))
    p, buf = P0.copy(), None
    for g in GRADS:
        g = g + wd * p
        buf = g.copy() if buf is None else mu * buf + (1 - damp) * g
        p = p - lr * (g + mu * buf if nesterov else buf)
    assert_allclose(got, p, rtol=1e-14)


def test_sgd_dampening():
    got = run(lambda ps: SGD(ps, 0.1, momentum=0.5, dampening=0.3))
    b1 = GRADS[0]
    b2 = 0.5 * b1 + 0.7 * GRADS[1]
    b3 = 0.5 * b2 + 0.7 * GRADS[2]
    assert_allclose(got, P0 - 0.1 * (b1 + b2 + b3), rtol=1e-14)


@pytest.mark.parametrize("cls,wd,amsgrad", [(Adam, 0.0, False), (Adam, 0.1, False),
                                            (AdamW, 0.1, False), (Adam, 0.0, True)])
def test_adam(cls, wd, amsgrad):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    got = run(lambda ps: cls(ps, lr, weight_decay=wd, amsgrad=amsgrad))
    p, m, v, vmax = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        if cls is AdamW:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
    assert_allclose(got, p, rtol=1e-12)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop(centered, momentum):
    lr, a, eps, wd = 0.01, 0.99, 1e-8, 0.05
    got = run(lambda ps: RMSprop(ps, lr, momentum=momentum, centered=centered, weight_decay=wd))
    p, s, ga, buf = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for g in GRADS:
        g = g + wd * p
        s = a * s + (1 - a) * g * g
        ga = a * ga + (1 - a) * g
        avg = np.sqrt(s - ga * ga if centered else s) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    assert_allclose(got, p, rtol=1e-12)


def test_float32_stays_float32():
    p = Parameter(P0.astype(np.float32))
    for opt in (SGD([p], 0.1, momentum=0.9), Adam([p]), RMSprop([p], momentum=0.5)):
        p.grad[...] = 0.5
        opt.step()
        assert p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for s in opt.state for v in s.values()
                   if isinstance(v, np.ndarray))


def test_decay_filter_skips_bn_and_bias():
    model = Sequential(("conv", Conv2D(1, 2, 3, bias=True, rng=np.random.default_rng(0))),
                       ("bn", BatchNorm2D(2)))
    opt = SGD(model.named_parameters(), 0.1, weight_decay=0.5, decay_filter=no_bn_bias)
    decayed = {n for g in opt.param_groups if g["weight_decay"] for n in g["names"]}
    assert decayed == {"conv.weight"}
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    opt.step()  # zero grads: only decay moves weights
    for n, p in model.named_parameters():
        if n == "conv.weight":
            assert_allclose(p.data, before[n] * (1 - 0.1 * 0.5))
        else:
            assert_array_equal(p.data, before[n])


def test_param_groups_override():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], 0.1)
    a.grad[...] = b.grad[...] = 1.0
    opt.step()
    assert_allclose(a.data, 0.9)
    assert_allclose(b.data, 0.0)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, 0.1, momentum=0.9),
                                  lambda ps: Adam(ps, 0.01, amsgrad=True),
                                  lambda ps: RMSprop(ps, centered=True, momentum=0.9)])
def test_state_dict_round_trip_is_exact(make):
    p1, p2 = Parameter(P0.copy()), Parameter(P0.copy())
    o1 = make([p1])
    p1.grad[...] = GRADS[0]
    o1.step()
    sd = o1.state_dict()
    import json
    json.dumps(sd["groups"])  # hyper-parameters are JSON-able
    p2.data[...] = p1.data
    o2 = make([p2])
    o2.load_state_dict(sd)
    for o, p in ((o1, p1), (o2, p2)):
        for g in GRADS[1:]:
            p.grad[...] = g
            o.step()
    assert_array_equal(p1.data, p2.data)


@pytest.mark.parametrize("make, edit, message", [
    (lambda ps: Adam(ps, 0.01), lambda s: s.pop("exp_avg"),
     r"the state of parameter 0 has \['exp_avg_sq', 'step'\], expected \['exp_avg', "
     r"'exp_avg_sq', 'step'\]"),
    (lambda ps: Adam(ps, 0.01, amsgrad=True), lambda s: s.pop("max_exp_avg_sq"),
     "expected .*'max_exp_avg_sq'"),
    (lambda ps: Adam(ps, 0.01), lambda s: s.update(step=2.5),
     "state 'step' of parameter 0 must be an int >= 0, got 2.5"),
    (lambda ps: RMSprop(ps, momentum=0.9), lambda s: s.update(extra=np.ones(5)),
     "the state of parameter 0 has .*'extra'"),
    (lambda ps: RMSprop(ps, centered=True), lambda s: s.update(grad_avg=[0.0] * 5),
     "state 'grad_avg' of parameter 0 must be an array, got list"),
    (lambda ps: SGD(ps, 0.1, momentum=0.9), lambda s: s.clear() or s.update(step=1),
     r"has \['step'\], expected \['momentum_buffer'\]"),
])
def test_load_state_dict_checks_the_state_against_the_options(make, edit, message):
    # what _update reads must be there: a missing buffer used to be a KeyError at the next step
    p = Parameter(np.ones(5))
    o = make([p])
    p.grad[...] = 1.0
    o.step()
    sd = o.state_dict()
    edit(sd["state"]["0"])
    fresh = make([Parameter(np.ones(5))])
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(sd)
    assert not fresh.state[0]  # nothing loaded


def test_zero_grad_and_lr_setter():
    p = Parameter(np.ones(3))
    p.grad[...] = 3
    opt = SGD([p], 0.1)
    opt.zero_grad()
    assert not p.grad.any()
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5 and math.isclose(opt.lr, 0.5)


def test_errors():
    p = Parameter(np.ones(3))
    with pytest.raises(ValueError, match="SGD: expected lr >= 0"):
        SGD([p], -1.0)
    with pytest.raises(TypeError, match="SGD: expected lr to be a number"):
        SGD([p], "fast")
    with pytest.raises(ValueError, match="SGD: nesterov=True needs momentum"):
        SGD([p], 0.1, nesterov=True)
    with pytest.raises(ValueError, match="Adam: expected beta1"):
        Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(TypeError, match="RMSprop: expected Parameter"):
        RMSprop([np.ones(3)])
    with pytest.raises(ValueError, match="unknown option"):
        SGD([{"params": [p], "betas": (0.9, 0.9)}], 0.1)
    with pytest.raises(ValueError, match="more than one group"):
        SGD([{"params": [p]}, {"params": [p]}], 0.1)
