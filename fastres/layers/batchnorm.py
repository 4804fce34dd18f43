"""Batch normalisation over (N, H, W) per channel."""

from __future__ import annotations

import numbers

import numpy as np

import fastres.functional as F
from fastres.layers.base import Module, Parameter, init_rng

__all__ = ["BatchNorm2D"]


class BatchNorm2D(Module):
    """Batch norm for NCHW input: training uses batch statistics (biased variance) and updates the
    running statistics (``running = (1 - momentum) * running + momentum * batch``, unbiased batch
    variance); eval uses the running statistics. ``reset_parameters``: gamma = 1, beta = 0,
    running mean 0 and variance 1. Parameters ``weight`` (gamma) and ``bias`` (beta) as in PyTorch.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-5,
                 dtype=np.float32, rng: np.random.Generator | None = None):
        super().__init__(dtype=dtype)
        if not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"BatchNorm2D: expected num_features >= 1, got {num_features!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNorm2D: expected 0 <= momentum <= 1, got {momentum!r}")
        if not float(eps) > 0.0:
            raise ValueError(f"BatchNorm2D: expected eps > 0, got {eps!r}")
        self.num_features = int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(num_features, self.dtype))
        self.bias = Parameter(np.zeros(num_features, self.dtype))
        self.register_buffer("running_mean", np.zeros(num_features, self.dtype))
        self.register_buffer("running_var", np.ones(num_features, self.dtype))
        self._cache = None
        if init_rng(rng) is not None:
            self.reset_parameters(None)

    def reset_parameters(self, rng=None) -> None:
        self.weight.data[...] = 1
        self.bias.data[...] = 0
        self.running_mean[...] = 0
        self.running_var[...] = 1

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.num_features, what=" (N, C, H, W)")
        out, self._cache = F.batch_norm2d_forward(
            x, self.weight.data, self.bias.data, self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps)
        return out

    def backward(self, dy, *, dx_add=None):
        """``dx_add``: see ``batch_norm2d_backward`` (the containers pass it, see
        ``fastres.layers.base``)."""
        self._need_cache(self._cache)
        dx, dgamma, dbeta = F.batch_norm2d_backward(dy, self._cache, dx_add=dx_add)
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        return dx

    def output_shape(self, *shapes):
        s = shapes[0]
        if len(s) != 3 or s[0] != self.num_features:
            raise ValueError(f"{self!r}: expected input shape ({self.num_features}, H, W), got {s}")
        return tuple(s)

    def extra_repr(self) -> str:
        s = [str(self.num_features)]
        if self.momentum != 0.1:
            s.append(f"momentum={self.momentum}")
        if self.eps != 1e-5:
            s.append(f"eps={self.eps}")
        return ", ".join(s)
