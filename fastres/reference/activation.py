"""ReLU, the residual add and inverted dropout (plain NumPy reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._validate import (
    add_args, cache_of, dropout_args, float_array, grad_like, shape_is,
)

__all__ = [
    "relu_forward", "relu_backward", "add_forward", "add_backward",
    "dropout_forward", "dropout_backward",
]


@dataclass(frozen=True)
class ReluCache:
    x: np.ndarray


@dataclass(frozen=True)
class AddCache:
    shape: tuple


@dataclass(frozen=True)
class DropoutCache:
    mask: np.ndarray | None


def relu_forward(x):
    x = float_array("relu_forward", "x", x)
    return np.maximum(x, 0), ReluCache(x)


def relu_backward(dout, cache):
    op = "relu_backward"
    cache = cache_of(op, cache, ReluCache, "relu_forward")
    dout = grad_like(op, dout, cache.x.shape, cache.x.dtype)
    return np.where(cache.x > 0, dout, 0).astype(dout.dtype)


def add_forward(a, b):
    a, b = add_args("add_forward", a, b)
    return a + b, AddCache(a.shape)


def add_backward(dout, cache):
    op = "add_backward"
    cache = cache_of(op, cache, AddCache, "add_forward")
    dout = float_array(op, "dout", dout)
    shape_is(op, "dout", dout, cache.shape)
    return dout, dout


def dropout_forward(x, *, p, training, rng):
    """Mask drawn as ``rng.random(x.shape, dtype=x.dtype) >= p``, kept values scaled by 1/(1-p)."""
    x, p, training = dropout_args("dropout_forward", x, p, training, rng)
    if not training or p == 0:
        return x.copy(), DropoutCache(None)
    keep = rng.random(x.shape, dtype=x.dtype) >= p
    mask = keep * (0.0 if p == 1 else 1.0 / (1.0 - p))
    return (x * mask).astype(x.dtype), DropoutCache(mask.astype(x.dtype))


def dropout_backward(dout, cache):
    op = "dropout_backward"
    cache = cache_of(op, cache, DropoutCache, "dropout_forward")
    if cache.mask is None:
        return float_array(op, "dout", dout).copy()
    return grad_like(op, dout, cache.mask.shape, cache.mask.dtype) * cache.mask
