"""Classification metrics on logits or predicted labels: top-k accuracy, confusion matrix,
per-class accuracy."""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "per_class_accuracy", "top_k_accuracy", "top_k_correct"]


def _check_logits(who: str, logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"{who}: expected logits of shape (N, K), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"{who}: expected labels of shape ({logits.shape[0]},), got shape "
                         f"{labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{who}: expected integer labels, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"{who}: labels must lie in [0, {logits.shape[1]}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return logits, labels


def top_k_correct(logits, labels, ks=(1, 5)) -> list[int]:
    """Number of rows whose label is among the ``k`` highest logits, for each ``k`` in ``ks``
    (``k`` larger than the number of classes counts every row).

    A row is correct when fewer than ``k`` logits are strictly greater than the label's logit,
    so ties are resolved in the label's favour (deterministic, unlike a sort). A row with a NaN
    logit is never correct (no comparison with NaN is true, so it would otherwise rank first).
    """
    logits, labels = _check_logits("top_k_correct", logits, labels)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"top_k_correct: expected positive int k, got {k!r}")
    if labels.size == 0:
        return [0 for _ in ks]
    true = logits[np.arange(labels.size), labels]
    rank = (logits > true[:, None]).sum(axis=1)
    ok = ~np.isnan(logits).any(axis=1)
    return [int(((rank < k) & ok).sum()) for k in ks]


def top_k_accuracy(logits, labels, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` highest logits.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
    labels : ndarray, shape (N,), integers in [0, K)
    """
    n = np.shape(labels)[0] if np.ndim(labels) else 0
    if n == 0:
        raise ValueError("top_k_accuracy: got an empty batch")
    return top_k_correct(logits, labels, (k,))[0] / n


def confusion_matrix(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` int64 counts: row = true class, column = predicted class.

    ``predictions`` are class indices (take ``logits.argmax(1)`` first); ``num_classes``
    defaults to ``max(labels, predictions) + 1``.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.ndim != 1 or labels.shape != predictions.shape:
        raise ValueError(f"confusion_matrix: expected labels and predictions of one shape (N,), "
                         f"got {labels.shape} and {predictions.shape}")
    if labels.dtype.kind not in "iu" or predictions.dtype.kind not in "iu":
        raise TypeError(f"confusion_matrix: expected integer arrays, got {labels.dtype} and "
                        f"{predictions.dtype}")
    top = int(max(labels.max(initial=-1), predictions.max(initial=-1))) + 1
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, (int, np.integer))):
        raise TypeError(f"confusion_matrix: expected num_classes to be an int or None, got "
                        f"{num_classes!r}")
    k = top if num_classes is None else int(num_classes)
    if k < top or min(labels.min(initial=0), predictions.min(initial=0)) < 0:
        raise ValueError(f"confusion_matrix: class indices must lie in [0, {k}), got values in "
                         f"[{min(labels.min(initial=0), predictions.min(initial=0))}, {top - 1}]")
    return np.bincount(labels.astype(np.int64) * k + predictions, minlength=k * k).reshape(k, k)


def per_class_accuracy(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """Recall of each class (diagonal / row sum of the confusion matrix), float64 of shape
    (K,); NaN for a class with no samples."""
    cm = confusion_matrix(labels, predictions, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
