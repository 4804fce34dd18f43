"""Fully connected layer and Flatten."""

from __future__ import annotations

import math
import numbers

import numpy as np

import fastres.functional as F
from fastres.layers.base import Module, Parameter, init_rng

__all__ = ["Dense", "Flatten"]


class Dense(Module):
    """``y = x @ w.T + b`` with ``w`` of shape (out_features, in_features).

    ``reset_parameters`` follows PyTorch's ``nn.Linear``: weight and bias uniform in
    ``[-1/sqrt(in_features), 1/sqrt(in_features)]``.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 dtype=np.float32, rng: np.random.Generator | None = None):
        super().__init__(dtype=dtype)
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Dense: expected {name} to be an int >= 1, got {v!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Parameter(np.zeros((out_features, in_features), self.dtype))
        self.bias = Parameter(np.zeros(out_features, self.dtype)) if bias else None
        self._cache = None
        rng = init_rng(rng)
        if rng is not None:
            self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight.data[...] = rng.uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias.data[...] = rng.uniform(-bound, bound, self.bias.shape)

    def forward(self, x):
        self._check_input(x, ndim=2, what=" (N, in_features)")
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), "
                             f"got {x.shape}")
        b = None if self.bias is None else self.bias.data
        out, self._cache = F.linear_forward(x, self.weight.data, b)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        dx, dw, db = F.linear_backward(dy, self._cache)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def output_shape(self, *shapes):
        s = shapes[0]
        if tuple(s) != (self.in_features,):
            raise ValueError(f"{self!r}: expected input shape ({self.in_features},), got {s}")
        return (self.out_features,)

    def macs(self, *shapes):
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias is not None
                                                            else ", bias=False")


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._shape = None

    def forward(self, x):
        self._check_input(x)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected an input with a batch axis, got shape {x.shape}")
        self._shape = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, dy):
        self._need_cache(self._shape)
        return dy.reshape(self._shape)

    def output_shape(self, *shapes):
        return (int(np.prod(shapes[0])),)
