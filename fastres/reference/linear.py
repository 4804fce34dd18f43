"""Fully connected layer (plain NumPy reference): ``out = x @ w.T + b``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._validate import cache_of, grad_like, linear_args

__all__ = ["linear_backward", "linear_forward"]


@dataclass(frozen=True)
class LinearCache:
    x: np.ndarray
    w: np.ndarray
    has_bias: bool


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None):
    """``out[n, o] = sum_i x[n, i] * w[o, i] + b[o]``.

    x (N, in), w (out, in), b (out,) or None -> out (N, out). Returns ``(out, cache)``.
    """
    x, w, b = linear_args("linear_forward", x, w, b)
    out = np.einsum("ni,oi->no", x, w)
    if b is not None:
        out = out + b
    return out, LinearCache(x, w, b is not None)


def linear_backward(dout: np.ndarray, cache: LinearCache):
    """Returns ``(dx, dw, db)``; ``db`` is None when the forward had no bias.

    dx[n, i] = sum_o dout[n, o] w[o, i];  dw[o, i] = sum_n dout[n, o] x[n, i];
    db[o] = sum_n dout[n, o].
    """
    op = "linear_backward"
    cache = cache_of(op, cache, LinearCache, "linear_forward")
    dout = grad_like(op, dout, (cache.x.shape[0], cache.w.shape[0]), cache.x.dtype,
                     "(N, out_features)")
    dx = np.einsum("no,oi->ni", dout, cache.w)
    dw = np.einsum("no,ni->oi", dout, cache.x)
    db = dout.sum(axis=0) if cache.has_bias else None
    return dx, dw, db
