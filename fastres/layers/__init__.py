"""Stateful layers (parameters, gradients, buffers, train/eval mode) over ``fastres.functional``,
and the containers ``Sequential`` and ``Graph`` (a DAG with declared residual adds)."""

from fastres.layers.activation import Dropout, ReLU
from fastres.layers.base import Graph, Module, Parameter, Sequential, deferred_init
from fastres.layers.batchnorm import BatchNorm2D
from fastres.layers.conv import Conv2D
from fastres.layers.fused import FusedConvBN
from fastres.layers.linear import Dense, Flatten
from fastres.layers.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fastres.layers.shortcut import Add, Identity, StochasticDepth, ZeroPadShortcut

__all__ = [
    "Add",
    "AvgPool2D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "FusedConvBN",
    "GlobalAvgPool2D",
    "Graph",
    "Identity",
    "MaxPool2D",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "StochasticDepth",
    "ZeroPadShortcut",
    "deferred_init",
]
