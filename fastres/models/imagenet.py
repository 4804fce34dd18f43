"""ImageNet ResNets (He et al. 2015, table 1) with torchvision's exact structure and names.

conv1 7x7/2 (64) - bn1 - relu - maxpool 3x3/2 - layer1..layer4 (64, 128, 256, 512 planes; the first
block of layers 2-4 has stride 2) - avgpool (global) - fc. Basic blocks for 18/34, bottlenecks
(expansion 4, stride on the 3x3 conv as in torchvision, "v1.5") for 50/101/152. Downsampling
shortcuts are 1x1 conv + BN (option "B"). Any input of at least 32x32 works.
"""

from __future__ import annotations

import numpy as np

from fastres.layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
    deferred_init,
)
from fastres.models._common import check_int, finish
from fastres.models.blocks import BasicBlock, Bottleneck

__all__ = ["resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

# name: (block type, blocks per stage) -- the columns of table 1
CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def resnet(depth: int, *, num_classes: int = 1000, groups: int = 1, width_per_group: int = 64,
           zero_init_residual: bool = False, in_channels: int = 3, dtype=np.float32,
           seed=0) -> Sequential:
    """ImageNet ResNet-``depth`` (18, 34, 50, 101 or 152), torchvision-identical.

    ``groups``/``width_per_group`` give ResNeXt (32, 4 for resnext50_32x4d) and wide variants
    (width_per_group=128 for wide_resnet50_2) of the bottleneck nets. ``zero_init_residual``
    starts the last BN of every block at gamma = 0 (Goyal et al. 2017), so blocks start as
    identities. Returns a Sequential (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc).
    """
    builder = "resnet"
    if depth not in CONFIGS:
        raise ValueError(f"{builder}: expected depth in {sorted(CONFIGS)}, got {depth!r}")
    check_int(builder, "num_classes", num_classes)
    check_int(builder, "groups", groups)
    check_int(builder, "width_per_group", width_per_group)
    kind, counts = CONFIGS[depth]
    if kind == "basic" and (groups != 1 or width_per_group != 64):
        raise ValueError(f"{builder}: basic-block nets (18, 34) need groups=1 and "
                         f"width_per_group=64, got {groups} and {width_per_group}")
    expansion = 1 if kind == "basic" else 4
    with deferred_init():
        layers = [("conv1", Conv2D(in_channels, 64, 7, stride=2, padding=3, bias=False,
                                   dtype=dtype)),
                  ("bn1", BatchNorm2D(64, dtype=dtype)), ("relu", ReLU(dtype=dtype)),
                  ("maxpool", MaxPool2D(3, stride=2, padding=1, dtype=dtype))]
        cin = 64
        for s, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            blocks = []
            for i in range(n):
                stride = 2 if s > 0 and i == 0 else 1
                cout = planes * expansion
                if kind == "basic":
                    blocks.append(BasicBlock(cin, cout, stride, shortcut="B", dtype=dtype))
                else:
                    width = int(planes * (width_per_group / 64.0)) * groups
                    blocks.append(Bottleneck(cin, width, cout, stride, groups=groups,
                                             dtype=dtype))
                cin = cout
            layers.append((f"layer{s + 1}", Sequential(*blocks, dtype=dtype)))
        layers += [("avgpool", GlobalAvgPool2D(dtype=dtype)),
                   ("fc", Dense(cin, num_classes, dtype=dtype))]
        model = Sequential(*layers, dtype=dtype)
    kw = {"depth": depth, "num_classes": num_classes, "groups": groups,
              "width_per_group": width_per_group, "zero_init_residual": zero_init_residual,
              "in_channels": in_channels, "dtype": dtype}
    model = finish(model, builder, kw, seed)
    if zero_init_residual:
        for name, m in model.named_modules():
            last = "bn2" if kind == "basic" else "bn3"
            if name.endswith("." + last) and isinstance(m, BatchNorm2D):
                m.weight.data[...] = 0
    return model


def resnet18(**kw) -> Sequential:
    """ResNet-18: 11,689,512 parameters at 1000 classes."""
    return resnet(18, **kw)


def resnet34(**kw) -> Sequential:
    """ResNet-34: 21,797,672 parameters at 1000 classes."""
    return resnet(34, **kw)


def resnet50(**kw) -> Sequential:
    """ResNet-50: 25,557,032 parameters at 1000 classes."""
    return resnet(50, **kw)


def resnet101(**kw) -> Sequential:
    """ResNet-101: 44,549,160 parameters at 1000 classes."""
    return resnet(101, **kw)


def resnet152(**kw) -> Sequential:
    """ResNet-152: 60,192,808 parameters at 1000 classes."""
    return resnet(152, **kw)
