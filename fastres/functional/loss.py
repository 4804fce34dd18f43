"""Softmax cross-entropy with label smoothing (fast path)."""

from __future__ import annotations

import numpy as np

from fastres import arena
from fastres._config import resolve_threads
from fastres._kernels import _loss as _k
from fastres._validate import float_array, labels_arg, real_number

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    label_smoothing: float = 0.0,
    n_threads: int | None = None,
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss(label_smoothing=eps)`` (mean).

    Per row: ``(1 - eps) * (-log p_y) + eps / K * sum_j (-log p_j)`` with ``p = softmax(row)``,
    i.e. cross-entropy against ``target = (1 - eps) * onehot(y) + eps / K``; the loss is the mean
    over the batch. Computed on logits shifted by the row max, so huge logits neither overflow
    nor lose precision. NaN logits give a NaN loss. There is no ``ignore_index``: every label
    must be a class.

    Parameters
    ----------
    logits : ndarray, shape (N, K), float32 or float64
    labels : ndarray, shape (N,), any integer dtype, values in [0, K)
    label_smoothing : float in [0, 1]
    n_threads : int, optional
        Kernel threads (default ``fastres.get_num_threads()``); results do not depend on it.

    Returns
    -------
    loss : float
        The mean loss as a Python float (accumulated in float64 for either dtype, where PyTorch
        would return a 0-d tensor of the logits' dtype).
    dlogits : ndarray, shape (N, K), dtype of logits
        Gradient of ``loss``: ``(softmax(logits) - target) / N``.
    """
    op = "softmax_cross_entropy"
    logits = float_array(op, "logits", logits, ndim=2, layout="(N, K)")
    N, K = logits.shape
    labels = labels_arg(op, labels, N, K)
    eps = real_number(op, "label_smoothing", label_smoothing, lo=0.0, hi=1.0)
    dlogits = arena.empty_like(logits)
    loss = _k.softmax_cross_entropy(logits, labels, eps, dlogits, resolve_threads(n_threads, op))
    return loss, dlogits
