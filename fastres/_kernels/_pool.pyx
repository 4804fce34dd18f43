"""Pooling kernels: max, average and global average pooling over NCHW planes.

Arrays arrive C-contiguous and preallocated from ``fastres.functional``, with the N and C axes
merged into one axis of P = N*C planes. Each plane is owned by exactly one thread
(``prange(schedule="guided")`` over planes) and processed serially by the loops in fr_pool.h,
so nothing is shared between threads: no races in the gradient scatters, and every result is
bit-identical for any ``n_threads``.
"""
from libc.stdint cimport INT32_MAX, int32_t, uint8_t
from libc.string cimport memset
from cython cimport floating
from cython.parallel cimport prange
from fastres._kernels._common cimport check_threads, dims, expect_shape

cdef extern from "fr_pool.h" nogil:
    void fr_maxpool_plane_f(const float *x, float *y, int32_t *idx, Py_ssize_t H, Py_ssize_t W,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                            Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_maxpool_plane_d(const double *x, double *y, int32_t *idx, Py_ssize_t H, Py_ssize_t W,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                            Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_maxpool2x2_plane_f(const float *x, float *y, uint8_t *code, Py_ssize_t W,
                               Py_ssize_t OH, Py_ssize_t OW)
    void fr_maxpool2x2_plane_d(const double *x, double *y, uint8_t *code, Py_ssize_t W,
                               Py_ssize_t OH, Py_ssize_t OW)
    Py_ssize_t fr_maxpool_grad_plane_f(const float *dy, const int32_t *idx, float *dx,
                                       Py_ssize_t HW, Py_ssize_t OHW)
    Py_ssize_t fr_maxpool_grad_plane_d(const double *dy, const int32_t *idx, double *dx,
                                       Py_ssize_t HW, Py_ssize_t OHW)
    void fr_maxpool2x2_grad_plane_f(const float *dy, const uint8_t *code, float *dx, Py_ssize_t H,
                                    Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW)
    void fr_maxpool2x2_grad_plane_d(const double *dy, const uint8_t *code, double *dx,
                                    Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW)
    void fr_avgpool_plane_f(const float *x, float *y, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH,
                            Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                            Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_avgpool_plane_d(const double *x, double *y, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH,
                            Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                            Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_avgpool2x2_plane_f(const float *x, float *y, Py_ssize_t W, Py_ssize_t OH,
                               Py_ssize_t OW)
    void fr_avgpool2x2_plane_d(const double *x, double *y, Py_ssize_t W, Py_ssize_t OH,
                               Py_ssize_t OW)
    void fr_avgpool_grad_plane_f(const float *dy, float *dx, Py_ssize_t H, Py_ssize_t W,
                                 Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                                 Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_avgpool_grad_plane_d(const double *dy, double *dx, Py_ssize_t H, Py_ssize_t W,
                                 Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                                 Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW)
    void fr_avgpool2x2_grad_plane_f(const float *dy, float *dx, Py_ssize_t H, Py_ssize_t W,
                                    Py_ssize_t OH, Py_ssize_t OW)
    void fr_avgpool2x2_grad_plane_d(const double *dy, double *dx, Py_ssize_t H, Py_ssize_t W,
                                    Py_ssize_t OH, Py_ssize_t OW)
    void fr_plane_mean_f(const float *x, float *y, Py_ssize_t P, Py_ssize_t HW)
    void fr_plane_mean_d(const double *x, double *y, Py_ssize_t P, Py_ssize_t HW)
    void fr_plane_fill_f(const float *dy, float *dx, Py_ssize_t P, Py_ssize_t HW)
    void fr_plane_fill_d(const double *dy, double *dx, Py_ssize_t P, Py_ssize_t HW)

cdef enum:
    BLOCK = 16384  # elements per work item in the global-pool kernels (64 KiB of float32)


cdef inline bint _is_2x2(Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                         Py_ssize_t PH, Py_ssize_t PW) noexcept nogil:
    # The ResNet/Keras downsampling pool; its windows tile the plane exactly.
    return KH == 2 and KW == 2 and SH == 2 and SW == 2 and PH == 0 and PW == 0


cdef inline Py_ssize_t _stack(Py_ssize_t P, Py_ssize_t H, Py_ssize_t W,
                              int n_threads) noexcept nogil:
    """Planes per work item of a 2x2 kernel. With H even no window crosses from one plane into
    the next, so g consecutive planes are one plane of g*H rows to those kernels: small maps
    (16x16, 8x8: the MiniModel's later pools) then run as long loops instead of a call per
    plane. About 16K elements per item, and at least 4 items per thread where P allows."""
    if H % 2:
        return 1
    cdef Py_ssize_t g = max(1, 16384 // max(1, H * W))
    return max(1, min(g, P // (4 * n_threads)))


# --- checks: the kernels index every plane with the extents and window below ---------------

cdef int _planes(str op, str name, Py_ssize_t got, Py_ssize_t P) except -1:
    """Every array holds the same P planes."""
    if got != P:
        raise ValueError(f"{op}: expected {name} with {P} planes, got {got}")
    return 0


cdef int _geometry(str op, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                   Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH,
                   Py_ssize_t PW) except -1:
    """A valid window (as fastres.functional.pool checks it) whose output is (OH, OW). The
    general loops clip their windows to the plane, but the 2x2 ones rely on 2*OH <= H and
    2*OW <= W, fr_valid_outputs on a positive stride, and the int32 offsets of fr_pool.h on
    H + 2*PH and W + 2*PW fitting int32."""
    if KH < 1 or KW < 1 or SH < 1 or SW < 1 or PH < 0 or PW < 0 or PH > KH // 2 \
            or PW > KW // 2:
        raise ValueError(f"{op}: expected kernel >= 1, stride >= 1 and 0 <= padding <= "
                         f"kernel // 2, got kernel ({KH}, {KW}), stride ({SH}, {SW}), padding "
                         f"({PH}, {PW})")
    if H > INT32_MAX or W > INT32_MAX or PH > (INT32_MAX - H) // 2 \
            or PW > (INT32_MAX - W) // 2:
        raise ValueError(f"{op}: expected H + 2*padding and W + 2*padding <= {INT32_MAX}, got "
                         f"({H}, {W}) with padding ({PH}, {PW})")
    if KH > H + 2 * PH or KW > W + 2 * PW:
        raise ValueError(f"{op}: expected kernel <= the padded plane, got kernel ({KH}, {KW}) "
                         f"for ({H}, {W}) with padding ({PH}, {PW})")
    cdef Py_ssize_t oh = (H + 2 * PH - KH) // SH + 1, ow = (W + 2 * PW - KW) // SW + 1
    if OH != oh or OW != ow:
        raise ValueError(f"{op}: expected output planes of ({oh}, {ow}) for ({H}, {W}), got "
                         f"({OH}, {OW})")
    return 0


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       int32_t[:, :, ::1] argmax, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                       Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, int n_threads):
    """Max over each window.  IN: x (P, H, W).  OUT: out (P, OH, OW) and argmax (P, OH, OW),
    the flat index within the plane of the first maximum (NaN wins, as in PyTorch)."""
    check_threads("max_pool2d_forward", n_threads)
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], p
    cdef str op = "max_pool2d_forward"
    _planes(op, "out", out.shape[0], P)
    expect_shape(op, "argmax", argmax.shape, (P, OH, OW))
    _geometry(op, H, W, OH, OW, KH, KW, SH, SW, PH, PW)
    if H * W > INT32_MAX:
        raise ValueError(f"{op}: expected H*W <= {INT32_MAX} (int32 argmax), got ({H}, {W})")
    for p in prange(P, nogil=True, schedule="guided", num_threads=n_threads):
        if floating is float:
            fr_maxpool_plane_f(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0], H, W, OH, OW,
                               KH, KW, SH, SW, PH, PW)
        else:
            fr_maxpool_plane_d(&x[p, 0, 0], &out[p, 0, 0], &argmax[p, 0, 0], H, W, OH, OW,
                               KH, KW, SH, SW, PH, PW)


def max_pool2d_backward(const floating[:, :, ::1] dout, const int32_t[:, :, ::1] argmax,
                        floating[:, :, ::1] dx, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                        Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, int n_threads):
    """dx[argmax] += dout per plane, in output order.  IN: dout, argmax (P, OH, OW), every
    index in [0, H*W).  OUT: dx (P, H, W), fully overwritten."""
    check_threads("max_pool2d_backward", n_threads)
    cdef Py_ssize_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], p, n_bad = 0
    cdef str op = "max_pool2d_backward"
    _planes(op, "dout", dout.shape[0], P)
    expect_shape(op, "argmax", argmax.shape, (P, OH, OW))
    _geometry(op, H, W, OH, OW, KH, KW, SH, SW, PH, PW)
    # The kernel skips (and counts) indices outside [0, H*W) as it scatters (fr_pool.h).
    for p in prange(P, nogil=True, schedule="guided", num_threads=n_threads):
        if floating is float:
            n_bad += fr_maxpool_grad_plane_f(&dout[p, 0, 0], &argmax[p, 0, 0], &dx[p, 0, 0],
                                             H * W, OH * OW)
        else:
            n_bad += fr_maxpool_grad_plane_d(&dout[p, 0, 0], &argmax[p, 0, 0], &dx[p, 0, 0],
                                             H * W, OH * OW)
    if n_bad:
        raise ValueError(f"{op}: expected argmax values in [0, {H * W}), got {n_bad} outside it "
                         f"(skipped)")


cdef int _check_2x2(str op, str name, Py_ssize_t planes, const Py_ssize_t *code_shape,
                    Py_ssize_t P, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                    int n_threads) except -1:
    """The 2x2 max kernels' arrays: name (out or dout) and the codes hold P planes of the
    2x2/stride-2 output of (H, W)."""
    check_threads(op, n_threads)
    _planes(op, name, planes, P)
    expect_shape(op, "code", code_shape, (P, OH, OW))
    _geometry(op, H, W, OH, OW, 2, 2, 2, 2, 0, 0)
    return 0


def max_pool2x2_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                        uint8_t[:, :, ::1] code, int n_threads):
    """Max pooling with kernel 2x2, stride 2, no padding.  IN: x (P, H, W).  OUT: out and code
    (P, H // 2, W // 2): where in its window the first maximum is, 2*row + column (NaN wins)."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    _check_2x2("max_pool2x2_forward", "out", out.shape[0], code.shape, P, H, W, OH, OW,
               n_threads)
    cdef Py_ssize_t g = _stack(P, H, W, n_threads), b, p0, n
    for b in prange((P + g - 1) // g, nogil=True, schedule="guided", num_threads=n_threads):
        p0 = b * g
        n = min(g, P - p0)
        if floating is float:
            fr_maxpool2x2_plane_f(&x[p0, 0, 0], &out[p0, 0, 0], &code[p0, 0, 0], W, n * OH, OW)
        else:
            fr_maxpool2x2_plane_d(&x[p0, 0, 0], &out[p0, 0, 0], &code[p0, 0, 0], W, n * OH, OW)


def max_pool2x2_backward(const floating[:, :, ::1] dout, const uint8_t[:, :, ::1] code,
                         floating[:, :, ::1] dx, int n_threads):
    """Each window's gradient to the element its code names.  IN: dout, code (P, OH, OW).
    OUT: dx (P, H, W), fully overwritten. A code outside 0-3 writes only zeros, so any byte is
    memory-safe (fr_pool.h)."""
    cdef Py_ssize_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    _check_2x2("max_pool2x2_backward", "dout", dout.shape[0], code.shape, P, H, W, OH, OW,
               n_threads)
    cdef Py_ssize_t g = _stack(P, H, W, n_threads), b, p0, n
    for b in prange((P + g - 1) // g, nogil=True, schedule="guided", num_threads=n_threads):
        p0 = b * g
        n = min(g, P - p0)
        if floating is float:
            fr_maxpool2x2_grad_plane_f(&dout[p0, 0, 0], &code[p0, 0, 0], &dx[p0, 0, 0], n * H, W,
                                       n * OH, OW)
        else:
            fr_maxpool2x2_grad_plane_d(&dout[p0, 0, 0], &code[p0, 0, 0], &dx[p0, 0, 0], n * H, W,
                                       n * OH, OW)


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, Py_ssize_t KH,
                       Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
                       int n_threads):
    """Window mean, zero padding counted in the divisor.  IN: x (P, H, W).
    OUT: out (P, OH, OW)."""
    check_threads("avg_pool2d_forward", n_threads)
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef bint fast = _is_2x2(KH, KW, SH, SW, PH, PW)
    _planes("avg_pool2d_forward", "out", out.shape[0], P)
    _geometry("avg_pool2d_forward", H, W, OH, OW, KH, KW, SH, SW, PH, PW)
    cdef Py_ssize_t g = _stack(P, H, W, n_threads) if fast else 1, b, p0, n
    for b in prange((P + g - 1) // g, nogil=True, schedule="guided", num_threads=n_threads):
        p0 = b * g
        n = min(g, P - p0)
        if floating is float:
            if fast:
                fr_avgpool2x2_plane_f(&x[p0, 0, 0], &out[p0, 0, 0], W, n * OH, OW)
            else:
                fr_avgpool_plane_f(&x[p0, 0, 0], &out[p0, 0, 0], H, W, OH, OW, KH, KW, SH, SW,
                                   PH, PW)
        else:
            if fast:
                fr_avgpool2x2_plane_d(&x[p0, 0, 0], &out[p0, 0, 0], W, n * OH, OW)
            else:
                fr_avgpool_plane_d(&x[p0, 0, 0], &out[p0, 0, 0], H, W, OH, OW, KH, KW, SH, SW,
                                   PH, PW)


def avg_pool2d_backward(const floating[:, :, ::1] dout, floating[:, :, ::1] dx, Py_ssize_t KH,
                        Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH,
                        Py_ssize_t PW, int n_threads):
    """Spread dout / divisor over each window, in output order.  IN: dout (P, OH, OW).
    OUT: dx (P, H, W), fully overwritten."""
    check_threads("avg_pool2d_backward", n_threads)
    cdef Py_ssize_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef bint fast = _is_2x2(KH, KW, SH, SW, PH, PW)
    _planes("avg_pool2d_backward", "dout", dout.shape[0], P)
    _geometry("avg_pool2d_backward", H, W, OH, OW, KH, KW, SH, SW, PH, PW)
    cdef Py_ssize_t g = _stack(P, H, W, n_threads) if fast else 1, b, p0, n
    for b in prange((P + g - 1) // g, nogil=True, schedule="guided", num_threads=n_threads):
        p0 = b * g
        n = min(g, P - p0)
        if floating is float:
            if fast:
                fr_avgpool2x2_grad_plane_f(&dout[p0, 0, 0], &dx[p0, 0, 0], n * H, W, n * OH, OW)
            else:
                fr_avgpool_grad_plane_f(&dout[p0, 0, 0], &dx[p0, 0, 0], H, W, OH, OW,
                                        KH, KW, SH, SW, PH, PW)
        else:
            if fast:
                fr_avgpool2x2_grad_plane_d(&dout[p0, 0, 0], &dx[p0, 0, 0], n * H, W, n * OH, OW)
            else:
                fr_avgpool_grad_plane_d(&dout[p0, 0, 0], &dx[p0, 0, 0], H, W, OH, OW,
                                        KH, KW, SH, SW, PH, PW)


def global_avg_pool2d_forward(const floating[:, ::1] x, floating[::1] out, int n_threads):
    """Mean of each plane.  IN: x (P, H*W).  OUT: out (P,)."""
    check_threads("global_avg_pool2d_forward", n_threads)
    cdef Py_ssize_t P = x.shape[0], HW = x.shape[1], per, b, lo, hi
    _planes("global_avg_pool2d_forward", "out", out.shape[0], P)
    if HW < 1:
        raise ValueError(f"global_avg_pool2d_forward: expected planes of H*W >= 1, got {HW}")
    per = max(1, BLOCK // HW)  # planes per work item
    for b in prange((P + per - 1) // per, nogil=True, schedule="guided", num_threads=n_threads):
        lo = b * per
        hi = min(lo + per, P)
        if floating is float:
            fr_plane_mean_f(&x[lo, 0], &out[lo], hi - lo, HW)
        else:
            fr_plane_mean_d(&x[lo, 0], &out[lo], hi - lo, HW)


def global_avg_pool2d_backward(const floating[::1] dout, floating[:, ::1] dx, int n_threads):
    """dx[p, :] = dout[p] / (H*W).  IN: dout (P,).  OUT: dx (P, H*W)."""
    check_threads("global_avg_pool2d_backward", n_threads)
    cdef Py_ssize_t P = dx.shape[0], HW = dx.shape[1], per, b, lo, hi
    _planes("global_avg_pool2d_backward", "dout", dout.shape[0], P)
    if HW < 1:
        raise ValueError(f"global_avg_pool2d_backward: expected planes of H*W >= 1, got {HW}")
    per = max(1, BLOCK // HW)
    for b in prange((P + per - 1) // per, nogil=True, schedule="guided", num_threads=n_threads):
        lo = b * per
        hi = min(lo + per, P)
        if floating is float:
            fr_plane_fill_f(&dout[lo], &dx[lo, 0], hi - lo, HW)
        else:
            fr_plane_fill_d(&dout[lo], &dx[lo, 0], hi - lo, HW)


def subsample2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                        Py_ssize_t SH, Py_ssize_t SW, int n_threads):
    """out[:, :C] = x[:, :, ::SH, ::SW], out[:, C:] = 0 (a 1x1 window with stride, and the
    zero channels of the option-A shortcut). IN: x (N, C, H, W).
    OUT: out (N, C_out >= C, ceil(H/SH), ceil(W/SW))."""
    check_threads("subsample2d_forward", n_threads)
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Co = out.shape[1], OH = out.shape[2], OW = out.shape[3], p, n, c, i, j
    cdef const floating *src
    cdef floating *dst
    if (SH < 1 or SW < 1 or out.shape[0] != N or Co < C or OH != (H + SH - 1) // SH
            or OW != (W + SW - 1) // SW):
        raise ValueError(f"subsample2d_forward: expected out of shape ({N}, >= {C}, "
                         f"{(H + SH - 1) // SH if SH >= 1 else '?'}, "
                         f"{(W + SW - 1) // SW if SW >= 1 else '?'}) for x {dims(x.shape, 4)} "
                         f"and stride ({SH}, {SW}) >= 1, got {dims(out.shape, 4)}")
    for p in prange(N * Co, nogil=True, schedule="guided", num_threads=n_threads):
        n = p // Co
        c = p % Co
        dst = &out[n, c, 0, 0]
        if c >= C:
            memset(dst, 0, OH * OW * sizeof(floating))
            continue
        src = &x[n, c, 0, 0]
        for i in range(OH):
            for j in range(OW):
                dst[i * OW + j] = src[i * SH * W + j * SW]


def subsample2d_backward(const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                         Py_ssize_t SH, Py_ssize_t SW, int n_threads):
    """dx = 0, dx[:, :, ::SH, ::SW] = dout[:, :C]: the gradient of subsample2d_forward.
    IN: dout (N, C_out >= C, ceil(H/SH), ceil(W/SW)). OUT: dx (N, C, H, W)."""
    check_threads("subsample2d_backward", n_threads)
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], p, n, c, i, j
    cdef const floating *src
    cdef floating *dst
    if (SH < 1 or SW < 1 or dout.shape[0] != N or dout.shape[1] < C
            or OH != (H + SH - 1) // SH or OW != (W + SW - 1) // SW):
        raise ValueError(f"subsample2d_backward: expected dout of shape ({N}, >= {C}, "
                         f"{(H + SH - 1) // SH if SH >= 1 else '?'}, "
                         f"{(W + SW - 1) // SW if SW >= 1 else '?'}) for dx "
                         f"{dims(dx.shape, 4)} and stride ({SH}, {SW}) >= 1, got "
                         f"{dims(dout.shape, 4)}")
    for p in prange(N * C, nogil=True, schedule="guided", num_threads=n_threads):
        n = p // C
        c = p % C
        dst = &dx[n, c, 0, 0]
        src = &dout[n, c, 0, 0]
        memset(dst, 0, H * W * sizeof(floating))
        for i in range(OH):
            for j in range(OW):
                dst[i * SH * W + j * SW] = src[i * OW + j]
