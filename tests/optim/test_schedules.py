import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastres.layers import Parameter
from fastres.optim import (
    SGD,
    Adam,
    CosineAnnealing,
    LinearWarmup,
    MultiStepLR,
    OneCycle,
    ReduceLROnPlateau,
    StepLR,
)


def opt(lr=0.1, **kw):
    return SGD([Parameter(np.zeros(2))], lr, **kw)


def lrs(sched, n):
    out = [sched.optimizer.lr]
    for _ in range(n):
        sched.step()
        out.append(sched.optimizer.lr)
    return out


def test_step_and_multistep():
    assert_allclose(lrs(StepLR(opt(), 2, gamma=0.5), 5), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert_allclose(lrs(MultiStepLR(opt(), [1, 3]), 4), [0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine():
    got = lrs(CosineAnnealing(opt(), 4, eta_min=0.01), 5)
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2 for t in range(6)]
    assert_allclose(got, want)


def test_onecycle_matches_torch_formula():
    o = opt(momentum=0.9)
    s = OneCycle(o, 10, max_lr=1.0, pct_start=0.3)
    got = lrs(s, 9)

    def cos(a, b, pct):
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)
    up = 0.3 * 10 - 1
    want = [cos(0.04, 1.0, t / up) if t <= up else cos(1.0, 0.04 / 1e4, (t - up) / (9 - up))
            for t in range(10)]
    assert_allclose(got, want)
    assert math.isclose(got[0], 0.04) and math.isclose(got[-1], 4e-6)
    assert math.isclose(o.param_groups[0]["momentum"], 0.95)


def test_onecycle_cycles_adam_beta1():
    o = Adam([Parameter(np.zeros(2))], 0.01)
    s = OneCycle(o, 10)
    assert math.isclose(o.param_groups[0]["betas"][0], 0.95)
    for _ in range(2):
        s.step()
    assert math.isclose(o.param_groups[0]["betas"][0], 0.85)


def test_warmup_then_inner():
    o = opt(0.1)
    s = LinearWarmup(StepLR(o, 2, gamma=0.1), 2, start_factor=0.5)
    assert_allclose(lrs(s, 5), [0.05, 0.075, 0.1, 0.1, 0.01, 0.01])


def test_plateau():
    o = opt(1.0)
    s = ReduceLROnPlateau(o, patience=1)
    seen = []
    for m in [0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.3]:
        s.step(m)
        seen.append(o.lr)
    assert_allclose(seen, [1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="ReduceLROnPlateau.step: expected the metric"):
        s.step()



def test_multistep_milestones_are_a_list():
    with pytest.raises(TypeError, match="MultiStepLR: expected milestones as a list of ints"):
        MultiStepLR(opt(0.1), 5)


def test_plateau_ignores_a_nan_metric():
    # torch starts from best = inf: a NaN never improves on it, and a later real metric does
    o = opt(1.0)
    s = ReduceLROnPlateau(o, patience=1)
    for m in [float("nan"), 0.5, 0.4, 0.3]:
        s.step(m)
    assert o.lr == 1.0 and s.best == 0.3


def test_schedule_and_optimizer_states_are_checked_when_loaded():
    o = opt(0.1)
    with pytest.raises(ValueError, match="StepLR.load_state_dict: a malformed state"):
        StepLR(o, 2).load_state_dict({"type": "StepLR"})
    two = SGD([{"params": [Parameter(np.zeros(2))]}, {"params": [Parameter(np.zeros(2))]}], 0.1)
    with pytest.raises(ValueError, match="the state has 1 parameter group.s., the optimizer 2"):
        StepLR(two, 2).load_state_dict(StepLR(o, 2).state_dict())
    bad = o.state_dict()
    bad["groups"][0]["lr"] = -5.0
    with pytest.raises(ValueError, match="SGD: .*lr"):
        o.load_state_dict(bad)
    assert o.lr == 0.1  # nothing loaded


@pytest.mark.parametrize("make", [lambda o: StepLR(o, 2), lambda o: CosineAnnealing(o, 5),
                                  lambda o: OneCycle(o, 8),
                                  lambda o: LinearWarmup(CosineAnnealing(o, 5), 2),
                                  lambda o: ReduceLROnPlateau(o, patience=0)])
def test_state_dict_resume(make):
    import json
    o1 = opt(0.1, momentum=0.9)
    s1 = make(o1)
    for i in range(3):
        s1.step(1.0 / (i + 1) if i < 2 else 1.0)
    sd = json.loads(json.dumps(s1.state_dict()))
    o2 = opt(0.1, momentum=0.9)
    s2 = make(o2)
    s2.load_state_dict(sd)
    assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
    for _ in range(3):
        s1.step(1.0)
        s2.step(1.0)
        assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
        assert o2.param_groups[0]["momentum"] == o1.param_groups[0]["momentum"]


def test_schedule_errors():
    with pytest.raises(TypeError, match="StepLR: expected a fastres.optim optimizer"):
        StepLR(object(), 2)
    with pytest.raises(ValueError, match="StepLR: expected step_size"):
        StepLR(opt(), 0)
    with pytest.raises(ValueError, match="MultiStepLR: expected increasing"):
        MultiStepLR(opt(), [3, 1])
    with pytest.raises(TypeError, match="LinearWarmup: expected a closed-form"):
        LinearWarmup(ReduceLROnPlateau(opt()), 2)
