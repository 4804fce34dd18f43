"""Residual blocks as ``Graph``s: the residual sum is a declared ``Add`` node, never a
hand-written backward. Node names follow torchvision (``conv1``, ``bn1``, ``downsample.0``), so
state_dict keys read ``layer1.0.conv1.weight``.
"""

from __future__ import annotations

import numpy as np

from fastres.layers import (
    Add,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Graph,
    Module,
    ReLU,
    Sequential,
    StochasticDepth,
    ZeroPadShortcut,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PreActBlock",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
    "stage",
]

SHORTCUTS = ("A", "B")


def conv3x3(cin: int, cout: int, stride: int = 1, *, groups: int = 1, dtype=np.float32) -> Conv2D:
    return Conv2D(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False, dtype=dtype)


def conv1x1(cin: int, cout: int, stride: int = 1, *, dtype=np.float32) -> Conv2D:
    return Conv2D(cin, cout, 1, stride=stride, bias=False, dtype=dtype)


def make_shortcut(kind: str | None, cin: int, cout: int, stride: int, *, bn: bool = True,
                  dtype=np.float32) -> Module | None:
    """None when shapes already match (identity); else option "A" (zero-pad, no parameters) or
    "B" (1x1 projection conv, with BN unless ``bn=False``)."""
    if cin == cout and stride == 1:
        return None
    if kind == "A":
        return ZeroPadShortcut(cin, cout, stride, dtype=dtype)
    if kind == "B":
        if not bn:
            return conv1x1(cin, cout, stride, dtype=dtype)
        return Sequential(conv1x1(cin, cout, stride, dtype=dtype), BatchNorm2D(cout, dtype=dtype))
    raise ValueError(f"shortcut: expected 'A' or 'B', got {kind!r}")


def _finish(g: Graph, branch_end: str, shortcut: Module | None, shortcut_from: str, *,
            survival: float | None, seed, post_relu: bool, dtype) -> None:
    """Append [stochastic depth], the shortcut node, the Add and (post-activation) the last ReLU."""
    if survival is not None and survival < 1.0:
        g.add("drop_path", StochasticDepth(survival, seed=seed, dtype=dtype), branch_end)
        branch_end = "drop_path"
    if shortcut is None:
        skip = shortcut_from
    else:
        skip = "shortcut" if isinstance(shortcut, ZeroPadShortcut) else "downsample"
        g.add(skip, shortcut, shortcut_from)
    g.add("sum", Add(dtype=dtype), branch_end, skip)
    if post_relu:
        g.add("relu_out", ReLU(dtype=dtype))


class BasicBlock(Graph):
    """He et al. (2015) basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, + shortcut, ReLU.

    ``shortcut=None`` gives the plain (no shortcut) block of the paper's plain nets.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *,
                 shortcut: str | None = "B", survival: float | None = None, seed=None,
                 dtype=np.float32):
        super().__init__(dtype=dtype)
        self.add("conv1", conv3x3(in_channels, out_channels, stride, dtype=dtype), "input")
        self.add("bn1", BatchNorm2D(out_channels, dtype=dtype))
        self.add("relu1", ReLU(dtype=dtype))
        self.add("conv2", conv3x3(out_channels, out_channels, dtype=dtype))
        self.add("bn2", BatchNorm2D(out_channels, dtype=dtype))
        if shortcut is None:
            self.add("relu_out", ReLU(dtype=dtype))
            return
        sc = make_shortcut(shortcut, in_channels, out_channels, stride, dtype=dtype)
        _finish(self, "bn2", sc, "input", survival=survival, seed=seed, post_relu=True,
                dtype=dtype)


class Bottleneck(Graph):
    """Bottleneck: conv1x1-BN-ReLU-conv3x3(stride, groups)-BN-ReLU-conv1x1-BN, + shortcut, ReLU.

    The stride sits on the 3x3 conv (torchvision's "ResNet v1.5"); ``groups > 1`` makes it the
    ResNeXt block (Xie et al. 2017). Projection shortcut (conv1x1 + BN) when shapes change.
    """

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int = 1, *,
                 groups: int = 1, survival: float | None = None, seed=None, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.add("conv1", conv1x1(in_channels, width, dtype=dtype), "input")
        self.add("bn1", BatchNorm2D(width, dtype=dtype))
        self.add("relu1", ReLU(dtype=dtype))
        self.add("conv2", conv3x3(width, width, stride, groups=groups, dtype=dtype))
        self.add("bn2", BatchNorm2D(width, dtype=dtype))
        self.add("relu2", ReLU(dtype=dtype))
        self.add("conv3", conv1x1(width, out_channels, dtype=dtype))
        self.add("bn3", BatchNorm2D(out_channels, dtype=dtype))
        sc = make_shortcut("B", in_channels, out_channels, stride, dtype=dtype)
        _finish(self, "bn3", sc, "input", survival=survival, seed=seed, post_relu=True,
                dtype=dtype)


class PreActBlock(Graph):
    """He et al. (2016) pre-activation block: BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3,
    + shortcut, no ReLU after the sum. A projection shortcut (option "B") reads the pre-activated
    input, as in the authors' code and Wide ResNets; option "A" and the identity read the raw
    input. ``dropout > 0`` puts dropout between the convs (Zagoruyko & Komodakis 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *,
                 shortcut: str = "B", shortcut_bn: bool = False, dropout: float = 0.0,
                 survival: float | None = None, seed=None, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.add("bn1", BatchNorm2D(in_channels, dtype=dtype), "input")
        self.add("relu1", ReLU(dtype=dtype))
        self.add("conv1", conv3x3(in_channels, out_channels, stride, dtype=dtype))
        self.add("bn2", BatchNorm2D(out_channels, dtype=dtype))
        self.add("relu2", ReLU(dtype=dtype))
        if dropout > 0:
            self.add("dropout", Dropout(dropout, seed=seed, dtype=dtype))
        self.add("conv2", conv3x3(out_channels, out_channels, dtype=dtype))
        sc = make_shortcut(shortcut, in_channels, out_channels, stride, bn=shortcut_bn,
                           dtype=dtype)
        src = "relu1" if shortcut == "B" and sc is not None else "input"
        _finish(self, "conv2", sc, src, survival=survival, seed=seed, post_relu=False,
                dtype=dtype)


def stage(make_block, specs: list[dict], *, dtype=np.float32) -> Sequential:
    """A Sequential of blocks named "0", "1", ... built from per-block keyword dicts."""
    return Sequential(*[make_block(**kw) for kw in specs], dtype=dtype)


def survival_probs(n_blocks: int, final: float | None) -> list[float | None]:
    """Huang et al. (2016) linear decay: block l of L survives with p_l = 1 - l/L * (1 - p_L)."""
    if final is None:
        return [None] * n_blocks
    final = float(final)
    if not 0.0 < final <= 1.0:
        raise ValueError(f"stochastic_depth: expected a final survival probability in (0, 1], "
                         f"got {final!r}")
    return [1.0 - (i + 1) / n_blocks * (1.0 - final) for i in range(n_blocks)]
