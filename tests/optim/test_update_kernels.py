"""The one-pass update kernels (fastres._kernels._optim) against the NumPy code they replace.

``sgd_update``, ``adam_update`` and ``rmsprop_update`` run a kernel on contiguous arrays of one
float dtype and their NumPy code on anything else. Their results must agree bit for bit, which
the tests check by running the same steps on contiguous arrays and on strided views of the same
values (which take the NumPy path).
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastres._kernels import _optim
from fastres.optim import adam_update, rmsprop_update, sgd_update

N = 3 * 65536 + 1001  # several of the kernels' chunks and a ragged last one

SGD_CASES = [dict(lr=0.1), dict(lr=0.1, weight_decay=5e-4),
             dict(lr=0.05, momentum=0.9), dict(lr=0.1, momentum=0.9, weight_decay=1e-4),
             dict(lr=0.1, momentum=0.5, dampening=0.3),
             dict(lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)]
ADAM_CASES = [dict(lr=1e-3), dict(lr=1e-3, weight_decay=0.1),
              dict(lr=1e-3, weight_decay=0.01, decoupled=True), dict(lr=3e-3, amsgrad=True),
              dict(lr=1e-2, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.1, amsgrad=True)]
RMS_CASES = [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.05), dict(lr=1e-3, centered=True),
             dict(lr=1e-2, momentum=0.9), dict(lr=1e-2, alpha=0.9, eps=1e-6, momentum=0.5,
                                               centered=True, weight_decay=0.01)]


def strided(a):
    """The values of a in a non-contiguous view (every other element of a larger buffer)."""
    view = np.zeros((*a.shape, 2), a.dtype)[..., 0]
    view[...] = a
    return view


def run_steps(kind, opts, dtype, shape, contiguous, steps=3, seed=0):
    """Three updates of one parameter; returns the parameter and its state arrays."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape).astype(dtype)
    grads = [(rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 1)).astype(dtype)
             for _ in range(steps)]
    opts = dict(opts)
    if kind == "sgd":
        state = {"buf": np.zeros(shape, dtype)}
    elif kind == "adam":
        amsgrad = opts.pop("amsgrad", False)
        state = {"exp_avg": np.zeros(shape, dtype), "exp_avg_sq": np.zeros(shape, dtype),
                 "max_exp_avg_sq": np.zeros(shape, dtype) if amsgrad else None}
    else:
        centered = opts.pop("centered", False)
        state = {"square_avg": np.zeros(shape, dtype),
                 "grad_avg": np.zeros(shape, dtype) if centered else None,
                 "buf": np.zeros(shape, dtype)}
    if not contiguous:
        p = strided(p)
        state = {k: None if v is None else strided(v) for k, v in state.items()}
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            sgd_update(p, g, state["buf"], first=t == 1, **opts)
        elif kind == "adam":
            adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"],
                        step=t, **opts)
        else:
            rmsprop_update(p, g, state["square_avg"], state["grad_avg"], state["buf"], **opts)
    return [p, *(v for v in state.values() if v is not None)]


@pytest.fixture
def calls(monkeypatch):
    """Counts the kernel calls that did the update (a kernel returns False when it declines)."""
    seen = []
    for name in ("sgd", "adam", "rmsprop"):
        def spy(*args, _f=getattr(_optim, name), _name=name):
            done = _f(*args)
            seen.append((_name, done))
            return done
        monkeypatch.setattr(_optim, name, spy)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(N,), (4, 3, 5, 7), (3,)])
@pytest.mark.parametrize("kind, opts", [("sgd", o) for o in SGD_CASES]
                         + [("adam", o) for o in ADAM_CASES]
                         + [("rmsprop", o) for o in RMS_CASES])
def test_kernel_matches_numpy_bit_for_bit(kind, opts, dtype, shape, calls):
    fast = run_steps(kind, opts, dtype, shape, contiguous=True)
    assert calls == [(kind, True)] * 3
    calls.clear()
    slow = run_steps(kind, opts, dtype, shape, contiguous=False)
    assert calls == []  # strided arrays take the NumPy code
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == dtype
        assert_array_equal(a, b)


def test_kernels_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(1)
    base = [rng.standard_normal(N).astype(np.float32) for _ in range(5)]
    out = []
    for n_threads in (1, 2, 3):
        p, g, m, v, vmax = (a.copy() for a in base)
        v, vmax = np.abs(v), np.abs(vmax)
        assert _optim.adam(p, g, m, v, vmax, 1e-3, 0.9, 0.999, 1e-8, 0.01, True, 0.01, 0.05,
                           n_threads)
        q, h, b = (a.copy() for a in base[:3])
        assert _optim.sgd(q, h, b, 0.1, 1e-4, 0.9, 0.0, True, False, n_threads)
        out.append((p, m, v, vmax, q, b))
    for got in out[1:]:
        for a, b in zip(got, out[0], strict=True):
            assert_array_equal(a, b)


def test_overlapping_arrays_take_the_numpy_code():
    # a kernel declines (returns False, writes nothing) when two arrays share memory; the
    # update then matches the NumPy code run on the same overlapping arrays
    def setup():
        mem = np.arange(1.0, 31.0, dtype=np.float32)
        return mem, mem[:20], np.full(20, 0.5, np.float32), mem[10:30]  # param, grad, buf

    mem, p, g, buf = setup()
    assert not _optim.sgd(p, g, buf, 0.1, 0.0, 0.9, 0.0, False, False, 1)
    assert_array_equal(mem, np.arange(1.0, 31.0, dtype=np.float32))
    sgd_update(p, g, buf, lr=0.1, momentum=0.9)
    want_mem, wp, wg, wbuf = setup()
    wbuf *= 0.9
    wbuf += 1.0 * wg
    wp -= 0.1 * wbuf
    assert_array_equal(mem, want_mem)


def test_kernels_refuse_bad_arguments():
    a, b, c = np.zeros(5, np.float32), np.zeros(5, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="sgd: expected buf of length 5, got 4"):
        _optim.sgd(a, b, c, 0.1, 0.0, 0.9, 0.0, False, False, 1)
    with pytest.raises(ValueError, match="adam: expected exp_avg_sq of length 5, got 4"):
        _optim.adam(a, b, a.copy(), c, None, 0.1, 0.9, 0.99, 1e-8, 0.0, False, 0.1, 1.0, 1)
    with pytest.raises(ValueError, match="rmsprop: expected grad_avg of length 5, got 4"):
        _optim.rmsprop(a, b, a.copy(), c, None, 0.1, 0.99, 1e-8, 0.0, 0.0, 1)
    with pytest.raises(ValueError, match="sgd: expected n_threads in \\[1, 1024\\], got 0"):
        _optim.sgd(a, b, None, 0.1, 0.0, 0.0, 0.0, False, False, 0)
    with pytest.raises(TypeError):  # a required array
        _optim.adam(a, b, None, a.copy(), None, 0.1, 0.9, 0.99, 1e-8, 0.0, False, 0.1, 1.0, 1)
    with pytest.raises(ValueError):  # mixed dtypes
        _optim.sgd(a, b.astype(np.float64), None, 0.1, 0.0, 0.0, 0.0, False, False, 1)
    with pytest.raises(TypeError, match=r"sgd_update: expected a momentum buffer \(buf\) for "
                                        r"momentum=0.9, got None"):
        sgd_update(a, b, None, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match=r"rmsprop_update: expected a momentum buffer"):
        rmsprop_update(a, b, a.copy(), None, None, lr=0.1, momentum=0.9)
