"""Model builders that read like the papers' tables.

Every builder takes ``dtype=`` and ``seed=`` (the same seed gives the same weights) and returns a
``fastres.layers.Sequential`` with ``forward``/``backward``, ``summary(input_shape)`` and an
``arch`` record (builder name + keyword arguments) that ``fastres.io`` stores to rebuild it.
"""

from fastres.models.blocks import BasicBlock, Bottleneck, PreActBlock
from fastres.models.cifar import (
    plain_cifar,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    resnet1202,
    resnet_cifar,
    wide_resnet,
)
from fastres.models.imagenet import resnet, resnet18, resnet34, resnet50, resnet101, resnet152
from fastres.models.minimodel import MiniUnit, minimodel
from fastres.models.resnext import resnext, resnext29_8x64d, resnext29_16x64d

# builder name -> function, used by fastres.io.load to rebuild a saved model
BUILDERS = {
    f.__name__: f
    for f in (resnet_cifar, plain_cifar, wide_resnet, resnet, resnext, minimodel)
}

__all__ = [
    "BUILDERS", "BasicBlock", "Bottleneck", "MiniUnit", "PreActBlock", "minimodel",
    "plain_cifar", "resnet", "resnet18", "resnet20", "resnet32", "resnet34", "resnet44",
    "resnet50", "resnet56", "resnet101", "resnet110", "resnet152", "resnet1202",
    "resnet_cifar", "resnext", "resnext29_8x64d", "resnext29_16x64d", "wide_resnet",
]
