"""Fused steps that containers run in place of runs of layers (``fuse = True``, the default).

Eval: BatchNorm folded into the preceding convolution, and a following residual add and ReLU
applied as the convolution stores its output (one pass over memory). Both modes: a batch norm
with its residual add and ReLU in one pass (BatchNormAct), whose ReLU gradient the containers
have the next step apply (see ``fastres.layers.base``); a convolution with the residual add
that follows it (ConvAdd). Training results are bit-identical to the unfused graph.

With ``s = gamma / sqrt(running_var + eps)`` the pair conv -> BN equals one convolution with
weights ``w * s`` (per output channel) and bias ``beta + (b - running_mean) * s``. The folded
weights are computed in float64, cast to the layer dtype and cached with a copy of the bytes of
every array they came from; each forward compares the arrays' bytes with those (a copy and a
memcmp: 3x faster than the CRC32 it replaced), so any change to the parameters, statistics or
``eps`` (an optimizer step, ``load_state_dict``, training, an edit of one element) rebuilds it.
Backward through a folded step is exact, mapping the gradients of the folded weights back onto
the conv and BN parameters.
"""

from __future__ import annotations

import numpy as np

import fastres.functional as F
from fastres.functional.activation import ReluCache
from fastres.layers.activation import ReLU
from fastres.layers.batchnorm import BatchNorm2D
from fastres.layers.conv import Conv2D
from fastres.layers.shortcut import Add

__all__ = ["BatchNormAct", "ConvAdd", "FusedConvBN", "plan_graph", "plan_sequential"]


def _snapshot(arrays) -> list:
    """What the arrays hold, bit for bit (a NaN equals itself, -0.0 differs from 0.0)."""
    return [(a.shape, a.dtype, a.tobytes()) for a in arrays]


class FusedConvBN:
    """Runs ``conv -> bn (-> + residual) (-> relu)`` as one convolution (not a Module: it owns
    no parameters). With ``residual=True`` forward takes ``(x, residual)`` and backward returns
    ``(dx, dresidual)``."""

    def __init__(self, conv: Conv2D, bn: BatchNorm2D, relu: ReLU | None = None, *,
                 residual: bool = False):
        self.conv, self.bn, self.relu, self.residual = conv, bn, relu, residual
        self._inputs = None  # _snapshot of the arrays the folded weights came from
        self._folded = None
        self._weight_cache = {}  # the folded weights' transforms (conv2d_forward's weight_cache)
        self._cache = None
        self._relu_cache = None

    def _arrays(self):
        c, bn = self.conv, self.bn
        arrs = [c.weight.data, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var]
        return arrs + ([] if c.bias is None else [c.bias.data])

    def folded(self):
        """(w, b, s) of the folded convolution, recomputed only when an input array changed."""
        arrays = self._arrays()
        snapshot = _snapshot(arrays) + [self.bn.eps]
        if snapshot != self._inputs:
            c, bn = self.conv, self.bn
            s = bn.weight.data.astype(np.float64) / np.sqrt(
                bn.running_var.astype(np.float64) + bn.eps)
            b0 = 0.0 if c.bias is None else c.bias.data.astype(np.float64)
            w = (c.weight.data.astype(np.float64) * s[:, None, None, None]).astype(c.dtype)
            b = (bn.bias.data + (b0 - bn.running_mean.astype(np.float64)) * s).astype(c.dtype)
            self._folded, self._inputs = (w, b, s), snapshot
            self._weight_cache = {}
        return self._folded

    def forward(self, x, residual=None):
        c = self.conv
        c._check_input(x, ndim=4, channels=c.in_channels, what=" (N, C, H, W)")
        if (residual is not None) != self.residual:
            raise TypeError(f"{self!r}: expected {'(x, residual)' if self.residual else 'x'}")
        w, b, _ = self.folded()
        out, self._cache = F.conv2d_forward(x, w, b, stride=c.stride, padding=c.padding,
                                            groups=c.groups, residual=residual,
                                            relu=self.relu is not None,
                                            weight_cache=self._weight_cache)
        self._relu_cache = ReluCache(out) if self.relu is not None else None
        return out

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"fused {self.conv!r}: backward called before forward")
        if self._relu_cache is not None:
            dy = F.relu_backward(dy, self._relu_cache)
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
        bn.weight.grad += (
            ds / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)).astype(bn.dtype)
        bn.bias.grad += db
        return (dx, dy) if self.residual else dx

    def __repr__(self) -> str:
        return (f"FusedConvBN({self.conv!r}, {self.bn!r}, relu={self.relu is not None}, "
                f"residual={self.residual})")


class BatchNormAct:
    """Runs ``bn (-> + residual) (-> relu)`` as one batch-norm pass (training or eval; not a
    Module: the parameters stay the BatchNorm2D's). With ``residual=True`` forward takes
    ``(x, residual)`` and backward returns ``(dx, dresidual)``."""

    def __init__(self, bn: BatchNorm2D, relu: ReLU | None = None, *, residual: bool = False):
        self.bn, self.relu, self.residual = bn, relu, residual
        self._out = None

    def forward(self, x, residual=None):
        bn = self.bn
        bn._check_input(x, ndim=4, channels=bn.num_features, what=" (N, C, H, W)")
        if (residual is not None) != self.residual:
            raise TypeError(f"{self!r}: expected {'(x, residual)' if self.residual else 'x'}")
        out, bn._cache = F.batch_norm2d_forward(
            x, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var,
            training=bn.training, momentum=bn.momentum, eps=bn.eps, residual=residual,
            relu=self.relu is not None)
        self._out = out if self.relu is not None else None
        return out

    def backward(self, dy, *, premasked: bool = False, dx_add=None):
        """``premasked``: dy already went through the ReLU (the next step applied it, see
        ``fastres.layers.base``); ``dx_add``: see ``batch_norm2d_backward``."""
        if self._out is not None and not premasked:
            dy = F.relu_backward(dy, ReluCache(self._out))
        dx = self.bn.backward(dy, dx_add=dx_add)
        return (dx, dy) if self.residual else dx

    def __repr__(self) -> str:
        return f"BatchNormAct({self.bn!r}, relu={self.relu is not None}, residual={self.residual})"


class ConvAdd:
    """Runs ``conv -> + residual`` as one convolution that adds the residual as it stores its
    output (training or eval; not a Module). forward takes ``(x, residual)``, backward returns
    ``(dx, dresidual)``; the conv's cache and gradients are its own, as when run alone."""

    def __init__(self, conv: Conv2D):
        self.conv = conv

    def forward(self, x, residual):
        return self.conv.forward(x, residual=residual)

    def backward(self, dy):
        return self.conv.backward(dy), dy

    def __repr__(self) -> str:
        return f"ConvAdd({self.conv!r})"


def _is(m, cls) -> bool:
    """Fuse only the library's own layers: a subclass may override forward or backward, which a
    fused runner would silently bypass."""
    return type(m) is cls


def plan_sequential(mods: list, *, training: bool = False) -> list:
    """Eval: each Conv2D, BatchNorm2D[, ReLU] run becomes one FusedConvBN. Both modes: any
    other BatchNorm2D, ReLU pair becomes one BatchNormAct."""
    steps, i = [], 0
    while i < len(mods):
        m, nxt = mods[i], mods[i + 1] if i + 1 < len(mods) else None
        if _is(m, BatchNorm2D) and _is(nxt, ReLU):
            steps.append(BatchNormAct(m, nxt))
            i += 2
        elif (not training and _is(m, Conv2D) and _is(nxt, BatchNorm2D)
                and nxt.num_features == m.out_channels):
            relu = mods[i + 2] if i + 2 < len(mods) and _is(mods[i + 2], ReLU) else None
            steps.append(FusedConvBN(m, nxt, relu))
            i += 3 if relu is not None else 2
        else:
            steps.append(m)
            i += 1
    return steps


def plan_graph(inputs: dict, modules: dict, consumers: dict, *, training: bool = False) -> list:
    """Graph steps ``(names, runner, inputs)``, chains folded where their intermediate tensors
    feed nothing else: in eval ``conv -> bn (-> add) (-> relu)`` as one FusedConvBN; other
    ``bn (-> add) (-> relu)`` chains as one BatchNormAct; ``conv -> add`` (a pre-activation
    unit's end) as one ConvAdd. A chain through an Add runs at the Add's place, with the Add's
    other input as the residual (by then it has been computed)."""
    users: dict = {}
    for name, ins in inputs.items():
        for i in ins:
            users.setdefault(i, []).append(name)

    def sole_user(n):
        u = users.get(n, [])
        return u[0] if consumers[n] == 1 and len(u) == 1 else None

    def free_add(n, chain_input):
        """(add, other input) when n's only user is a two-input Add no chain has taken yet,
        and, in training, the chain's input takes at most two gradients: the chain returns
        that input's gradient at the Add's place, not its first layer's, and three or more
        gradients summed in another order can round differently (one addition cannot)."""
        a = sole_user(n)
        if (a is None or a in deferred or not _is(modules[a], Add) or len(inputs[a]) != 2
                or training and consumers[chain_input] > 2):
            return None
        return a, next(i for i in inputs[a] if i != n)

    steps, absorbed, deferred = [], set(), {}
    for name, ins in inputs.items():
        if name in deferred:
            steps.append(deferred.pop(name))
            continue
        if name in absorbed:
            continue
        m = modules[name]
        bn = name if _is(m, BatchNorm2D) else None
        if not training and _is(m, Conv2D):
            bn = sole_user(name)
            if not (bn is not None and _is(modules[bn], BatchNorm2D)
                    and modules[bn].num_features == m.out_channels):
                bn = None
        if bn is None:
            found = free_add(name, ins[0]) if _is(m, Conv2D) else None
            if found is None:
                steps.append(((name,), m, ins))
            else:
                add, other = found
                deferred[add] = ((name, add), ConvAdd(m), (*ins, other))
                absorbed.add(add)
            continue
        names, runner_ins, add, relu = list(dict.fromkeys((name, bn))), tuple(ins), None, None
        nxt, found = sole_user(bn), free_add(bn, ins[0])
        if found is not None:
            add, other = found
            names.append(add)
            runner_ins += (other,)
            nxt = sole_user(add)
        if nxt is not None and _is(modules[nxt], ReLU):
            relu = modules[nxt]
            names.append(nxt)
        if len(names) == 1:  # a batch norm alone
            steps.append(((name,), m, ins))
            continue
        if bn == name:
            runner = BatchNormAct(modules[bn], relu, residual=add is not None)
        else:
            runner = FusedConvBN(m, modules[bn], relu, residual=add is not None)
        step = (tuple(names), runner, runner_ins)
        absorbed.update(names[1:])
        if add is None:
            steps.append(step)
        else:
            deferred[add] = step
    return steps
