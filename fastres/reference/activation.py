"""ReLU, the residual add and inverted dropout (plain NumPy reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "relu_forward", "relu_backward", "add_forward", "add_backward",
    "dropout_forward", "dropout_backward",
]


@dataclass(frozen=True)
class ReluCache:
    x: np.ndarray


@dataclass(frozen=True)
class DropoutCache:
    mask: np.ndarray | None


def relu_forward(x):
    return np.maximum(x, 0), ReluCache(x)


def relu_backward(dout, cache):
    return np.where(cache.x > 0, dout, 0).astype(dout.dtype)


def add_forward(a, b):
    return a + b, None


def add_backward(dout, cache):
    return dout, dout


def dropout_forward(x, *, p, training, rng):
    """Mask drawn as ``rng.random(x.shape, dtype=x.dtype) >= p``, kept values scaled by 1/(1-p)."""
    if not training or p == 0:
        return x.copy(), DropoutCache(None)
    keep = rng.random(x.shape, dtype=x.dtype) >= p
    mask = keep * (0.0 if p == 1 else 1.0 / (1.0 - p))
    return (x * mask).astype(x.dtype), DropoutCache(mask.astype(x.dtype))


def dropout_backward(dout, cache):
    return dout.copy() if cache.mask is None else dout * cache.mask
