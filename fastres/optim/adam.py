"""Adam (L2 weight decay in the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

import math

import numpy as np

from fastres._config import resolve_threads
from fastres._kernels import _optim as _k
from fastres.optim.base import Optimizer, _check_float, _one_pass

__all__ = ["Adam", "AdamW", "adam_update"]


def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None, *, step: int,
                lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0, decoupled: bool = False) -> None:
    """One Adam/AdamW step in place, as ``torch.optim.Adam`` / ``AdamW`` (``step`` counts from 1)::

        param *= 1 - lr * weight_decay            (AdamW: decoupled)
        g = grad + weight_decay * param           (Adam: L2 in the gradient)
        m = m + (1 - beta1) * (g - m)             (= beta1 * m + (1 - beta1) * g)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                     (amsgrad only; v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2**step) + eps
        param -= lr / (1 - beta1**step) * m / denom

    ``param``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and ``max_exp_avg_sq`` are IN/OUT.
    Contiguous float32/float64 arrays of one dtype and shape are updated in one multi-threaded
    pass (``fastres._kernels._optim``) with the same results, bit for bit, as ``_adam_numpy``,
    which handles any other arrays.
    """
    flat = _one_pass(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    if flat is None or not _k.adam(*flat, float(lr), float(beta1), float(beta2), float(eps),
                                   float(weight_decay), bool(decoupled),
                                   lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step),
                                   resolve_threads(None)):
        _adam_numpy(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr,
                    beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled=decoupled)


def _adam_numpy(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2,
                eps, weight_decay, decoupled):
    """``adam_update`` as NumPy operations: one pass and one temporary per operation."""
    if weight_decay:
        if decoupled:
            param *= 1.0 - lr * weight_decay
            g = grad
        else:
            g = grad + weight_decay * param
    else:
        g = grad
    exp_avg += (1.0 - beta1) * (g - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * (g * g)
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    step_size = lr / (1.0 - beta1**step)
    denom = np.sqrt(v) / math.sqrt(1.0 - beta2**step)
    denom += eps
    param -= step_size * (exp_avg / denom)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch semantics; the update is ``adam_update``.

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2); use ``AdamW`` for the
    decoupled form.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 decay_filter=None):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad},
                         decay_filter=decay_filter)

    def _validate_group(self, g):
        who = type(self).__name__
        super()._validate_group(g)
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: expected betas to be a pair (beta1, beta2), got {betas!r}")
        g["betas"] = (_check_float(who, "beta1", betas[0], maximum=1.0, open_max=True),
                      _check_float(who, "beta2", betas[1], maximum=1.0, open_max=True))
        g["eps"] = _check_float(who, "eps", g["eps"])
        g["amsgrad"] = bool(g["amsgrad"])

    def _state_keys(self, g):
        return ({"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if g["amsgrad"] else set()),
                {"step"})

    def _update(self, p, state, g):
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if g["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        adam_update(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"],
                    state.get("max_exp_avg_sq"), step=state["step"], lr=g["lr"],
                    beta1=g["betas"][0], beta2=g["betas"][1], eps=g["eps"],
                    weight_decay=g["weight_decay"], decoupled=self._decoupled)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay
    ``param *= 1 - lr * weight_decay`` before the Adam step (default ``weight_decay=0.01`` as in
    PyTorch)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 decay_filter=None):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, decay_filter=decay_filter)
