"""ReLU, the residual add and inverted dropout (fast path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._config import resolve_threads
from fastres._kernels import _activation as _k
from fastres.functional._validate import (
    float_array,
    out_array,
    real_number,
    same_dtype,
    shape_is,
    workspace_dict,
)
from fastres.functional._workspace import kept

__all__ = [
    "relu_forward", "relu_backward", "add_forward", "add_backward",
    "dropout_forward", "dropout_backward",
]


@dataclass(frozen=True)
class ReluCache:
    out: np.ndarray  # forward output; its sign is the mask


@dataclass(frozen=True)
class AddCache:
    shape: tuple


@dataclass(frozen=True)
class DropoutCache:
    mask: np.ndarray | None  # 0 or 1/(1-p) per element; None when dropout was the identity


def _grad_like(op: str, dout, like_shape: tuple, like_dtype) -> np.ndarray:
    dout = float_array(op, "dout", dout)
    shape_is(op, "dout", dout, like_shape)
    if dout.dtype != like_dtype:
        raise TypeError(f"{op}: expected dout of dtype {like_dtype}, got {dout.dtype}")
    return dout


def _out_like(op: str, out, like: np.ndarray, reads: dict, alias_ok: tuple = ()) -> np.ndarray:
    """``out=`` of an elementwise op: a new array like ``like`` when None, else checked."""
    if out is None:
        return np.empty_like(like)
    return out_array(op, "out", out, like.shape, like.dtype, reads=reads, alias_ok=alias_ok)


def relu_forward(x: np.ndarray, *, n_threads: int | None = None,
                 out: np.ndarray | None = None):
    """``out = max(x, 0)``; any shape. Returns ``(out, cache)``; the cache holds ``out`` (its
    sign is the mask), so leave it unchanged until the backward pass.

    ``out``: optional C-contiguous array of x's shape and dtype to write into; it must not
    overlap x (the kernel does not work in place).
    """
    x = float_array("relu_forward", "x", x)
    out = _out_like("relu_forward", out, x, {"x": x})
    _k.relu_forward(x.reshape(-1), out.reshape(-1), resolve_threads(n_threads))
    return out, ReluCache(out)


def relu_backward(dout: np.ndarray, cache: ReluCache, *, n_threads: int | None = None,
                  out: np.ndarray | None = None):
    """``dx = dout * (x > 0)`` (gradient 0 at x == 0). ``out``: optional array for dx, like
    dout and overlapping neither dout nor the forward output."""
    dout = _grad_like("relu_backward", dout, cache.out.shape, cache.out.dtype)
    dx = _out_like("relu_backward", out, dout, {"dout": dout, "cache.out": cache.out})
    _k.relu_backward(dout.reshape(-1), cache.out.reshape(-1), dx.reshape(-1),
                     resolve_threads(n_threads))
    return dx


def add_forward(a: np.ndarray, b: np.ndarray, *, n_threads: int | None = None,
                out: np.ndarray | None = None):
    """Elementwise ``a + b`` of two same-shape arrays (the residual connection).

    ``out``: optional C-contiguous array of a's shape and dtype to write into; it may be a or b
    itself (in place) but must not overlap them otherwise.
    """
    a = float_array("add_forward", "a", a)
    b = float_array("add_forward", "b", b)
    same_dtype("add_forward", a=a, b=b)
    shape_is("add_forward", "b", b, a.shape)
    out = _out_like("add_forward", out, a, {"a": a, "b": b}, alias_ok=("a", "b"))
    _k.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), resolve_threads(n_threads))
    return out, AddCache(a.shape)


def add_backward(dout: np.ndarray, cache: AddCache):
    """Returns ``(da, db)``: both equal ``dout`` (the same array; copy before writing to one)."""
    dout = float_array("add_backward", "dout", dout)
    shape_is("add_backward", "dout", dout, cache.shape)
    return dout, dout


def dropout_forward(x: np.ndarray, *, p: float, training: bool, rng: np.random.Generator,
                    n_threads: int | None = None, out: np.ndarray | None = None,
                    workspace: dict | None = None):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by
    ``1/(1-p)`` (``p == 1`` zeroes everything); the identity when not training.

    ``rng`` is a ``numpy.random.Generator``; the mask is drawn as ``rng.random(x.shape) >= p``.
    ``out``: optional array like x to write into (x itself is allowed). ``workspace``: optional
    dict kept by the caller in which the mask (held by the cache) is reused between calls.
    """
    op = "dropout_forward"
    x = float_array(op, "x", x)
    p = real_number(op, "p", p, lo=0.0, hi=1.0)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: expected training to be a bool, got {training!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: expected rng to be a numpy.random.Generator, got {type(rng).__name__}")
    workspace = workspace_dict(op, workspace)
    out = _out_like(op, out, x, {"x": x}, alias_ok=("x",))
    if not training or p == 0.0:
        np.copyto(out, x)
        return out, DropoutCache(None)
    # The mask is drawn into its own array, then turned into 0 / scale in place: the same
    # numbers as ``(rng.random(shape, dtype) >= p).astype(dtype) * scale``.
    mask = kept(workspace, "dropout_forward.mask", x.shape, x.dtype, avoid=(x, out))
    keep = kept(workspace, "dropout_forward.keep", x.shape, np.bool_)
    rng.random(dtype=x.dtype, out=mask)
    np.greater_equal(mask, p, out=keep)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    np.multiply(keep, x.dtype.type(scale), out=mask)
    _k.multiply(x.reshape(-1), mask.reshape(-1), out.reshape(-1), resolve_threads(n_threads))
    return out, DropoutCache(mask)


def dropout_backward(dout: np.ndarray, cache: DropoutCache, *, n_threads: int | None = None,
                     out: np.ndarray | None = None):
    """``dx = dout * mask`` (a copy of ``dout`` when dropout was the identity). ``out``:
    optional array like dout for dx (dout itself is allowed, the mask is not)."""
    dout = float_array("dropout_backward", "dout", dout)
    if cache.mask is None:
        dx = _out_like("dropout_backward", out, dout, {"dout": dout}, alias_ok=("dout",))
        np.copyto(dx, dout)
        return dx
    dout = _grad_like("dropout_backward", dout, cache.mask.shape, cache.mask.dtype)
    dx = _out_like("dropout_backward", out, dout, {"dout": dout, "cache.mask": cache.mask},
                   alias_ok=("dout",))
    _k.multiply(dout.reshape(-1), cache.mask.reshape(-1), dx.reshape(-1),
                resolve_threads(n_threads))
    return dx
