"""CIFAR ResNets (He et al. 2015, section 4.2), their plain twins, pre-activation ResNets
(He et al. 2016), stochastic depth (Huang et al. 2016) and Wide ResNets (Zagoruyko & Komodakis
2016).

The CIFAR table: a 3x3 conv with 16 filters, then 3 stages of n blocks on 32x32, 16x16 and 8x8
maps with 16, 32, 64 filters (6n + 2 weighted layers), global average pooling and a dense layer.
The first block of stages 2 and 3 downsamples with stride 2 in its first conv.
"""

from __future__ import annotations

import numpy as np

from fastres.layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    GlobalAvgPool2D,
    ReLU,
    Sequential,
    deferred_init,
)
from fastres.models._common import check_int, finish
from fastres.models.blocks import BasicBlock, PreActBlock, survival_probs

__all__ = [
    "plain_cifar", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
    "resnet_cifar", "wide_resnet",
]


def _cifar_depth(builder: str, depth) -> int:
    depth = check_int(builder, "depth", depth, minimum=8)
    if (depth - 2) % 6:
        raise ValueError(f"{builder}: expected depth = 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), "
                         f"got {depth}")
    return (depth - 2) // 6


def _build_cifar(builder: str, depth: int, *, num_classes: int, shortcut: str | None,
                 preact: bool, width: int, stochastic_depth, in_channels: int, dtype,
                 seed, base_width: int = 16) -> Sequential:
    n = _cifar_depth(builder, depth)
    check_int(builder, "num_classes", num_classes)
    check_int(builder, "width", width)
    check_int(builder, "base_width", base_width)
    check_int(builder, "in_channels", in_channels)
    if shortcut not in ("A", "B", None):
        raise ValueError(f"{builder}: expected shortcut 'A' or 'B', got {shortcut!r}")
    widths = [base_width * width, 2 * base_width * width, 4 * base_width * width]
    survival = survival_probs(3 * n, stochastic_depth)
    with deferred_init():
        layers = [("conv1", Conv2D(in_channels, widths[0], 3, padding=1, bias=False, dtype=dtype))]
        if not preact:  # pre-activation nets normalise inside the first block instead
            layers += [("bn1", BatchNorm2D(widths[0], dtype=dtype)), ("relu", ReLU(dtype=dtype))]
        cin, k = widths[0], 0
        for s, cout in enumerate(widths):
            blocks = []
            for i in range(n):
                stride = 2 if s > 0 and i == 0 else 1  # downsample in the first conv of a stage
                kw = {"survival": survival[k], "seed": [seed, k], "dtype": dtype}
                if preact:
                    blocks.append(PreActBlock(cin, cout, stride, shortcut=shortcut,
                                              shortcut_bn=False, **kw))
                else:
                    blocks.append(BasicBlock(cin, cout, stride, shortcut=shortcut, **kw))
                cin, k = cout, k + 1
            layers.append((f"stage{s + 1}", Sequential(*blocks, dtype=dtype)))
        if preact:  # the last pre-activation block leaves its sum un-normalised
            layers += [("bn_final", BatchNorm2D(cin, dtype=dtype)),
                       ("relu_final", ReLU(dtype=dtype))]
        layers += [("pool", GlobalAvgPool2D(dtype=dtype)),
                   ("fc", Dense(cin, num_classes, dtype=dtype))]
        return Sequential(*layers, dtype=dtype)


def resnet_cifar(depth: int, *, num_classes: int = 10, shortcut: str = "A", preact: bool = False,
                 width: int = 1, stochastic_depth: float | None = None, in_channels: int = 3,
                 base_width: int = 16, dtype=np.float32, seed=0) -> Sequential:
    """CIFAR ResNet of ``depth = 6n + 2`` layers.

    Parameters
    ----------
    depth : 6n + 2 (20, 32, 44, 56, 110, 1202 in the paper).
    shortcut : "A" zero-padding identity shortcuts (the paper's CIFAR nets, no extra parameters)
        or "B" 1x1 projection + BN where the shape changes.
    preact : pre-activation blocks (He et al. 2016, "ResNet v2").
    width : multiplies the 16/32/64 filter counts.
    base_width : filters of the first stage (16 in the paper; 8 gives the half-width nets the
        thesis trained on MNIST); the later stages have 2x and 4x as many.
    stochastic_depth : final survival probability p_L (Huang et al. 2016 use 0.5), or None.
    in_channels : 3 for CIFAR, 1 for MNIST-like data; any H, W >= 8 work.
    dtype, seed : parameter dtype; ``default_rng(seed)`` initialises the weights (He normal).

    Returns a Sequential: conv1, bn1, relu, stage1..3, pool, fc; input (N, in_channels, H, W),
    output logits (N, num_classes).
    """
    kw = {"num_classes": num_classes, "shortcut": shortcut, "preact": preact, "width": width,
          "stochastic_depth": stochastic_depth, "in_channels": in_channels,
          "base_width": base_width, "dtype": dtype}
    model = _build_cifar("resnet_cifar", depth, seed=seed, **kw)
    return finish(model, "resnet_cifar", {"depth": depth, **kw}, seed)


def plain_cifar(depth: int, *, num_classes: int = 10, width: int = 1, in_channels: int = 3,
                base_width: int = 16, dtype=np.float32, seed=0) -> Sequential:
    """The paper's plain CIFAR net: ``resnet_cifar`` without shortcuts (same layers, no adds)."""
    kw = {"num_classes": num_classes, "width": width, "in_channels": in_channels,
          "base_width": base_width, "dtype": dtype}
    model = _build_cifar("plain_cifar", depth, shortcut=None, preact=False,
                         stochastic_depth=None, seed=seed, **kw)
    return finish(model, "plain_cifar", {"depth": depth, **kw}, seed)


def resnet20(**kw) -> Sequential:
    """ResNet-20 (n = 3): 0.27M parameters, 40.6M multiply-adds per 32x32 image."""
    return resnet_cifar(20, **kw)


def resnet32(**kw) -> Sequential:
    """ResNet-32 (n = 5): 0.46M parameters."""
    return resnet_cifar(32, **kw)


def resnet44(**kw) -> Sequential:
    """ResNet-44 (n = 7): 0.66M parameters."""
    return resnet_cifar(44, **kw)


def resnet56(**kw) -> Sequential:
    """ResNet-56 (n = 9): 0.85M parameters."""
    return resnet_cifar(56, **kw)


def resnet110(**kw) -> Sequential:
    """ResNet-110 (n = 18): 1.7M parameters."""
    return resnet_cifar(110, **kw)


def resnet1202(**kw) -> Sequential:
    """ResNet-1202 (n = 200): 19.4M parameters."""
    return resnet_cifar(1202, **kw)


def wide_resnet(depth: int, widen_factor: int, *, dropout: float = 0.0, num_classes: int = 10,
                in_channels: int = 3, dtype=np.float32, seed=0) -> Sequential:
    """Wide ResNet WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis 2016).

    ``depth = 6n + 4``; a 3x3 conv with 16 filters, then 3 stages of n pre-activation blocks with
    16k, 32k, 64k filters (strides 1, 2, 2), BN-ReLU, global average pooling, dense. Shortcuts are
    1x1 convs (no BN) on the pre-activated input where the shape changes; ``dropout`` sits between
    the two convs of each block. WRN-28-10 has 36.5M parameters.
    """
    builder = "wide_resnet"
    depth = check_int(builder, "depth", depth, minimum=10)
    k = check_int(builder, "widen_factor", widen_factor)
    if (depth - 4) % 6:
        raise ValueError(f"{builder}: expected depth = 6n + 4 (10, 16, 22, 28, 40, ...), "
                         f"got {depth}")
    n = (depth - 4) // 6
    widths = [16 * k, 32 * k, 64 * k]
    with deferred_init():
        layers = [("conv1", Conv2D(in_channels, 16, 3, padding=1, bias=False, dtype=dtype))]
        cin, b = 16, 0
        for s, cout in enumerate(widths):
            blocks = []
            for i in range(n):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(PreActBlock(cin, cout, stride, shortcut="B", shortcut_bn=False,
                                          dropout=dropout, seed=[seed, b], dtype=dtype))
                cin, b = cout, b + 1
            layers.append((f"stage{s + 1}", Sequential(*blocks, dtype=dtype)))
        layers += [("bn_final", BatchNorm2D(cin, dtype=dtype)), ("relu_final", ReLU(dtype=dtype)),
                   ("pool", GlobalAvgPool2D(dtype=dtype)),
                   ("fc", Dense(cin, num_classes, dtype=dtype))]
        model = Sequential(*layers, dtype=dtype)
    kw = {"depth": depth, "widen_factor": k, "dropout": dropout, "num_classes": num_classes,
              "in_channels": in_channels, "dtype": dtype}
    return finish(model, builder, kw, seed)
