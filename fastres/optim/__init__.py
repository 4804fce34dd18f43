"""Optimizers (PyTorch semantics) and learning-rate schedules.

Each optimizer holds per-parameter state and calls a pure in-place update function
(``sgd_update``, ``adam_update``, ``rmsprop_update``) whose docstring gives the exact formula.
"""

from fastres.optim.adam import Adam, AdamW, adam_update
from fastres.optim.base import Optimizer, no_bn_bias
from fastres.optim.rmsprop import RMSprop, rmsprop_update
from fastres.optim.schedules import (
    CosineAnnealing,
    LinearWarmup,
    MultiStepLR,
    OneCycle,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
)
from fastres.optim.sgd import SGD, sgd_update

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealing", "LinearWarmup", "MultiStepLR", "OneCycle",
    "Optimizer", "RMSprop", "ReduceLROnPlateau", "Schedule", "StepLR", "adam_update",
    "no_bn_bias", "rmsprop_update", "sgd_update",
]
