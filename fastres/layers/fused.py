"""Eval-mode fast path: BatchNorm folded into the preceding convolution, ReLU applied in place.

With ``s = gamma / sqrt(running_var + eps)`` the pair conv -> BN equals one convolution with
weights ``w * s`` (per output channel) and bias ``beta + (b - running_mean) * s``. The folded
weights are computed in float64, cast to the layer dtype and cached; the cache key is a CRC32 of
every array involved, so any change to the parameters or statistics (an optimizer step,
``load_state_dict``, training) rebuilds it. Backward through a folded step is exact, mapping the
gradients of the folded weights back onto the conv and BN parameters.
"""

from __future__ import annotations

import zlib

import numpy as np

import fastres.functional as F
from fastres.layers.activation import ReLU
from fastres.layers.batchnorm import BatchNorm2D
from fastres.layers.conv import Conv2D

__all__ = ["FusedConvBN", "plan_graph", "plan_sequential"]


def _fingerprint(arrays) -> tuple:
    return tuple((id(a), zlib.crc32(np.ascontiguousarray(a).view(np.uint8))) for a in arrays)


class FusedConvBN:
    """Runs ``conv -> bn (-> relu)`` as one convolution (not a Module: it owns no parameters)."""

    def __init__(self, conv: Conv2D, bn: BatchNorm2D, relu: ReLU | None = None):
        self.conv, self.bn, self.relu = conv, bn, relu
        self._key = None
        self._folded = None
        self._cache = None

    def _arrays(self):
        c, bn = self.conv, self.bn
        arrs = [c.weight.data, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var]
        return arrs + ([] if c.bias is None else [c.bias.data])

    def folded(self):
        """(w, b, s) of the folded convolution, recomputed only when an input array changed."""
        key = _fingerprint(self._arrays())
        if key != self._key:
            c, bn = self.conv, self.bn
            s = bn.weight.data.astype(np.float64) / np.sqrt(
                bn.running_var.astype(np.float64) + bn.eps)
            b0 = 0.0 if c.bias is None else c.bias.data.astype(np.float64)
            w = (c.weight.data.astype(np.float64) * s[:, None, None, None]).astype(c.dtype)
            b = (bn.bias.data + (b0 - bn.running_mean.astype(np.float64)) * s).astype(c.dtype)
            self._folded, self._key = (w, b, s), key
        return self._folded

    def forward(self, x):
        c = self.conv
        c._check_input(x, ndim=4, channels=c.in_channels, what=" (N, C, H, W)")
        w, b, _ = self.folded()
        out, self._cache = F.conv2d_forward(x, w, b, stride=c.stride, padding=c.padding,
                                            groups=c.groups)
        if self.relu is not None:
            np.maximum(out, 0, out=out)
            self._out = out
        return out

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"fused {self.conv!r}: backward called before forward")
        if self.relu is not None:
            dy = np.where(self._out > 0, dy, 0).astype(dy.dtype)
        dx, dw, db = F.conv2d_backward(dy, self._cache)
        c, bn = self.conv, self.bn
        _, _, s = self._folded
        b0 = 0.0 if c.bias is None else c.bias.data.astype(np.float64)
        db64 = db.astype(np.float64)
        ds = np.einsum("oikl,oikl->o", dw.astype(np.float64), c.weight.data.astype(np.float64))
        ds += db64 * (b0 - bn.running_mean)
        c.weight.grad += (dw * s[:, None, None, None]).astype(c.dtype)
        if c.bias is not None:
            c.bias.grad += (db64 * s).astype(c.dtype)
        bn.weight.grad += (ds / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)).astype(bn.dtype)
        bn.bias.grad += db
        return dx

    def __repr__(self) -> str:
        return f"FusedConvBN({self.conv!r}, {self.bn!r}, relu={self.relu is not None})"


def plan_sequential(mods: list) -> list:
    """Replace each Conv2D, BatchNorm2D[, ReLU] run by one FusedConvBN."""
    steps, i = [], 0
    while i < len(mods):
        m = mods[i]
        if (isinstance(m, Conv2D) and i + 1 < len(mods) and isinstance(mods[i + 1], BatchNorm2D)
                and mods[i + 1].num_features == m.out_channels):
            relu = mods[i + 2] if i + 2 < len(mods) and isinstance(mods[i + 2], ReLU) else None
            steps.append(FusedConvBN(m, mods[i + 1], relu))
            i += 3 if relu is not None else 2
        else:
            steps.append(m)
            i += 1
    return steps


def plan_graph(inputs: dict, modules: dict, consumers: dict) -> list:
    """Graph steps ``(names, runner, inputs)`` with conv -> bn (-> relu) chains folded where the
    intermediate tensors feed nothing else."""
    only_child = {}
    for name, ins in inputs.items():
        if len(ins) == 1:
            only_child.setdefault(ins[0], []).append(name)
    steps, absorbed = [], set()
    for name, ins in inputs.items():
        if name in absorbed:
            continue
        m = modules[name]
        nxt = only_child.get(name, [])
        if isinstance(m, Conv2D) and consumers[name] == 1 and len(nxt) == 1 \
                and isinstance(modules[nxt[0]], BatchNorm2D):
            bn_name = nxt[0]
            names = [name, bn_name]
            after = only_child.get(bn_name, [])
            relu = None
            if consumers[bn_name] == 1 and len(after) == 1 and isinstance(modules[after[0]], ReLU):
                relu = modules[after[0]]
                names.append(after[0])
            absorbed.update(names[1:])
            steps.append((tuple(names), FusedConvBN(m, modules[bn_name], relu), ins))
        else:
            steps.append(((name,), m, ins))
    return steps
