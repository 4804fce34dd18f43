"""Softmax cross-entropy kernel: per-row losses and the gradient with respect to the logits.

Arrays are C-contiguous and preallocated by ``fastres.functional``; labels are checked to lie in
[0, K) here (one comparison per row), since each row indexes with its label.
Rows are independent, so the split over threads cannot change any result; each work item (a
fixed run of rows) sums its blocks' losses in order, and the mean over the batch is summed from
the items' totals in item order after the parallel loop.
"""
from cython cimport floating
from cython.parallel cimport prange
import numpy as np
from libc.stdint cimport int64_t
from fastres._kernels._common cimport check_threads, expect_shape

cdef extern from "fr_loss.h" nogil:
    enum: FR_XENT_ROWS
    double fr_xent_rows_f(const float *z, Py_ssize_t R, Py_ssize_t K, const int64_t *y,
                          double eps, double scale, float *g)
    double fr_xent_rows_d(const double *z, Py_ssize_t R, Py_ssize_t K, const int64_t *y,
                          double eps, double scale, double *g)

cdef enum:
    ITEM_ELEMS = 8192  # logits per work item: below this a thread costs more than it saves


def softmax_cross_entropy(const floating[:, ::1] logits, const int64_t[::1] labels,
                          double label_smoothing, floating[:, ::1] dlogits, int n_threads):
    """IN: logits (N, K), labels (N,) in [0, K).  OUT: dlogits (N, K) = (softmax - target) / N.
    Returns the mean over the rows of their smoothed cross-entropy."""
    check_threads("softmax_cross_entropy", n_threads)
    cdef Py_ssize_t N = logits.shape[0], K = logits.shape[1]
    cdef Py_ssize_t rows_per_item, n_items, it, n, bad = -1
    cdef double scale = 1.0 / N, total = 0.0
    if K < 1:  # every row reads z[0] (and ITEM_ELEMS // K below)
        raise ValueError(f"softmax_cross_entropy: expected logits with K >= 1 classes, got "
                         f"shape ({N}, {K})")
    expect_shape("softmax_cross_entropy", "labels", labels.shape, (N,))
    expect_shape("softmax_cross_entropy", "dlogits", dlogits.shape, (N, K))
    # Each row reads z[y] and writes g[y]: a label outside [0, K) would reach past the row.
    # One comparison per row (the row itself costs K exponentials).
    with nogil:
        for n in range(N):
            if labels[n] < 0 or labels[n] >= K:
                bad = n
                break
    if bad >= 0:
        raise ValueError(f"softmax_cross_entropy: expected labels in [0, {K}), got "
                         f"{labels[bad]} at index {bad}")
    rows_per_item = max(1, ITEM_ELEMS // K)
    n_items = (N + rows_per_item - 1) // rows_per_item
    if n_items == 1:  # no parallel region: it would cost more than the rows
        with nogil:
            total = _rows(logits, labels, label_smoothing, scale, dlogits, 0, N)
        return total / N
    # The items' totals, summed in item order below. Allocated here, not by the caller: only
    # calls of more than ITEM_ELEMS logits get here, where it costs little against the rows.
    cdef double[::1] item_loss = np.empty(n_items)
    for it in prange(n_items, nogil=True, schedule="guided", num_threads=min(n_threads, n_items)):
        item_loss[it] = _rows(logits, labels, label_smoothing, scale, dlogits,
                              it * rows_per_item, min((it + 1) * rows_per_item, N))
    for it in range(n_items):
        total += item_loss[it]
    return total / N


cdef inline double _rows(const floating[:, ::1] logits, const int64_t[::1] labels, double eps,
                         double scale, floating[:, ::1] dlogits, Py_ssize_t n,
                         Py_ssize_t n1) noexcept nogil:
    """Rows [n, n1), in blocks of FR_XENT_ROWS; returns the sum of their losses."""
    cdef double total = 0.0
    while n < n1:
        if floating is float:
            total += fr_xent_rows_f(&logits[n, 0], min(<Py_ssize_t>FR_XENT_ROWS, n1 - n),
                                    logits.shape[1], &labels[n], eps, scale, &dlogits[n, 0])
        else:
            total += fr_xent_rows_d(&logits[n, 0], min(<Py_ssize_t>FR_XENT_ROWS, n1 - n),
                                    logits.shape[1], &labels[n], eps, scale, &dlogits[n, 0])
        n += FR_XENT_ROWS
    return total
