"""ReLU and dropout layers."""

from __future__ import annotations

import numpy as np

import fastres.functional as F
from fastres.layers.base import Module

__all__ = ["Dropout", "ReLU"]


class ReLU(Module):
    """``max(x, 0)``, any shape (gradient 0 at 0)."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self._cache = None

    def forward(self, x):
        self._check_input(x)
        out, self._cache = F.relu_forward(x)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return F.relu_backward(dy, self._cache)


class Dropout(Module):
    """Inverted dropout with probability ``p`` in training, the identity in eval mode.

    The mask comes from the layer's own generator ``self.rng`` (``numpy.random.default_rng(seed)``).
    """

    def __init__(self, p: float = 0.5, *, seed=None, dtype=np.float32):
        super().__init__(dtype=dtype)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: expected 0 <= p <= 1, got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self._cache = None

    def forward(self, x):
        self._check_input(x)
        out, self._cache = F.dropout_forward(x, p=self.p, training=self.training, rng=self.rng)
        return out

    def backward(self, dy):
        self._need_cache(self._cache)
        return F.dropout_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"p={self.p}"
