/* Direct convolution micro-kernels, instantiated per dtype by fr_direct.h
 * (T = element type, IT = the integer type of its size, S = suffix, L = lanes in a 32-byte vector).
 *
 * The input of one image and channel group is a zero-padded polyphase copy xin (see fr_pad_;
 * for stride 1 simply the padded image (C, Hp, Wp)). A "pixel vector" v is L consecutive output
 * pixels of one row: its input base is vin[v] = y*Wq + x0 and its output offset
 * vout[v] = y*W_out + x0 (so W_out must be a multiple of L). The reduction index k = (c, i, j)
 * reads xin at vin[v] + off[k], off[k] = the phase plane of (c, i % sh, j % sw) plus
 * (i / sh)*Wq + j / sw: every load is L contiguous elements, at any stride, and no im2col.
 * Weights are packed as (F/4, K, 4) so a tile of 4 output channels broadcasts 4 contiguous values.
 * Register tiles: 4 channels x up to 3 pixel vectors (12 accumulators) in the forward pass,
 * 4 channels x up to 3 reduction indices in the weight gradient.
 */
#define FR_CAT_(a, b) a##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#define VEC FR_CAT(fr_vec_, S)
#define IVEC FR_CAT(fr_ivec_, S)
#define FN(name) FR_CAT(name, S)

typedef T VEC __attribute__((vector_size(32)));
typedef IT IVEC __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) VEC FN(fr_ld_)(const T *p) { VEC v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void FN(fr_st_)(T *p, VEC v) { memcpy(p, &v, sizeof v); }
/* out[r * stride] = the sum of the lanes of a_r (added to out[r * stride] with add), r = 0..3:
 * halves added, then a 4x4 (float) or 4x2 (double) transpose-and-add, so four sums cost a few
 * shuffles instead of four serial chains of L - 1 scalar adds (on 8x8 maps, where a
 * weight-gradient tile sums only 64 vectors, the serial sums took ~10% of the kernel). */
typedef T FR_CAT(fr_half_, S) __attribute__((vector_size(16)));
static inline __attribute__((always_inline)) void FN(fr_hsum4_)(VEC a0, VEC a1, VEC a2, VEC a3,
                                                                T *out, ptrdiff_t stride,
                                                                int add) {
    typedef FR_CAT(fr_half_, S) H;
#define SH __builtin_shufflevector
#if L == 8
    H h0 = SH(a0, a0, 0, 1, 2, 3) + SH(a0, a0, 4, 5, 6, 7);
    H h1 = SH(a1, a1, 0, 1, 2, 3) + SH(a1, a1, 4, 5, 6, 7);
    H h2 = SH(a2, a2, 0, 1, 2, 3) + SH(a2, a2, 4, 5, 6, 7);
    H h3 = SH(a3, a3, 0, 1, 2, 3) + SH(a3, a3, 4, 5, 6, 7);
    H u0 = SH(h0, h1, 0, 4, 1, 5) + SH(h0, h1, 2, 6, 3, 7);
    H u1 = SH(h2, h3, 0, 4, 1, 5) + SH(h2, h3, 2, 6, 3, 7);
    H sv = SH(u0, u1, 0, 1, 4, 5) + SH(u0, u1, 2, 3, 6, 7);
    const T s[4] = {sv[0], sv[1], sv[2], sv[3]};
#else
    H h0 = SH(a0, a0, 0, 1) + SH(a0, a0, 2, 3), h1 = SH(a1, a1, 0, 1) + SH(a1, a1, 2, 3);
    H h2 = SH(a2, a2, 0, 1) + SH(a2, a2, 2, 3), h3 = SH(a3, a3, 0, 1) + SH(a3, a3, 2, 3);
    H s01 = SH(h0, h1, 0, 2) + SH(h0, h1, 1, 3), s23 = SH(h2, h3, 0, 2) + SH(h2, h3, 1, 3);
    const T s[4] = {s01[0], s01[1], s23[0], s23[1]};
#endif
    for (int r = 0; r < 4; r++) out[r * stride] = add ? out[r * stride] + s[r] : s[r];
#undef SH
}

/* Store one vector of outputs at out + o with the kernels' epilogue: (+ res) (then max(., 0) if
 * relu) (then 0 where gate is not > 0: the gradient through a ReLU whose output is gate); res
 * and gate are blocks like out, or NULL. */
static inline __attribute__((always_inline)) void FN(fr_store_)(T *out, ptrdiff_t o, VEC a,
                                                                const T *res, int relu,
                                                                const T *gate) {
    if (res) a += FN(fr_ld_)(res + o);
    if (relu) a = (VEC)((IVEC)a & ~(a <= (VEC){0}));  /* x <= 0 ? 0 : x, as fr_relu */
    if (gate) a = (VEC)((IVEC)a & (FN(fr_ld_)(gate + o) > (VEC){0}));
    FN(fr_st_)(out + o, a);
}

/* One forward tile: 4 output channels (rows of wt) x NV pixel vectors starting at v. */
static inline __attribute__((always_inline)) void FN(fr_fwd_tile_)(
    const T *restrict xin, const T *restrict wt, const int *restrict off, int K,
    const int *restrict vin, const int *restrict vout, int v, T *restrict out, ptrdiff_t P,
    const T *bias, const T *res, int relu, const T *gate, const int NV) {
    VEC acc[4][3];
    for (int r = 0; r < 4; r++) {
        T b0 = bias ? bias[r] : (T)0;
        for (int u = 0; u < NV; u++) acc[r][u] = (VEC){0} + b0;
    }
    const T *xb0 = xin + vin[v];
    const T *xb1 = NV > 1 ? xin + vin[v + 1] : xb0;
    const T *xb2 = NV > 2 ? xin + vin[v + 2] : xb0;
    for (int k = 0; k < K; k++) {
        const int o = off[k];
        VEC x0 = FN(fr_ld_)(xb0 + o), x1 = x0, x2 = x0;
        if (NV > 1) x1 = FN(fr_ld_)(xb1 + o);
        if (NV > 2) x2 = FN(fr_ld_)(xb2 + o);
        const T *wk = wt + 4 * k;
        for (int r = 0; r < 4; r++) {
            const T wr = wk[r];  /* scalar * vector broadcasts (one vbroadcastss from memory) */
            acc[r][0] += wr * x0;
            if (NV > 1) acc[r][1] += wr * x1;
            if (NV > 2) acc[r][2] += wr * x2;
        }
    }
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < NV; u++)
            FN(fr_store_)(out, r * P + vout[v + u], acc[r][u], res, relu, gate);
}

/* out (F, P) = conv(xin) (+ bias) (+ res, an (F, P) block like out) (then max(., 0) if relu)
 * (then 0 where gate, a block like out, is not > 0: the gradient through a ReLU whose output is
 * gate), the epilogue applied as the tile is stored. wpk: (F/4, K, 4); F % 4 == 0. */
FR_CLONES static void FN(fr_direct_fwd_)(const T *xin, const T *wpk, const int *off, int K,
                                         const int *vin, const int *vout, int nv, T *out,
                                         ptrdiff_t P, int F, const T *bias, const T *res,
                                         int relu, const T *gate) {
    for (int ft = 0; ft < F / 4; ft++) {
        const T *wt = wpk + (ptrdiff_t)ft * K * 4;
        T *o = out + (ptrdiff_t)ft * 4 * P;
        const T *b = bias ? bias + 4 * ft : NULL;
        const T *q = res ? res + (ptrdiff_t)ft * 4 * P : NULL;
        const T *gt = gate ? gate + (ptrdiff_t)ft * 4 * P : NULL;
        int v = 0;
        for (; v + 3 <= nv; v += 3)
            FN(fr_fwd_tile_)(xin, wt, off, K, vin, vout, v, o, P, b, q, relu, gt, 3);
        if (nv - v == 2) FN(fr_fwd_tile_)(xin, wt, off, K, vin, vout, v, o, P, b, q, relu, gt, 2);
        if (nv - v == 1) FN(fr_fwd_tile_)(xin, wt, off, K, vin, vout, v, o, P, b, q, relu, gt, 1);
    }
}

/* One weight-gradient tile: 4 output channels x NK reduction indices starting at k, summed over
 * nimg images (input images xs apart, output gradients ds apart) before the horizontal sums. */
static inline __attribute__((always_inline)) void FN(fr_wgrad_tile_)(
    const T *restrict xin, ptrdiff_t xs, const T *restrict dout, ptrdiff_t ds, int nimg,
    const int *restrict off, int k, const int *restrict vin, const int *restrict vout, int nv,
    ptrdiff_t P, T *restrict dw, int K, const int NK) {
    VEC acc[4][3];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NK; t++) acc[r][t] = (VEC){0};
    const int o0 = off[k], o1 = NK > 1 ? off[k + 1] : o0, o2 = NK > 2 ? off[k + 2] : o0;
    for (int n = 0; n < nimg; n++) {
        const T *xn = xin + n * xs, *dn = dout + n * ds;
        for (int v = 0; v < nv; v++) {
            const T *xb = xn + vin[v];
            VEC x0 = FN(fr_ld_)(xb + o0), x1 = x0, x2 = x0;
            if (NK > 1) x1 = FN(fr_ld_)(xb + o1);
            if (NK > 2) x2 = FN(fr_ld_)(xb + o2);
            const T *d = dn + vout[v];
            for (int r = 0; r < 4; r++) {
                VEC dv = FN(fr_ld_)(d + r * P);
                acc[r][0] += dv * x0;
                if (NK > 1) acc[r][1] += dv * x1;
                if (NK > 2) acc[r][2] += dv * x2;
            }
        }
    }
    for (int t = 0; t < NK; t++)
        FN(fr_hsum4_)(acc[0][t], acc[1][t], acc[2][t], acc[3][t], dw + k + t, K, 0);
}

/* dw (F, K) = sum over nimg images and their pixels of dout (F, P) x shifted xin. F % 4 == 0.
 * Images are xs (inputs) and ds (output gradients) elements apart. */
FR_CLONES static void FN(fr_direct_wgrad_)(const T *xin, ptrdiff_t xs, const T *dout,
                                           ptrdiff_t ds, int nimg, const int *off, int K,
                                           const int *vin, const int *vout, int nv,
                                           ptrdiff_t P, int F, T *dw) {
    for (int ft = 0; ft < F / 4; ft++) {
        const T *d = dout + (ptrdiff_t)ft * 4 * P;
        T *g = dw + (ptrdiff_t)ft * 4 * K;
        int k = 0;
        for (; k + 3 <= K; k += 3)
            FN(fr_wgrad_tile_)(xin, xs, d, ds, nimg, off, k, vin, vout, nv, P, g, K, 3);
        if (K - k == 2) FN(fr_wgrad_tile_)(xin, xs, d, ds, nimg, off, k, vin, vout, nv, P, g, K, 2);
        if (K - k == 1) FN(fr_wgrad_tile_)(xin, xs, d, ds, nimg, off, k, vin, vout, nv, P, g, K, 1);
    }
}

/* Lane patterns for __builtin_shufflevector on two vectors a, b: the even and the odd lanes of
 * (a, b), in order; and a, b interleaved, the low halves' lanes then the high halves'. */
#if L == 8
#define FR_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14
#define FR_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15
#define FR_LO_LANES 0, 8, 1, 9, 2, 10, 3, 11
#define FR_HI_LANES 4, 12, 5, 13, 6, 14, 7, 15
#else
#define FR_EVEN_LANES 0, 2, 4, 6
#define FR_ODD_LANES 1, 3, 5, 7
#define FR_LO_LANES 0, 4, 1, 5
#define FR_HI_LANES 2, 6, 3, 7
#endif
/* dst[0..n) = src[0..n), a vector at a time: the rows copied here are a few vectors long, and
 * a memcpy call per row cost more than its copy. */
static inline __attribute__((always_inline)) void FN(fr_copy_)(const T *restrict src,
                                                                T *restrict dst, int n) {
    int j = 0;
    for (; j + L <= n; j += L) FN(fr_st_)(dst + j, FN(fr_ld_)(src + j));
    for (; j < n; j++) dst[j] = src[j];
}

/* Zero-padded, polyphase copy of a (C, H, W) block for stride (sh, sw): planes (C, sh, sw, Hq, Wq)
 * with xq[c][a][b][y][x] = xpad[c][y*sh + a][x*sw + b] (zero outside the input), so that a
 * strided convolution reads each phase plane at stride 1. For stride 1 it is the padded image.
 * Only the elements inside the input are written: xq must hold zeros everywhere else, which
 * its previous use holds when that was a copy of the same shape, so callers zero their
 * scratch once per call and pad image after image into it (writing the zeros with every image,
 * a memset call per row, took a third of the copy's time on the 16x16 stride-2 maps). */
FR_CLONES static void FN(fr_pad_)(const T *restrict x, T *restrict xq, int C, int H, int W,
                                  int ph, int pw, int sh, int sw, int Hq, int Wq) {
    for (int a = 0; a < sh; a++)
        for (int b = 0; b < sw; b++) {
            int lo, hi, ylo, yhi; /* phase columns q (rows y) whose input column q*sw + b - pw
                                   * (row y*sh + a - ph) is inside */
            fr_valid_range(W, Wq, sw, b, pw, &lo, &hi);
            fr_valid_range(H, Hq, sh, a, ph, &ylo, &yhi);
            for (int c = 0; c < C; c++)
                for (int y = ylo; y < yhi; y++) {
                    T *dst = xq + ((((ptrdiff_t)c * sh + a) * sw + b) * Hq + y) * Wq;
                    const T *row = x + ((ptrdiff_t)c * H + y * sh + a - ph) * W;
                    int q = lo;
                    if (sw == 1) {
                        FN(fr_copy_)(row + (lo + b - pw), dst + lo, hi - lo);
                        q = hi;
                    } else if (sw == 2) { /* the even lanes of two vectors, L at a time */
                        const int s0 = b - pw;  /* where output q = 0 reads in the row */
                        for (; q + L <= hi && 2 * q + s0 + 2 * L <= W; q += L) {
                            const T *src = row + 2 * q + s0;
                            FN(fr_st_)(dst + q, __builtin_shufflevector(
                                FN(fr_ld_)(src), FN(fr_ld_)(src + L), FR_EVEN_LANES));
                        }
                        /* a group that ends on the row's last element: the odd lanes of the two
                         * vectors one element earlier (never reading past the row) */
                        for (; q + L <= hi && 2 * q + s0 >= 1 && 2 * q + s0 - 1 + 2 * L <= W;
                             q += L) {
                            const T *src = row + 2 * q + s0 - 1;
                            FN(fr_st_)(dst + q, __builtin_shufflevector(
                                FN(fr_ld_)(src), FN(fr_ld_)(src + L), FR_ODD_LANES));
                        }
                    }
                    for (; q < hi; q++) dst[q] = row[q * sw + b - pw];
                }
        }
}

/* im2col (fr_conv.h's layout: row (c, i, j) of col, ld apart) from fr_pad_'s polyphase copy
 * xq of a strided convolution's input: row (c, i, j) at output row y is the W_out contiguous
 * elements of phase plane (c, i % sh, j % sw) at row y + i / sh from column j / sw, so there is
 * no index to clip (the padding is in xq) and no strided read. fr_im2col_'s clipping (two
 * divisions per row) and strided gathers of rows only 4-14 wide had cost half as much as the
 * product on ResNet-50's stride-2 3x3 convolutions (batch 32); unfolding from the copy made
 * their forward 1.1-1.25x faster at 1 thread (256->256 @14x14 29.6 -> 24.2 ms) and 1.2-1.5x at
 * 2 (20-21 -> 13.5 ms), the weight gradient 1.05-1.25x. */
FR_CLONES static void FN(fr_im2col_phased_)(const T *restrict xq, T *restrict col, int C, int KH,
                                            int KW, int sh, int sw, int Hq, int Wq, int H_out,
                                            int W_out, ptrdiff_t ld) {
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++) {
                const T *src = xq + ((((ptrdiff_t)c * sh + i % sh) * sw + j % sw) * Hq + i / sh)
                                        * Wq + j / sw;
                T *dst = col + ((ptrdiff_t)(c * KH + i) * KW + j) * ld;
                for (int y = 0; y < H_out; y++)
                    FN(fr_copy_)(src + (ptrdiff_t)y * Wq, dst + (ptrdiff_t)y * W_out, W_out);
            }
}

/* dx (C, 2Ho, 2Wo) = the four phases ph (planes (a, b) = 2a + b, each (C, Ho, Wo)) interleaved,
 * dx[c][2Y + a][2X + b] = ph[2a + b][c][Y][X] (+ res, shaped like dx) (then 0 where gate, shaped
 * like dx, is not > 0).
 * Wo % L == 0. */
FR_CLONES static void FN(fr_interleave2_)(const T *restrict ph, int C, int Ho, int Wo,
                                          T *restrict dx, const T *restrict res,
                                          const T *restrict gate) {
    const ptrdiff_t P = (ptrdiff_t)Ho * Wo, plane = (ptrdiff_t)C * P;
    for (int c = 0; c < C; c++)
        for (int Y = 0; Y < Ho; Y++)
            for (int a = 0; a < 2; a++) {
                const T *p0 = ph + 2 * a * plane + c * P + (ptrdiff_t)Y * Wo, *p1 = p0 + plane;
                const ptrdiff_t o = ((ptrdiff_t)c * 2 * Ho + 2 * Y + a) * 2 * Wo;
                for (int X = 0; X < Wo; X += L) {
                    const VEC v0 = FN(fr_ld_)(p0 + X), v1 = FN(fr_ld_)(p1 + X);
                    FN(fr_store_)(dx, o + 2 * X, __builtin_shufflevector(v0, v1, FR_LO_LANES),
                                  res, 0, gate);
                    FN(fr_store_)(dx, o + 2 * X + L,
                                  __builtin_shufflevector(v0, v1, FR_HI_LANES), res, 0, gate);
                }
            }
}

/* Batch-lane layout, for feature maps narrower than a vector (4x4: a row holds half a vector):
 * lane l of every element is image l of a group of nimg <= L images (the missing ones zero), so
 * a "pixel vector" is one pixel of L images and the kernels above run unchanged on it (tables
 * in units of L elements, channel stride P*L).
 * fr_lanes_in_: nimg (C, H, W) images xs apart -> xq (C, H + 2ph + eh, W + 2pw + ew, L),
 * zero-padded (eh, ew more zero rows and columns at the end: Winograd's even-sized tiling of an
 * odd map). */
static void FN(fr_lanes_in_)(const T *restrict x, ptrdiff_t xs, int nimg, T *restrict xq, int C,
                             int H, int W, int ph, int pw, int eh, int ew) {
    const int Hp = H + 2 * ph + eh, Wp = W + 2 * pw + ew;
    memset(xq, 0, sizeof(T) * (size_t)C * Hp * Wp * L);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            T *dst = xq + (((ptrdiff_t)c * Hp + y + ph) * Wp + pw) * L;
            const T *src = x + ((ptrdiff_t)c * H + y) * W;
            for (int q = 0; q < W; q++)
                for (int l = 0; l < nimg; l++) dst[q * L + l] = src[l * xs + q];
        }
}

/* (F, Hs, Ws, L) lanes -> the top-left (H, W) of the first nimg of its images, (F, H, W) each,
 * ds apart, [+ res (laid out as dst)] [then max(., 0) if relu: x <= 0 ? 0 : x]: the epilogue
 * of the batch-lane kernels, applied to each vector of L images before its lanes are stored
 * (one loop per case: with the tests inside the loop it cost 40% of a 64-channel 28x28
 * Winograd forward). */
#ifndef FR_LANES_OUT_CHUNK
#define FR_LANES_OUT_CHUNK 64
#endif
static inline __attribute__((always_inline)) void FN(fr_lanes_out_case_)(
    const T *restrict src, int F, int H, int W, int Hs, int Ws, int nimg, T *restrict dst,
    ptrdiff_t ds, const T *restrict res, const int RES, const int RELU) {
    T rl[FR_LANES_OUT_CHUNK * L]; /* a chunk of a row of res, in lanes (images read row-wise) */
    if (RES) memset(rl, 0, sizeof rl);
    for (int f = 0; f < F; f++)
        for (int y = 0; y < H; y++)
            for (int q0 = 0; q0 < W; q0 += FR_LANES_OUT_CHUNK) {
                const int n = W - q0 < FR_LANES_OUT_CHUNK ? W - q0 : FR_LANES_OUT_CHUNK;
                const ptrdiff_t o0 = ((ptrdiff_t)f * H + y) * W + q0;
                const T *s = src + (((ptrdiff_t)f * Hs + y) * Ws + q0) * L;
                if (RES)
                    for (int l = 0; l < nimg; l++)
                        for (int q = 0; q < n; q++) rl[q * L + l] = res[l * ds + o0 + q];
                for (int q = 0; q < n; q++) {
                    VEC v = FN(fr_ld_)(s + q * L);
                    if (RES) v += FN(fr_ld_)(rl + q * L);
                    if (RELU) v = (VEC)((IVEC)v & ~(v <= (VEC){0}));
                    for (int l = 0; l < nimg; l++) dst[l * ds + o0 + q] = v[l];
                }
            }
}

static void FN(fr_lanes_out_)(const T *restrict src, int F, int H, int W, int Hs, int Ws,
                              int nimg, T *restrict dst, ptrdiff_t ds, const T *restrict res,
                              int relu) {
    if (res && relu)
        FN(fr_lanes_out_case_)(src, F, H, W, Hs, Ws, nimg, dst, ds, res, 1, 1);
    else if (res)
        FN(fr_lanes_out_case_)(src, F, H, W, Hs, Ws, nimg, dst, ds, res, 1, 0);
    else if (relu)
        FN(fr_lanes_out_case_)(src, F, H, W, Hs, Ws, nimg, dst, ds, res, 0, 1);
    else
        FN(fr_lanes_out_case_)(src, F, H, W, Hs, Ws, nimg, dst, ds, res, 0, 0);
}

#include "fr_winograd_impl.h"

#undef FR_EVEN_LANES
#undef FR_ODD_LANES
#undef FR_LO_LANES
#undef FR_HI_LANES
#undef VEC
#undef IVEC
#undef FN
