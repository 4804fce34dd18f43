"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

import numpy as np

from fastres._config import resolve_threads
from fastres._kernels import _optim as _k
from fastres.optim.base import Optimizer, _check_float, _one_pass

__all__ = ["SGD", "sgd_update"]


def sgd_update(param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, *, lr: float,
               momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
               weight_decay: float = 0.0, first: bool = False) -> None:
    """One SGD step in place, as ``torch.optim.SGD``::

        g = grad + weight_decay * param
        buf = g                                   (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        d = g + momentum * buf if nesterov else buf   (d = g when momentum == 0)
        param -= lr * d

    ``param`` and ``buf`` (IN/OUT, ``buf`` unused when ``momentum == 0``) are updated in place;
    ``grad`` is not modified. Contiguous float32/float64 arrays of one dtype and shape are
    updated in one multi-threaded pass (``fastres._kernels._optim``) with the same results,
    bit for bit, as ``_sgd_numpy``, which handles any other arrays.
    """
    if momentum and buf is None:
        raise TypeError(f"sgd_update: expected a momentum buffer (buf) for momentum={momentum}, "
                        "got None")
    flat = _one_pass(param, grad, buf if momentum else None)
    if flat is None or not _k.sgd(*flat, float(lr), float(weight_decay), float(momentum),
                                  float(dampening), bool(nesterov), bool(first),
                                  resolve_threads(None)):
        _sgd_numpy(param, grad, buf, lr=lr, momentum=momentum, dampening=dampening,
                   nesterov=nesterov, weight_decay=weight_decay, first=first)


def _sgd_numpy(param, grad, buf, *, lr, momentum, dampening, nesterov, weight_decay, first):
    """``sgd_update`` as NumPy operations: one pass and one temporary per operation."""
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        if first:
            np.copyto(buf, g)
        else:
            buf *= momentum
            buf += (1.0 - dampening) * g
        d = g + momentum * buf if nesterov else buf
    else:
        d = g
    param -= lr * d


class SGD(Optimizer):
    """SGD (PyTorch semantics; the update is ``sgd_update``).

    >>> opt = SGD(model.named_parameters(), 0.1, momentum=0.9, weight_decay=1e-4,
    ...           decay_filter=no_bn_bias)
    """

    def __init__(self, params, lr: float, *, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, decay_filter=None):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "nesterov": nesterov, "weight_decay": weight_decay},
                         decay_filter=decay_filter)

    def _validate_group(self, g):
        super()._validate_group(g)
        g["momentum"] = _check_float("SGD", "momentum", g["momentum"])
        g["dampening"] = _check_float("SGD", "dampening", g["dampening"])
        g["nesterov"] = bool(g["nesterov"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={g['momentum']}, dampening={g['dampening']}")

    def _state_keys(self, g):
        return ({"momentum_buffer"} if g["momentum"] else set()), set()

    def _update(self, p, state, g):
        first = False
        if g["momentum"] and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p.data)
            first = True
        sgd_update(p.data, p.grad, state.get("momentum_buffer"), lr=g["lr"],
                   momentum=g["momentum"], dampening=g["dampening"], nesterov=g["nesterov"],
                   weight_decay=g["weight_decay"], first=first)
