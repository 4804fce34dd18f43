"""Softmax cross-entropy with label smoothing (plain NumPy reference), as PyTorch's
``CrossEntropyLoss(label_smoothing=eps)`` with the default mean reduction."""

from __future__ import annotations

import numpy as np

from fastres._validate import float_array, labels_arg, labels_out_of_range, real_number

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, *, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean over the batch of ``(1 - eps) * nll + eps * mean_j(-log p_j)``.

    logits (N, K), labels (N,) ints in [0, K). Returns ``(loss, dlogits)``: a Python float and
    ``(softmax - target) / N`` with ``target = (1 - eps) * onehot(labels) + eps / K``.
    """
    op = "softmax_cross_entropy"
    logits = float_array(op, "logits", logits, ndim=2, layout="(N, K)")
    N, K = logits.shape
    labels = labels_arg(op, labels, N, K)
    if labels.min() < 0 or labels.max() >= K:
        labels_out_of_range(op, labels, K)
    eps = real_number(op, "label_smoothing", label_smoothing, lo=0.0, hi=1.0)
    rows = np.arange(N)
    # log_softmax, shifted by the row max so that exp cannot overflow.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = -log_probs[rows, labels]
    per_row = (1 - eps) * nll
    if eps > 0:  # PyTorch's smoothing term: eps / K * sum_j (-log p_j)
        per_row = per_row + eps * (-log_probs).mean(axis=1)
    loss = float(per_row.mean())
    target = np.full((N, K), eps / K)
    target[rows, labels] += 1 - eps
    dlogits = (np.exp(log_probs) - target) / N
    return loss, dlogits.astype(logits.dtype)
