"""RMSprop (Hinton's lecture 6e), optionally centered and with momentum."""

from __future__ import annotations

import numpy as np

from fastres._config import resolve_threads
from fastres._kernels import _optim as _k
from fastres.optim.base import Optimizer, _check_float, _one_pass

__all__ = ["RMSprop", "rmsprop_update"]


def rmsprop_update(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray,
                   grad_avg: np.ndarray | None, buf: np.ndarray | None, *, lr: float,
                   alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> None:
    """One RMSprop step in place, as ``torch.optim.RMSprop``::

        g = grad + weight_decay * param
        s = alpha * s + (1 - alpha) * g * g
        a = a + (1 - alpha) * (g - a);  avg = sqrt(s - a * a) + eps     (centered: grad_avg given)
        avg = sqrt(s) + eps                                              (otherwise)
        buf = momentum * buf + g / avg;  param -= lr * buf               (momentum > 0)
        param -= lr * g / avg                                            (otherwise)

    ``param``, ``square_avg`` (s), ``grad_avg`` (a) and ``buf`` are IN/OUT. Contiguous
    float32/float64 arrays of one dtype and shape are updated in one multi-threaded pass
    (``fastres._kernels._optim``) with the same results, bit for bit, as ``_rmsprop_numpy``,
    which handles any other arrays.
    """
    if momentum > 0 and buf is None:
        raise TypeError(f"rmsprop_update: expected a momentum buffer (buf) for "
                        f"momentum={momentum}, got None")
    flat = _one_pass(param, grad, square_avg, grad_avg, buf if momentum > 0 else None)
    if flat is None or not _k.rmsprop(*flat, float(lr), float(alpha), float(eps),
                                      float(momentum), float(weight_decay),
                                      resolve_threads(None)):
        _rmsprop_numpy(param, grad, square_avg, grad_avg, buf, lr=lr, alpha=alpha, eps=eps,
                       momentum=momentum, weight_decay=weight_decay)


def _rmsprop_numpy(param, grad, square_avg, grad_avg, buf, *, lr, alpha, eps, momentum,
                   weight_decay):
    """``rmsprop_update`` as NumPy operations: one pass and one temporary per operation."""
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= alpha
    square_avg += (1.0 - alpha) * (g * g)
    if grad_avg is not None:
        grad_avg += (1.0 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        buf *= momentum
        buf += g / avg
        param -= lr * buf
    else:
        param -= lr * (g / avg)


class RMSprop(Optimizer):
    """RMSprop with PyTorch semantics and defaults; the update is ``rmsprop_update``."""

    def __init__(self, params, lr: float = 1e-2, *, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0,
                 decay_filter=None):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                                  "centered": centered, "weight_decay": weight_decay},
                         decay_filter=decay_filter)

    def _validate_group(self, g):
        super()._validate_group(g)
        g["alpha"] = _check_float("RMSprop", "alpha", g["alpha"], maximum=1.0)
        g["eps"] = _check_float("RMSprop", "eps", g["eps"])
        g["momentum"] = _check_float("RMSprop", "momentum", g["momentum"])
        g["centered"] = bool(g["centered"])

    def _state_keys(self, g):
        return ({"square_avg"} | ({"momentum_buffer"} if g["momentum"] > 0 else set())
                | ({"grad_avg"} if g["centered"] else set())), {"step"}

    def _update(self, p, state, g):
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p.data)
            if g["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if g["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        rmsprop_update(p.data, p.grad, state["square_avg"], state.get("grad_avg"),
                       state.get("momentum_buffer"), lr=g["lr"], alpha=g["alpha"], eps=g["eps"],
                       momentum=g["momentum"], weight_decay=g["weight_decay"])
