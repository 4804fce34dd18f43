"""ResNeXt for CIFAR (Xie et al. 2017, section 5.2): grouped-conv bottlenecks.

A 3x3 conv with 64 filters, then 3 stages of (depth - 2) / 9 bottleneck blocks with outputs
256, 512, 1024 (= 64 * widen_factor * 1, 2, 4) at strides 1, 2, 2. A block's inner width is
``cardinality * base_width * (stage output / 256)`` (512/1024/2048 for 8x64d), split into
``cardinality`` groups in the 3x3 conv. Projection shortcuts (1x1 conv + BN) where the shape
changes, global average pooling, dense. ResNeXt-29 8x64d has 34.4M parameters.
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
from fastres.models.blocks import Bottleneck

__all__ = ["resnext", "resnext29_8x64d", "resnext29_16x64d"]


def resnext(depth: int = 29, cardinality: int = 8, base_width: int = 64, *, widen_factor: int = 4,
            num_classes: int = 10, in_channels: int = 3, dtype=np.float32, seed=0) -> Sequential:
    """CIFAR ResNeXt-``depth`` (``cardinality`` x ``base_width``d); ``depth = 9n + 2``."""
    builder = "resnext"
    depth = check_int(builder, "depth", depth, minimum=11)
    if (depth - 2) % 9:
        raise ValueError(f"{builder}: expected depth = 9n + 2 (11, 20, 29, ...), got {depth}")
    cardinality = check_int(builder, "cardinality", cardinality)
    base_width = check_int(builder, "base_width", base_width)
    widen_factor = check_int(builder, "widen_factor", widen_factor)
    n = (depth - 2) // 9
    outs = [64 * widen_factor * m for m in (1, 2, 4)]
    with deferred_init():
        layers = [("conv1", Conv2D(in_channels, 64, 3, padding=1, bias=False, dtype=dtype)),
                  ("bn1", BatchNorm2D(64, dtype=dtype)), ("relu", ReLU(dtype=dtype))]
        cin = 64
        for s, cout in enumerate(outs):
            width = cardinality * int(base_width * cout / (widen_factor * 64))
            blocks = []
            for i in range(n):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(Bottleneck(cin, width, cout, stride, groups=cardinality,
                                         dtype=dtype))
                cin = cout
            layers.append((f"stage{s + 1}", Sequential(*blocks, dtype=dtype)))
        layers += [("pool", GlobalAvgPool2D(dtype=dtype)),
                   ("fc", Dense(cin, num_classes, dtype=dtype))]
        model = Sequential(*layers, dtype=dtype)
    kw = {"depth": depth, "cardinality": cardinality, "base_width": base_width,
              "widen_factor": widen_factor, "num_classes": num_classes, "in_channels": in_channels,
              "dtype": dtype}
    return finish(model, builder, kw, seed)


def resnext29_8x64d(**kw) -> Sequential:
    """ResNeXt-29 8x64d: 34.4M parameters."""
    return resnext(29, 8, 64, **kw)


def resnext29_16x64d(**kw) -> Sequential:
    """ResNeXt-29 16x64d: 68.1M parameters."""
    return resnext(29, 16, 64, **kw)
