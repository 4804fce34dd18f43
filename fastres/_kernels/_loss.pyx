"""Softmax cross-entropy kernel: per-row losses and the gradient with respect to the logits.

Arrays are C-contiguous and preallocated by ``fastres.functional``; labels are checked to lie in
[0, K) here (one comparison per row), since each row indexes with its label.
Rows are independent, so the split over threads cannot change any result; the mean over the
batch is summed from ``row_loss`` in row order after the parallel loop.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from fastres._kernels._common cimport check_threads, expect_shape

cdef extern from "fr_loss.h" nogil:
    enum: FR_XENT_ROWS
    void fr_xent_rows_f(const float *z, Py_ssize_t R, Py_ssize_t K, const int64_t *y,
                        double eps, double scale, float *g, double *loss)
    void fr_xent_rows_d(const double *z, Py_ssize_t R, Py_ssize_t K, const int64_t *y,
                        double eps, double scale, double *g, double *loss)

cdef enum:
    ITEM_ELEMS = 8192  # logits per work item: below this a thread costs more than it saves


def softmax_cross_entropy(const floating[:, ::1] logits, const int64_t[::1] labels,
                          double label_smoothing, floating[:, ::1] dlogits,
                          double[::1] row_loss, int n_threads):
    """IN: logits (N, K), labels (N,) in [0, K).  OUT: dlogits (N, K) = (softmax - target) / N,
    row_loss (N,) = each row's smoothed cross-entropy. Returns the mean of row_loss."""
    check_threads("softmax_cross_entropy", n_threads)
    cdef Py_ssize_t N = logits.shape[0], K = logits.shape[1]
    cdef Py_ssize_t rows_per_item, n_items, it, n, bad = -1
    cdef double scale = 1.0 / N, total = 0.0
    if K < 1:  # every row reads z[0] (and ITEM_ELEMS // K below)
        raise ValueError(f"softmax_cross_entropy: expected logits with K >= 1 classes, got "
                         f"shape ({N}, {K})")
    expect_shape("softmax_cross_entropy", "labels", labels.shape, (N,))
    expect_shape("softmax_cross_entropy", "row_loss", row_loss.shape, (N,))
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
            _rows(logits, labels, label_smoothing, scale, dlogits, row_loss, 0, N)
    else:
        for it in prange(n_items, nogil=True, schedule="guided",
                         num_threads=min(n_threads, n_items)):
            _rows(logits, labels, label_smoothing, scale, dlogits, row_loss,
                  it * rows_per_item, min((it + 1) * rows_per_item, N))
    for n in range(N):
        total += row_loss[n]
    return total / N


cdef inline void _rows(const floating[:, ::1] logits, const int64_t[::1] labels, double eps,
                       double scale, floating[:, ::1] dlogits, double[::1] row_loss,
                       Py_ssize_t n, Py_ssize_t n1) noexcept nogil:
    """Rows [n, n1), in blocks of FR_XENT_ROWS."""
    while n < n1:
        if floating is float:
            fr_xent_rows_f(&logits[n, 0], min(<Py_ssize_t>FR_XENT_ROWS, n1 - n),
                           logits.shape[1], &labels[n], eps, scale, &dlogits[n, 0],
                           &row_loss[n])
        else:
            fr_xent_rows_d(&logits[n, 0], min(<Py_ssize_t>FR_XENT_ROWS, n1 - n),
                           logits.shape[1], &labels[n], eps, scale, &dlogits[n, 0],
                           &row_loss[n])
        n += FR_XENT_ROWS
