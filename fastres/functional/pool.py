"""Max, average and global average pooling on NCHW arrays (fast path).

Semantics follow PyTorch's ``max_pool2d`` / ``avg_pool2d`` (``ceil_mode=False``,
``count_include_pad=True``, no dilation) and ``x.mean((2, 3))``: padding acts as -inf for max
and as counted zeros for average, ``padding`` may be at most half the kernel, ties and NaNs go to
the first maximum / any NaN exactly as PyTorch's CPU kernel picks them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from fastres import arena
from fastres._config import resolve_threads
from fastres._kernels import _pool as _k
from fastres._validate import (
    float_array, grad_like, pool2d_geometry, subsample2d_args, subsample2d_grad,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "subsample2d_backward",
    "subsample2d_forward",
]

_INT32_MAX = np.iinfo(np.int32).max
# Below this many elements per thread, starting and joining the OpenMP team costs more than the
# loop itself (and under load, waiting for a descheduled thread costs milliseconds).
_MIN_WORK_PER_THREAD = 16384


def _threads(op: str, n_threads: int | None, work: int) -> int:
    """At most the requested threads, fewer for small arrays (results are the same for any
    count: each plane belongs to one thread)."""
    return max(1, min(resolve_threads(n_threads, op), work // _MIN_WORK_PER_THREAD))


@dataclass(frozen=True)
class _Geometry:
    """A validated pooling configuration for an (N, C, H, W) input."""

    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    H_out: int
    W_out: int

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H_out, self.W_out)

    @property
    def params(self) -> tuple[int, int, int, int, int, int]:
        """(KH, KW, SH, SW, PH, PW) for the kernels. A stride longer than the padded input only
        ever places one window, so it is capped there to keep the kernels' int32 offsets exact."""
        SH, SW = min(self.SH, self.H + 2 * self.PH), min(self.SW, self.W + 2 * self.PW)
        return (self.KH, self.KW, SH, SW, self.PH, self.PW)

    @property
    def is_2x2(self) -> bool:
        """The ResNet/Keras downsampling pool (kernel 2, stride 2, no padding): windows that tile
        the plane, which the 2x2 kernels handle."""
        return self.params == (2, 2, 2, 2, 0, 0)


@dataclass(frozen=True)
class MaxPool2dCache:
    x_shape: tuple  # (N, C, H, W)
    dtype: np.dtype
    kernel_size: tuple  # (KH, KW)
    stride: tuple  # (SH, SW)
    padding: tuple  # (PH, PW)
    # (N, C, H_out, W_out): int32 flat index of each maximum in its H*W plane; for the 2x2,
    # stride-2, unpadded pool, uint8 position in its window, 2*row + column (a quarter of the
    # memory traffic and of the cache's size)
    index: np.ndarray

    @property
    def argmax(self) -> np.ndarray:
        """int32 flat index of each window's maximum in its H*W plane (as PyTorch's indices)."""
        if self.index.dtype != np.uint8:
            return self.index
        W = self.x_shape[3]
        OH, OW = self.index.shape[2:]
        corner = (2 * W * np.arange(OH, dtype=np.int32))[:, None] + 2 * np.arange(
            OW, dtype=np.int32)
        k = self.index.astype(np.int32)
        return corner + (k >> 1) * W + (k & 1)


@dataclass(frozen=True)
class AvgPool2dCache:
    x_shape: tuple
    dtype: np.dtype
    kernel_size: tuple
    stride: tuple
    padding: tuple


@dataclass(frozen=True)
class Subsample2dCache:
    x_shape: tuple
    dtype: np.dtype
    stride: tuple[int, int]


@dataclass(frozen=True)
class GlobalAvgPool2dCache:
    x_shape: tuple
    dtype: np.dtype


def _x_shape(op: str, shape) -> tuple[int, int, int, int]:
    """A cached input shape must still be four positive ints (caches can be built by hand)."""
    ok = (
        isinstance(shape, tuple) and len(shape) == 4
        and all(type(s) is int  # a forward's own cache: exact ints, without the ABC checks
                or (isinstance(s, numbers.Integral) and not isinstance(s, bool)) for s in shape)
        and min(shape) > 0
    )
    if not ok:
        raise ValueError(f"{op}: expected cache.x_shape to be 4 positive ints, got {shape!r}")
    return tuple(map(int, shape))


def _geometry(op: str, x_shape: tuple, kernel_size, stride, padding) -> _Geometry:
    """The shared checks (fastres._validate.pool2d_geometry) against an (N, C, H, W) shape, then
    the kernels' int32 limits."""
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW), (H_out, W_out) = pool2d_geometry(op, x_shape, kernel_size,
                                                                   stride, padding)
    _plane_fits(op, x_shape)
    if H + 2 * PH > _INT32_MAX or W + 2 * PW > _INT32_MAX:
        raise ValueError(
            f"{op}: expected H + 2*padding and W + 2*padding <= {_INT32_MAX}, got x of shape "
            f"{tuple(x_shape)} with padding=({PH}, {PW})"
        )
    return _Geometry(N, C, H, W, KH, KW, SH, SW, PH, PW, H_out, W_out)


def _plane_fits(op: str, shape: tuple) -> None:
    """The kernels index a plane (and store argmax) with int32."""
    if shape[-2] * shape[-1] > _INT32_MAX:
        raise ValueError(f"{op}: expected H*W <= {_INT32_MAX}, got x of shape {tuple(shape)}")


def _input(op: str, x) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.ndim == 4:
        _plane_fits(op, x.shape)  # before float_array copies a (non-contiguous) giant
    return float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")


def _cache(op: str, cache, cls: type, forward: str):
    if not isinstance(cache, cls):
        raise TypeError(
            f"{op}: expected cache to be a {cls.__name__} from {forward}, "
            f"got {type(cache).__name__}"
        )
    if cache.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{op}: expected cache.dtype float32 or float64, got {cache.dtype!r}")
    return cache


def max_pool2d_forward(x: np.ndarray, *, kernel_size, stride=None, padding=0,
                       n_threads: int | None = None) -> tuple[np.ndarray, MaxPool2dCache]:
    """2-D max pooling (PyTorch ``max_pool2d``, ``ceil_mode=False``, no dilation).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride=None`` means ``kernel_size``. Padding acts as -inf and may be at most
        ``kernel_size // 2``.
    n_threads : int, optional
        Threads to use (default ``fastres.get_num_threads()``); the result does not depend on it.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``H_out = (H + 2*padding_h - kernel_h) // stride_h + 1`` (likewise W_out).
    cache : MaxPool2dCache
        Holds where each window's maximum is: ``cache.argmax`` gives it as the int32 flat
        index in its H*W plane (PyTorch's indices). The first maximum in row-major window order
        wins ties, a NaN wins over numbers.
    """
    op = "max_pool2d_forward"
    x = _input(op, x)
    g = _geometry(op, x.shape, kernel_size, stride, padding)
    out = arena.empty(g.out_shape, dtype=x.dtype)
    P, threads = g.N * g.C, _threads(op, n_threads, x.size)
    if g.is_2x2:
        index = arena.empty(g.out_shape, dtype=np.uint8)
        _k.max_pool2x2_forward(x.reshape(P, g.H, g.W), out.reshape(P, g.H_out, g.W_out),
                               index.reshape(P, g.H_out, g.W_out), threads)
    else:
        index = arena.empty(g.out_shape, dtype=np.int32)
        _k.max_pool2d_forward(x.reshape(P, g.H, g.W), out.reshape(P, g.H_out, g.W_out),
                              index.reshape(P, g.H_out, g.W_out), *g.params, threads)
    return out, MaxPool2dCache(x.shape, x.dtype, (g.KH, g.KW), (g.SH, g.SW), (g.PH, g.PW),
                               index)


def max_pool2d_backward(dout: np.ndarray, cache: MaxPool2dCache, *,
                        n_threads: int | None = None) -> np.ndarray:
    """Gradient of ``max_pool2d_forward``: each output's gradient goes to its argmax.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out), dtype of the forward input
    cache : MaxPool2dCache from ``max_pool2d_forward``

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Where windows overlap (stride < kernel) the contributions add up.
    """
    op = "max_pool2d_backward"
    cache = _cache(op, cache, MaxPool2dCache, "max_pool2d_forward")
    g = _geometry(op, _x_shape(op, cache.x_shape), cache.kernel_size, cache.stride,
                  cache.padding)
    dout = grad_like(op, dout, g.out_shape, cache.dtype)
    index, fast = cache.index, g.is_2x2
    want = np.dtype(np.uint8 if fast else np.int32)
    if not (isinstance(index, np.ndarray) and index.dtype == want
            and index.shape == g.out_shape and index.flags.c_contiguous):
        got = (f"{index.dtype} array of shape {index.shape}"
               if isinstance(index, np.ndarray) else type(index).__name__)
        raise ValueError(
            f"{op}: expected cache.index to be a C-contiguous {want} array of shape "
            f"{g.out_shape}, got {got}"
        )
    # The 2x2 kernel writes a gradient only where a code is 0-3, so any byte is memory-safe;
    # the general kernel scatters through the indices, so they must lie in the plane.
    if not fast and (index.min() < 0 or index.max() >= g.H * g.W):
        raise ValueError(
            f"{op}: expected cache.index values in [0, {g.H * g.W}), got values in "
            f"[{index.min()}, {index.max()}]"
        )
    dx = arena.empty((g.N, g.C, g.H, g.W), dtype=dout.dtype)
    P, threads = g.N * g.C, _threads(op, n_threads, dx.size)
    d3, i3, dx3 = (a.reshape(P, *a.shape[2:]) for a in (dout, index, dx))
    if fast:
        _k.max_pool2x2_backward(d3, i3, dx3, threads)
    else:
        _k.max_pool2d_backward(d3, i3, dx3, *g.params, threads)
    return dx


def avg_pool2d_forward(x: np.ndarray, *, kernel_size, stride=None, padding=0,
                       n_threads: int | None = None) -> tuple[np.ndarray, AvgPool2dCache]:
    """2-D average pooling (PyTorch ``avg_pool2d``, ``ceil_mode=False``,
    ``count_include_pad=True``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (h, w) pair
        ``stride=None`` means ``kernel_size``; zero padding, at most ``kernel_size // 2``.
    n_threads : int, optional
        Threads to use; the result does not depend on it.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out), dtype of x
        Window sum (row-major order) divided by the window size clipped to the padded input,
        which is ``kernel_h * kernel_w`` here since ``ceil_mode`` is False.
    cache : AvgPool2dCache
    """
    op = "avg_pool2d_forward"
    x = _input(op, x)
    g = _geometry(op, x.shape, kernel_size, stride, padding)
    out = arena.empty(g.out_shape, dtype=x.dtype)
    P = g.N * g.C
    _k.avg_pool2d_forward(x.reshape(P, g.H, g.W), out.reshape(P, g.H_out, g.W_out), *g.params,
                          _threads(op, n_threads, x.size))
    return out, AvgPool2dCache(x.shape, x.dtype, (g.KH, g.KW), (g.SH, g.SW), (g.PH, g.PW))


def avg_pool2d_backward(dout: np.ndarray, cache: AvgPool2dCache, *,
                        n_threads: int | None = None) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward``: ``dout / divisor`` spread over each window.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H_out, W_out), dtype of the forward input
    cache : AvgPool2dCache from ``avg_pool2d_forward``

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    op = "avg_pool2d_backward"
    cache = _cache(op, cache, AvgPool2dCache, "avg_pool2d_forward")
    g = _geometry(op, _x_shape(op, cache.x_shape), cache.kernel_size, cache.stride,
                  cache.padding)
    dout = grad_like(op, dout, g.out_shape, cache.dtype)
    dx = arena.empty((g.N, g.C, g.H, g.W), dtype=dout.dtype)
    P = g.N * g.C
    _k.avg_pool2d_backward(dout.reshape(P, g.H_out, g.W_out), dx.reshape(P, g.H, g.W), *g.params,
                           _threads(op, n_threads, dx.size))
    return dx


def global_avg_pool2d_forward(x: np.ndarray, *, n_threads: int | None = None
                              ) -> tuple[np.ndarray, GlobalAvgPool2dCache]:
    """Mean over the spatial axes (PyTorch ``x.mean((2, 3))``, i.e. ``adaptive_avg_pool2d(x, 1)``
    flattened).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    n_threads : int, optional
        Threads to use; the result does not depend on it (each plane is summed in one fixed
        order by one thread).

    Returns
    -------
    out : ndarray, shape (N, C), dtype of x
    cache : GlobalAvgPool2dCache
    """
    op = "global_avg_pool2d_forward"
    x = float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")
    N, C, H, W = x.shape
    out = arena.empty((N, C), dtype=x.dtype)
    _k.global_avg_pool2d_forward(x.reshape(N * C, H * W), out.reshape(N * C),
                                 _threads(op, n_threads, x.size))
    return out, GlobalAvgPool2dCache(x.shape, x.dtype)


def global_avg_pool2d_backward(dout: np.ndarray, cache: GlobalAvgPool2dCache, *,
                               n_threads: int | None = None) -> np.ndarray:
    """Gradient of ``global_avg_pool2d_forward``: ``dx[n, c] = dout[n, c] / (H*W)`` everywhere.

    Parameters
    ----------
    dout : ndarray, shape (N, C), dtype of the forward input
    cache : GlobalAvgPool2dCache from ``global_avg_pool2d_forward``

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    op = "global_avg_pool2d_backward"
    cache = _cache(op, cache, GlobalAvgPool2dCache, "global_avg_pool2d_forward")
    N, C, H, W = _x_shape(op, cache.x_shape)
    dout = grad_like(op, dout, (N, C), cache.dtype)
    dx = arena.empty((N, C, H, W), dtype=dout.dtype)
    _k.global_avg_pool2d_backward(dout.reshape(N * C), dx.reshape(N * C, H * W),
                                  _threads(op, n_threads, dx.size))
    return dx


def subsample2d_forward(x: np.ndarray, *, stride, out_channels: int | None = None,
                        n_threads: int | None = None) -> tuple[np.ndarray, Subsample2dCache]:
    """``x[:, :, ::stride_h, ::stride_w]`` with zero channels appended up to ``out_channels``
    (default: none): He et al.'s option-A shortcut, or a 1x1 window with a stride.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    stride : int or (int, int), >= 1
    out_channels : int >= C, optional

    Returns
    -------
    out : ndarray, shape (N, out_channels, ceil(H/stride_h), ceil(W/stride_w)), dtype of x
    cache : Subsample2dCache
    """
    op = "subsample2d_forward"
    x, (SH, SW), Co = subsample2d_args(op, _input(op, x), stride, out_channels)
    N, C, H, W = x.shape
    out = arena.empty((N, Co, -(-H // SH), -(-W // SW)), dtype=x.dtype)
    _k.subsample2d_forward(x, out, SH, SW, _threads(op, n_threads, out.size))
    return out, Subsample2dCache(x.shape, x.dtype, (SH, SW))


def subsample2d_backward(dout: np.ndarray, cache: Subsample2dCache, *,
                         n_threads: int | None = None) -> np.ndarray:
    """Gradient of ``subsample2d_forward``: ``dout[:, :C]`` at the sampled pixels, 0 elsewhere.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    op = "subsample2d_backward"
    cache = _cache(op, cache, Subsample2dCache, "subsample2d_forward")
    N, C, H, W = _x_shape(op, cache.x_shape)
    SH, SW = cache.stride
    dout = subsample2d_grad(op, dout, (N, C, H, W), (SH, SW), cache.dtype)
    dx = arena.empty((N, C, H, W), dtype=dout.dtype)
    _k.subsample2d_backward(dout, dx, SH, SW, _threads(op, n_threads, dx.size))
    return dx
