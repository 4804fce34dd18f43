"""Helpers shared by the model builders: argument checks, seeding and the architecture record."""

from __future__ import annotations

import numbers

import numpy as np

from fastres.layers import Module
from fastres.layers.base import _DEFER, resolve_dtype

__all__ = ["check_int", "finish"]


def check_int(builder: str, name: str, v, *, minimum: int = 1) -> int:
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{builder}: expected {name} to be an int, got {v!r}")
    if v < minimum:
        raise ValueError(f"{builder}: expected {name} >= {minimum}, got {v}")
    return int(v)


def finish(model: Module, builder: str, kwargs: dict, seed) -> Module:
    """Initialise every parameter from ``default_rng(seed)`` in definition order, record the
    architecture (``model.arch``, JSON-ready, used by ``fastres.io``) and return the model in
    training mode. Inside ``fastres.layers.deferred_init()`` the weights stay uninitialised (zeros,
    BN at identity), which makes counting parameters of big nets instant."""
    if not _DEFER[0]:
        model.reset_parameters(np.random.default_rng(seed))
    kw = dict(kwargs)
    kw["dtype"] = resolve_dtype(builder, kw.get("dtype", np.float32)).name
    # JSON-ready: numpy integers become ints (a list seed stays a list)
    kw["seed"] = int(seed) if isinstance(seed, numbers.Integral) else seed
    model.arch = {"builder": builder, "kwargs": kw}
    return model.train()
