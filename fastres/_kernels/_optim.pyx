"""Optimizer update kernels: SGD, Adam/AdamW and RMSprop, each one pass over its arrays.

Arrays are flat, C-contiguous and of one dtype (``fastres.optim`` checks, and otherwise keeps
to its NumPy code); an absent one (momentum buffer, amsgrad maximum, centered average) is None.
Each kernel returns False, having done nothing, when two arrays overlap in memory (the loops
read each element before writing it, but a shifted overlap would not give NumPy's result).
Hyper-parameters arrive as Python floats and are rounded to the dtype here, as NumPy rounds them.
Threads each take contiguous chunks; the updates are elementwise, so the results do not depend
on the split (fr_optim.h: bit-identical to the NumPy code).
"""
from cython cimport floating
from cython.parallel cimport prange
from fastres._kernels._common cimport check_threads, expect_length

cdef extern from "fr_optim.h" nogil:
    void fr_sgd_f(float *p, const float *grad, float *buf, Py_ssize_t n, float lr, float wd,
                  float mom, float damp1, int decay, int first, int nesterov)
    void fr_sgd_d(double *p, const double *grad, double *buf, Py_ssize_t n, double lr,
                  double wd, double mom, double damp1, int decay, int first, int nesterov)
    void fr_adam_f(float *p, const float *grad, float *m, float *v, float *vmax, Py_ssize_t n,
                   float keep, float wd, int decay, float c1, float b2, float c2, float step,
                   float bc2, float eps, int decoupled)
    void fr_adam_d(double *p, const double *grad, double *m, double *v, double *vmax,
                   Py_ssize_t n, double keep, double wd, int decay, double c1, double b2,
                   double c2, double step, double bc2, double eps, int decoupled)
    void fr_rmsprop_f(float *p, const float *grad, float *s, float *a, float *buf,
                      Py_ssize_t n, float lr, float wd, int decay, float alpha, float c,
                      float eps, float mom)
    void fr_rmsprop_d(double *p, const double *grad, double *s, double *a, double *buf,
                      Py_ssize_t n, double lr, double wd, int decay, double alpha, double c,
                      double eps, double mom)

cdef enum:
    CHUNK = 65536  # elements per work item (256 KiB of float32 per array)


cdef int _check(str op, Py_ssize_t n, arrays, int n_threads) except -1:
    """Every array given is indexed over the n elements of param."""
    check_threads(op, n_threads)
    for name, a in arrays:
        if a is not None:
            expect_length(op, name, a.shape[0], n)
    return 0


cdef inline floating *_ptr(floating[::1] a, Py_ssize_t lo) noexcept nogil:
    return &a[lo] if a is not None else NULL


cdef bint _overlap(const void **ptrs, int k, Py_ssize_t nbytes) noexcept nogil:
    """Whether two of the k ranges [ptrs[i], ptrs[i] + nbytes) share a byte (NULL: absent)."""
    cdef int i, j
    cdef const char *a
    cdef const char *b
    for i in range(k):
        for j in range(i + 1, k):
            a, b = <const char *>ptrs[i], <const char *>ptrs[j]
            if a != NULL and b != NULL and a < b + nbytes and b < a + nbytes:
                return True
    return False


def sgd(floating[::1] param not None, const floating[::1] grad not None, floating[::1] buf,
        double lr, double wd, double momentum, double dampening, bint nesterov, bint first,
        int n_threads):
    """IN: grad.  IN/OUT: param, buf (None without momentum).  ``wd == 0`` skips the decay term,
    ``first`` sets buf = g (fastres.optim.sgd_update)."""
    cdef Py_ssize_t n = param.shape[0], n_chunks = (n + CHUNK - 1) // CHUNK, c, lo, hi
    _check("sgd", n, (("grad", grad), ("buf", buf)), n_threads)
    if n == 0:
        return True
    cdef const void *ptrs[3]
    ptrs[:] = [&param[0], &grad[0], _ptr(buf, 0)]
    if _overlap(ptrs, 3, n * sizeof(floating)):
        return False
    cdef int decay = wd != 0
    cdef floating flr = <floating>lr, fwd = <floating>wd, fmom = <floating>momentum
    cdef floating damp1 = <floating>(1.0 - dampening)
    for c in prange(n_chunks, nogil=True, schedule="static",
                    num_threads=min(n_threads, n_chunks)):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_sgd_f(&param[lo], &grad[lo], _ptr(buf, lo), hi - lo, flr, fwd, fmom, damp1,
                     decay, first, nesterov)
        else:
            fr_sgd_d(&param[lo], &grad[lo], _ptr(buf, lo), hi - lo, flr, fwd, fmom, damp1,
                     decay, first, nesterov)
    return True


def adam(floating[::1] param not None, const floating[::1] grad not None,
         floating[::1] exp_avg not None, floating[::1] exp_avg_sq not None,
         floating[::1] max_exp_avg_sq, double lr, double beta1, double beta2, double eps,
         double wd, bint decoupled, double step_size, double bias_correction2_sqrt,
         int n_threads):
    """IN: grad.  IN/OUT: param, exp_avg, exp_avg_sq, max_exp_avg_sq (None without amsgrad).
    ``wd == 0`` skips decay; else decoupled (AdamW) or L2 (fastres.optim.adam_update)."""
    cdef Py_ssize_t n = param.shape[0], n_chunks = (n + CHUNK - 1) // CHUNK, c, lo, hi
    _check("adam", n, (("grad", grad), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq),
                       ("max_exp_avg_sq", max_exp_avg_sq)), n_threads)
    if n == 0:
        return True
    cdef const void *ptrs[5]
    ptrs[:] = [&param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0], _ptr(max_exp_avg_sq, 0)]
    if _overlap(ptrs, 5, n * sizeof(floating)):
        return False
    cdef int decay = wd != 0 and not decoupled, shrink = wd != 0 and decoupled
    cdef floating keep = <floating>(1.0 - lr * wd), fwd = <floating>wd
    cdef floating c1 = <floating>(1.0 - beta1), b2 = <floating>beta2, c2 = <floating>(1.0 - beta2)
    cdef floating fstep = <floating>step_size, bc2 = <floating>bias_correction2_sqrt
    cdef floating feps = <floating>eps
    for c in prange(n_chunks, nogil=True, schedule="static",
                    num_threads=min(n_threads, n_chunks)):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_adam_f(&param[lo], &grad[lo], &exp_avg[lo], &exp_avg_sq[lo],
                      _ptr(max_exp_avg_sq, lo), hi - lo, keep, fwd, decay, c1, b2, c2, fstep,
                      bc2, feps, shrink)
        else:
            fr_adam_d(&param[lo], &grad[lo], &exp_avg[lo], &exp_avg_sq[lo],
                      _ptr(max_exp_avg_sq, lo), hi - lo, keep, fwd, decay, c1, b2, c2, fstep,
                      bc2, feps, shrink)
    return True


def rmsprop(floating[::1] param not None, const floating[::1] grad not None,
            floating[::1] square_avg not None, floating[::1] grad_avg, floating[::1] buf,
            double lr, double alpha, double eps, double momentum, double wd, int n_threads):
    """IN: grad.  IN/OUT: param, square_avg, grad_avg (None unless centered), buf (None
    without momentum).  ``wd == 0`` skips decay (fastres.optim.rmsprop_update)."""
    cdef Py_ssize_t n = param.shape[0], n_chunks = (n + CHUNK - 1) // CHUNK, c, lo, hi
    _check("rmsprop", n, (("grad", grad), ("square_avg", square_avg), ("grad_avg", grad_avg),
                          ("buf", buf)), n_threads)
    if n == 0:
        return True
    cdef const void *ptrs[5]
    ptrs[:] = [&param[0], &grad[0], &square_avg[0], _ptr(grad_avg, 0), _ptr(buf, 0)]
    if _overlap(ptrs, 5, n * sizeof(floating)):
        return False
    cdef int decay = wd != 0
    cdef floating flr = <floating>lr, fwd = <floating>wd, falpha = <floating>alpha
    cdef floating fc = <floating>(1.0 - alpha), feps = <floating>eps, fmom = <floating>momentum
    for c in prange(n_chunks, nogil=True, schedule="static",
                    num_threads=min(n_threads, n_chunks)):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        if floating is float:
            fr_rmsprop_f(&param[lo], &grad[lo], &square_avg[lo], _ptr(grad_avg, lo),
                         _ptr(buf, lo), hi - lo, flr, fwd, decay, falpha, fc, feps, fmom)
        else:
            fr_rmsprop_d(&param[lo], &grad[lo], &square_avg[lo], _ptr(grad_avg, lo),
                         _ptr(buf, lo), hi - lo, flr, fwd, decay, falpha, fc, feps, fmom)
    return True
