"""Fully connected layer (fast path): ``out = x @ w.T + b`` through tiled BLAS gemm calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres import arena
from fastres._config import resolve_threads
from fastres._kernels import _linear as _k
from fastres._validate import grad_like, linear_args

__all__ = ["linear_backward", "linear_forward"]

_BLAS_INT_MAX = 2**31 - 1  # BLAS takes 32-bit int sizes


@dataclass(frozen=True)
class LinearCache:
    x: np.ndarray  # (N, in_features), C-contiguous
    w: np.ndarray  # (out_features, in_features), C-contiguous, same dtype as x
    has_bias: bool


def _check_blas_sizes(op: str, **sizes: int) -> None:
    for name, size in sizes.items():
        if size > _BLAS_INT_MAX:
            raise ValueError(f"{op}: expected {name} <= {_BLAS_INT_MAX} (BLAS int), got {size}")


def linear_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, n_threads: int | None = None
) -> tuple[np.ndarray, LinearCache]:
    """Fully connected layer, as ``torch.nn.functional.linear``: ``out = x @ w.T + b``.

    Parameters
    ----------
    x : ndarray, shape (N, in_features), float32 or float64
    w : ndarray, shape (out_features, in_features), dtype of x
    b : ndarray, shape (out_features,), dtype of x, or None (no bias)
    n_threads : int, optional
        Kernel threads (default ``fastres.get_num_threads()``); results do not depend on it.

    Returns
    -------
    out : ndarray, shape (N, out_features), dtype of x
    cache : LinearCache
        What ``linear_backward`` needs (references to x and w).
    """
    op = "linear_forward"
    x, w, b = linear_args(op, x, w, b)
    (N, in_features), out_features = x.shape, w.shape[0]
    _check_blas_sizes(op, N=N, in_features=in_features, out_features=out_features)
    out = arena.empty((N, out_features), dtype=x.dtype)
    # The kernel reads b only when has_bias; an empty array keeps its fused dtype dispatch.
    bias = b if b is not None else np.empty(0, dtype=x.dtype)
    _k.linear_forward(x, w, bias, b is not None, out, resolve_threads(n_threads, op))
    return out, LinearCache(x, w, b is not None)


def linear_backward(
    dout: np.ndarray, cache: LinearCache, *, n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of ``linear_forward``.

    Parameters
    ----------
    dout : ndarray, shape (N, out_features), dtype of the forward's x
    cache : LinearCache from ``linear_forward``
    n_threads : int, optional
        Kernel threads; results are bit-identical for any value.

    Returns
    -------
    dx : ndarray, shape (N, in_features)  (``dout @ w``)
    dw : ndarray, shape (out_features, in_features)  (``dout.T @ x``)
    db : ndarray, shape (out_features,)  (``dout.sum(0)``), or None if the forward had no bias
    """
    op = "linear_backward"
    if not isinstance(cache, LinearCache):
        raise TypeError(f"{op}: expected cache to be a LinearCache, got {type(cache).__name__}")
    x, w = cache.x, cache.w
    # A hand-built cache must be as consistent as one from linear_forward: the kernel trusts it.
    if not (
        isinstance(x, np.ndarray)
        and isinstance(w, np.ndarray)
        and x.ndim == 2
        and w.ndim == 2
        and x.shape[1] == w.shape[1]
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
        and x.size > 0
        and w.size > 0
        and x.flags.c_contiguous
        and w.flags.c_contiguous
    ):
        raise ValueError(f"{op}: expected a cache made by linear_forward, got an inconsistent one")
    _check_blas_sizes(op, N=x.shape[0], in_features=x.shape[1], out_features=w.shape[0])
    dout = grad_like(op, dout, (x.shape[0], w.shape[0]), x.dtype, "(N, out_features)")
    dx = arena.empty_like(x)
    dw = arena.empty_like(w)
    db = np.empty(w.shape[0], dtype=x.dtype)
    _k.linear_backward(dout, x, w, dx, dw, db, cache.has_bias, resolve_threads(n_threads, op))
    return dx, dw, (db if cache.has_bias else None)
