"""Residual plumbing: Identity, Add, the option-A zero-padding shortcut and stochastic depth."""

from __future__ import annotations

import numpy as np

import fastres.functional as F
from fastres.layers.base import Module

__all__ = ["Add", "Identity", "StochasticDepth", "ZeroPadShortcut"]


class Identity(Module):
    """``y = x`` (the identity shortcut)."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)

    def forward(self, x):
        self._check_input(x)
        return x

    def backward(self, dy):
        return dy


class Add(Module):
    """``y = a + b`` for two same-shape inputs (the residual sum); backward returns (da, db)."""

    n_inputs = 2

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._cache = None

    def forward(self, a, b):
        self._check_input(a)
        self._check_input(b)
        if a.shape != b.shape:
            raise ValueError(f"{self!r}: expected two inputs of one shape, got {a.shape} and "
                             f"{b.shape}")
        out, self._cache = F.add_forward(a, b)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return F.add_backward(dy, self._cache)

    def output_shape(self, *shapes):
        if len(shapes) != 2 or tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"{self!r}: expected two inputs of one shape, got {shapes}")
        return tuple(shapes[0])


class ZeroPadShortcut(Module):
    """He et al. (2015) option A: a parameter-free shortcut that subsamples with ``stride`` (takes
    every stride-th pixel, matching a stride-s 3x3 conv with padding 1) and appends zero channels
    to go from ``in_channels`` to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        if out_channels < in_channels or stride < 1:
            raise ValueError(f"ZeroPadShortcut: expected out_channels >= in_channels and "
                             f"stride >= 1, got {in_channels} -> {out_channels}, stride {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self._cache = None

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.in_channels, what=" (N, C, H, W)")
        out, self._cache = F.subsample2d_forward(x, stride=self.stride,
                                                 out_channels=self.out_channels)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return F.subsample2d_backward(dy, self._cache)

    def output_shape(self, *shapes):
        _C, H, W = shapes[0]
        s = self.stride
        return (self.out_channels, -(-H // s), -(-W // s))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class StochasticDepth(Module):
    """Huang et al. (2016): in training, keep the residual branch with probability
    ``survival_prob`` (one draw per mini-batch) and zero it otherwise; in eval, scale it by
    ``survival_prob``. Put it at the end of the residual branch, before the Add."""

    def __init__(self, survival_prob: float, *, seed=None, dtype=np.float32):
        super().__init__(dtype=dtype)
        if not 0.0 < float(survival_prob) <= 1.0:
            raise ValueError(f"StochasticDepth: expected 0 < survival_prob <= 1, "
                             f"got {survival_prob!r}")
        self.survival_prob = float(survival_prob)
        self.rng = np.random.default_rng(seed)
        self._scale = None

    def forward(self, x):
        self._check_input(x)
        if self.training:
            self._scale = 1.0 if self.rng.random() < self.survival_prob else 0.0
        else:
            self._scale = self.survival_prob
        if self._scale == 1.0:
            return x
        return x * x.dtype.type(self._scale)

    def backward(self, dy):
        self._need_cache(self._scale)
        return dy if self._scale == 1.0 else dy * dy.dtype.type(self._scale)

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob:.4g}"
