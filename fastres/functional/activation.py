"""ReLU, the residual add and inverted dropout (fast path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres import arena
from fastres._config import resolve_threads, streaming
from fastres._kernels import _activation as _k
from fastres._validate import (
    add_args, dropout_args, float_array, grad_like, same_dtype, shape_is,
)

__all__ = [
    "relu_forward", "relu_backward", "add_forward", "add_backward",
    "dropout_forward", "dropout_backward",
]


@dataclass(frozen=True)
class ReluCache:
    """Where x > 0, for relu_backward: relu_forward keeps it as bits (``mask``, one bit per
    element, fr_elementwise.h's layout; 1/32 of a float32 output's bytes), the fused layers as
    an array whose sign is the output's (``out``)."""

    out: np.ndarray | None
    mask: np.ndarray | None = None
    shape: tuple | None = None  # with mask: the input's shape and dtype
    dtype: np.dtype | None = None


@dataclass(frozen=True)
class AddCache:
    shape: tuple


@dataclass(frozen=True)
class DropoutCache:
    mask: np.ndarray | None  # 0 or 1/(1-p) per element; None when dropout was the identity


def relu_forward(x: np.ndarray, *, n_threads: int | None = None):
    """``out = max(x, 0)``; any shape. Returns ``(out, cache)``."""
    x = float_array("relu_forward", "x", x)
    out = arena.empty_like(x)
    mask = arena.empty((_k.relu_mask_bytes(x.size),), np.uint8)
    _k.relu_forward(x.reshape(-1), out.reshape(-1), mask, streaming(x, out),
                    resolve_threads(n_threads, "relu_forward"))
    return out, ReluCache(None, mask, x.shape, x.dtype)


def relu_backward(dout: np.ndarray, cache: ReluCache, *, n_threads: int | None = None):
    """``dx = dout * (x > 0)`` (gradient 0 at x == 0)."""
    n = resolve_threads(n_threads, "relu_backward")
    if cache.mask is not None:
        dout = grad_like("relu_backward", dout, cache.shape, cache.dtype)
        dx = arena.empty_like(dout)
        _k.relu_backward_mask(dout.reshape(-1), cache.mask, dx.reshape(-1),
                              streaming(dout, dx), n)
        return dx
    dout = grad_like("relu_backward", dout, cache.out.shape, cache.out.dtype)
    dx = arena.empty_like(dout)
    _k.relu_backward(dout.reshape(-1), cache.out.reshape(-1), dx.reshape(-1),
                     streaming(dout, cache.out, dx), n)
    return dx


def add_forward(a: np.ndarray, b: np.ndarray, *, gate: np.ndarray | None = None,
                n_threads: int | None = None):
    """Elementwise ``a + b`` of two same-shape arrays (the residual connection).

    With ``gate`` (same shape), the sum is zeroed where ``gate <= 0``: summing the gradients
    that meet at a ReLU's output (``gate``) and applying the ReLU's gradient in one pass."""
    a, b = add_args("add_forward", a, b)
    out = arena.empty_like(a)
    n = resolve_threads(n_threads, "add_forward")
    if gate is None:
        _k.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), streaming(a, b, out), n)
    else:
        gate = float_array("add_forward", "gate", gate)
        same_dtype("add_forward", a=a, gate=gate)
        shape_is("add_forward", "gate", gate, a.shape)
        _k.add_gated(a.reshape(-1), b.reshape(-1), gate.reshape(-1), out.reshape(-1),
                     streaming(a, b, gate, out), n)
    return out, AddCache(a.shape)


def add_backward(dout: np.ndarray, cache: AddCache):
    """Returns ``(da, db)``: both equal ``dout`` (the same array; copy before writing to one)."""
    dout = float_array("add_backward", "dout", dout)
    shape_is("add_backward", "dout", dout, cache.shape)
    return dout, dout


def dropout_forward(x: np.ndarray, *, p: float, training: bool, rng: np.random.Generator,
                    n_threads: int | None = None):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by
    ``1/(1-p)`` (``p == 1`` zeroes everything); the identity when not training.

    ``rng`` is a ``numpy.random.Generator``; the mask is drawn as ``rng.random(x.shape) >= p``.
    """
    x, p, training = dropout_args("dropout_forward", x, p, training, rng)
    if not training or p == 0.0:
        return x.copy(), DropoutCache(None)
    keep = rng.random(x.shape, dtype=x.dtype) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = keep.astype(x.dtype) * x.dtype.type(scale)
    out = arena.empty_like(x)
    _k.multiply(x.reshape(-1), mask.reshape(-1), out.reshape(-1), streaming(x, mask, out),
                resolve_threads(n_threads, "dropout_forward"))
    return out, DropoutCache(mask)


def dropout_backward(dout: np.ndarray, cache: DropoutCache, *, n_threads: int | None = None):
    """``dx = dout * mask`` (``dout`` itself when dropout was the identity)."""
    if cache.mask is None:
        return float_array("dropout_backward", "dout", dout).copy()
    dout = grad_like("dropout_backward", dout, cache.mask.shape, cache.mask.dtype)
    dx = arena.empty_like(dout)
    _k.multiply(dout.reshape(-1), cache.mask.reshape(-1), dx.reshape(-1),
                streaming(dout, cache.mask, dx), resolve_threads(n_threads, "dropout_backward"))
    return dx
