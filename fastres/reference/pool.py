"""Max, average and global average pooling (plain NumPy reference).

Loop over the kernel offsets, vectorised over everything else, in the dtype of the input (use
float64 for ground truth). Semantics are PyTorch's (``ceil_mode=False``,
``count_include_pad=True``): max pooling pads with -inf and keeps the first maximum in row-major
window order (a NaN replaces any number), average pooling pads with zeros that count in the
divisor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._validate import (
    cache_of, float_array, grad_like, pool2d_geometry, subsample2d_args, subsample2d_grad,
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


@dataclass(frozen=True)
class MaxPool2dCache:
    x_shape: tuple
    dtype: np.dtype
    argmax: np.ndarray  # (N, C, H_out, W_out) flat index of the maximum in its H*W plane


@dataclass(frozen=True)
class AvgPool2dCache:
    x_shape: tuple
    dtype: np.dtype
    kernel_size: tuple
    stride: tuple
    padding: tuple


@dataclass(frozen=True)
class GlobalAvgPool2dCache:
    x_shape: tuple
    dtype: np.dtype


def max_pool2d_forward(x: np.ndarray, *, kernel_size, stride=None, padding=0
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling. x (N, C, H, W) -> out (N, C, H_out, W_out), with
    ``H_out = (H + 2*padding_h - kernel_h) // stride_h + 1``; ``stride=None`` is the kernel.

    The cache holds the argmax (N, C, H_out, W_out): flat index of the maximum in its H*W plane.
    """
    op = "max_pool2d_forward"
    x = float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (H_out, W_out) = pool2d_geometry(op, x.shape, kernel_size,
                                                                   stride, padding)
    xp = np.full((N, C, H + 2 * PH, W + 2 * PW), -np.inf, dtype=x.dtype)
    xp[:, :, PH:PH + H, PW:PW + W] = x
    oh = np.arange(H_out)[:, None]  # output coordinates, broadcast to (H_out, W_out)
    ow = np.arange(W_out)[None, :]
    # PyTorch starts each window at max = -inf, index = its first in-bounds element, then takes
    # every element v with (v > max or isnan(v)), scanning the window row by row.
    first = np.maximum(oh * SH - PH, 0) * W + np.maximum(ow * SW - PW, 0)
    best = np.full((N, C, H_out, W_out), -np.inf, dtype=x.dtype)
    argmax = np.broadcast_to(first, best.shape).astype(np.int64)
    for kh in range(KH):
        for kw in range(KW):
            ih, iw = oh * SH - PH + kh, ow * SW - PW + kw  # input coordinates of this offset
            v = xp[:, :, kh:kh + SH * H_out:SH, kw:kw + SW * W_out:SW]
            inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # padding never wins
            take = inside & ((v > best) | np.isnan(v))
            best = np.where(take, v, best)
            argmax = np.where(take, ih * W + iw, argmax)
    return best, MaxPool2dCache(x.shape, x.dtype, argmax)


def max_pool2d_backward(dout: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """dout (N, C, H_out, W_out) -> dx (N, C, H, W): each gradient goes to its window's argmax."""
    op = "max_pool2d_backward"
    cache = cache_of(op, cache, MaxPool2dCache, "max_pool2d_forward")
    N, C, H, W = cache.x_shape
    dout = grad_like(op, dout, cache.argmax.shape, cache.dtype, "(N, C, H_out, W_out)")
    dx = np.zeros((N * C, H * W), dtype=dout.dtype)
    plane = np.arange(N * C)[:, None]
    # unbuffered add: windows that share an argmax (stride < kernel) accumulate
    np.add.at(dx, (plane, cache.argmax.reshape(N * C, -1)), dout.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)


def _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, H_out, W_out):
    """PyTorch's divisor: the window clipped to the padded input (H + PH, W + PW)."""
    h0 = np.arange(H_out) * SH - PH
    w0 = np.arange(W_out) * SW - PW
    hsize = np.minimum(h0 + KH, H + PH) - h0
    wsize = np.minimum(w0 + KW, W + PW) - w0
    return (hsize[:, None] * wsize[None, :]).astype(np.float64)


def avg_pool2d_forward(x: np.ndarray, *, kernel_size, stride=None, padding=0
                       ) -> tuple[np.ndarray, AvgPool2dCache]:
    """Average pooling, zero padding counted. x (N, C, H, W) -> out (N, C, H_out, W_out)."""
    op = "avg_pool2d_forward"
    x = float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (H_out, W_out) = pool2d_geometry(op, x.shape, kernel_size,
                                                                   stride, padding)
    xp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    xp[:, :, PH:PH + H, PW:PW + W] = x
    total = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            total += xp[:, :, kh:kh + SH * H_out:SH, kw:kw + SW * W_out:SW]
    div = _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, H_out, W_out)
    out = (total / div).astype(x.dtype)
    return out, AvgPool2dCache(x.shape, x.dtype, (KH, KW), (SH, SW), (PH, PW))


def avg_pool2d_backward(dout: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    """dout (N, C, H_out, W_out) -> dx (N, C, H, W): dout / divisor spread over each window."""
    op = "avg_pool2d_backward"
    cache = cache_of(op, cache, AvgPool2dCache, "avg_pool2d_forward")
    N, C, H, W = cache.x_shape
    (KH, KW), (SH, SW), (PH, PW) = cache.kernel_size, cache.stride, cache.padding
    H_out, W_out = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    dout = grad_like(op, dout, (N, C, H_out, W_out), cache.dtype, "(N, C, H_out, W_out)")
    g = (dout / _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, H_out, W_out)).astype(dout.dtype)
    dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dout.dtype)
    for kh in range(KH):
        for kw in range(KW):
            dxp[:, :, kh:kh + SH * H_out:SH, kw:kw + SW * W_out:SW] += g
    return dxp[:, :, PH:PH + H, PW:PW + W].copy()


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, GlobalAvgPool2dCache]:
    """Spatial mean. x (N, C, H, W) -> out (N, C)."""
    x = float_array("global_avg_pool2d_forward", "x", x, ndim=4, layout="(N, C, H, W)")
    return x.mean(axis=(2, 3)), GlobalAvgPool2dCache(x.shape, x.dtype)


def global_avg_pool2d_backward(dout: np.ndarray, cache: GlobalAvgPool2dCache) -> np.ndarray:
    """dout (N, C) -> dx (N, C, H, W) = dout / (H*W) everywhere."""
    op = "global_avg_pool2d_backward"
    cache = cache_of(op, cache, GlobalAvgPool2dCache, "global_avg_pool2d_forward")
    N, C, H, W = cache.x_shape
    dout = grad_like(op, dout, (N, C), cache.dtype, "(N, C)")
    return np.broadcast_to((dout / (H * W))[:, :, None, None], (N, C, H, W)).copy()


@dataclass(frozen=True)
class Subsample2dCache:
    x_shape: tuple
    dtype: np.dtype
    stride: tuple


def subsample2d_forward(x: np.ndarray, *, stride, out_channels=None
                        ) -> tuple[np.ndarray, Subsample2dCache]:
    """x (N, C, H, W) -> x[:, :, ::sh, ::sw] with zero channels appended up to out_channels."""
    x, (sh, sw), out_channels = subsample2d_args("subsample2d_forward", x, stride, out_channels)
    sub = x[:, :, ::sh, ::sw]
    N, C = x.shape[:2]
    out = np.zeros((N, out_channels, *sub.shape[2:]), x.dtype)
    out[:, :C] = sub
    return out, Subsample2dCache(x.shape, x.dtype, (sh, sw))


def subsample2d_backward(dout: np.ndarray, cache: Subsample2dCache) -> np.ndarray:
    """dout (N, C_out, H_out, W_out) -> dx (N, C, H, W): dout[:, :C] at the sampled pixels."""
    op = "subsample2d_backward"
    cache = cache_of(op, cache, Subsample2dCache, "subsample2d_forward")
    sh, sw = cache.stride
    dout = subsample2d_grad(op, dout, cache.x_shape, cache.stride, cache.dtype)
    dx = np.zeros(cache.x_shape, dout.dtype)
    dx[:, :, ::sh, ::sw] = dout[:, :cache.x_shape[1]]
    return dx
