"""Max, average and global-average pooling layers."""

from __future__ import annotations

import numpy as np

import fastres.functional as F
from fastres.layers.base import Module
from fastres.layers.conv import conv_output_size, pair

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]


class _Pool2D(Module):
    _fwd = _bwd = ""

    def __init__(self, kernel_size, *, stride=None, padding=0, dtype=np.float32):
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.kernel_size = pair(who, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else pair(who, "stride", stride, minimum=1)
        self.padding = pair(who, "padding", padding, minimum=0)
        self._cache = None

    def forward(self, x):
        self._check_input(x, ndim=4, what=" (N, C, H, W)")
        out, self._cache = getattr(F, self._fwd)(x, kernel_size=self.kernel_size,
                                                 stride=self.stride, padding=self.padding)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return getattr(F, self._bwd)(dy, self._cache)

    def output_shape(self, *shapes):
        s = shapes[0]
        if len(s) != 3:
            raise ValueError(f"{self!r}: expected input shape (C, H, W), got {s}")
        return (s[0], *conv_output_size(self, s, self.kernel_size, self.stride, self.padding))

    def extra_repr(self) -> str:
        k = self.kernel_size
        s = [f"kernel_size={k[0] if k[0] == k[1] else k}"]
        if self.stride != self.kernel_size:
            s.append("stride="
                     f"{self.stride[0] if self.stride[0] == self.stride[1] else self.stride}")
        if self.padding != (0, 0):
            p = self.padding
            s.append(f"padding={p[0] if p[0] == p[1] else p}")
        return ", ".join(s)


class MaxPool2D(_Pool2D):
    """Max pooling; ``stride`` defaults to ``kernel_size``; padding counts as -inf."""

    _fwd, _bwd = "max_pool2d_forward", "max_pool2d_backward"


class AvgPool2D(_Pool2D):
    """Average pooling; padded zeros count in the divisor (PyTorch ``count_include_pad=True``)."""

    _fwd, _bwd = "avg_pool2d_forward", "avg_pool2d_backward"


class GlobalAvgPool2D(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C)."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._cache = None

    def forward(self, x):
        self._check_input(x, ndim=4, what=" (N, C, H, W)")
        out, self._cache = F.global_avg_pool2d_forward(x)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return F.global_avg_pool2d_backward(dy, self._cache)

    def output_shape(self, *shapes):
        s = shapes[0]
        if len(s) != 3:
            raise ValueError(f"{self!r}: expected input shape (C, H, W), got {s}")
        return (s[0],)
