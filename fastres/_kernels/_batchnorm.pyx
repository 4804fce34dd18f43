"""Batch-norm kernels (NCHW, statistics per channel over N, H, W).

x, dout, out, dx arrive as C-contiguous (N, C, HW) views; per-channel vectors are (C,).
Everything is validated and allocated by ``fastres.functional.batchnorm``; the kernels check
again every extent they index (cheap shape comparisons), so no call from Python reaches past an
array.

Schedules (the caller picks; the numbers are the same either way):
- by items: a parallel region over the items (c, b), b a block of ``block`` samples of channel
  c; the serial combine; a parallel region over runs of whole rows of the (N*C, HW) view (at
  least ROW_ELEMS elements; each row with its own channel's coefficients) for the elementwise
  pass. Items keep every thread busy even when C is small.
- ``by_channel``: each thread owns whole channels and makes both passes over one channel back
  to back, so the second pass finds the channel in its core's cache instead of memory. It pays
  when the tensors exceed the last-level cache and a channel's runs are page-long (batch 128,
  16@32x32, float32, 2 threads: backward 1.9 -> 1.5 ms); with runs of 1 KB (16x16 maps) it is
  slower (forward + backward 2.1-2.3 against 1.4 ms), the strided rows defeating the
  prefetchers that the contiguous row pass keeps busy.

Streaming: with ``stream`` the elementwise pass writes its output with streaming stores
(fr_stream_* in fr_common.h): the same values, written around the caches. The caller asks for it
when the pass's operands fill the last-level cache (``fastres._config.streaming``).

Determinism: ``block`` comes from the shapes alone; each item's sums go to its own slot of
``partial`` (C, n_blocks, 2) and a channel's slots are added in b order, so every number depends
on the shapes only, never on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from fastres._kernels._common cimport check_threads, dims, expect_shape

cdef extern from "fr_batchnorm.h" nogil:
    void fr_bn_sums_f(const float *x, Py_ssize_t runs, Py_ssize_t len, Py_ssize_t stride,
                      double shift, double *out)
    void fr_bn_sums_d(const double *x, Py_ssize_t runs, Py_ssize_t len, Py_ssize_t stride,
                      double shift, double *out)
    void fr_bn_dsums_f(const float *dy, const float *x, Py_ssize_t runs, Py_ssize_t len,
                       Py_ssize_t stride, double mean, double *out)
    void fr_bn_dsums_d(const double *dy, const double *x, Py_ssize_t runs, Py_ssize_t len,
                       Py_ssize_t stride, double mean, double *out)
    void fr_bn_dsums_scale_f(const float *dy, const float *x, float *dx, Py_ssize_t runs,
                             Py_ssize_t len, Py_ssize_t stride, double mean, double scale,
                             double *out)
    void fr_bn_dsums_scale_d(const double *dy, const double *x, double *dx, Py_ssize_t runs,
                             Py_ssize_t len, Py_ssize_t stride, double mean, double scale,
                             double *out)
    void fr_bn_affine_rows_f(const float *x, const float *res, float *y, Py_ssize_t rows,
                             Py_ssize_t len, Py_ssize_t stride, Py_ssize_t c0, Py_ssize_t dc,
                             Py_ssize_t C, const float *coef, int relu, int stream)
    void fr_bn_affine_rows_d(const double *x, const double *res, double *y, Py_ssize_t rows,
                             Py_ssize_t len, Py_ssize_t stride, Py_ssize_t c0, Py_ssize_t dc,
                             Py_ssize_t C, const double *coef, int relu, int stream)
    void fr_bn_dx_rows_f(const float *dy, const float *x, const float *add, float *dx,
                         Py_ssize_t rows, Py_ssize_t len, Py_ssize_t stride, Py_ssize_t c0,
                         Py_ssize_t dc, Py_ssize_t C, const float *coef, int stream)
    void fr_bn_dx_rows_d(const double *dy, const double *x, const double *add, double *dx,
                         Py_ssize_t rows, Py_ssize_t len, Py_ssize_t stride, Py_ssize_t c0,
                         Py_ssize_t dc, Py_ssize_t C, const double *coef, int stream)

cdef enum:
    ROW_ELEMS = 4096  # elements per work item of the elementwise passes (whole rows, >= 1)


# --- per-item, per-channel and per-row pieces -------------------------------------------

cdef inline double _shift(const floating[:, :, ::1] x, Py_ssize_t c) noexcept nogil:
    """Channel c's shift for its sums (see fr_batchnorm.h): the mean of its first sample's
    first (at most 64) elements, rounded to x's type. Near the channel's mean, it leaves
    var = E[d^2] - E[d]^2 little to cancel (the first element alone may be an outlier)."""
    cdef Py_ssize_t i, n = min(x.shape[2], 64)
    cdef double s = 0.0
    for i in range(n):  # each term scaled first: a sum of values near DBL_MAX would overflow
        s = s + x[0, c, i] / <double>n
    return <double><floating>s


cdef inline void _sums_item(const floating[:, :, ::1] x, const double[::1] shift,
                            double[:, :, ::1] partial, Py_ssize_t c, Py_ssize_t b,
                            Py_ssize_t block) noexcept nogil:
    """partial[c, b] = sums of x - shift[c] over samples [b * block, (b + 1) * block),
    channel c."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n0 = b * block
    if floating is float:
        fr_bn_sums_f(&x[n0, c, 0], min(block, N - n0), HW, C * HW, shift[c],
                     &partial[c, b, 0])
    else:
        fr_bn_sums_d(&x[n0, c, 0], min(block, N - n0), HW, C * HW, shift[c],
                     &partial[c, b, 0])


cdef inline void _dsums_item(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                             const double[::1] mean, double[:, :, ::1] partial, Py_ssize_t c,
                             Py_ssize_t b, Py_ssize_t block) noexcept nogil:
    """partial[c, b] = (sum(dout), sum(dout * (x - mean))) over the item's samples."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n0 = b * block
    if floating is float:
        fr_bn_dsums_f(&dout[n0, c, 0], &x[n0, c, 0], min(block, N - n0), HW, C * HW, mean[c],
                      &partial[c, b, 0])
    else:
        fr_bn_dsums_d(&dout[n0, c, 0], &x[n0, c, 0], min(block, N - n0), HW, C * HW, mean[c],
                      &partial[c, b, 0])


cdef inline void _set_mean(floating[:, ::1] coef, Py_ssize_t c, double mean) noexcept nogil:
    """coef[c, 0] + coef[c, 1] == mean: its rounding to the storage type and the remainder."""
    coef[c, 0] = <floating>mean
    coef[c, 1] = <floating>(mean - <double>coef[c, 0])


cdef inline void _finish_forward(const floating[:, :, ::1] x, const floating[::1] gamma,
                                 const floating[::1] beta, floating[::1] running_mean,
                                 floating[::1] running_var, double momentum, double eps,
                                 const double[:, :, ::1] partial, floating[:, ::1] coef,
                                 double[::1] mean, double[::1] inv_std,
                                 Py_ssize_t c) noexcept nogil:
    """Channel c (mean[c] holding its shift): add its items in block order, finish mean and
    inv_std, update the running statistics (PyTorch: running = (1 - momentum) * running +
    momentum * stat, with the unbiased variance; in double, rounded once) and set coef[c] for
    _affine_rows."""
    cdef Py_ssize_t b
    cdef double M = <double>(x.shape[0] * x.shape[2]), s1 = 0.0, s2 = 0.0, d, var
    for b in range(partial.shape[1]):
        s1 = s1 + partial[c, b, 0]
        s2 = s2 + partial[c, b, 1]
    d = s1 / M
    var = s2 / M - d * d
    if var < 0.0:  # rounding when the channel is (nearly) constant
        var = 0.0
    mean[c] = mean[c] + d
    inv_std[c] = 1.0 / sqrt(var + eps)
    running_mean[c] = <floating>((1.0 - momentum) * running_mean[c] + momentum * mean[c])
    running_var[c] = <floating>((1.0 - momentum) * running_var[c]
                                + momentum * var * (M / (M - 1.0)))
    _set_mean(coef, c, mean[c])
    coef[c, 2] = <floating>(gamma[c] * inv_std[c])
    coef[c, 3] = beta[c]


cdef inline void _finish_backward(const double[::1] inv_std, const floating[::1] gamma,
                                  const double[:, :, ::1] partial, const double[::1] mean,
                                  double M, floating[:, ::1] coef, floating[::1] dgamma,
                                  floating[::1] dbeta, Py_ssize_t c) noexcept nogil:
    """Channel c: g = sum(dout), h = sum(dout * (x - mean)) in block order; dbeta = g,
    dgamma = h * inv_std, and coef[c] for
    dx = a * dout + b * (x - mean) + c0 with a = gamma * inv_std,
    b = -a * inv_std^2 * h / M, c0 = -a * g / M."""
    cdef Py_ssize_t b
    cdef double g = 0.0, h = 0.0, a
    for b in range(partial.shape[1]):
        g = g + partial[c, b, 0]
        h = h + partial[c, b, 1]
    dbeta[c] = <floating>g
    dgamma[c] = <floating>(h * inv_std[c])
    a = gamma[c] * inv_std[c]
    _set_mean(coef, c, mean[c])
    coef[c, 2] = <floating>a
    coef[c, 3] = <floating>(-a * inv_std[c] * inv_std[c] * h / M)
    coef[c, 4] = <floating>(-a * g / M)


cdef inline Py_ssize_t _rows_per_item(Py_ssize_t HW) noexcept nogil:
    """Rows of the (N*C, HW) view per work item of the elementwise passes (HW = 0 has no
    rows to pass over, and must not divide)."""
    return max(1, ROW_ELEMS // max(HW, 1))


cdef inline void _affine_rows(const floating[:, :, ::1] x, const floating *res, bint relu,
                              const floating[:, ::1] coef, floating[:, :, ::1] out,
                              Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t stride, Py_ssize_t dc,
                              bint stream) noexcept nogil:
    """out = [relu]((x - mean) * scale + shift [+ res]) on `rows` rows of the (N*C, HW) view,
    from row r0 on, `stride` elements apart, each row's channel dc after the previous one's,
    with (mean_hi, mean_lo, scale, shift) = coef[c]; res (N, C, HW) like x, or NULL; written
    with streaming stores if stream. The caller keeps the rows inside x."""
    cdef Py_ssize_t C = x.shape[1], HW = x.shape[2]
    cdef const floating *r = res + r0 * HW if res != NULL else NULL
    if floating is float:
        fr_bn_affine_rows_f(&x[0, 0, 0] + r0 * HW, r, &out[0, 0, 0] + r0 * HW, rows, HW, stride,
                            r0 % C, dc, C, &coef[0, 0], relu, stream)
    else:
        fr_bn_affine_rows_d(&x[0, 0, 0] + r0 * HW, r, &out[0, 0, 0] + r0 * HW, rows, HW, stride,
                            r0 % C, dc, C, &coef[0, 0], relu, stream)


cdef inline void _dx_rows(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                          const floating *add, const floating[:, ::1] coef,
                          floating[:, :, ::1] dx, Py_ssize_t r0, Py_ssize_t rows,
                          Py_ssize_t stride, Py_ssize_t dc, bint stream) noexcept nogil:
    """dx by coef[c] (see _finish_backward) [+ add] on rows as _affine_rows; add (N, C, HW) or
    NULL; written with streaming stores if stream."""
    cdef Py_ssize_t C = x.shape[1], HW = x.shape[2]
    cdef const floating *a = add + r0 * HW if add != NULL else NULL
    if floating is float:
        fr_bn_dx_rows_f(&dout[0, 0, 0] + r0 * HW, &x[0, 0, 0] + r0 * HW, a,
                        &dx[0, 0, 0] + r0 * HW, rows, HW, stride, r0 % C, dc, C, &coef[0, 0],
                        stream)
    else:
        fr_bn_dx_rows_d(&dout[0, 0, 0] + r0 * HW, &x[0, 0, 0] + r0 * HW, a,
                        &dx[0, 0, 0] + r0 * HW, rows, HW, stride, r0 % C, dc, C, &coef[0, 0],
                        stream)


cdef inline Py_ssize_t _row_items(Py_ssize_t N, Py_ssize_t C, Py_ssize_t HW) noexcept nogil:
    """Work items of the elementwise passes (_rows_per_item rows each, the last one fewer)."""
    cdef Py_ssize_t per = _rows_per_item(HW)
    return (N * C + per - 1) // per


# --- shape checks: the kernels index every operand with x's (N, C, HW) extents ---------------

cdef int _like_x(str op, str name, const floating[:, :, ::1] a,
                 const floating[:, :, ::1] x) except -1:
    """a must have x's shape (N, C, HW)."""
    return expect_shape(op, name, a.shape, dims(x.shape, 3))


cdef const floating *_residual(str op, str name, const floating[:, :, ::1] res,
                               const floating[:, :, ::1] x) except? NULL:
    """res's data, or NULL for None; res must have x's shape."""
    if res is None:
        return NULL
    _like_x(op, name, res, x)
    return &res[0, 0, 0]


cdef int _per_channel(str op, Py_ssize_t C, tuple lengths) except -1:
    """Per-channel vectors, each indexed [c] for c < C: lengths holds (name, length) pairs."""
    cdef Py_ssize_t length
    for name, n in lengths:
        length = n
        expect_shape(op, name, &length, (C,))
    return 0


cdef int _forward_vecs(str op, const floating[::1] gamma, const floating[::1] beta,
                       const floating[::1] running_mean, const floating[::1] running_var,
                       double[::1] mean, double[::1] inv_std, Py_ssize_t C) except -1:
    """The per-channel vectors of the forward kernels."""
    return _per_channel(op, C, (("gamma", gamma.shape[0]), ("beta", beta.shape[0]),
                                ("running_mean", running_mean.shape[0]),
                                ("running_var", running_var.shape[0]), ("mean", mean.shape[0]),
                                ("inv_std", inv_std.shape[0])))


cdef int _backward_vecs(str op, const double[::1] mean, const double[::1] inv_std,
                        const floating[::1] gamma, floating[::1] dgamma, floating[::1] dbeta,
                        Py_ssize_t C) except -1:
    """The per-channel vectors of the backward kernels."""
    return _per_channel(op, C, (("mean", mean.shape[0]), ("inv_std", inv_std.shape[0]),
                                ("gamma", gamma.shape[0]), ("dgamma", dgamma.shape[0]),
                                ("dbeta", dbeta.shape[0])))


cdef int _coef(str op, const floating[:, ::1] coef, Py_ssize_t C, Py_ssize_t k) except -1:
    """The per-channel coefficients, indexed [c, :k]."""
    return expect_shape(op, "coef", coef.shape, (C, k))


cdef int _partial(str op, const double[:, :, ::1] partial, Py_ssize_t N, Py_ssize_t C,
                  Py_ssize_t block) except -1:
    """The item sums partial (C, n_blocks, 2): item (c, b) reads samples from b * block on, so
    n_blocks must be ceil(N / block) (no block starting past the batch) and block >= 1."""
    if block < 1:
        raise ValueError(f"{op}: expected block >= 1, got {block}")
    cdef Py_ssize_t n_blocks = (N - 1) // block + 1 if N > 0 else 0
    if partial.shape[0] != C or partial.shape[1] != n_blocks or partial.shape[2] != 2:
        raise ValueError(f"{op}: expected partial of shape ({C}, {n_blocks}, 2) for N = {N} "
                         f"and block = {block}, got ({partial.shape[0]}, {partial.shape[1]}, "
                         f"{partial.shape[2]})")
    return 0


# --- kernels ------------------------------------------------------------------------------

def forward_train(const floating[:, :, ::1] x, const floating[::1] gamma,
                  const floating[::1] beta, floating[::1] running_mean,
                  floating[::1] running_var, double momentum, double eps,
                  double[:, :, ::1] partial, floating[:, ::1] coef, double[::1] mean,
                  double[::1] inv_std, const floating[:, :, ::1] res, bint relu,
                  floating[:, :, ::1] out, Py_ssize_t block, bint stream, bint by_channel,
                  int n_threads):
    """Batch statistics, running-stat update, then
    out = [relu]((x - mean) * gamma * inv_std + beta [+ res]); by_channel picks the schedule.

    IN: x (N, C, HW), gamma, beta (C,), res like x or None.
    IN/OUT: running_mean, running_var (C,).
    SCRATCH: partial (C, n_blocks, 2) with n_blocks = ceil(N / block); coef (C, 4).
    OUT: mean, inv_std (C,) float64 (the batch statistics), out (N, C, HW).
    """
    check_threads("forward_train", n_threads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n_blocks = partial.shape[1]
    cdef Py_ssize_t item, c, r, r0, per = _rows_per_item(HW)
    cdef str op = "forward_train"
    if N < 1 or x.shape[2] < 1:  # each channel's shift comes from its first sample (_shift)
        raise ValueError(f"{op}: expected x with N >= 1 and HW >= 1, got shape "
                         f"({N}, {C}, {x.shape[2]})")
    _forward_vecs(op, gamma, beta, running_mean, running_var, mean, inv_std, C)
    _partial(op, partial, N, C, block)
    _coef(op, coef, C, 4)
    _like_x(op, "out", out, x)
    cdef const floating *rp = _residual(op, "res", res, x)
    for c in range(C):  # each channel's shift, held in mean until _finish_forward
        mean[c] = _shift(x, c)
    if by_channel:
        for c in prange(C, nogil=True, schedule="dynamic", num_threads=n_threads):
            for item in range(n_blocks):
                _sums_item(x, mean, partial, c, item, block)
            _finish_forward(x, gamma, beta, running_mean, running_var, momentum, eps, partial,
                            coef, mean, inv_std, c)
            _affine_rows(x, rp, relu, coef, out, c, N, C * HW, 0, stream)
        return
    for item in prange(C * n_blocks, nogil=True, schedule="guided", num_threads=n_threads):
        _sums_item(x, mean, partial, item // n_blocks, item % n_blocks, block)
    for c in range(C):
        _finish_forward(x, gamma, beta, running_mean, running_var, momentum, eps, partial,
                        coef, mean, inv_std, c)
    for r in prange(_row_items(N, C, HW), nogil=True, schedule="guided", num_threads=n_threads):
        r0 = r * per
        _affine_rows(x, rp, relu, coef, out, r0, min(per, N * C - r0), HW, 1, stream)


def forward_eval(const floating[:, :, ::1] x, const floating[::1] gamma,
                 const floating[::1] beta, const floating[::1] running_mean,
                 const floating[::1] running_var, double eps, floating[:, ::1] coef,
                 double[::1] mean, double[::1] inv_std, const floating[:, :, ::1] res,
                 bint relu, floating[:, :, ::1] out, bint stream, int n_threads):
    """out = [relu]((x - running_mean) * gamma / sqrt(running_var + eps) + beta [+ res]).

    IN: x (N, C, HW), gamma, beta, running_mean, running_var (C,), res like x or None.
    SCRATCH: coef (C, 4).
    OUT: mean, inv_std (C,) float64 (from the running statistics), out (N, C, HW).
    """
    check_threads("forward_eval", n_threads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], c, r, r0
    cdef Py_ssize_t per = _rows_per_item(HW)
    cdef str op = "forward_eval"
    _forward_vecs(op, gamma, beta, running_mean, running_var, mean, inv_std, C)
    _coef(op, coef, C, 4)
    _like_x(op, "out", out, x)
    cdef const floating *rp = _residual(op, "res", res, x)
    for c in range(C):
        mean[c] = running_mean[c]
        inv_std[c] = 1.0 / sqrt(<double>running_var[c] + eps)
        _set_mean(coef, c, mean[c])
        coef[c, 2] = <floating>(gamma[c] * inv_std[c])
        coef[c, 3] = beta[c]
    for r in prange(_row_items(N, C, HW), nogil=True, schedule="guided", num_threads=n_threads):
        r0 = r * per
        _affine_rows(x, rp, relu, coef, out, r0, min(per, N * C - r0), HW, 1, stream)


def backward_train(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                   const double[::1] mean, const double[::1] inv_std,
                   const floating[::1] gamma, double[:, :, ::1] partial, floating[:, ::1] coef,
                   const floating[:, :, ::1] add, floating[:, :, ::1] dx, floating[::1] dgamma,
                   floating[::1] dbeta, Py_ssize_t block, bint stream, bint by_channel,
                   int n_threads):
    """Full batch-statistics gradient (see _finish_backward for the formula) [+ add];
    by_channel picks the schedule.

    IN: dout, x (N, C, HW), mean, inv_std (C,) float64, gamma (C,), add like x or None.
    SCRATCH: partial (C, n_blocks, 2), coef (C, 5).  OUT: dx (N, C, HW), dgamma, dbeta (C,).
    """
    check_threads("backward_train", n_threads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2], n_blocks = partial.shape[1]
    cdef Py_ssize_t item, c, r, r0, per = _rows_per_item(HW)
    cdef double M = <double>(N * x.shape[2])
    cdef str op = "backward_train"
    _backward_vecs(op, mean, inv_std, gamma, dgamma, dbeta, C)
    _partial(op, partial, N, C, block)
    _coef(op, coef, C, 5)
    _like_x(op, "dout", dout, x)
    _like_x(op, "dx", dx, x)
    cdef const floating *ap = _residual(op, "add", add, x)
    if by_channel:
        for c in prange(C, nogil=True, schedule="dynamic", num_threads=n_threads):
            for item in range(n_blocks):
                _dsums_item(dout, x, mean, partial, c, item, block)
            _finish_backward(inv_std, gamma, partial, mean, M, coef, dgamma, dbeta, c)
            _dx_rows(dout, x, ap, coef, dx, c, N, C * HW, 0, stream)
        return
    for item in prange(C * n_blocks, nogil=True, schedule="guided", num_threads=n_threads):
        _dsums_item(dout, x, mean, partial, item // n_blocks, item % n_blocks, block)
    for c in range(C):
        _finish_backward(inv_std, gamma, partial, mean, M, coef, dgamma, dbeta, c)
    for r in prange(_row_items(N, C, HW), nogil=True, schedule="guided", num_threads=n_threads):
        r0 = r * per
        _dx_rows(dout, x, ap, coef, dx, r0, min(per, N * C - r0), HW, 1, stream)


def backward_eval(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
                  const double[::1] mean, const double[::1] inv_std,
                  const floating[::1] gamma, double[:, :, ::1] partial,
                  floating[:, :, ::1] dx, floating[::1] dgamma, floating[::1] dbeta,
                  Py_ssize_t block, int n_threads):
    """Eval-mode gradient (the statistics are constants): dx = dout * gamma * inv_std,
    dbeta = sum(dout), dgamma = sum(dout * (x - mean)) * inv_std, all in one pass.

    IN: dout, x (N, C, HW), mean, inv_std (C,) float64, gamma (C,).
    SCRATCH: partial (C, n_blocks, 2).  OUT: dx (N, C, HW), dgamma, dbeta (C,).
    """
    check_threads("backward_eval", n_threads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], HW = x.shape[2]
    cdef Py_ssize_t n_blocks = partial.shape[1], item, c, b, n0
    cdef double g, h
    cdef str op = "backward_eval"
    _backward_vecs(op, mean, inv_std, gamma, dgamma, dbeta, C)
    _partial(op, partial, N, C, block)
    _like_x(op, "dout", dout, x)
    _like_x(op, "dx", dx, x)
    for item in prange(C * n_blocks, nogil=True, schedule="guided", num_threads=n_threads):
        c = item // n_blocks
        b = item % n_blocks
        n0 = b * block
        if floating is float:
            fr_bn_dsums_scale_f(&dout[n0, c, 0], &x[n0, c, 0], &dx[n0, c, 0],
                                min(block, N - n0), HW, C * HW, mean[c],
                                gamma[c] * inv_std[c], &partial[c, b, 0])
        else:
            fr_bn_dsums_scale_d(&dout[n0, c, 0], &x[n0, c, 0], &dx[n0, c, 0],
                                min(block, N - n0), HW, C * HW, mean[c],
                                gamma[c] * inv_std[c], &partial[c, b, 0])
    for c in range(C):
        g = 0.0
        h = 0.0
        for b in range(n_blocks):
            g = g + partial[c, b, 0]
            h = h + partial[c, b, 1]
        dbeta[c] = <floating>g
        dgamma[c] = <floating>(h * inv_std[c])
