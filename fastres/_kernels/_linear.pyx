"""Fully connected layer kernels: out = x @ w.T + b and its gradients, through BLAS gemm.

Arrays are C-contiguous and preallocated by ``fastres.functional``. The BLAS behind
``scipy.linalg.cython_blas`` is held to one thread (``fastres._config``); the parallelism is
ours: every output matrix is cut into tiles and each tile is one gemm call over the *whole*
contraction axis. The tiling is a function of the matrix shape alone (never of ``n_threads``),
so every output element is produced by the same call with the same arguments whatever the
thread count, and the reductions over the batch (dw, db) never combine partial results across
threads: results are bit-identical for any ``n_threads``.

Tiles are as large as 256 x 256 (fewer, larger gemm calls pack less: 10-25% faster than 64 x 512
tiles on Haswell) and are halved while a matrix has fewer than MIN_TILES of them, so that small
layers still spread over the threads, but never below MIN_TILE_WORK multiply-adds: a gemm call
and a thread wake-up cost a few microseconds, more than a smaller tile would save.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from time import perf_counter
from scipy.linalg.cython_blas cimport dgemm, sgemm
from fastres._kernels._common cimport check_threads, expect_shape

cdef extern from "fr_linear.h" nogil:
    void fr_colsum_f(const float *a, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lda,
                     float *out)
    void fr_colsum_d(const double *a, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lda,
                     double *out)
    void fr_fill_rows_f(const float *b, Py_ssize_t rows, Py_ssize_t cols, float *c,
                        Py_ssize_t ldc)
    void fr_fill_rows_d(const double *b, Py_ssize_t rows, Py_ssize_t cols, double *c,
                        Py_ssize_t ldc)

cdef enum:
    MAX_TILE = 256
    MIN_TILE_ROWS = 32
    MIN_TILE_COLS = 64
    MIN_TILES = 8
    MIN_TILE_WORK = 65536  # multiply-adds
    SUM_BLOCK = 256  # columns per work item of the bias gradient (fits fr_colsum's buffer)


cdef inline Py_ssize_t _n_blocks(Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    return (n + block - 1) // block


cdef inline Py_ssize_t _fit(Py_ssize_t n) noexcept nogil:
    """Smallest power of two >= n, capped at MAX_TILE."""
    cdef Py_ssize_t t = 1
    while t < n and t < MAX_TILE:
        t *= 2
    return t


cdef Py_ssize_t _choose_tiles(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t depth,
                              Py_ssize_t *tr, Py_ssize_t *tc) noexcept nogil:
    """Tile (tr, tc) of a row-major (rows, cols) output matrix whose entries are dot products
    of length depth; returns the number of tiles. A function of the shape alone."""
    tr[0] = _fit(rows)
    tc[0] = _fit(cols)
    while (_n_blocks(rows, tr[0]) * _n_blocks(cols, tc[0]) < MIN_TILES
           and tr[0] * tc[0] * depth >= 2 * MIN_TILE_WORK):
        # Halve the larger side that may still shrink; tiles fit the matrix, so each halving
        # adds tiles.
        if tr[0] > MIN_TILE_ROWS and (tr[0] >= tc[0] or tc[0] <= MIN_TILE_COLS):
            tr[0] //= 2
        elif tc[0] > MIN_TILE_COLS:
            tc[0] //= 2
        else:
            break
    return _n_blocks(rows, tr[0]) * _n_blocks(cols, tc[0])


def tiles(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t depth):
    """The (tile_rows, tile_cols) used for a (rows, cols) output of depth-long dot products
    (exposed for tests and benchmarks)."""
    cdef Py_ssize_t tr, tc
    _choose_tiles(rows, cols, depth, &tr, &tc)
    return tr, tc


cdef int _operands(str op, const floating[:, ::1] x, const floating[:, ::1] w, bint has_bias,
                   const floating[::1] b, str b_name) except -1:
    """w must have x's column count; every extent must fit BLAS's int; b, read only with
    has_bias, must then hold one value per output feature."""
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], O = w.shape[0]
    if N > INT_MAX or I > INT_MAX or O > INT_MAX:
        raise ValueError(f"{op}: expected N, in_features and out_features <= {INT_MAX} "
                         f"(BLAS int), got ({N}, {I}, {O})")
    expect_shape(op, "w", w.shape, (O, I))
    if has_bias and (b is None or b.shape[0] != O):
        raise ValueError(f"{op}: expected {b_name} of shape ({O},), got "
                         f"{'None' if b is None else (b.shape[0],)}")
    return 0


cdef inline void _gemm_rm(bint trans_a, bint trans_b, int m, int n, int k,
                          const floating *a, int lda, const floating *b, int ldb,
                          floating beta, floating *c, int ldc) noexcept nogil:
    """Row-major C (m x n) = op(A) @ op(B) + beta * C, op(X) = X.T when trans_x.

    BLAS is column-major and a row-major matrix is the column-major view of its transpose, so
    C.T = op(B).T @ op(A).T: swap the operands and the sizes, keep each one's transpose flag.
    """
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    cdef floating one = 1
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &one, <float *>b, &ldb, <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &one, <double *>b, &ldb, <double *>a, &lda, &beta, c, &ldc)


def linear_forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
                   bint has_bias, floating[:, ::1] out, int n_threads):
    """out = x @ w.T (+ b).  IN: x (N, I), w (O, I), b (O,) read only if has_bias.
    OUT: out (N, O), cut into tiles over rows of N and columns of O."""
    check_threads("linear_forward", n_threads)
    cdef int N = x.shape[0], I = x.shape[1], O = w.shape[0]
    cdef Py_ssize_t t, r0, c0, tr, tc, n_col, n_tiles
    cdef int rows, cols
    cdef floating beta = 1 if has_bias else 0
    _operands("linear_forward", x, w, has_bias, b, "b")
    expect_shape("linear_forward", "out", out.shape, (N, O))
    n_tiles = _choose_tiles(N, O, I, &tr, &tc)
    n_col = _n_blocks(O, tc)
    for t in prange(n_tiles, nogil=True, schedule="guided",
                    num_threads=min(n_threads, n_tiles)):
        r0 = (t // n_col) * tr
        c0 = (t % n_col) * tc
        rows = <int>min(tr, N - r0)
        cols = <int>min(tc, O - c0)
        if has_bias:  # the tile starts as b and gemm adds x @ w.T onto it (beta = 1)
            if floating is float:
                fr_fill_rows_f(&b[c0], rows, cols, &out[r0, c0], O)
            else:
                fr_fill_rows_d(&b[c0], rows, cols, &out[r0, c0], O)
        _gemm_rm(False, True, rows, cols, I, &x[r0, 0], I, &w[c0, 0], I, beta, &out[r0, c0], O)


def linear_backward(const floating[:, ::1] dout, const floating[:, ::1] x,
                    const floating[:, ::1] w, floating[:, ::1] dx, floating[:, ::1] dw,
                    floating[::1] db, bint has_bias, int n_threads):
    """dx = dout @ w, dw = dout.T @ x, db = dout.sum(0) (written only if has_bias).

    IN: dout (N, O), x (N, I), w (O, I).  OUT: dx (N, I), dw (O, I), db (O,).
    """
    check_threads("linear_backward", n_threads)
    cdef int N = x.shape[0], I = x.shape[1], O = w.shape[0]
    cdef Py_ssize_t t, r0, c0, tr, tc, n_col, n_tiles
    cdef int rows, cols
    _operands("linear_backward", x, w, has_bias, db, "db")
    expect_shape("linear_backward", "dout", dout.shape, (N, O))
    expect_shape("linear_backward", "dx", dx.shape, (N, I))
    expect_shape("linear_backward", "dw", dw.shape, (O, I))
    # dx: tiles over (rows of N) x (columns of I); contraction over O.
    n_tiles = _choose_tiles(N, I, O, &tr, &tc)
    n_col = _n_blocks(I, tc)
    for t in prange(n_tiles, nogil=True, schedule="guided",
                    num_threads=min(n_threads, n_tiles)):
        r0 = (t // n_col) * tr
        c0 = (t % n_col) * tc
        rows = <int>min(tr, N - r0)
        cols = <int>min(tc, I - c0)
        _gemm_rm(False, False, rows, cols, O, &dout[r0, 0], O, &w[0, c0], I, 0,
                 &dx[r0, c0], I)
    # dw: tiles over (rows of O) x (columns of I); each tile reduces over the whole batch in
    # one call, so no partial sums are combined across threads.
    n_tiles = _choose_tiles(O, I, N, &tr, &tc)
    n_col = _n_blocks(I, tc)
    for t in prange(n_tiles, nogil=True, schedule="guided",
                    num_threads=min(n_threads, n_tiles)):
        r0 = (t // n_col) * tr
        c0 = (t % n_col) * tc
        rows = <int>min(tr, O - r0)
        cols = <int>min(tc, I - c0)
        _gemm_rm(True, False, rows, cols, N, &dout[0, r0], O, &x[0, c0], I, 0,
                 &dw[r0, c0], I)
    if has_bias:
        # db: each work item owns SUM_BLOCK columns and sums all N rows in order.
        n_tiles = _n_blocks(O, SUM_BLOCK)
        for t in prange(n_tiles, nogil=True, schedule="guided",
                        num_threads=min(n_threads, n_tiles)):
            c0 = t * SUM_BLOCK
            if floating is float:
                fr_colsum_f(&dout[0, c0], N, min(SUM_BLOCK, O - c0), O, &db[c0])
            else:
                fr_colsum_d(&dout[0, c0], N, min(SUM_BLOCK, O - c0), O, &db[c0])


def blas_seconds(const floating[:, ::1] x, const floating[:, ::1] w,
                 const floating[:, ::1] dout, floating[:, ::1] out, floating[:, ::1] dx,
                 floating[:, ::1] dw, int rounds):
    """For benchmarks: seconds per round of the three products of a linear layer's forward and
    backward (out = x @ w.T, dx = dout @ w, dw = dout.T @ x), each one BLAS call, looped
    without the GIL on one thread: the least time a BLAS-based layer of this shape can take."""
    cdef int N = x.shape[0], I = x.shape[1], O = w.shape[0], r
    cdef const floating[::1] no_bias = None
    _operands("blas_seconds", x, w, False, no_bias, "b")
    expect_shape("blas_seconds", "dout", dout.shape, (N, O))
    expect_shape("blas_seconds", "out", out.shape, (N, O))
    expect_shape("blas_seconds", "dx", dx.shape, (N, I))
    expect_shape("blas_seconds", "dw", dw.shape, (O, I))
    if rounds < 1:
        raise ValueError(f"blas_seconds: expected rounds >= 1, got {rounds}")
    t0 = perf_counter()
    with nogil:
        for r in range(rounds):
            _gemm_rm(False, True, N, O, I, &x[0, 0], I, &w[0, 0], I, 0, &out[0, 0], O)
            _gemm_rm(False, False, N, I, O, &dout[0, 0], O, &w[0, 0], I, 0, &dx[0, 0], I)
            _gemm_rm(True, False, O, I, N, &dout[0, 0], O, &x[0, 0], I, 0, &dw[0, 0], I)
    return (perf_counter() - t0) / rounds
