"""2-D convolution kernels: forward, input gradient, weight and bias gradients.

im2col + GEMM: each thread unfolds a chunk of ``nb`` images (and one channel group) side by side
into a thread-local column matrix (Kg x nb*P), then calls BLAS (held to one thread, see
fastres._config). Small feature maps (4x4, 8x8) take several images per product so that BLAS sees
a wide matrix instead of re-packing the weights for 16 columns; with nb == 1 the product writes
straight into the output, and 1x1 stride-1 unpadded (pointwise) convolutions skip the unfold.
Chunks go to threads with a guided schedule, as in every kernel module: large chunks first, then
smaller ones, so a thread whose core is slowed by other load takes less of the work (the median
ResNet-20 step on this shared 2-core host was 7-12% faster than with a static schedule, the best
step the same). Every chunk writes its own output or partial slots, so no result depends on which
thread ran it.

Determinism: the weight and bias gradients are reductions over the batch. The batch is cut into
``n_blocks`` fixed blocks (chosen by the caller, independent of the thread count); each block
accumulates its chunks in order into its own partial buffer, and the partials are summed in block
order. So results are bit-identical for any number of threads.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.limits cimport INT_MAX
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm
from fastres._kernels._common cimport check_threads, dims, expect_shape

cdef extern from "fr_conv.h" nogil:
    void fr_im2col_f(const float *x, float *col, int C, int H, int W, int KH, int KW,
                     int sh, int sw, int ph, int pw, int H_out, int W_out, Py_ssize_t ld)
    void fr_im2col_d(const double *x, double *col, int C, int H, int W, int KH, int KW,
                     int sh, int sw, int ph, int pw, int H_out, int W_out, Py_ssize_t ld)
    void fr_col2im_f(const float *col, float *dx, int C, int H, int W, int KH, int KW,
                     int sh, int sw, int ph, int pw, int H_out, int W_out, Py_ssize_t ld)
    void fr_col2im_d(const double *col, double *dx, int C, int H, int W, int KH, int KW,
                     int sh, int sw, int ph, int pw, int H_out, int W_out, Py_ssize_t ld)
    void fr_images_to_cols_f(const float *img, Py_ssize_t ds, float *cols, int m, int F,
                             Py_ssize_t P)
    void fr_images_to_cols_d(const double *img, Py_ssize_t ds, double *cols, int m, int F,
                             Py_ssize_t P)
    void fr_cols_to_images_f(const float *cols, float *img, Py_ssize_t ds, int m, int F,
                             Py_ssize_t P)
    void fr_cols_to_images_d(const double *cols, double *img, Py_ssize_t ds, int m, int F,
                             Py_ssize_t P)
    void fr_epilogue_f(float *out, const float *b, const float *res, int relu, int F,
                       Py_ssize_t P)
    void fr_epilogue_d(double *out, const double *b, const double *res, int relu, int F,
                       Py_ssize_t P)
    void fr_row_sums_f(const float *d, float *acc, int F, Py_ssize_t P)
    void fr_row_sums_d(const double *d, double *acc, int F, Py_ssize_t P)
    void fr_sum_blocks_f(const float *part, int n_blocks, Py_ssize_t size, Py_ssize_t k0,
                         Py_ssize_t k1, float *out)
    void fr_sum_blocks_d(const double *part, int n_blocks, Py_ssize_t size, Py_ssize_t k0,
                         Py_ssize_t k1, double *out)


cdef inline void gemm(bint ta, bint tb, int M, int N, int K, floating alpha, const floating *A,
                      int lda, const floating *B, int ldb, floating beta, floating *C,
                      int ldc) noexcept nogil:
    """Row-major C (M x N) = alpha * op(A) @ op(B) + beta * C, through column-major BLAS
    (a row-major matrix is its transpose in column-major: compute C^T = op(B)^T op(A)^T)."""
    cdef char opb = b'T' if tb else b'N'
    cdef char opa = b'T' if ta else b'N'
    if floating is float:
        sgemm(&opb, &opa, &N, &M, &K, &alpha, <float *>B, &ldb, <float *>A, &lda, &beta, C, &ldc)
    else:
        dgemm(&opb, &opa, &N, &M, &K, &alpha, <double *>B, &ldb, <double *>A, &lda, &beta, C, &ldc)


cdef inline void im2col(const floating *x, floating *col, int C, int H, int W, int KH, int KW,
                        int sh, int sw, int ph, int pw, int H_out, int W_out,
                        Py_ssize_t ld) noexcept nogil:
    if floating is float:
        fr_im2col_f(x, col, C, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, ld)
    else:
        fr_im2col_d(x, col, C, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, ld)


cdef inline void col2im(const floating *col, floating *dx, int C, int H, int W, int KH, int KW,
                        int sh, int sw, int ph, int pw, int H_out, int W_out,
                        Py_ssize_t ld) noexcept nogil:
    if floating is float:
        fr_col2im_f(col, dx, C, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, ld)
    else:
        fr_col2im_d(col, dx, C, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, ld)


cdef inline const floating *unfold(const floating *x, Py_ssize_t xs, floating *col, int m,
                                   bint pointwise, int C, int H, int W, int KH, int KW, int sh,
                                   int sw, int ph, int pw, int H_out, int W_out,
                                   floating *xq) noexcept nogil:
    """The (C*KH*KW, m*H_out*W_out) column matrix of m images xs elements apart: x itself for
    one image of a pointwise conv, else im2col of each image into col, side by side. A strided
    convolution gives xq, room for the polyphase copy (phase_size elements, zero where the
    padding falls: zeroed once per call), and unfolds from that copy."""
    cdef Py_ssize_t P = <Py_ssize_t>H_out * W_out
    cdef int i, Hq = (H + 2 * ph + sh - 1) // sh, Wq = (W + 2 * pw + sw - 1) // sw
    if pointwise and m == 1:
        return x
    for i in range(m):
        if xq == NULL:
            im2col(x + i * xs, col + i * P, C, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, m * P)
            continue
        pad(x + i * xs, xq, C, H, W, ph, pw, sh, sw, Hq, Wq)
        if floating is float:
            fr_im2col_phased_f(xq, col + i * P, C, KH, KW, sh, sw, Hq, Wq, H_out, W_out, m * P)
        else:
            fr_im2col_phased_d(xq, col + i * P, C, KH, KW, sh, sw, Hq, Wq, H_out, W_out, m * P)
    return col


cdef inline Py_ssize_t phase_size(int Cg, int H, int W, int sh, int sw, int ph,
                                  int pw) noexcept nogil:
    """Elements of the polyphase copy unfold reads a strided convolution's image from (0 for
    stride 1: im2col reads the image itself)."""
    if sh == 1 and sw == 1:
        return 0
    return <Py_ssize_t>Cg * sh * sw * ((H + 2 * ph + sh - 1) // sh) * ((W + 2 * pw + sw - 1) // sw)


cdef inline void to_cols(const floating *img, Py_ssize_t ds, floating *cols, int m, int F,
                         Py_ssize_t P) noexcept nogil:
    if floating is float:
        fr_images_to_cols_f(img, ds, cols, m, F, P)
    else:
        fr_images_to_cols_d(img, ds, cols, m, F, P)


cdef inline void to_images(const floating *cols, floating *img, Py_ssize_t ds, int m, int F,
                           Py_ssize_t P) noexcept nogil:
    if floating is float:
        fr_cols_to_images_f(cols, img, ds, m, F, P)
    else:
        fr_cols_to_images_d(cols, img, ds, m, F, P)


def check_scratch(str op, scratch, Py_ssize_t rows, Py_ssize_t cols, int nb=1):
    """Kernels index scratch[threadid(), :cols]: refuse one that is too small (and nb < 1)."""
    if nb < 1:
        raise ValueError(f"{op}: expected nb >= 1, got {nb}")
    if scratch.shape[0] < rows or scratch.shape[1] < cols:
        raise ValueError(f"{op}: expected scratch of at least ({rows}, {cols}), got "
                         f"{tuple(scratch.shape)}")


# ---- checks: the kernels below index every array with the extents checked here ------------
# (shape comparisons and one pass over each small int32 table, never over float data; run
# before any division by groups, a stride or n_blocks, which are C divisions here)

cdef int _groups(str op, int groups, int C, int F, bint by4) except -1:
    """C input and F output channels in groups (the kernels tile F/groups by 4 with by4)."""
    if C < 1 or F < 1 or groups < 1 or C % groups or F % groups or (by4 and (F // groups) % 4):
        raise ValueError(f"{op}: expected C >= 1 and F >= 1 channels and groups >= 1 dividing "
                         f"both{' (F/groups a multiple of 4)' if by4 else ''}, got C = {C}, "
                         f"F = {F} and groups = {groups}")
    return 0


cdef int _stride_pad(str op, Py_ssize_t H, Py_ssize_t W, int sh, int sw, int ph,
                     int pw) except -1:
    """fr_pad_ / fr_valid_range divide by the stride, fr_lanes_in_ writes at the padding, and
    the C side works out the padded (and polyphase) input extents in int: H + 2*ph + sh must
    not overflow it (with -fwrapv a huge padding wrapped round to a small extent that passed
    the shape checks, and the kernel then wrote far outside its scratch)."""
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"{op}: expected stride >= 1 and padding >= 0, got stride ({sh}, {sw}) "
                         f"and padding ({ph}, {pw})")
    if H + 2 * <Py_ssize_t>ph + sh > INT_MAX or W + 2 * <Py_ssize_t>pw + sw > INT_MAX:
        raise ValueError(f"{op}: expected the padded input plus a stride to stay below 2**31, "
                         f"got input ({H}, {W}), stride ({sh}, {sw}) and padding ({ph}, {pw})")
    return 0


cdef int _conv_geometry(str op, Py_ssize_t H, Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW,
                        int sh, int sw, int ph, int pw, Py_ssize_t H_out,
                        Py_ssize_t W_out) except -1:
    """The output planes of an im2col convolution: im2col / col2im clip every index to x, but
    the products read and write (C/groups*KH*KW, H_out*W_out) columns, and a pointwise one
    reads x itself as its column matrix."""
    _stride_pad(op, H, W, sh, sw, ph, pw)
    cdef Py_ssize_t Hp = H + 2 * <Py_ssize_t>ph, Wp = W + 2 * <Py_ssize_t>pw
    if KH < 1 or KW < 1 or KH > Hp or KW > Wp:
        raise ValueError(f"{op}: expected a kernel of at least 1x1 inside the padded input "
                         f"({Hp}, {Wp}), got ({KH}, {KW})")
    cdef Py_ssize_t ho = (Hp - KH) // sh + 1, wo = (Wp - KW) // sw + 1
    if H_out != ho or W_out != wo:
        raise ValueError(f"{op}: expected output planes of ({ho}, {wo}) for input ({H}, {W}), "
                         f"kernel ({KH}, {KW}), stride ({sh}, {sw}) and padding ({ph}, {pw}), "
                         f"got ({H_out}, {W_out})")
    return 0


cdef int _partials(str op, str name, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t items,
                   Py_ssize_t wsize, Py_ssize_t db_rows, Py_ssize_t db_cols,
                   Py_ssize_t F) except -1:
    """Weight-gradient partials name (n_blocks, >= wsize) and db_part (>= n_blocks, >= F), one
    row per fixed block of the items: fr_sum_blocks_ reads row 0 even of n_blocks = 0."""
    if not 1 <= rows <= items:
        raise ValueError(f"{op}: expected {name} with 1 <= n_blocks <= {items} rows (the "
                         f"batch blocks), got {rows}")
    if cols < wsize:
        raise ValueError(f"{op}: expected {name} of at least ({rows}, {wsize}), got "
                         f"({rows}, {cols})")
    if db_rows < rows or db_cols < F:
        raise ValueError(f"{op}: expected db_part of at least ({rows}, {F}), got "
                         f"({db_rows}, {db_cols})")
    return 0


cdef int _wgrad_outputs(str op, Py_ssize_t N, Py_ssize_t dout_n, const Py_ssize_t *dw_shape,
                        Py_ssize_t F, Py_ssize_t K, const Py_ssize_t *dw_part_shape,
                        const Py_ssize_t *db_part_shape) except -1:
    """The direct weight-gradient kernels' outputs: dout of x's N images, dw (F, K), and the
    block partials (see _partials)."""
    if dout_n != N:
        raise ValueError(f"{op}: expected dout of N = {N} images like x, got {dout_n}")
    expect_shape(op, "dw", dw_shape, (F, K))
    _partials(op, "dw_part", dw_part_shape[0], dw_part_shape[1], N, F * K, db_part_shape[0],
              db_part_shape[1], F)
    return 0


cdef int _vectors(str op, Py_ssize_t nv, Py_ssize_t P, int per) except -1:
    """vin covers the P output pixels, per of them a vector."""
    if P % per or nv * per != P:
        raise ValueError(f"{op}: expected output planes of a multiple of {per} pixels and vin "
                         f"of shape ({P // per},), got {P} pixels and vin ({nv},)")
    return 0


cdef int _tables(str op, const int[::1] off, const int[::1] vin, const int[::1] vout,
                 Py_ssize_t region, Py_ssize_t row, int L) except -1:
    """The direct tiles (fr_fwd_tile_, fr_wgrad_tile_ in fr_direct_impl.h) load L elements at
    xin + vin[v] + off[k] and load or store L at out + r*row + vout[v] (r < 4, the tile's rows):
    off + vin must stay in the region of `region` elements xin points to (per image), and vout
    in an output row of `row` elements. One pass over each table (min and max)."""
    cdef Py_ssize_t K = off.shape[0], nv = vin.shape[0], i
    if vout.shape[0] != nv:
        raise ValueError(f"{op}: expected vout of shape ({nv},) like vin, got "
                         f"({vout.shape[0]},)")
    if nv == 0:
        return 0
    cdef int olo = 0, ohi = 0, ilo = vin[0], ihi = vin[0], vlo = vout[0], vhi = vout[0]
    with nogil:
        for i in range(nv):
            ilo = min(ilo, vin[i])
            ihi = max(ihi, vin[i])
            vlo = min(vlo, vout[i])
            vhi = max(vhi, vout[i])
        if K > 0:
            olo = off[0]
            ohi = off[0]
            for i in range(K):
                olo = min(olo, off[i])
                ohi = max(ohi, off[i])
    cdef Py_ssize_t lo = <Py_ssize_t>olo + ilo, hi = <Py_ssize_t>ohi + ihi
    if K > 0 and (lo < 0 or hi + L > region):
        raise ValueError(f"{op}: expected off[k] + vin[v] in [0, {region - L}] (runs of {L} "
                         f"inside the {region} input elements), got [{lo}, {hi}]")
    if vlo < 0 or <Py_ssize_t>vhi + L > row:
        raise ValueError(f"{op}: expected vout in [0, {row - L}] (runs of {L} inside output "
                         f"rows of {row}), got [{vlo}, {vhi}]")
    return 0


cdef inline void bias_partial(const floating[:, :, :, ::1] dout, int n0, int n1,
                              floating *dst) noexcept nogil:
    """dst (F,) = the bias gradient of images [n0, n1): row sums of dout in image order."""
    cdef int F = dout.shape[1], P = dout.shape[2] * dout.shape[3], n
    memset(dst, 0, sizeof(floating) * F)
    for n in range(n0, n1):
        if floating is float:
            fr_row_sums_f(&dout[n, 0, 0, 0], dst, F, P)
        else:
            fr_row_sums_d(&dout[n, 0, 0, 0], dst, F, P)


cdef inline int block_start(int blk, int N, int n_blocks) noexcept nogil:
    """First image of fixed batch block blk (of n_blocks over N images)."""
    return <int>((<long>blk * N) // n_blocks)


cdef enum:
    SUM_CHUNK = 2048  # elements of the summed partials per work item (stay in L1 over blocks)


cdef void sum_blocks(const floating *part, int n_blocks, Py_ssize_t size, floating *out,
                     int n_threads) noexcept nogil:
    """out[k] = sum over blocks b, in block order, of part[b, k] (elementwise, so splitting k
    over threads does not change the result)."""
    cdef Py_ssize_t ch, n_chunks = (size + SUM_CHUNK - 1) // SUM_CHUNK
    for ch in prange(n_chunks, schedule="guided", num_threads=n_threads):
        if floating is float:
            fr_sum_blocks_f(part, n_blocks, size, ch * SUM_CHUNK, min(size, (ch + 1) * SUM_CHUNK),
                            out)
        else:
            fr_sum_blocks_d(part, n_blocks, size, ch * SUM_CHUNK, min(size, (ch + 1) * SUM_CHUNK),
                            out)


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                   const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                   floating[:, :, :, ::1] out, floating[:, ::1] scratch, int sh, int sw, int ph,
                   int pw, int groups, int nb, int n_threads):
    """out = [relu](conv(x, w) + b [+ res]).  IN: x (N, C, H, W), w (F, C/groups, KH, KW), b
    (F,) or None, res like out or None.
    OUT: out (N, F, H_out, W_out).  nb: images per product.  SCRATCH: (n_threads,
    (C/groups*KH*KW + F/groups) * nb*H_out*W_out + phase_size), each thread's column and
    product matrices and, for a strided convolution, its polyphase copy of an image's group."""
    check_threads("conv2d_forward", n_threads)
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef int H_out = out.shape[2], W_out = out.shape[3]
    _groups("conv2d_forward", groups, C, F, False)
    expect_shape("conv2d_forward", "w", w.shape, (F, C // groups, KH, KW))
    _conv_geometry("conv2d_forward", H, W, KH, KW, sh, sw, ph, pw, H_out, W_out)
    expect_shape("conv2d_forward", "out", out.shape, (N, F, H_out, W_out))
    cdef int Fg = F // groups, Kg = Cg * KH * KW, P = H_out * W_out
    cdef bint pointwise = KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    cdef Py_ssize_t qs = phase_size(Cg, H, W, sh, sw, ph, pw)
    check_scratch("conv2d_forward", scratch, n_threads, <Py_ssize_t>(Kg + Fg) * nb * P + qs, nb)
    cdef int n_chunks = (N + nb - 1) // nb
    cdef const floating *bp = _bias("conv2d_forward", b, F)
    cdef const floating *rp = _like_out("conv2d_forward", "res", res, out)
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0, 0, 0]
    cdef floating *op = &out[0, 0, 0, 0]
    cdef floating *col = NULL
    cdef floating *ybuf = NULL
    cdef floating *xq = NULL
    cdef const floating *src
    cdef floating *dst
    cdef int ch, n, n0, m, g
    with nogil, parallel(num_threads=n_threads):
        col = &scratch[threadid(), 0]
        ybuf = col + <size_t>Kg * nb * P
        xq = ybuf + <size_t>Fg * nb * P if qs else NULL
        if qs:
            memset(xq, 0, sizeof(floating) * qs)
        for ch in prange(n_chunks, schedule="guided"):
            n0 = ch * nb
            m = min(nb, N - n0)
            for g in range(groups):
                src = unfold(xp + (<size_t>n0 * C + g * Cg) * H * W, <Py_ssize_t>C * H * W, col,
                             m, pointwise, Cg, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, xq)
                dst = op + (<size_t>n0 * F + g * Fg) * P
                gemm(False, False, Fg, m * P, Kg, <floating>1, wp + <size_t>g * Fg * Kg, Kg,
                     src, m * P, <floating>0, dst if m == 1 else ybuf, m * P)
                if m > 1:
                    to_images(ybuf, dst, <Py_ssize_t>F * P, m, Fg, P)
            if bp != NULL or rp != NULL or relu:  # per image, while it is in cache
                for n in range(n0, n0 + m):
                    if floating is float:
                        fr_epilogue_f(op + <size_t>n * F * P, bp,
                                      rp + <size_t>n * F * P if rp != NULL else NULL, relu, F, P)
                    else:
                        fr_epilogue_d(op + <size_t>n * F * P, bp,
                                      rp + <size_t>n * F * P if rp != NULL else NULL, relu, F, P)


def conv2d_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                    const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                    floating[:, :, :, ::1] dw, floating[::1] db,
                    floating[:, ::1] dw_part, floating[:, ::1] db_part, floating[:, ::1] scratch,
                    int sh, int sw, int ph, int pw, int groups, int nb, int n_threads):
    """Gradients of conv2d_forward.

    IN: x, w, dout (N, F, H_out, W_out).  OUT: dx, dw, db (each may be None to skip it).
    nb: images per product.  SCRATCH: dw_part (n_blocks, F*C/groups*KH*KW) and db_part
    (n_blocks, F), one row per fixed batch block (n_blocks <= N); scratch (n_threads,
    (2*C/groups*KH*KW + F/groups) * nb*H_out*W_out + phase_size), each thread's column,
    column-gradient and output-gradient matrices and its polyphase copy (see conv2d_forward).
    """
    check_threads("conv2d_backward", n_threads)
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef int H_out = dout.shape[2], W_out = dout.shape[3]
    cdef bint want_dx = dx is not None, want_db = db is not None, want_dw = dw is not None
    _groups("conv2d_backward", groups, C, F, False)
    expect_shape("conv2d_backward", "w", w.shape, (F, C // groups, KH, KW))
    _conv_geometry("conv2d_backward", H, W, KH, KW, sh, sw, ph, pw, H_out, W_out)
    expect_shape("conv2d_backward", "dout", dout.shape, (N, F, H_out, W_out))
    if want_dx:
        expect_shape("conv2d_backward", "dx", dx.shape, (N, C, H, W))
    if want_dw:
        expect_shape("conv2d_backward", "dw", dw.shape, (F, Cg, KH, KW))
    cdef int Fg = F // groups, Kg = Cg * KH * KW, P = H_out * W_out
    cdef int n_blocks = dw_part.shape[0], wsize = F * Kg
    cdef bint pointwise = KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    _bias("conv2d_backward", db, F)
    cdef Py_ssize_t qs = phase_size(Cg, H, W, sh, sw, ph, pw) if want_dw else 0
    check_scratch("conv2d_backward", scratch, n_threads,
                  <Py_ssize_t>(2 * Kg + Fg) * nb * P + qs, nb)
    _partials("conv2d_backward", "dw_part", n_blocks, dw_part.shape[1], N, wsize,
              db_part.shape[0], db_part.shape[1], F)
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0, 0, 0]
    cdef const floating *dp = &dout[0, 0, 0, 0]
    cdef floating *dxp = &dx[0, 0, 0, 0] if want_dx else NULL
    cdef floating *dwp = &dw[0, 0, 0, 0] if want_dw else NULL
    cdef floating *dbp = &db[0] if want_db else NULL
    cdef floating *dwq = &dw_part[0, 0]
    cdef floating *dbq = &db_part[0, 0]
    cdef floating *col = NULL
    cdef floating *dcol = NULL
    cdef floating *dbuf = NULL
    cdef floating *xq = NULL
    cdef const floating *src
    cdef const floating *dsrc
    cdef floating *dimg
    cdef Py_ssize_t ld, xs = <Py_ssize_t>C * H * W, ds = <Py_ssize_t>F * P
    cdef int blk, n, g, n0, n1, c0, m, i
    with nogil, parallel(num_threads=n_threads):
        col = &scratch[threadid(), 0]
        dcol = col + <size_t>Kg * nb * P
        dbuf = dcol + <size_t>Kg * nb * P
        xq = dbuf + <size_t>Fg * nb * P if qs else NULL
        if qs:
            memset(xq, 0, sizeof(floating) * qs)
        for blk in prange(n_blocks, schedule="guided"):
            n0 = block_start(blk, N, n_blocks)
            n1 = block_start(blk + 1, N, n_blocks)
            memset(dwq + <size_t>blk * wsize, 0, sizeof(floating) * wsize)
            if want_db:
                bias_partial(dout, n0, n1, dbq + <size_t>blk * F)
            for i in range((n1 - n0 + nb - 1) // nb):
                c0 = n0 + i * nb
                m = min(nb, n1 - c0)
                ld = <Py_ssize_t>m * P
                if want_dx and not (pointwise and m == 1):
                    memset(dxp + c0 * xs, 0, sizeof(floating) * xs * m)
                dimg = dxp + c0 * xs if want_dx else NULL
                for g in range(groups):
                    # dout_g of the chunk as one (Fg, m*P) matrix
                    dsrc = dp + c0 * ds + <size_t>g * Fg * P
                    if m > 1:
                        to_cols(dsrc, ds, dbuf, m, Fg, P)
                        dsrc = dbuf
                    if want_dw:
                        src = unfold(xp + c0 * xs + <size_t>g * Cg * H * W, xs, col, m,
                                     pointwise, Cg, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out,
                                     xq)
                        # dW_g (Fg x Kg) += dout_g (Fg x mP) @ col^T (mP x Kg)
                        gemm(False, True, Fg, Kg, ld, <floating>1, dsrc, ld, src, ld,
                             <floating>1, dwq + <size_t>blk * wsize + <size_t>g * Fg * Kg, Kg)
                    if want_dx:
                        # dcol (Kg x mP) = W_g^T (Kg x Fg) @ dout_g (Fg x mP), folded back into dx
                        if pointwise and m == 1:
                            gemm(True, False, Kg, P, Fg, <floating>1, wp + <size_t>g * Fg * Kg,
                                 Kg, dsrc, P, <floating>0, dimg + <size_t>g * Cg * H * W, P)
                        else:
                            gemm(True, False, Kg, ld, Fg, <floating>1, wp + <size_t>g * Fg * Kg,
                                 Kg, dsrc, ld, <floating>0, dcol, ld)
                            for n in range(m):
                                col2im(dcol + n * P, dimg + n * xs + <size_t>g * Cg * H * W,
                                       Cg, H, W, KH, KW, sh, sw, ph, pw, H_out, W_out, ld)
    if want_dw:
        sum_blocks(dwq, n_blocks, wsize, dwp, n_threads)
    if want_db:
        sum_blocks(dbq, n_blocks, F, dbp, 1)


# ---- direct convolution (fr_direct.h): no im2col, no BLAS -------------------------

cdef extern from "fr_direct.h" nogil:
    void fr_lanes_in_f(const float *x, Py_ssize_t xs, int nimg, float *xq, int C, int H, int W,
                       int ph, int pw, int eh, int ew)
    void fr_lanes_in_d(const double *x, Py_ssize_t xs, int nimg, double *xq, int C, int H,
                       int W, int ph, int pw, int eh, int ew)
    void fr_lanes_out_f(const float *src, int F, int H, int W, int Hs, int Ws, int nimg,
                        float *dst, Py_ssize_t ds, const float *res, int relu)
    void fr_lanes_out_d(const double *src, int F, int H, int W, int Hs, int Ws, int nimg,
                        double *dst, Py_ssize_t ds, const double *res, int relu)
    void fr_direct_fwd_f(const float *xin, const float *wpk, const int *off, int K,
                         const int *vin, const int *vout, int nv, float *out, Py_ssize_t P,
                         int F, const float *bias, const float *res, int relu,
                         const float *gate)
    void fr_direct_fwd_d(const double *xin, const double *wpk, const int *off, int K,
                         const int *vin, const int *vout, int nv, double *out, Py_ssize_t P,
                         int F, const double *bias, const double *res, int relu,
                         const double *gate)
    void fr_direct_wgrad_f(const float *xin, Py_ssize_t xs, const float *dout, Py_ssize_t ds,
                           int nimg, const int *off, int K, const int *vin, const int *vout,
                           int nv, Py_ssize_t P, int F, float *dw)
    void fr_direct_wgrad_d(const double *xin, Py_ssize_t xs, const double *dout, Py_ssize_t ds,
                           int nimg, const int *off, int K, const int *vin, const int *vout,
                           int nv, Py_ssize_t P, int F, double *dw)
    void fr_wino_fwd_f(const float *x, int C, int H, int W, int ph, int pw, const float *upk,
                       int F, float *xp, float *V, float *M, float *out, int Ho, int Wo, int q0,
                       int q1, const float *bias, const float *res, int relu, const float *gate,
                       int m)
    void fr_wino_fwd_d(const double *x, int C, int H, int W, int ph, int pw, const double *upk,
                       int F, double *xp, double *V, double *M, double *out, int Ho, int Wo,
                       int q0, int q1, const double *bias, const double *res, int relu,
                       const double *gate, int m)
    void fr_wino4_weights_f(const float *w, int O, int K, int flip, int ob0, int ob1,
                            float *upk)
    void fr_wino4_dw_out_f(const float *dwt, int F, int C, Py_ssize_t fc0, Py_ssize_t fc1,
                           float *dw)
    void fr_wino_lanes_fwd_f(const float *x, Py_ssize_t xs, int nimg, int C, int H, int W,
                             int ph, int pw, const float *upk, int F, float *xl, float *V,
                             float *M, float *ol, float *out, Py_ssize_t os, int Ho, int Wo,
                             const float *bias, const float *res, int relu, int m)
    void fr_wino_lanes_fwd_d(const double *x, Py_ssize_t xs, int nimg, int C, int H, int W,
                             int ph, int pw, const double *upk, int F, double *xl, double *V,
                             double *M, double *ol, double *out, Py_ssize_t os, int Ho, int Wo,
                             const double *bias, const double *res, int relu, int m)
    void fr_wino_lanes_wgrad_in_f(const float *x, Py_ssize_t xs, int nimg, int C, int H, int W,
                                  int ph, int pw, const float *dout, Py_ssize_t ds, int F,
                                  float *xl, float *dl, float *V, float *DY, int Ho, int Wo,
                                  int m)
    void fr_wino_lanes_wgrad_in_d(const double *x, Py_ssize_t xs, int nimg, int C, int H, int W,
                                  int ph, int pw, const double *dout, Py_ssize_t ds, int F,
                                  double *xl, double *dl, double *V, double *DY, int Ho, int Wo,
                                  int m)
    void fr_wino_wgrad_in_f(const float *x, int C, int H, int W, int ph, int pw,
                            const float *dout, int F, float *xp, float *V, float *DY, int Ho,
                            int Wo, int m)
    void fr_wino_wgrad_in_d(const double *x, int C, int H, int W, int ph, int pw,
                            const double *dout, int F, double *xp, double *V, double *DY,
                            int Ho, int Wo, int m)
    void fr_wino_wgrad_sum_f(const float *V, Py_ssize_t vs, const float *DY, Py_ssize_t ds,
                             int nimg, int C, int F, int NT, int u0, int u1, int add, float *dwt)
    void fr_wino_wgrad_sum_d(const double *V, Py_ssize_t vs, const double *DY, Py_ssize_t ds,
                             int nimg, int C, int F, int NT, int u0, int u1, int add,
                             double *dwt)
    void fr_wino_weights_f(const float *w, int O, int K, int flip, int ob0, int ob1,
                           float *upk)
    void fr_wino_weights_d(const double *w, int O, int K, int flip, int ob0, int ob1,
                           double *upk)
    void fr_wino_dw_out_f(const float *dwt, int F, int C, Py_ssize_t fc0, Py_ssize_t fc1,
                          float *dw)
    void fr_wino_dw_out_d(const double *dwt, int F, int C, Py_ssize_t fc0, Py_ssize_t fc1,
                          double *dw)
    void fr_interleave2_f(const float *ph, int C, int Ho, int Wo, float *dx, const float *res,
                          const float *gate)
    void fr_interleave2_d(const double *ph, int C, int Ho, int Wo, double *dx,
                          const double *res, const double *gate)
    void fr_pad_f(const float *x, float *xq, int C, int H, int W, int ph, int pw, int sh,
                  int sw, int Hq, int Wq)
    void fr_pad_d(const double *x, double *xq, int C, int H, int W, int ph, int pw, int sh,
                  int sw, int Hq, int Wq)
    void fr_im2col_phased_f(const float *xq, float *col, int C, int KH, int KW, int sh, int sw,
                            int Hq, int Wq, int H_out, int W_out, Py_ssize_t ld)
    void fr_im2col_phased_d(const double *xq, double *col, int C, int KH, int KW, int sh,
                            int sw, int Hq, int Wq, int H_out, int W_out, Py_ssize_t ld)


cdef extern from "fr_direct.h":
    enum: WINO_GAP "FR_WINO_GAP"

winograd_gap = WINO_GAP  # elements between Winograd's 16 planes in scratch (fr_winograd_impl.h)


cdef inline void direct_fwd(const floating *xin, const floating *wpk, const int *off, int K,
                            const int *vin, const int *vout, int nv, floating *out,
                            Py_ssize_t P, int F, const floating *bias, const floating *res,
                            int relu, const floating *gate) noexcept nogil:
    if floating is float:
        fr_direct_fwd_f(xin, wpk, off, K, vin, vout, nv, out, P, F, bias, res, relu, gate)
    else:
        fr_direct_fwd_d(xin, wpk, off, K, vin, vout, nv, out, P, F, bias, res, relu, gate)


cdef inline void direct_wgrad(const floating *xin, Py_ssize_t xs, const floating *dout,
                              Py_ssize_t ds, int nimg, const int *off, int K, const int *vin,
                              const int *vout, int nv, Py_ssize_t P, int F,
                              floating *dw) noexcept nogil:
    if floating is float:
        fr_direct_wgrad_f(xin, xs, dout, ds, nimg, off, K, vin, vout, nv, P, F, dw)
    else:
        fr_direct_wgrad_d(xin, xs, dout, ds, nimg, off, K, vin, vout, nv, P, F, dw)


# m: the output tile of Winograd F(m x m, 3x3), 2, or 4 (float32 only; the kernels take
# F(2x2) in float64)
cdef inline void wino_fwd(const floating *x, int C, int H, int W, int ph, int pw,
                          const floating *upk, int F, floating *xp, floating *V, floating *M,
                          floating *out, int Ho, int Wo, int q0, int q1, const floating *bias,
                          const floating *res, int relu, const floating *gate,
                          int m) noexcept nogil:
    if floating is float:
        fr_wino_fwd_f(x, C, H, W, ph, pw, upk, F, xp, V, M, out, Ho, Wo, q0, q1, bias, res, relu,
                      gate, m)
    else:
        fr_wino_fwd_d(x, C, H, W, ph, pw, upk, F, xp, V, M, out, Ho, Wo, q0, q1, bias, res, relu,
                      gate, 2)


cdef inline void wino_wgrad_in(const floating *x, int C, int H, int W, int ph, int pw,
                               const floating *dout, int F, floating *xp, floating *V,
                               floating *DY, int Ho, int Wo, int m) noexcept nogil:
    if floating is float:
        fr_wino_wgrad_in_f(x, C, H, W, ph, pw, dout, F, xp, V, DY, Ho, Wo, m)
    else:
        fr_wino_wgrad_in_d(x, C, H, W, ph, pw, dout, F, xp, V, DY, Ho, Wo, 2)


cdef inline void wino_lanes_fwd(const floating *x, Py_ssize_t xs, int nimg, int C, int H, int W,
                                int ph, int pw, const floating *upk, int F, floating *xl,
                                floating *V, floating *M, floating *ol, floating *out,
                                Py_ssize_t os, int Ho, int Wo, const floating *bias,
                                const floating *res, int relu, int m) noexcept nogil:
    if floating is float:
        fr_wino_lanes_fwd_f(x, xs, nimg, C, H, W, ph, pw, upk, F, xl, V, M, ol, out, os, Ho, Wo,
                            bias, res, relu, m)
    else:
        fr_wino_lanes_fwd_d(x, xs, nimg, C, H, W, ph, pw, upk, F, xl, V, M, ol, out, os, Ho, Wo,
                            bias, res, relu, 2)


cdef inline void wino_lanes_wgrad_in(const floating *x, Py_ssize_t xs, int nimg, int C, int H,
                                     int W, int ph, int pw, const floating *dout, Py_ssize_t ds,
                                     int F, floating *xl, floating *dl, floating *V,
                                     floating *DY, int Ho, int Wo, int m) noexcept nogil:
    if floating is float:
        fr_wino_lanes_wgrad_in_f(x, xs, nimg, C, H, W, ph, pw, dout, ds, F, xl, dl, V, DY, Ho,
                                 Wo, m)
    else:
        fr_wino_lanes_wgrad_in_d(x, xs, nimg, C, H, W, ph, pw, dout, ds, F, xl, dl, V, DY, Ho,
                                 Wo, 2)


cdef inline void wino_wgrad_sum(const floating *V, Py_ssize_t vs, const floating *DY,
                                Py_ssize_t ds, int nimg, int C, int F, int NT, int u0, int u1,
                                int add, floating *dwt) noexcept nogil:
    if floating is float:
        fr_wino_wgrad_sum_f(V, vs, DY, ds, nimg, C, F, NT, u0, u1, add, dwt)
    else:
        fr_wino_wgrad_sum_d(V, vs, DY, ds, nimg, C, F, NT, u0, u1, add, dwt)


cdef inline void wino_wgrad_item(const floating[:, :, :, ::1] x,
                                 const floating[:, :, :, ::1] dout, int first, bint lanes,
                                 int ph, int pw, floating *xp, floating *dl, floating *V,
                                 floating *DY, int m) noexcept nogil:
    """V and DY of one item: the image first, or with lanes the lane group from it; m: the
    output tile of F(m x m, 3x3) (4: float32 only)."""
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    if lanes:
        wino_lanes_wgrad_in(&x[first, 0, 0, 0], <Py_ssize_t>C * H * W, min(L, N - first), C,
                            H, W, ph, pw, &dout[first, 0, 0, 0], <Py_ssize_t>F * Ho * Wo, F,
                            xp, dl, V, DY, Ho, Wo, m)
    else:
        wino_wgrad_in(&x[first, 0, 0, 0], C, H, W, ph, pw, &dout[first, 0, 0, 0], F, xp, V,
                      DY, Ho, Wo, m)


cdef inline void pad(const floating *x, floating *xq, int C, int H, int W, int ph, int pw,
                     int sh, int sw, int Hq, int Wq) noexcept nogil:
    # writes only the elements inside x: the rest of xq must already be zero (fr_pad_)
    if floating is float:
        fr_pad_f(x, xq, C, H, W, ph, pw, sh, sw, Hq, Wq)
    else:
        fr_pad_d(x, xq, C, H, W, ph, pw, sh, sw, Hq, Wq)


cdef const floating *_like_out(str op, str name, const floating[:, :, :, ::1] a,
                               floating[:, :, :, ::1] out) except? NULL:
    """a's data, or NULL for None; a must have out's shape."""
    if a is None:
        return NULL
    expect_shape(op, name, a.shape, dims(out.shape, 4))
    return &a[0, 0, 0, 0]


cdef const floating *_bias(str op, const floating[::1] b, int F) except? NULL:
    """b's data, or NULL for None; b must hold F values (a bias, or its gradient)."""
    if b is None:
        return NULL
    if b.shape[0] != F:
        raise ValueError(f"{op}: expected a bias (gradient) of {F} values, got {b.shape[0]}")
    return &b[0]


def direct_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] wpk,
                   const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                   const floating[:, :, :, ::1] gate, floating[:, :, :, ::1] out,
                   const int[::1] off, const int[::1] vin, const int[::1] vout,
                   floating[:, ::1] scratch, int ph, int pw, int sh, int sw, int groups,
                   int n_threads):
    """Convolution without im2col, out = [relu](conv(x) [+ b] [+ res]) [* (gate > 0)].

    IN: x (N, C, H, W); wpk (groups, F/groups/4 * K * 4), each group's weights packed as
    (F/groups/4, K, 4) with K = C/groups*KH*KW; b (F,) or None; res and gate like out or None
    (gate: out is a gradient flowing back through a ReLU whose output is gate); off (K,),
    vin and vout (nv,) from the geometry (see fr_direct_impl.h).  OUT: out (N, F, H_out, W_out).
    SCRATCH: (n_threads, C*sh*sw*Hq*Wq), each thread's padded polyphase image, Hq =
    ceil((H+2ph)/sh) and Wq = ceil((W+2pw)/sw).
    """
    check_threads("direct_forward", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = out.shape[1], P = out.shape[2] * out.shape[3]
    _groups("direct_forward", groups, C, F, True)
    _stride_pad("direct_forward", x.shape[2], x.shape[3], sh, sw, ph, pw)
    cdef int Cg = C // groups, Fg = F // groups, K = off.shape[0], nv = vin.shape[0]
    cdef int Hq = (H + 2 * ph + sh - 1) // sh, Wq = (W + 2 * pw + sw - 1) // sw
    cdef size_t plane = <size_t>sh * sw * Hq * Wq
    check_scratch("direct_forward", scratch, n_threads, C * plane)
    if out.shape[0] != N:
        raise ValueError(f"direct_forward: expected out of N = {N} images like x, got "
                         f"{out.shape[0]}")
    expect_shape("direct_forward", "wpk", wpk.shape, (groups, <Py_ssize_t>Fg * K))
    _vectors("direct_forward", nv, P, L)
    # group g reads its Cg channels of the padded image: xpad + g*Cg*plane
    _tables("direct_forward", off, vin, vout, Cg * plane, P, L)
    cdef const floating *bp = _bias("direct_forward", b, F)
    cdef const floating *rp = _like_out("direct_forward", "res", res, out)
    cdef const floating *gp = _like_out("direct_forward", "gate", gate, out)
    cdef size_t img = <size_t>F * P
    cdef floating *xpad
    cdef int n, g
    with nogil, parallel(num_threads=n_threads):
        xpad = &scratch[threadid(), 0]
        memset(xpad, 0, C * plane * sizeof(floating))  # pad writes only the inside
        for n in prange(N, schedule="guided"):
            pad(&x[n, 0, 0, 0], xpad, C, H, W, ph, pw, sh, sw, Hq, Wq)
            for g in range(groups):
                direct_fwd(xpad + g * Cg * plane, &wpk[g, 0], &off[0], K, &vin[0],
                           &vout[0], nv, &out[n, g * Fg, 0, 0], P, Fg,
                           bp + g * Fg if bp != NULL else NULL,
                           rp + n * img + g * Fg * P if rp != NULL else NULL, relu,
                           gp + n * img + g * Fg * P if gp != NULL else NULL)


def winograd_weights(const floating[:, :, :, ::1] w, bint flip, floating[:, ::1] upk,
                     int n_threads):
    """upk (E, O*K) = G g G^T of 3x3 weights w (O, K, 3, 3), packed per element as for
    direct_forward (O % 4 == 0); with flip, of w (K, O, 3, 3) rotated by 180 degrees with its
    channel axes swapped (the input gradient's weights). E = 16 elements for F(2x2, 3x3), or
    36 for F(4x4, 3x3) (float32 only)."""
    check_threads("winograd_weights", n_threads)
    if w.shape[2] != 3 or w.shape[3] != 3:
        raise ValueError(f"winograd_weights: expected 3x3 weights, got w of shape "
                         f"{dims(w.shape, 4)}")
    cdef int O = w.shape[1] if flip else w.shape[0], K = w.shape[0] if flip else w.shape[1]
    cdef int E = _wino_elements("winograd_weights", "upk", upk, floating is float)
    if O % 4 or upk.shape[1] != O * K:
        raise ValueError(f"winograd_weights: expected upk of shape ({E}, {O * K}) and output "
                         f"channels a multiple of 4, got {tuple(upk.shape)} for {O}")
    cdef int ob
    for ob in prange(O // 4, nogil=True, schedule="static", num_threads=n_threads):
        if floating is float:
            if E == 36:
                fr_wino4_weights_f(&w[0, 0, 0, 0], O, K, flip, ob, ob + 1, &upk[0, 0])
            else:
                fr_wino_weights_f(&w[0, 0, 0, 0], O, K, flip, ob, ob + 1, &upk[0, 0])
        else:
            fr_wino_weights_d(&w[0, 0, 0, 0], O, K, flip, ob, ob + 1, &upk[0, 0])


cdef int _wino_elements(str op, str name, const floating[:, ::1] a, bint f4) except -1:
    """The Winograd variant of a (per-element rows: transformed weights or their gradient):
    16 elements (F(2x2, 3x3)), or 36 (F(4x4, 3x3): float32, image by image) where f4."""
    if a.shape[0] == 16 or (a.shape[0] == 36 and f4):
        return a.shape[0]
    raise ValueError(f"{op}: expected {name} with 16 rows (F(2x2, 3x3)) or, in float32 image "
                     f"by image, 36 (F(4x4, 3x3)), got {tuple(a.shape)}")


def winograd_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] upk,
                     const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                     const floating[:, :, :, ::1] gate, floating[:, :, :, ::1] out,
                     floating[:, ::1] scratch, int ph, int pw, int n_threads):
    """3x3 stride-1 convolution by Winograd F(m x m, 3x3) (fr_winograd_impl.h), with the
    epilogue of direct_forward; m = 2, or 4 when upk has 36 rows (float32 only).
    IN: x (N, C, H, W); upk (E = (m + 2)**2, F/4 * C * 4), the transformed weights G w G^T
    packed per element as by the direct kernel (winograd_weights). OUT: out (N, F, H_out,
    W_out), H_out = H + 2ph - 2 and W_out = W + 2pw - 2 multiples of m, W_out/m a multiple of
    L/2, NT = H_out*W_out/m**2 (the tiles) a multiple of L, F % 4 == 0.
    SCRATCH: (n_threads, (H_out + 2)*(W_out + 2) + E*((C + F)*NT + 2*WINO_GAP)).
    """
    check_threads("winograd_forward", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int E = _wino_elements("winograd_forward", "upk", upk, floating is float)
    cdef int m = 4 if E == 36 else 2
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef int NT = Ho * Wo // (m * m)
    cdef size_t size_x = <size_t>(Ho + 2) * (Wo + 2)
    cdef size_t size_v = <size_t>E * (C * NT + WINO_GAP)
    check_scratch("winograd_forward", scratch, n_threads,
                  size_x + size_v + <size_t>E * (F * NT + WINO_GAP))
    _stride_pad("winograd_forward", x.shape[2], x.shape[3], 1, 1, ph, pw)
    expect_shape("winograd_forward", "out", out.shape,
                 (N, F, H + 2 * ph - 2, W + 2 * pw - 2))
    if Ho % m or Wo % m or (Wo // m) % (L // 2) or NT % L or F % 4:
        raise ValueError(f"winograd_forward: expected output planes of multiples of {m} with "
                         f"W_out/{m} a multiple of {L // 2} and H_out*W_out/{m * m} of {L}, and "
                         f"F % 4 == 0, got ({Ho}, {Wo}) and F = {F}")
    expect_shape("winograd_forward", "upk", upk.shape, (E, <Py_ssize_t>F * C))
    cdef const floating *bp = _bias("winograd_forward", b, F)
    cdef const floating *rp = _like_out("winograd_forward", "res", res, out)
    cdef const floating *gp = _like_out("winograd_forward", "gate", gate, out)
    cdef size_t img = <size_t>F * Ho * Wo
    cdef floating *xq
    cdef int n, band, q0, q1
    # Fewer images than threads: each image is cut into n_threads bands of tiles.
    cdef int bands = n_threads if N < n_threads else 1
    cdef int vecs = NT // L
    with nogil, parallel(num_threads=n_threads):
        xq = &scratch[threadid(), 0]
        for band in prange(N * bands, schedule="guided"):
            n = band // bands
            q0 = L * (vecs * (band % bands) // bands)
            q1 = L * (vecs * (band % bands + 1) // bands)
            if q0 < q1:
                wino_fwd(&x[n, 0, 0, 0], C, H, W, ph, pw, &upk[0, 0], F, xq, xq + size_x,
                         xq + size_x + size_v, &out[n, 0, 0, 0], Ho, Wo, q0, q1, bp,
                         rp + n * img if rp != NULL else NULL, relu,
                         gp + n * img if gp != NULL else NULL, m)


def winograd_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                         floating[:, :, :, ::1] dw, floating[::1] db, floating[:, ::1] dwt,
                         floating[:, ::1] dwt_part, floating[:, ::1] db_part,
                         floating[:, ::1] scratch, floating[::1] shared, int ph, int pw,
                         int group, bint lanes, int n_threads):
    """Weight (and bias) gradient of a 3x3 stride-1 convolution by Winograd F(m x m, 3x3):
    m = 2, or 4 when dwt has 36 rows (float32, without lanes; the map as for winograd_forward
    with m = 4). E = (m + 2)**2 elements below; the sizes written for F(2x2) (16, 4) are then
    36 and 16.

    IN: x (N, C, H, W), dout (N, F, H_out, W_out) with the shapes of winograd_forward, or with
    lanes of winograd_lanes_forward, where groups of L images (the batch-lane layout; the last
    one short) take the place of single images; group: images (lane groups) transformed and
    summed together. OUT: dw (F, C, 3, 3), db (F,) or None. SCRATCH: dwt (16, F*C), the
    gradient before G^T . G (fr_winograd_impl.h); dwt_part, db_part (n_blocks, ...): fixed
    batch blocks (of images, or lane groups) summed in block order; scratch (n_threads,
    (H_out + 2)*(W_out + 2) + group*16*((C + F)*NT + 2*WINO_GAP)), NT = H_out*W_out/4, or with
    lanes (C*(He + 2)*(We + 2) + F*He*We)*L + group*16*((C + F)*NT*L + 2*WINO_GAP), NT =
    He*We/4, He and We H_out and W_out rounded up to multiples of m (lanes take any plane).
    shared, for a small batch, or None: every item's transforms (items*16*((C + F)*NT +
    2*WINO_GAP) elements, NT*L with lanes), made in parallel; then the threads split the sums
    (element e, 4 output channels) among them, each over all the items, so there are no block
    partials (dwt_part is then unused, n_blocks = 1) and group is ignored (scratch needs no
    group part).
    """
    check_threads("winograd_weight_grad", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    cdef int E = _wino_elements("winograd_weight_grad", "dwt", dwt, floating is float)
    cdef int m = 4 if E == 36 else 2
    cdef int per = L if lanes else 1  # images per item (an image, or a lane group)
    cdef int items = (N + per - 1) // per
    cdef bint is_shared = shared is not None
    # with lanes a plane is tiled up to a multiple of m rows / columns (fr_wino_lanes_fwd_)
    cdef int He = (Ho + m - 1) // m * m if lanes else Ho
    cdef int We = (Wo + m - 1) // m * m if lanes else Wo
    cdef int NT = He * We // (m * m) * per, wsize = E * F * C
    cdef int n_blocks = 1 if is_shared else (dwt_part.shape[0] if dwt_part is not None else 0)
    cdef size_t size_x = <size_t>(He + 2) * (We + 2) * (C * L if lanes else 1)
    cdef size_t size_d = <size_t>F * He * We * L if lanes else 0
    cdef size_t size_v = <size_t>E * (C * NT + WINO_GAP)
    cdef size_t size_m = <size_t>E * (F * NT + WINO_GAP)
    if group < 1:
        raise ValueError(f"winograd_weight_grad: expected group >= 1, got {group}")
    check_scratch("winograd_weight_grad", scratch, n_threads,
                  size_x + size_d + (0 if is_shared else group * (size_v + size_m)))
    cdef Py_ssize_t shared_size = <Py_ssize_t>(items * (size_v + size_m))
    if is_shared and shared.shape[0] < shared_size:
        raise ValueError(f"winograd_weight_grad: expected shared of at least {shared_size} "
                         f"elements, got {shared.shape[0]}")
    _stride_pad("winograd_weight_grad", x.shape[2], x.shape[3], 1, 1, ph, pw)
    expect_shape("winograd_weight_grad", "dout", dout.shape,
                 (N, F, H + 2 * ph - 2, W + 2 * pw - 2))
    if (Ho < 1 or Wo < 1 or F % 4 or (not lanes and (Ho % m or Wo % m or (Wo // m) % (L // 2)
                                                     or NT % L))):
        raise ValueError(f"winograd_weight_grad: expected non-empty output planes (without "
                         f"lanes multiples of {m}, with W_out/{m} a multiple of {L // 2} and "
                         f"H_out*W_out/{m * m} of {L}), and F % 4 == 0, got ({Ho}, {Wo}) and "
                         f"F = {F}")
    expect_shape("winograd_weight_grad", "dw", dw.shape, (F, C, 3, 3))
    expect_shape("winograd_weight_grad", "dwt", dwt.shape, (E, <Py_ssize_t>F * C))
    _partials("winograd_weight_grad", "dwt_part", n_blocks,
              wsize if is_shared or dwt_part is None else dwt_part.shape[1], items, wsize,
              db_part.shape[0], db_part.shape[1], F)
    cdef bint want_db = db is not None
    _bias("winograd_weight_grad", db, F)
    cdef floating *dwq = NULL if is_shared else &dwt_part[0, 0]
    cdef floating *dbq = &db_part[0, 0]
    cdef floating *xp
    cdef floating *dl
    cdef floating *V
    cdef floating *DY
    cdef int blk, n, g, k, n0, n1, u, n_units = E * (F // 4)
    if is_shared:  # every item's transforms, then the sums split among the threads
        V = &shared[0]
        DY = V + <size_t>items * size_v
        with nogil, parallel(num_threads=n_threads):
            xp = &scratch[threadid(), 0]
            for n in prange(items, schedule="guided"):
                wino_wgrad_item(x, dout, n * per, lanes, ph, pw, xp, xp + size_x,
                                V + <size_t>n * size_v, DY + <size_t>n * size_m, m)
        for u in prange(n_units, nogil=True, schedule="guided", num_threads=n_threads):
            wino_wgrad_sum(V, size_v, DY, size_m, items, C, F, NT, u, u + 1, 0, &dwt[0, 0])
        if want_db:
            bias_partial(dout, 0, N, dbq)
    else:  # fixed blocks of items, each summed into its partial, then the partials in order
        with nogil, parallel(num_threads=n_threads):
            xp = &scratch[threadid(), 0]
            dl = xp + size_x
            V = dl + size_d
            DY = V + group * size_v
            for blk in prange(n_blocks, schedule="guided"):
                n0 = block_start(blk, items, n_blocks)
                n1 = block_start(blk + 1, items, n_blocks)
                if want_db:
                    bias_partial(dout, n0 * per, min(n1 * per, N), dbq + <size_t>blk * F)
                g = n0
                while g < n1:  # the block's items in groups, in order, added to its partial
                    k = min(group, n1 - g)
                    for n in range(k):
                        wino_wgrad_item(x, dout, (g + n) * per, lanes, ph, pw, xp, dl,
                                        V + n * size_v, DY + n * size_m, m)
                    wino_wgrad_sum(V, size_v, DY, size_m, k, C, F, NT, 0, n_units, g > n0,
                                   dwq + <size_t>blk * wsize)
                    g = g + group
        sum_blocks(dwq, n_blocks, wsize, &dwt[0, 0], n_threads)
    cdef Py_ssize_t ch, n_chunks = (F * C + SUM_CHUNK - 1) // SUM_CHUNK
    for ch in prange(n_chunks, nogil=True, schedule="static", num_threads=n_threads):
        if floating is float and E == 36:
            fr_wino4_dw_out_f(&dwt[0, 0], F, C, ch * SUM_CHUNK,
                              min(F * C, (ch + 1) * SUM_CHUNK), &dw[0, 0, 0, 0])
        elif floating is float:
            fr_wino_dw_out_f(&dwt[0, 0], F, C, ch * SUM_CHUNK, min(F * C, (ch + 1) * SUM_CHUNK),
                             &dw[0, 0, 0, 0])
        else:
            fr_wino_dw_out_d(&dwt[0, 0], F, C, ch * SUM_CHUNK, min(F * C, (ch + 1) * SUM_CHUNK),
                             &dw[0, 0, 0, 0])
    if want_db:
        sum_blocks(dbq, n_blocks, F, &db[0], 1)


def direct_input_grad_s2(const floating[:, :, :, ::1] dout, const floating[::1] wpk,
                         const int[::1] off, const int[::1] kstart, const int[::1] vin,
                         const int[::1] vout, const floating[:, :, :, ::1] res,
                         const floating[:, :, :, ::1] gate, floating[:, :, :, ::1] dx,
                         floating[:, ::1] scratch, int n_threads):
    """Input gradient of a 3x3 stride-2 convolution with padding 1 (even H, W) by the direct
    kernel, one output phase (a, b) = (y % 2, x % 2) at a time: phase p = 2a + b is a stride-1
    correlation of dout (padded by 1) with the taps of the flipped weights that land on it.

    IN: dout (N, F, H/2, W/2); wpk (C * kstart[4]): phase p's weights packed as for
    direct_forward, (C/4, K_p, 4) from C * kstart[p], K_p = kstart[p + 1] - kstart[p]; off
    (kstart[4],): its taps' offsets in the padded (F, H/2 + 2, W/2 + 2) dout, from kstart[p];
    vin, vout ((H/2)*(W/2)/L,): each phase's pixel vectors in the padded dout and in the phase.
    res (like dx) or None: added to dx; gate (like dx) or None: dx is then 0 where gate is not
    > 0. OUT: dx (N, C, H, W). SCRATCH: (n_threads, F*(H/2 + 2)*(W/2 + 2) + 4*C*(H/2)*(W/2)).
    """
    check_threads("direct_input_grad_s2", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = dout.shape[0], F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    cdef int C = dx.shape[1], P = Ho * Wo, nv = vin.shape[0], p
    cdef size_t size_d = <size_t>F * (Ho + 2) * (Wo + 2)
    check_scratch("direct_input_grad_s2", scratch, n_threads, size_d + <size_t>4 * C * P)
    expect_shape("direct_input_grad_s2", "dx", dx.shape, (N, C, 2 * Ho, 2 * Wo))
    if C % 4 or Wo % L:
        raise ValueError(f"direct_input_grad_s2: expected C % 4 == 0 and W_out % {L} == 0, got "
                         f"C = {C} and W_out = {Wo}")
    expect_shape("direct_input_grad_s2", "kstart", kstart.shape, (5,))
    for p in range(4):
        if kstart[0] != 0 or kstart[p] > kstart[p + 1] or kstart[4] != off.shape[0]:
            raise ValueError(f"direct_input_grad_s2: expected kstart non-decreasing from 0 to "
                             f"len(off) = {off.shape[0]}, got {list(kstart)}")
    expect_shape("direct_input_grad_s2", "wpk", wpk.shape, (<Py_ssize_t>C * kstart[4],))
    _vectors("direct_input_grad_s2", nv, P, L)
    # every phase reads the padded dout (F, Ho + 2, Wo + 2) and writes a (C, P) phase
    _tables("direct_input_grad_s2", off, vin, vout, size_d, P, L)
    cdef const floating *rp = _like_out("direct_input_grad_s2", "res", res, dx)
    cdef const floating *gp = _like_out("direct_input_grad_s2", "gate", gate, dx)
    cdef size_t img = <size_t>C * 4 * P
    cdef floating *dpad
    cdef floating *phases
    cdef int n
    with nogil, parallel(num_threads=n_threads):
        dpad = &scratch[threadid(), 0]
        phases = dpad + size_d
        memset(dpad, 0, size_d * sizeof(floating))  # pad writes only the inside
        for n in prange(N, schedule="guided"):
            pad(&dout[n, 0, 0, 0], dpad, F, Ho, Wo, 1, 1, 1, 1, Ho + 2, Wo + 2)
            for p in range(4):
                direct_fwd(dpad, &wpk[C * kstart[p]], &off[kstart[p]], kstart[p + 1] - kstart[p],
                           &vin[0], &vout[0], nv, phases + p * C * P, P, C, NULL, NULL, 0,
                           NULL)
            if floating is float:
                fr_interleave2_f(phases, C, Ho, Wo, &dx[n, 0, 0, 0],
                                 rp + n * img if rp != NULL else NULL,
                                 gp + n * img if gp != NULL else NULL)
            else:
                fr_interleave2_d(phases, C, Ho, Wo, &dx[n, 0, 0, 0],
                                 rp + n * img if rp != NULL else NULL,
                                 gp + n * img if gp != NULL else NULL)


def direct_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                       floating[:, ::1] dw, floating[::1] db, floating[:, ::1] dw_part,
                       floating[:, ::1] db_part, const int[::1] off, const int[::1] vin,
                       const int[::1] vout, floating[:, ::1] scratch, int ph, int pw, int sh,
                       int sw, int groups, int n_threads):
    """Weight (and bias) gradient of a convolution without im2col.

    IN: x (N, C, H, W), dout (N, F, H_out, W_out), off/vin/vout as for direct_forward.
    OUT: dw (F, C/groups*KH*KW), db (F,) or None.  SCRATCH: dw_part, db_part (n_blocks, ...)
    as in conv2d_backward (fixed batch blocks, summed in block order); scratch
    (n_threads, ceil(N/n_blocks)*C*sh*sw*Hq*Wq): each thread pads a whole block.
    """
    check_threads("direct_weight_grad", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dout.shape[1], P = dout.shape[2] * dout.shape[3]
    _groups("direct_weight_grad", groups, C, F, True)
    _stride_pad("direct_weight_grad", x.shape[2], x.shape[3], sh, sw, ph, pw)
    cdef int Cg = C // groups, Fg = F // groups, K = off.shape[0], nv = vin.shape[0]
    cdef int n_blocks = dw_part.shape[0], wsize = F * K
    _wgrad_outputs("direct_weight_grad", N, dout.shape[0], dw.shape, F, K,
                   dw_part.shape, db_part.shape)
    cdef int Hq = (H + 2 * ph + sh - 1) // sh, Wq = (W + 2 * pw + sw - 1) // sw
    cdef size_t plane = <size_t>sh * sw * Hq * Wq
    check_scratch("direct_weight_grad", scratch, n_threads,
                  (N + n_blocks - 1) // n_blocks * C * plane)
    _vectors("direct_weight_grad", nv, P, L)
    # group g of an image reads its Cg channels of the padded image: + g*Cg*plane
    _tables("direct_weight_grad", off, vin, vout, Cg * plane, P, L)
    cdef bint want_db = db is not None
    _bias("direct_weight_grad", db, F)
    cdef floating *dwq = &dw_part[0, 0]
    cdef floating *dbq = &db_part[0, 0]
    cdef floating *xpad
    cdef int blk, n, g, n0, n1
    with nogil, parallel(num_threads=n_threads):
        xpad = &scratch[threadid(), 0]
        memset(xpad, 0, (N + n_blocks - 1) // n_blocks * C * plane * sizeof(floating))
        for blk in prange(n_blocks, schedule="guided"):
            n0 = block_start(blk, N, n_blocks)
            n1 = block_start(blk + 1, N, n_blocks)
            if want_db:
                bias_partial(dout, n0, n1, dbq + <size_t>blk * F)
            for n in range(n0, n1):
                pad(&x[n, 0, 0, 0], xpad + (n - n0) * C * plane, C, H, W, ph, pw, sh, sw, Hq, Wq)
            # The whole block at once, so each register tile is summed over all its images
            # and stores its sums (every element of the block's partial is written once).
            for g in range(groups):
                direct_wgrad(xpad + g * Cg * plane, C * plane, &dout[n0, g * Fg, 0, 0],
                             <Py_ssize_t>F * P, n1 - n0, &off[0], K, &vin[0], &vout[0],
                             nv, P, Fg, dwq + <size_t>blk * wsize + <size_t>g * Fg * K)
    sum_blocks(dwq, n_blocks, wsize, &dw[0, 0], n_threads)
    if want_db:
        sum_blocks(dbq, n_blocks, F, &db[0], 1)


# ---- the direct kernels on the batch-lane layout (fr_direct_impl.h), stride 1 ---------------

cdef inline void lanes_in(const floating *x, Py_ssize_t xs, int nimg, floating *xq, int C, int H,
                          int W, int ph, int pw) noexcept nogil:
    if floating is float:
        fr_lanes_in_f(x, xs, nimg, xq, C, H, W, ph, pw, 0, 0)
    else:
        fr_lanes_in_d(x, xs, nimg, xq, C, H, W, ph, pw, 0, 0)


cdef inline void lanes_out(const floating *ol, int F, int H, int W, int Hs, int Ws, int nimg,
                           floating *out, Py_ssize_t os, const floating *res,
                           int relu) noexcept nogil:
    if floating is float:
        fr_lanes_out_f(ol, F, H, W, Hs, Ws, nimg, out, os, res, relu)
    else:
        fr_lanes_out_d(ol, F, H, W, Hs, Ws, nimg, out, os, res, relu)


def winograd_lanes_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] upk,
                           const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                           floating[:, :, :, ::1] out, floating[:, ::1] scratch, int ph, int pw,
                           int n_threads):
    """3x3 stride-1 convolution out = [relu](conv(x) [+ b] [+ res]) by Winograd F(m x m, 3x3)
    on the batch-lane layout (L images in the lanes of a vector; fr_winograd_impl.h), for maps
    whose tile rows are narrower than a vector; m = 2, or 4 when upk has 36 rows (float32).
    IN: x (N, C, H, W); upk (E = (m + 2)**2, F*C) as for winograd_forward; res like out or
    None. OUT: out (N, F, H_out, W_out), H_out = H + 2ph - 2 and W_out = W + 2pw - 2 (computed
    up to multiples of m and cropped: He, We below), F % 4 == 0.
    SCRATCH: (n_threads, (C*(He + 2)*(We + 2) + F*He*We)*L + E*((C + F)*NTL + 2*WINO_GAP)),
    NTL = He*We/m**2*L."""
    check_threads("winograd_lanes_forward", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef int E = _wino_elements("winograd_lanes_forward", "upk", upk, floating is float)
    cdef int m = 4 if E == 36 else 2
    cdef int He = (Ho + m - 1) // m * m, We = (Wo + m - 1) // m * m
    cdef int NTL = (He // m) * (We // m) * L
    cdef size_t size_x = <size_t>C * (He + 2) * (We + 2) * L, size_o = <size_t>F * He * We * L
    cdef size_t es = <size_t>C * NTL + WINO_GAP, ms = <size_t>F * NTL + WINO_GAP
    check_scratch("winograd_lanes_forward", scratch, n_threads, size_x + size_o + E * (es + ms))
    _stride_pad("winograd_lanes_forward", x.shape[2], x.shape[3], 1, 1, ph, pw)
    expect_shape("winograd_lanes_forward", "out", out.shape,
                 (N, F, H + 2 * ph - 2, W + 2 * pw - 2))
    if Ho < 1 or Wo < 1 or F % 4:
        raise ValueError(f"winograd_lanes_forward: expected non-empty output planes and "
                         f"F % 4 == 0, got ({Ho}, {Wo}) and F = {F}")
    expect_shape("winograd_lanes_forward", "upk", upk.shape, (E, <Py_ssize_t>F * C))
    cdef const floating *bp = _bias("winograd_lanes_forward", b, F)
    cdef const floating *rp = _like_out("winograd_lanes_forward", "res", res, out)
    cdef Py_ssize_t img = <Py_ssize_t>F * Ho * Wo
    cdef floating *xl
    cdef int blk
    with nogil, parallel(num_threads=n_threads):
        xl = &scratch[threadid(), 0]
        for blk in prange((N + L - 1) // L, schedule="guided"):
            wino_lanes_fwd(&x[blk * L, 0, 0, 0], <Py_ssize_t>C * H * W, min(L, N - blk * L), C,
                           H, W, ph, pw, &upk[0, 0], F, xl, xl + size_x + size_o,
                           xl + size_x + size_o + E * es, xl + size_x, &out[blk * L, 0, 0, 0],
                           img, Ho, Wo, bp, rp + blk * L * img if rp != NULL else NULL, relu, m)


def lanes_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] wpk,
                  const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                  floating[:, :, :, ::1] out, const int[::1] off, const int[::1] vin,
                  const int[::1] vout, floating[:, ::1] scratch, int ph, int pw, int groups,
                  int n_threads):
    """Stride-1 convolution out = [relu](conv(x) [+ b] [+ res]) by the direct kernel on groups
    of L images (L = 8 float32 / 4 float64) in the lanes of one vector: for maps whose rows are
    narrower than a vector. IN: x (N, C, H, W); wpk, b as for direct_forward; res like out or
    None; off/vin/vout in units of L elements for the (C, H + 2ph, W + 2pw, L) layout. OUT: out
    (N, F, H_out, W_out).
    SCRATCH: (n_threads, (C*(H + 2ph)*(W + 2pw) + F*H_out*W_out) * L)."""
    check_threads("lanes_forward", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = out.shape[1], P = out.shape[2] * out.shape[3]
    _groups("lanes_forward", groups, C, F, True)
    _stride_pad("lanes_forward", x.shape[2], x.shape[3], 1, 1, ph, pw)
    cdef int Cg = C // groups, Fg = F // groups, K = off.shape[0], nv = vin.shape[0]
    cdef size_t plane = <size_t>(H + 2 * ph) * (W + 2 * pw) * L, size_in = C * plane
    check_scratch("lanes_forward", scratch, n_threads, size_in + <size_t>F * P * L)
    if out.shape[0] != N:
        raise ValueError(f"lanes_forward: expected out of N = {N} images like x, got "
                         f"{out.shape[0]}")
    expect_shape("lanes_forward", "wpk", wpk.shape, (groups, <Py_ssize_t>Fg * K))
    _vectors("lanes_forward", nv, P, 1)
    # layout (C, H + 2ph, W + 2pw, L): group g reads its Cg channels, xl + g*Cg*plane, and
    # writes channel rows of P*L
    _tables("lanes_forward", off, vin, vout, Cg * plane, <Py_ssize_t>P * L, L)
    cdef const floating *bp = _bias("lanes_forward", b, F)
    cdef const floating *rp = _like_out("lanes_forward", "res", res, out)
    cdef floating *xl
    cdef floating *ol
    cdef int blk, g, m
    with nogil, parallel(num_threads=n_threads):
        xl = &scratch[threadid(), 0]
        ol = xl + size_in
        for blk in prange((N + L - 1) // L, schedule="guided"):
            m = min(L, N - blk * L)
            lanes_in(&x[blk * L, 0, 0, 0], <Py_ssize_t>C * H * W, m, xl, C, H, W, ph, pw)
            for g in range(groups):
                direct_fwd(xl + g * Cg * plane, &wpk[g, 0], &off[0], K, &vin[0],
                           &vout[0], nv, ol + <size_t>g * Fg * P * L, <Py_ssize_t>P * L,
                           Fg, bp + g * Fg if bp != NULL else NULL, NULL, 0, NULL)
            lanes_out(ol, F, 1, P, 1, P, m, &out[blk * L, 0, 0, 0], <Py_ssize_t>F * P,
                      rp + <size_t>blk * L * F * P if rp != NULL else NULL, relu)


def lanes_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                      floating[:, ::1] dw, floating[::1] db, floating[:, ::1] dw_part,
                      floating[:, ::1] db_part, const int[::1] off, const int[::1] vin,
                      const int[::1] vout, floating[:, ::1] scratch, int ph, int pw,
                      int groups, int n_threads):
    """Weight (and bias) gradient of a stride-1 convolution on the batch-lane layout.

    IN: x (N, C, H, W), dout (N, F, H_out, W_out), off/vin/vout as for lanes_forward.
    OUT: dw (F, C/groups*KH*KW), db (F,) or None.  SCRATCH: dw_part, db_part (n_blocks, ...)
    as in conv2d_backward (fixed batch blocks, summed in block order); scratch (n_threads,
    ceil(ceil(N/n_blocks)/L) * (C*(H + 2ph)*(W + 2pw) + F*H_out*W_out) * L): each thread lays
    out a whole block, x padded and dout unpadded.
    """
    check_threads("lanes_weight_grad", n_threads)
    cdef int L = 8 if floating is float else 4
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3], P = Ho * Wo
    _groups("lanes_weight_grad", groups, C, F, True)
    _stride_pad("lanes_weight_grad", x.shape[2], x.shape[3], 1, 1, ph, pw)
    cdef int Cg = C // groups, Fg = F // groups, K = off.shape[0], nv = vin.shape[0]
    cdef int n_blocks = dw_part.shape[0], wsize = F * K
    _wgrad_outputs("lanes_weight_grad", N, dout.shape[0], dw.shape, F, K,
                   dw_part.shape, db_part.shape)
    cdef int max_groups = ((N + n_blocks - 1) // n_blocks + L - 1) // L
    cdef size_t plane = <size_t>(H + 2 * ph) * (W + 2 * pw) * L, size_in = C * plane
    cdef size_t size_d = <size_t>F * P * L
    check_scratch("lanes_weight_grad", scratch, n_threads, max_groups * (size_in + size_d))
    _vectors("lanes_weight_grad", nv, P, 1)
    # per lane group: x (C, H + 2ph, W + 2pw, L), group g at + g*Cg*plane, and dout
    # (F, Ho, Wo, L) with channel rows of P*L
    _tables("lanes_weight_grad", off, vin, vout, Cg * plane, <Py_ssize_t>P * L, L)
    cdef bint want_db = db is not None
    _bias("lanes_weight_grad", db, F)
    cdef floating *dwq = &dw_part[0, 0]
    cdef floating *dbq = &db_part[0, 0]
    cdef floating *xl
    cdef floating *dl
    cdef int blk, n, g, n0, n1, q, ng
    with nogil, parallel(num_threads=n_threads):
        xl = &scratch[threadid(), 0]
        dl = xl + max_groups * size_in
        for blk in prange(n_blocks, schedule="guided"):
            n0 = block_start(blk, N, n_blocks)
            n1 = block_start(blk + 1, N, n_blocks)
            ng = (n1 - n0 + L - 1) // L
            if want_db:
                bias_partial(dout, n0, n1, dbq + <size_t>blk * F)
            for q in range(ng):
                lanes_in(&x[n0 + q * L, 0, 0, 0], <Py_ssize_t>C * H * W,
                         min(L, n1 - n0 - q * L), xl + q * size_in, C, H, W, ph, pw)
                lanes_in(&dout[n0 + q * L, 0, 0, 0], <Py_ssize_t>F * P,
                         min(L, n1 - n0 - q * L), dl + q * size_d, F, Ho, Wo, 0, 0)
            for g in range(groups):
                direct_wgrad(xl + g * Cg * plane, size_in, dl + <size_t>g * Fg * P * L,
                             size_d, ng, &off[0], K, &vin[0], &vout[0], nv,
                             <Py_ssize_t>P * L, Fg,
                             dwq + <size_t>blk * wsize + <size_t>g * Fg * K)
    sum_blocks(dwq, n_blocks, wsize, &dw[0, 0], n_threads)
    if want_db:
        sum_blocks(dbq, n_blocks, F, &db[0], 1)


# ---- strided pointwise convolution (fr_pointwise.h): 1x1, no padding, one group -------------

cdef extern from "fr_pointwise.h" nogil:
    enum: FR_PW_LANES
    void fr_pw_gather_f(const float *x, float *xs, int C, int H, int W, int sh, int sw, int Ho,
                        int Wo)
    void fr_pw_gather_d(const double *x, double *xs, int C, int H, int W, int sh, int sw,
                        int Ho, int Wo)
    void fr_pw_product_f(const float *a, const float *b, float *out, int M, int K,
                         Py_ssize_t P, const float *bias, const float *res, int relu)
    void fr_pw_product_d(const double *a, const double *b, double *out, int M, int K,
                         Py_ssize_t P, const double *bias, const double *res, int relu)
    void fr_pw_scatter_f(const float *dxs, float *dx, int C, int H, int W, int sh, int sw,
                         int Ho, int Wo, const float *add, const float *gate, float *rowbuf)
    void fr_pw_scatter_d(const double *dxs, double *dx, int C, int H, int W, int sh, int sw,
                         int Ho, int Wo, const double *add, const double *gate,
                         double *rowbuf)
    void fr_pw_wgrad_f(const float *dout, const float *xs, float *lanes, int F, int C,
                       Py_ssize_t P)
    void fr_pw_wgrad_d(const double *dout, const double *xs, double *lanes, int F, int C,
                       Py_ssize_t P)
    void fr_pw_fold_f(const float *lanes, float *out, Py_ssize_t n)
    void fr_pw_fold_d(const double *lanes, double *out, Py_ssize_t n)

pointwise_lanes = FR_PW_LANES  # the weight gradient's lanes per weight (its scratch)


cdef inline void pw_gather(const floating *x, floating *xs, int C, int H, int W, int sh, int sw,
                           int Ho, int Wo) noexcept nogil:
    if floating is float:
        fr_pw_gather_f(x, xs, C, H, W, sh, sw, Ho, Wo)
    else:
        fr_pw_gather_d(x, xs, C, H, W, sh, sw, Ho, Wo)


cdef inline void pw_product(const floating *a, const floating *b, floating *out, int M, int K,
                            Py_ssize_t P, const floating *bias, const floating *res,
                            bint relu) noexcept nogil:
    if floating is float:
        fr_pw_product_f(a, b, out, M, K, P, bias, res, relu)
    else:
        fr_pw_product_d(a, b, out, M, K, P, bias, res, relu)


cdef inline void pw_scatter(const floating *dxs, floating *dx, int C, int H, int W, int sh,
                            int sw, int Ho, int Wo, const floating *add, const floating *gate,
                            floating *rowbuf) noexcept nogil:
    if floating is float:
        fr_pw_scatter_f(dxs, dx, C, H, W, sh, sw, Ho, Wo, add, gate, rowbuf)
    else:
        fr_pw_scatter_d(dxs, dx, C, H, W, sh, sw, Ho, Wo, add, gate, rowbuf)


cdef inline void pw_wgrad(const floating *dout, const floating *xs, floating *lanes, int F,
                          int C, Py_ssize_t P) noexcept nogil:
    if floating is float:
        fr_pw_wgrad_f(dout, xs, lanes, F, C, P)
    else:
        fr_pw_wgrad_d(dout, xs, lanes, F, C, P)


cdef inline void pw_fold(const floating *lanes, floating *out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_pw_fold_f(lanes, out, n)
    else:
        fr_pw_fold_d(lanes, out, n)


def pointwise_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w,
                      const floating[::1] b, const floating[:, :, :, ::1] res, bint relu,
                      floating[:, :, :, ::1] out, floating[:, ::1] scratch, int sh, int sw,
                      int n_threads):
    """out = [relu](w @ x[:, :, ::sh, ::sw] + b [+ res]) per image: a 1x1 convolution with
    stride (sh, sw), no padding, one group.

    IN: x (N, C, H, W), w (F, C), b (F,) or None, res like out or None.
    OUT: out (N, F, H_out, W_out).  SCRATCH: (n_threads, C*H_out*W_out): the gathered image.
    (Streaming out past the caches, as the backward streams dx, measured no faster.)
    """
    cdef str op = "pointwise_forward"
    check_threads(op, n_threads)
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], F = w.shape[0]
    cdef int Ho = out.shape[2], Wo = out.shape[3]
    _groups(op, 1, C, F, False)
    expect_shape(op, "w", w.shape, (F, C))
    _conv_geometry(op, H, W, 1, 1, sh, sw, 0, 0, Ho, Wo)
    expect_shape(op, "out", out.shape, (N, F, Ho, Wo))
    cdef Py_ssize_t P = <Py_ssize_t>Ho * Wo
    check_scratch(op, scratch, n_threads, C * P)
    cdef const floating *bp = _bias(op, b, F)
    cdef const floating *rp = _like_out(op, "res", res, out)
    cdef floating *xs
    cdef int n
    with nogil, parallel(num_threads=n_threads):
        xs = &scratch[threadid(), 0]
        for n in prange(N, schedule="guided"):
            pw_gather(&x[n, 0, 0, 0], xs, C, H, W, sh, sw, Ho, Wo)
            pw_product(&w[0, 0], xs, &out[n, 0, 0, 0], F, C, P, bp,
                       rp + <size_t>n * F * P if rp != NULL else NULL, relu)


def pointwise_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                       const floating[:, ::1] wt, const floating[:, :, :, ::1] add,
                       const floating[:, :, :, ::1] gate, floating[:, :, :, ::1] dx,
                       floating[:, ::1] dw, floating[::1] db, floating[:, ::1] dw_part,
                       floating[:, ::1] db_part, floating[:, ::1] scratch, int sh, int sw,
                       bint stream, int n_threads):
    """Gradients of pointwise_forward, one pass over dout: per image, dx = wt @ dout placed at
    rows y*sh, columns j*sw, 0 elsewhere [+ add], then 0 where gate is not > 0 (gate given;
    streamed past the caches if stream), and the image's share of dw and db.

    IN: x (N, C, H, W), dout (N, F, H_out, W_out), wt (C, F) (w transposed), add, gate like
    x or None.  OUT: dx like x or None, dw (F, C), db (F,) or None.
    SCRATCH: dw_part, db_part (n_blocks, ...) as in conv2d_backward (fixed batch blocks, summed
    in block order); scratch (n_threads, 2*C*H_out*W_out + F*C*pointwise_lanes + W): the
    gathered image, its input gradient, the block's lane sums and a row of dx.
    """
    cdef str op = "pointwise_backward"
    check_threads(op, n_threads)
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    _groups(op, 1, C, F, False)
    _conv_geometry(op, H, W, 1, 1, sh, sw, 0, 0, Ho, Wo)
    expect_shape(op, "dout", dout.shape, (N, F, Ho, Wo))
    expect_shape(op, "wt", wt.shape, (C, F))
    cdef int n_blocks = dw_part.shape[0], wsize = F * C
    _wgrad_outputs(op, N, dout.shape[0], dw.shape, F, C, dw_part.shape, db_part.shape)
    cdef Py_ssize_t P = <Py_ssize_t>Ho * Wo
    check_scratch(op, scratch, n_threads, 2 * C * P + <Py_ssize_t>wsize * FR_PW_LANES + W)
    cdef bint want_dx = dx is not None, want_db = db is not None
    cdef const floating *ap = NULL
    cdef const floating *gp = NULL
    if want_dx:
        expect_shape(op, "dx", dx.shape, (N, C, H, W))
        ap = _like_out(op, "add", add, dx)
        gp = _like_out(op, "gate", gate, dx)
    elif add is not None or gate is not None:
        raise ValueError(f"{op}: expected no add or gate without dx")
    _bias(op, db, F)
    cdef size_t img = <size_t>C * H * W
    cdef floating *dwq = &dw_part[0, 0]
    cdef floating *dbq = &db_part[0, 0]
    cdef floating *xs
    cdef floating *dxs
    cdef floating *lanes
    cdef floating *row
    cdef int blk, n, n0, n1
    with nogil, parallel(num_threads=n_threads):
        xs = &scratch[threadid(), 0]
        dxs = xs + C * P
        lanes = dxs + C * P
        row = lanes + wsize * FR_PW_LANES if stream else NULL
        for blk in prange(n_blocks, schedule="guided"):
            n0 = block_start(blk, N, n_blocks)
            n1 = block_start(blk + 1, N, n_blocks)
            if want_db:
                bias_partial(dout, n0, n1, dbq + <size_t>blk * F)
            memset(lanes, 0, sizeof(floating) * wsize * FR_PW_LANES)
            for n in range(n0, n1):
                if want_dx:
                    pw_product(&wt[0, 0], &dout[n, 0, 0, 0], dxs, C, F, P, NULL, NULL, False)
                    pw_scatter(dxs, &dx[n, 0, 0, 0], C, H, W, sh, sw, Ho, Wo,
                               ap + n * img if ap != NULL else NULL,
                               gp + n * img if gp != NULL else NULL, row)
                pw_gather(&x[n, 0, 0, 0], xs, C, H, W, sh, sw, Ho, Wo)
                pw_wgrad(&dout[n, 0, 0, 0], xs, lanes, F, C, P)
            pw_fold(lanes, dwq + <size_t>blk * wsize, wsize)
    sum_blocks(dwq, n_blocks, wsize, &dw[0, 0], n_threads)
    if want_db:
        sum_blocks(dbq, n_blocks, F, &db[0], 1)
