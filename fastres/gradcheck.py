"""Numerical gradient checks (central differences, float64).

``numerical_grad(f, x, dout)`` estimates d<f(x), dout>/dx elementwise, for tiny inputs.
``directional_check(f, xs, grads, dout)`` compares the analytic directional derivative along a
random direction with a central difference, for realistic sizes where full differences cost too
much. Both perturb the arrays in place and restore them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["numerical_grad", "directional_check", "rel_error"]


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
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(np.sum(f() * dout))
        flat[i] = old - eps
        minus = float(np.sum(f() * dout))
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def directional_check(f: Callable[[], np.ndarray], xs: Sequence[np.ndarray],
                      grads: Sequence[np.ndarray], dout: np.ndarray, *, eps: float = 1e-6,
                      rng: np.random.Generator | None = None) -> float:
    """Relative error between sum_i <grads_i, v_i> and the central difference of
    ``sum(f() * dout)`` along a random direction ``v`` (float64, arrays perturbed in place)."""
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
