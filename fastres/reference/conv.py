"""2-D convolution (plain NumPy reference): cross-correlation as in PyTorch, zero padding, groups.

Loops over groups and kernel offsets; each offset is one strided view of the padded input.
Arguments are checked as in fastres.functional (fastres._validate), with the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._validate import cache_of, conv2d_args, grad_like, out_size

__all__ = ["conv2d_forward", "conv2d_backward"]


@dataclass(frozen=True)
class ConvCache:
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int


def conv2d_forward(x, w, b=None, *, stride=1, padding=0, groups=1):
    """out[n, f, y, x] = b[f] + sum_{c, i, j} w[f, c, i, j] * xpad[n, g*Cg + c, y*sh + i, x*sw + j]
    where g = f // (C_out / groups)."""
    x, w, b, (sh, sw), (ph, pw), groups, (H_out, W_out) = conv2d_args(
        "conv2d_forward", x, w, b, stride, padding, groups)
    N, C, H, W = x.shape
    C_out, Cg, KH, KW = w.shape
    Fg = C_out // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, C_out, H_out, W_out), dtype=x.dtype)
    for g in range(groups):
        xs, ws = xp[:, g * Cg:(g + 1) * Cg], w[g * Fg:(g + 1) * Fg]
        for i in range(KH):
            for j in range(KW):
                patch = xs[:, :, i:i + sh * H_out:sh, j:j + sw * W_out:sw]
                out[:, g * Fg:(g + 1) * Fg] += np.einsum("nchw,fc->nfhw", patch, ws[:, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out, ConvCache(x, w, b is not None, (sh, sw), (ph, pw), groups)


def conv2d_backward(dout, cache):
    """Returns (dx, dw, db); db is None when the forward had no bias."""
    op = "conv2d_backward"
    cache = cache_of(op, cache, ConvCache, "conv2d_forward")
    x, w, groups = cache.x, cache.w, cache.groups
    (sh, sw), (ph, pw) = cache.stride, cache.padding
    N, C, H, W = x.shape
    C_out, Cg, KH, KW = w.shape
    H_out, W_out = out_size(op, "height", H, KH, sh, ph), out_size(op, "width", W, KW, sw, pw)
    dout = grad_like(op, dout, (N, C_out, H_out, W_out), x.dtype, "(N, C_out, H_out, W_out)")
    Fg = C_out // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(groups):
        xs, ws = xp[:, g * Cg:(g + 1) * Cg], w[g * Fg:(g + 1) * Fg]
        dg = dout[:, g * Fg:(g + 1) * Fg]
        for i in range(KH):
            for j in range(KW):
                rows, cols = slice(i, i + sh * H_out, sh), slice(j, j + sw * W_out, sw)
                dw[g * Fg:(g + 1) * Fg, :, i, j] = np.einsum("nfhw,nchw->fc", dg,
                                                             xs[:, :, rows, cols])
                dxp[:, g * Cg:(g + 1) * Cg, rows, cols] += np.einsum("nfhw,fc->nchw", dg,
                                                                     ws[:, :, i, j])
    dx = dxp[:, :, ph:ph + H, pw:pw + W].copy()
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return dx, dw, db
