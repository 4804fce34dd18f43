"""Numerical gradient checks (central differences, float64).

Low level: ``numerical_grad(f, x, dout)`` estimates d<f(x), dout>/dx elementwise, for tiny
inputs; ``directional_check(f, xs, grads, dout)`` compares the analytic directional derivative
along a random direction with a central difference, for realistic sizes where full differences
cost too much. Both perturb the arrays in place and restore them.

High level, for your own layers, ops and models: ``check_layer(layer, *inputs)``,
``check_function(fn, *inputs)`` and ``check_model(model, x, y)`` check the gradient of every input
and parameter (full central differences for arrays of at most ``max_full`` entries, random
directions above that) and return ``{name: relative error}``; ``assert_ok=True`` raises an
``AssertionError`` naming the worst offender. They leave the object as they found it: parameters,
gradients, buffers (BN running statistics) and the generators of dropout / stochastic depth are
restored, and those generators are rewound before every forward so each evaluation draws the same
masks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "check_function",
    "check_layer",
    "check_model",
    "directional_check",
    "numerical_grad",
    "rel_error",
]


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|, tiny): a scale-free error for whole arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = max(float(np.max(np.abs(a) + np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / denom


def numerical_grad(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray,
                   eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``sum(f() * dout)`` with respect to ``x`` (float64).

    ``f`` takes no arguments and reads ``x`` (which is perturbed in place and restored).
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_grad: expected x of dtype float64, got {x.dtype}")
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):  # x itself, element by element: any layout, no copy
        old = x[i]
        x[i] = old + eps
        plus = float(np.sum(f() * dout))
        x[i] = old - eps
        minus = float(np.sum(f() * dout))
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def directional_check(f: Callable[[], np.ndarray], xs: Sequence[np.ndarray],
                      grads: Sequence[np.ndarray], dout: np.ndarray, *, eps: float = 1e-6,
                      rng: np.random.Generator | None = None) -> float:
    """Relative error between sum_i <grads_i, v_i> and the central difference of
    ``sum(f() * dout)`` along a random direction ``v`` (float64, arrays perturbed in place)."""
    for x in xs:  # float32 steps of 1e-6 are rounding noise, and integers cannot move
        if x.dtype != np.float64:
            raise TypeError(f"directional_check: expected arrays of dtype float64, got {x.dtype}")
    rng = np.random.default_rng(0) if rng is None else rng
    vs = [rng.standard_normal(x.shape) for x in xs]
    analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))

    def shifted(sign: float) -> float:
        for x, v in zip(xs, vs):
            x += sign * eps * v
        val = float(np.sum(f() * dout))
        for x, v in zip(xs, vs):
            x -= sign * eps * v
        return val

    numeric = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    return abs(analytic - numeric) / max(abs(analytic) + abs(numeric), 1e-300)


# ---- whole-object checks -----------------------------------------------------------------------
_METHODS = ("auto", "full", "directional")


def _grad_error(analytic: np.ndarray, numeric: np.ndarray, floor: float) -> float:
    """max |a - n| / max(max(|a| + |n|), floor); NaN anywhere gives NaN (a failure)."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    diff = float(np.max(np.abs(a - n), initial=0.0))
    scale = float(np.max(np.abs(a) + np.abs(n), initial=0.0))
    if math.isnan(diff) or math.isnan(scale):
        return math.nan
    return diff / max(scale, floor)


def _loss_value(f: Callable[[], np.ndarray], dout) -> float:
    return float(np.sum(f() * dout))


def _directional_error(f, x: np.ndarray, grad: np.ndarray, dout, *, eps: float,
                       rng: np.random.Generator, floor: float) -> float:
    """One random direction v: |<grad, v> - central difference along v| / scale. ``x`` is set
    from a saved copy, so it comes back bit for bit."""
    v = rng.standard_normal(x.shape)
    analytic = float(np.sum(np.asarray(grad, dtype=np.float64) * v))
    orig = x.copy()
    try:
        np.add(orig, eps * v, out=x)
        plus = _loss_value(f, dout)
        np.subtract(orig, eps * v, out=x)
        minus = _loss_value(f, dout)
    finally:
        x[...] = orig
    return _grad_error(np.array(analytic), np.array((plus - minus) / (2 * eps)), floor)


class _Saved:
    """Buffers, gradients and layer generators of a module, restorable; ``rewind()`` puts the
    generators back to their saved state (the same dropout / stochastic-depth draws)."""

    def __init__(self, module):
        self.buffers = [(b, b.copy()) for _, b in module.named_buffers()]
        self.grads = [(p.grad, p.grad.copy()) for p in module.parameters()]
        self.gens = [(g, g.bit_generator.state) for m in module.modules()
                     for g in vars(m).values() if isinstance(g, np.random.Generator)]

    def rewind(self) -> None:
        for g, state in self.gens:
            g.bit_generator.state = state

    def restore(self) -> None:
        for arr, saved in self.buffers + self.grads:
            np.copyto(arr, saved)
        self.rewind()


def _check_options(who: str, *, eps, tol, method, max_full, n_directions, floor) -> None:
    for name, v in (("eps", eps), ("tol", tol), ("floor", floor)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < math.inf):
            raise ValueError(f"{who}: expected {name} to be a positive number, got {v!r}")
    if method not in _METHODS:
        raise ValueError(f"{who}: expected method in {_METHODS}, got {method!r}")
    for name, v, lo in (("max_full", max_full, 0), ("n_directions", n_directions, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{who}: expected {name} to be an int >= {lo}, got {v!r}")


def _positional_names(fn, n: int) -> list[str]:
    """The names of ``fn``'s first ``n`` positional parameters (``x``, ``w``, ``b``), else
    ``input0``, ``input1``, ..."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds]
    if len(names) < n:
        return [f"input{i}" for i in range(n)]
    return names[:n]


def _float64_input(who: str, name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: expected input {name!r} to be a numpy.ndarray, got "
                        f"{type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(f"{who}: expected input {name!r} of dtype float64 (float32 rounding swamps "
                        f"central differences), got {x.dtype} with shape {x.shape}")
    return np.array(x, dtype=np.float64, order="C", copy=True)  # perturbed in place: our copy


def _make_dout(who: str, dout, out, rng: np.random.Generator) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{who}: expected the forward pass to return a numpy.ndarray, got "
                        f"{type(out).__name__}")
    if dout is None:
        return rng.standard_normal(out.shape)
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != out.shape:
        raise ValueError(f"{who}: expected dout of the output's shape {out.shape}, got "
                         f"{dout.shape}")
    return dout


def _compare(f, dout, targets, *, eps, method, max_full, n_directions, floor, rng):
    """{name: error} and {name: how it was measured} for (name, array, analytic gradient)."""
    errors, how = {}, {}
    for name, arr, grad in targets:
        if grad is None:
            errors[name], how[name] = math.inf, "the backward pass returned no gradient"
            continue
        grad = np.asarray(grad)
        if grad.shape != arr.shape:
            errors[name] = math.inf
            how[name] = f"gradient of shape {grad.shape} for an array of shape {arr.shape}"
            continue
        if method == "full" or (method == "auto" and arr.size <= max_full):
            errors[name] = _grad_error(grad, numerical_grad(f, arr, dout, eps), floor)
            how[name] = f"central differences on all {arr.size} entries"
        else:
            errors[name] = max(_directional_error(f, arr, grad, dout, eps=eps, rng=rng,
                                                  floor=floor) for _ in range(n_directions))
            how[name] = f"directional derivative, {n_directions} random direction(s)"
    return errors, how


def _report(who: str, errors: dict, how: dict, tol: float, assert_ok: bool) -> dict:
    if assert_ok:
        # worst first; NaN (a gradient that is not even finite) is the worst of all
        bad = sorted((k for k, e in errors.items() if not e <= tol),
                     key=lambda k: (not math.isnan(errors[k]), -np.nan_to_num(errors[k])))
        if bad:
            worst = bad[0]
            others = ", ".join(f"{k!r} ({errors[k]:.2e})" for k in bad[1:6])
            more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
            raise AssertionError(
                f"{who}: wrong gradient for {worst!r}: relative error {errors[worst]:.3e} > tol "
                f"{tol:.1e} ({how[worst]}); {len(bad)} of {len(errors)} gradients fail"
                + (f"; also {others}{more}" if others else ""))
    return errors


_DOC_OPTIONS = """
    dout : the output gradient to back-propagate (default: standard normal, from ``seed``).
    eps : central-difference step.
    method : "auto" (full differences for arrays of at most ``max_full`` entries, random
        directions above), "full" or "directional".
    max_full : size limit of full differences under "auto" (each entry costs two forwards).
    n_directions : random directions per array (the error is the worst of them).
    floor : the smallest denominator of the relative error (below it errors are absolute), so
        a gradient that is zero analytically is not failed for float64 noise ~1e-10.
    seed : seeds ``dout`` and the directions.
    tol, assert_ok : with ``assert_ok=True`` an ``AssertionError`` names the worst gradient whose
        error exceeds ``tol`` (and how many fail).

    Returns
    -------
    dict : name -> relative error ``max|analytic - numeric| / max(max(|analytic| + |numeric|),
        floor)`` (one number per array; for directions, the worst direction). ``inf`` when the
        backward pass returned no gradient or one of the wrong shape.
"""


def check_layer(layer, *inputs: np.ndarray, dout: np.ndarray | None = None,
                params: bool = True, eps: float = 1e-6, method: str = "auto",
                max_full: int = 128, n_directions: int = 3, floor: float = 1e-3,
                seed: int = 0, tol: float = 1e-6, assert_ok: bool = False) -> dict[str, float]:
    """Check ``layer.backward`` (input gradients and ``param.grad``) against finite differences.

    The layer runs in its current mode (call ``.train()`` / ``.eval()`` first): batch norm in
    training mode is a deterministic function of the batch and is checked as such; eval mode
    checks the folded Conv-BN path of containers.

    Parameters
    ----------
    layer : a float64 ``fastres.layers.Module`` (build it with ``dtype=np.float64``).
    *inputs : float64 arrays for ``layer.forward`` (copied; yours are not touched). They are
        named after ``forward``'s parameters (``x``; ``a``, ``b`` for ``Add``).
    params : also check every parameter, by its dotted name (``fc.weight``).
    """ + _DOC_OPTIONS
    from fastres.layers import Module

    who = "check_layer"
    _check_options(who, eps=eps, tol=tol, method=method, max_full=max_full,
                   n_directions=n_directions, floor=floor)
    if not isinstance(layer, Module):
        raise TypeError(f"{who}: expected a fastres.layers.Module, got {type(layer).__name__}")
    if layer.dtype != np.float64:
        raise TypeError(f"{who}: expected a float64 layer (build it with dtype=np.float64; float32 "
                        f"rounding swamps central differences), got {type(layer).__name__} of "
                        f"dtype {layer.dtype}")
    if len(inputs) != layer.n_inputs:
        raise ValueError(f"{who}: {type(layer).__name__} takes {layer.n_inputs} input(s), got "
                         f"{len(inputs)}")
    names = _positional_names(layer.forward, len(inputs))
    xs = [_float64_input(who, n, x) for n, x in zip(names, inputs)]
    named_params = list(layer.named_parameters()) if params else []
    taken = {n for n, _ in named_params}
    names = [f"input:{n}" if n in taken else n for n in names]
    rng = np.random.default_rng(seed)
    saved = _Saved(layer)

    def f():
        saved.rewind()
        return layer.forward(*xs)

    try:
        out = f()
        dout = _make_dout(who, dout, out, rng)
        layer.zero_grad()
        dxs = layer.backward(dout)
        if len(xs) == 1:
            dxs = (dxs,)
        elif not isinstance(dxs, (tuple, list)) or len(dxs) != len(xs):
            raise ValueError(f"{who}: expected backward to return {len(xs)} gradients, got "
                             f"{type(dxs).__name__}")
        # copies: a later forward may reuse the layer's buffers
        targets = [(n, x, None if d is None else np.array(d, copy=True))
                   for n, x, d in zip(names, xs, dxs)]
        targets += [(n, p.data, p.grad.copy()) for n, p in named_params]
        errors, how = _compare(f, dout, targets, eps=eps, method=method, max_full=max_full,
                               n_directions=n_directions, floor=floor, rng=rng)
    finally:
        saved.restore()
    return _report(who, errors, how, tol, assert_ok)


def check_function(fn: Callable, *inputs, backward: Callable | None = None,
                   dout: np.ndarray | None = None, eps: float = 1e-6, method: str = "auto",
                   max_full: int = 128, n_directions: int = 3, floor: float = 1e-3,
                   seed: int = 0, tol: float = 1e-6,
                   assert_ok: bool = False) -> dict[str, float]:
    """Check the gradients of a stateless function of arrays against finite differences.

    Two conventions:

    - ``backward`` given: ``fn(*inputs) -> (out, cache)`` and ``backward(dout, cache) ->
      (gradient of input 0, gradient of input 1, ...)``, the ``fastres.functional`` /
      ``fastres.reference`` pairs: ``check_function(F.conv2d_forward, x, w, b,
      backward=F.conv2d_backward)``.
    - no ``backward``: ``fn(*inputs) -> (scalar, gradients)``, a loss with its gradients
      (one array, or a tuple in input order): ``check_function(F.softmax_cross_entropy,
      logits, labels)``.

    The i-th gradient belongs to the i-th input. Float64 arrays with a gradient are checked,
    named after ``fn``'s parameters (``x``, ``w``, ``b``); everything else (integer labels,
    running statistics past the last gradient, numbers, None) is passed unchanged and held
    constant. Array inputs are copied, so yours are not touched.
    """ + _DOC_OPTIONS
    who = "check_function"
    _check_options(who, eps=eps, tol=tol, method=method, max_full=max_full,
                   n_directions=n_directions, floor=floor)
    if not callable(fn) or (backward is not None and not callable(backward)):
        raise TypeError(f"{who}: expected fn (and backward) to be callable, got "
                        f"{type(fn).__name__} and {type(backward).__name__}")
    names = _positional_names(fn, len(inputs))
    args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in inputs]
    rng = np.random.default_rng(seed)

    def call():
        res = fn(*args)
        if not (isinstance(res, tuple) and len(res) == 2):
            raise TypeError(f"{who}: expected fn to return a pair ((out, cache) with backward=, "
                            f"(loss, gradients) without), got {type(res).__name__}")
        return res

    if backward is not None:
        out, cache = call()
        dout = _make_dout(who, dout, out, rng)
        grads = backward(dout, cache)

        def f():
            return call()[0]
    else:
        value, grads = call()
        if np.ndim(value) != 0:
            raise TypeError(f"{who}: without backward=, expected fn to return (scalar loss, "
                            f"gradients), got a value of shape {np.shape(value)}; pass "
                            "backward= for array outputs")
        dout = np.float64(1.0)

        def f():
            return np.float64(call()[0])
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) > len(args):
        raise ValueError(f"{who}: got {len(grads)} gradients for {len(args)} inputs")
    targets = []
    for name, a, g in zip(names, args, grads):
        if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
            continue
        if a.dtype != np.float64:
            raise TypeError(f"{who}: expected input {name!r} of dtype float64 (float32 rounding "
                            f"swamps central differences), got {a.dtype} with shape {a.shape}")
        targets.append((name, a, None if g is None else np.array(g, copy=True)))
    if not targets:
        raise ValueError(f"{who}: no float64 array input has a gradient to check")
    errors, how = _compare(f, dout, targets, eps=eps, method=method, max_full=max_full,
                           n_directions=n_directions, floor=floor, rng=rng)
    return _report(who, errors, how, tol, assert_ok)


def check_model(model, x: np.ndarray, y: np.ndarray, *, train: bool = True,
                label_smoothing: float = 0.0, params: bool = True, eps: float = 1e-6,
                method: str = "auto", max_full: int = 128, n_directions: int = 3,
                floor: float = 1e-3, seed: int = 0, tol: float = 1e-6,
                assert_ok: bool = False) -> dict[str, float]:
    """Check a classifier's gradients: the mean softmax cross-entropy of ``model.forward(x)``
    against labels ``y``, differentiated with respect to ``x`` (named ``"x"``) and every
    parameter (dotted names, ``stage2.0.conv1.weight``).

    ``train`` picks the mode for the check (batch norm on batch statistics, or the folded
    eval path); the model's own mode, parameters, gradients, running statistics and generators
    are restored afterwards. Use a float64 model (``resnet_cifar(8, dtype=np.float64)``) and a
    small batch: a whole ResNet-8 on (2, 3, 8, 8) takes about two seconds on one thread (tiny
    shapes run fastest with ``fastres.set_num_threads(1)``).

    Parameters
    ----------
    model : a float64 ``fastres.layers.Module`` mapping (N, ...) inputs to (N, K) logits.
    x : float64 array (N, ...); y : integer labels (N,) in [0, K).
    label_smoothing : passed to ``fastres.functional.softmax_cross_entropy``.
    """ + _DOC_OPTIONS.replace(
        "    dout : the output gradient to back-propagate (default: standard normal, from "
        "``seed``).\n", "")
    from fastres.functional import softmax_cross_entropy
    from fastres.layers import Module

    who = "check_model"
    _check_options(who, eps=eps, tol=tol, method=method, max_full=max_full,
                   n_directions=n_directions, floor=floor)
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a fastres.layers.Module, got {type(model).__name__}")
    if model.dtype != np.float64:
        raise TypeError(f"{who}: expected a float64 model (build it with dtype=np.float64; "
                        f"float32 rounding swamps central differences), got dtype {model.dtype}")
    x = _float64_input(who, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{who}: expected x with a batch axis (N, ...), got shape {x.shape}")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
        got = (f"shape {y.shape} dtype {y.dtype}" if isinstance(y, np.ndarray)
               else type(y).__name__)
        raise ValueError(f"{who}: expected integer labels y of shape ({x.shape[0]},) to match "
                         f"x {x.shape}, got {got}")
    named_params = list(model.named_parameters()) if params else []
    rng = np.random.default_rng(seed)
    was_training = model.training
    saved = _Saved(model)

    def logits():
        saved.rewind()
        return model.forward(x)

    def f():
        return np.float64(softmax_cross_entropy(logits(), y, label_smoothing=label_smoothing)[0])

    try:
        model.train(train)
        _, dlogits = softmax_cross_entropy(logits(), y, label_smoothing=label_smoothing)
        model.zero_grad()
        dx = model.backward(dlogits)
        targets = [("input:x" if any(n == "x" for n, _ in named_params) else "x", x,
                    np.array(dx, copy=True))]
        targets += [(n, p.data, p.grad.copy()) for n, p in named_params]
        errors, how = _compare(f, np.float64(1.0), targets, eps=eps, method=method,
                               max_full=max_full, n_directions=n_directions, floor=floor, rng=rng)
    finally:
        saved.restore()
        model.train(was_training)
    return _report(who, errors, how, tol, assert_ok)
