"""The Keras residual-network tutorial's "MiniModel" (pre-activation units on CIFAR-10).

``Unit(x, filters, pool)``: BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the shortcut; a pooling unit
max-pools its input 2x2 before the main path and projects the shortcut with a strided 1x1 conv.
Stem conv 32; units 32x3, 64x3, 128x3, 256x3 (the first of each later stage pools); then BN, ReLU,
dropout 0.25, 4x4 average pooling, flatten, dense. Convs keep Keras' biases. Needs H, W >= 32
(the 4x4 pool sees H/8 x W/8).
"""

from __future__ import annotations

import numpy as np

from fastres.layers import (
    Add,
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Graph,
    MaxPool2D,
    ReLU,
    Sequential,
    deferred_init,
)
from fastres.models._common import check_int, finish

__all__ = ["MiniUnit", "minimodel"]


class MiniUnit(Graph):
    """One tutorial unit (see the module docstring)."""

    def __init__(self, in_channels: int, filters: int, *, pool: bool = False, dtype=np.float32):
        super().__init__(dtype=dtype)
        src = "input"
        if pool:
            self.add("pool", MaxPool2D(2, dtype=dtype), "input")
            self.add("shortcut", Conv2D(in_channels, filters, 1, stride=2, dtype=dtype), "input")
            src = "pool"
        elif in_channels != filters:
            raise ValueError(f"MiniUnit: a unit without pooling keeps its channels, got "
                             f"{in_channels} -> {filters}")
        self.add("bn1", BatchNorm2D(in_channels, dtype=dtype), src)
        self.add("relu1", ReLU(dtype=dtype))
        self.add("conv1", Conv2D(in_channels, filters, 3, padding=1, dtype=dtype))
        self.add("bn2", BatchNorm2D(filters, dtype=dtype))
        self.add("relu2", ReLU(dtype=dtype))
        self.add("conv2", Conv2D(filters, filters, 3, padding=1, dtype=dtype))
        self.add("sum", Add(dtype=dtype), "conv2", "shortcut" if pool else "input")


def minimodel(*, num_classes: int = 10, base_filters: int = 32, units_per_stage: int = 3,
              dropout: float = 0.25, in_channels: int = 3, dtype=np.float32,
              seed=0) -> Sequential:
    """The tutorial network; ``base_filters`` (32) and ``units_per_stage`` (3) shrink it for tests.

    Stages have ``base_filters * (1, 2, 4, 8)`` filters. Returns a Sequential: conv1, stage1..4,
    bn, relu, dropout, pool, flatten, fc.
    """
    builder = "minimodel"
    f = check_int(builder, "base_filters", base_filters)
    n = check_int(builder, "units_per_stage", units_per_stage)
    with deferred_init():
        layers = [("conv1", Conv2D(in_channels, f, 3, padding=1, dtype=dtype))]
        cin = f
        for s in range(4):
            cout = f * 2 ** s
            units = [MiniUnit(cin if i == 0 else cout, cout, pool=(s > 0 and i == 0), dtype=dtype)
                     for i in range(n)]
            layers.append((f"stage{s + 1}", Sequential(*units, dtype=dtype)))
            cin = cout
        layers += [("bn", BatchNorm2D(cin, dtype=dtype)), ("relu", ReLU(dtype=dtype)),
                   ("dropout", Dropout(dropout, seed=[seed, 1], dtype=dtype)),
                   ("pool", AvgPool2D(4, dtype=dtype)), ("flatten", Flatten(dtype=dtype)),
                   ("fc", Dense(cin, num_classes, dtype=dtype))]
        model = Sequential(*layers, dtype=dtype)
    kw = {"num_classes": num_classes, "base_filters": f, "units_per_stage": n, "dropout": dropout,
              "in_channels": in_channels, "dtype": dtype}
    return finish(model, builder, kw, seed)
