"""Elementwise kernels: ReLU, the residual add, and the masked multiply behind dropout.

Arrays are flat, C-contiguous and preallocated by ``fastres.functional``; ``n_threads`` threads
each take one contiguous chunk (elementwise results do not depend on the split). With
``stream`` the output is written with streaming stores (the same values, around the caches):
``fastres._config.streaming`` decides.
"""
from cython cimport floating
from cython.parallel cimport prange
from fastres._kernels._common cimport check_threads, expect_length

cdef extern from "fr_elementwise.h" nogil:
    Py_ssize_t FR_MASK_BYTES(Py_ssize_t n)
    void fr_relu_grad_f(const float *dy, const float *y, float *dx, Py_ssize_t n, int stream)
    void fr_relu_grad_d(const double *dy, const double *y, double *dx, Py_ssize_t n,
                        int stream)
    void fr_relu_mask_f(const float *x, float *y, unsigned char *m, Py_ssize_t n, int stream)
    void fr_relu_mask_d(const double *x, double *y, unsigned char *m, Py_ssize_t n, int stream)
    void fr_relu_grad_mask_f(const float *dy, const unsigned char *m, float *dx, Py_ssize_t n,
                             int stream)
    void fr_relu_grad_mask_d(const double *dy, const unsigned char *m, double *dx,
                             Py_ssize_t n, int stream)
    void fr_add_f(const float *a, const float *b, float *out, Py_ssize_t n, int stream)
    void fr_add_d(const double *a, const double *b, double *out, Py_ssize_t n, int stream)
    void fr_add_gated_f(const float *a, const float *b, const float *g, float *out,
                        Py_ssize_t n, int stream)
    void fr_add_gated_d(const double *a, const double *b, const double *g, double *out,
                        Py_ssize_t n, int stream)
    void fr_mul_f(const float *a, const float *b, float *out, Py_ssize_t n, int stream)
    void fr_mul_d(const double *a, const double *b, double *out, Py_ssize_t n, int stream)

cdef enum:
    CHUNK = 32768  # elements per work item (128 KiB of float32)


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n) noexcept nogil:
    return (n + CHUNK - 1) // CHUNK


def relu_mask_bytes(Py_ssize_t n):
    """Bytes of the bit mask relu_forward keeps for n elements (32 per started block of
    256, fr_elementwise.h)."""
    return FR_MASK_BYTES(n)


def relu_forward(const floating[::1] x, floating[::1] out, unsigned char[::1] mask,
                 bint stream, int n_threads):
    """out = max(x, 0), and mask = the bits of x > 0 (fr_elementwise.h's layout).
    IN: x.  OUT: out (same length), mask (relu_mask_bytes(len(x)) bytes)."""
    check_threads("relu_forward", n_threads)
    cdef Py_ssize_t n = x.shape[0], c, lo, hi
    expect_length("relu_forward", "out", out.shape[0], n)
    expect_length("relu_forward", "mask", mask.shape[0], FR_MASK_BYTES(n))
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK  # a multiple of a mask block (256): its bits start at lo / 8
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_relu_mask_f(&x[lo], &out[lo], &mask[lo // 8], hi - lo, stream)
        else:
            fr_relu_mask_d(&x[lo], &out[lo], &mask[lo // 8], hi - lo, stream)


def relu_backward(const floating[::1] dout, const floating[::1] y, floating[::1] dx, bint stream,
                  int n_threads):
    """dx = dout where y > 0 else 0 (y is the forward output).  IN: dout, y.  OUT: dx."""
    check_threads("relu_backward", n_threads)
    cdef Py_ssize_t n = dout.shape[0], c, lo, hi
    expect_length("relu_backward", "y", y.shape[0], n)
    expect_length("relu_backward", "dx", dx.shape[0], n)
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_relu_grad_f(&dout[lo], &y[lo], &dx[lo], hi - lo, stream)
        else:
            fr_relu_grad_d(&dout[lo], &y[lo], &dx[lo], hi - lo, stream)


def relu_backward_mask(const floating[::1] dout, const unsigned char[::1] mask,
                       floating[::1] dx, bint stream, int n_threads):
    """dx = dout where mask's bit is set, else 0 (mask from relu_forward; any bytes are
    safe to read).  IN: dout, mask.  OUT: dx."""
    check_threads("relu_backward", n_threads)
    cdef Py_ssize_t n = dout.shape[0], c, lo, hi
    expect_length("relu_backward", "mask", mask.shape[0], FR_MASK_BYTES(n))
    expect_length("relu_backward", "dx", dx.shape[0], n)
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_relu_grad_mask_f(&dout[lo], &mask[lo // 8], &dx[lo], hi - lo, stream)
        else:
            fr_relu_grad_mask_d(&dout[lo], &mask[lo // 8], &dx[lo], hi - lo, stream)


def add(const floating[::1] a, const floating[::1] b, floating[::1] out, bint stream,
        int n_threads):
    """out = a + b.  IN: a, b.  OUT: out (may alias a or b)."""
    check_threads("add", n_threads)
    cdef Py_ssize_t n = a.shape[0], c, lo, hi
    expect_length("add", "b", b.shape[0], n)
    expect_length("add", "out", out.shape[0], n)
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_add_f(&a[lo], &b[lo], &out[lo], hi - lo, stream)
        else:
            fr_add_d(&a[lo], &b[lo], &out[lo], hi - lo, stream)


def add_gated(const floating[::1] a, const floating[::1] b, const floating[::1] gate,
              floating[::1] out, bint stream, int n_threads):
    """out = a + b where gate > 0, else 0 (a gradient sum through a ReLU whose output is gate).
    IN: a, b, gate.  OUT: out (a fresh array: the loop is restrict-qualified)."""
    check_threads("add_gated", n_threads)
    cdef Py_ssize_t n = a.shape[0], c, lo, hi
    expect_length("add_gated", "b", b.shape[0], n)
    expect_length("add_gated", "gate", gate.shape[0], n)
    expect_length("add_gated", "out", out.shape[0], n)
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_add_gated_f(&a[lo], &b[lo], &gate[lo], &out[lo], hi - lo, stream)
        else:
            fr_add_gated_d(&a[lo], &b[lo], &gate[lo], &out[lo], hi - lo, stream)


def multiply(const floating[::1] a, const floating[::1] b, floating[::1] out, bint stream,
             int n_threads):
    """out = a * b.  IN: a, b.  OUT: out (may alias a or b)."""
    check_threads("multiply", n_threads)
    cdef Py_ssize_t n = a.shape[0], c, lo, hi
    expect_length("multiply", "b", b.shape[0], n)
    expect_length("multiply", "out", out.shape[0], n)
    for c in prange(_n_chunks(n), nogil=True, schedule="guided", num_threads=n_threads):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_mul_f(&a[lo], &b[lo], &out[lo], hi - lo, stream)
        else:
            fr_mul_d(&a[lo], &b[lo], &out[lo], hi - lo, stream)
