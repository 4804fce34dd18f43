/* Strided pointwise (1x1, no padding, one group) convolution, one image at a time,
 * multi-versioned per ISA (FR_CLONES): ResNet's downsampling shortcut, 1x1 with stride 2.
 *
 * Such a convolution reads every sh-th row and sw-th column of x and is a product of an
 * (F, C) weight matrix with the (C, P) matrix of those pixels (P = Ho * Wo). Its operands are
 * tiny in one dimension (C, F = 16..64), where BLAS spends its time packing (this module replaced
 * a subsampling pass plus BLAS and a zero-filling pass: see functional/conv.py), so the products
 * here are register tiles of 4 rows by FR_PW_PB pixels, summing over the short dimension in a
 * fixed order; the subsampled image (gathered) and the input gradient's (C, P) result
 * (scattered into dx with its zeros) stay in a thread's scratch, in cache.
 *
 * Every loop bound is an argument the Cython layer checked against the arrays' shapes.
 */
#ifndef FASTRES_POINTWISE_H
#define FASTRES_POINTWISE_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

#define FR_PW_PB 16 /* pixels per register tile: two 32-byte vectors of float, four of double */
#define FR_PW_LANES 8 /* weight-gradient lanes per (f, c): pixel p sums into lane p % 8 */
#define FR_PW_WF 4 /* weight-gradient tile: 4 rows of dout by 2 channels of x */

#if defined(__GNUC__)
/* The full 4 x FR_PW_PB tile in vector registers, its epilogue included (GCC kept the plain
 * loop's accumulators on the stack and zeroed them with rep stos: 2-3x slower). Each lane sums
 * k in the same order as the portable loop. Returns 1 (done). */
#define FR_PW_VEC(S, T)                                                                         \
    static inline int fr_pw_tile_##S(const T *restrict a, const T *restrict b, T *restrict out, \
                                     int K, ptrdiff_t P, const T *restrict bias,                \
                                     const T *restrict res, int relu) {                         \
        enum { NV = FR_PW_PB * sizeof(T) / 32, L = 32 / sizeof(T) };                            \
        fr_vec_##S va[4][NV];                                                                   \
        for (int i = 0; i < 4; i++)                                                             \
            for (int v = 0; v < NV; v++) va[i][v] = (fr_vec_##S){0};                            \
        for (int k = 0; k < K; k++) {                                                           \
            fr_vec_##S bv[NV];                                                                  \
            for (int v = 0; v < NV; v++) bv[v] = *(const fr_uvec_##S *)(b + k * P + v * L);     \
            for (int i = 0; i < 4; i++) {                                                       \
                const T ak = a[(ptrdiff_t)i * K + k];                                           \
                for (int v = 0; v < NV; v++) va[i][v] += ak * bv[v];                            \
            }                                                                                   \
        }                                                                                       \
        for (int i = 0; i < 4; i++)                                                             \
            for (int v = 0; v < NV; v++) {                                                      \
                fr_vec_##S s = va[i][v] + (bias ? bias[i] : (T)0);                              \
                if (res) s += *(const fr_uvec_##S *)(res + i * P + v * L);                      \
                if (relu) s = (fr_vec_##S)((fr_ivec_##S)s & ~(s <= 0));                         \
                *(fr_uvec_##S *)(out + i * P + v * L) = s;                                      \
            }                                                                                   \
        return 1;                                                                               \
    }                                                                                           \
    /* acc[i][k][l] += d[i][p + l] * x[k][p + l] for p < Pv in steps of FR_PW_LANES (see        \
     * fr_pw_wgrad), in vector registers. */                                                    \
    static inline void fr_pw_wtile_##S(const T *const *d, const T *const *x, ptrdiff_t Pv,      \
                                       T acc[FR_PW_WF][2][FR_PW_LANES]) {                       \
        enum { NV = FR_PW_LANES * sizeof(T) / 32, L = 32 / sizeof(T) };                         \
        fr_vec_##S va[FR_PW_WF][2][NV];                                                         \
        memcpy(va, acc, sizeof va);                                                             \
        for (ptrdiff_t p = 0; p < Pv; p += FR_PW_LANES)                                         \
            for (int v = 0; v < NV; v++) {                                                      \
                const fr_vec_##S b0 = *(const fr_uvec_##S *)(x[0] + p + v * L);                 \
                const fr_vec_##S b1 = *(const fr_uvec_##S *)(x[1] + p + v * L);                 \
                for (int i = 0; i < FR_PW_WF; i++) {                                            \
                    const fr_vec_##S a = *(const fr_uvec_##S *)(d[i] + p + v * L);              \
                    va[i][0][v] += a * b0;                                                      \
                    va[i][1][v] += a * b1;                                                      \
                }                                                                               \
            }                                                                                   \
        memcpy(acc, va, sizeof va);                                                             \
    }
FR_PW_VEC(f, float)
FR_PW_VEC(d, double)
#else
#define FR_PW_PORTABLE(S, T)                                                                    \
    static inline int fr_pw_tile_##S(const T *a, const T *b, T *out, int K, ptrdiff_t P,        \
                                     const T *bias, const T *res, int relu) {                   \
        (void)a, (void)b, (void)out, (void)K, (void)P, (void)bias, (void)res, (void)relu;       \
        return 0;                                                                               \
    }                                                                                           \
    static inline void fr_pw_wtile_##S(const T *const *d, const T *const *x, ptrdiff_t Pv,      \
                                       T acc[FR_PW_WF][2][FR_PW_LANES]) {                       \
        for (ptrdiff_t p = 0; p < Pv; p += FR_PW_LANES)                                         \
            for (int i = 0; i < FR_PW_WF; i++)                                                  \
                for (int l = 0; l < FR_PW_LANES; l++) {                                         \
                    acc[i][0][l] += d[i][p + l] * x[0][p + l];                                  \
                    acc[i][1][l] += d[i][p + l] * x[1][p + l];                                  \
                }                                                                               \
    }
FR_PW_PORTABLE(f, float)
FR_PW_PORTABLE(d, double)
#endif

#define FR_DEFINE_POINTWISE(T, S)                                                               \
    /* xs (C, Ho*Wo) = x (C, H, W) at rows y*sh, columns j*sw. */                               \
    FR_CLONES static void fr_pw_gather_##S(const T *restrict x, T *restrict xs, int C, int H,   \
                                           int W, int sh, int sw, int Ho, int Wo) {             \
        for (int c = 0; c < C; c++)                                                             \
            for (int y = 0; y < Ho; y++) {                                                      \
                const T *restrict r = x + ((ptrdiff_t)c * H + (ptrdiff_t)y * sh) * W;           \
                T *restrict d = xs + ((ptrdiff_t)c * Ho + y) * Wo;                              \
                if (sw == 2)                                                                    \
                    for (int j = 0; j < Wo; j++) d[j] = r[2 * j];                               \
                else                                                                            \
                    for (int j = 0; j < Wo; j++) d[j] = r[(ptrdiff_t)j * sw];                   \
            }                                                                                   \
    }                                                                                           \
    /* out (M, P) = a (M, K) @ b (K, P) [+ bias[m]] [+ res (M, P)] [then max(., 0), NaN kept    \
     * as in every ReLU here]; each output sums k = 0..K-1 in order, then the bias, then res. */ \
    FR_CLONES static void fr_pw_product_##S(const T *restrict a, const T *restrict b,           \
                                            T *restrict out, int M, int K, ptrdiff_t P,         \
                                            const T *restrict bias, const T *restrict res,      \
                                            int relu) {                                         \
        for (int m0 = 0; m0 < M; m0 += 4) {                                                     \
            const int mr = M - m0 < 4 ? M - m0 : 4;                                             \
            for (ptrdiff_t p0 = 0; p0 < P; p0 += FR_PW_PB) {                                    \
                const ptrdiff_t pr = P - p0 < FR_PW_PB ? P - p0 : FR_PW_PB;                     \
                if (mr == 4 && pr == FR_PW_PB                                                   \
                    && fr_pw_tile_##S(a + (ptrdiff_t)m0 * K, b + p0, out + m0 * P + p0, K, P,   \
                                      bias ? bias + m0 : NULL, res ? res + m0 * P + p0 : NULL,  \
                                      relu))                                                    \
                    continue;                                                                   \
                T acc[4][FR_PW_PB] = {{0}}; /* an edge tile (or no vector extensions) */        \
                for (int k = 0; k < K; k++) {                                                   \
                    const T *restrict bk = b + (ptrdiff_t)k * P + p0;                           \
                    for (int i = 0; i < mr; i++) {                                              \
                        const T ak = a[(ptrdiff_t)(m0 + i) * K + k];                            \
                        for (ptrdiff_t j = 0; j < pr; j++) acc[i][j] += ak * bk[j];             \
                    }                                                                           \
                }                                                                               \
                for (int i = 0; i < mr; i++) {                                                  \
                    const T v = bias ? bias[m0 + i] : (T)0;                                     \
                    T *restrict o = out + (ptrdiff_t)(m0 + i) * P + p0;                         \
                    const T *restrict r = res ? res + (ptrdiff_t)(m0 + i) * P + p0 : NULL;      \
                    for (ptrdiff_t j = 0; j < pr; j++) o[j] = acc[i][j] + v;                    \
                    if (r)                                                                      \
                        for (ptrdiff_t j = 0; j < pr; j++) o[j] += r[j];                        \
                    if (relu)                                                                   \
                        for (ptrdiff_t j = 0; j < pr; j++) o[j] = o[j] <= 0 ? (T)0 : o[j];      \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    /* dx (C, H, W) = dxs (C, Ho*Wo) at rows y*sh, columns j*sw, 0 elsewhere [+ add (C, H, W)]  \
     * [then 0 where gate (C, H, W) is not > 0]. With a row buffer rowbuf (W elements), each    \
     * row is made there and streamed to dx past the caches (FR_STREAMED's reasoning). */       \
    FR_CLONES static void fr_pw_scatter_##S(const T *restrict dxs, T *restrict dx, int C,       \
                                            int H, int W, int sh, int sw, int Ho, int Wo,       \
                                            const T *restrict add, const T *restrict gate,      \
                                            T *restrict rowbuf) {                               \
        for (int c = 0; c < C; c++)                                                             \
            for (int y = 0; y < H; y++) {                                                       \
                const ptrdiff_t o = ((ptrdiff_t)c * H + y) * W;                                 \
                T *restrict d = rowbuf ? rowbuf : dx + o;                                       \
                const T *restrict a = add ? add + o : NULL;                                     \
                const T *restrict s = y % sh == 0 && y / sh < Ho                                \
                                          ? dxs + ((ptrdiff_t)c * Ho + y / sh) * Wo : NULL;     \
                if (s && sw == 2 && W == 2 * Wo) { /* interleave with zeros: vectorises */      \
                    if (a)                                                                      \
                        for (int j = 0; j < Wo; j++) {                                          \
                            d[2 * j] = a[2 * j] + s[j];                                         \
                            d[2 * j + 1] = a[2 * j + 1];                                        \
                        }                                                                       \
                    else                                                                        \
                        for (int j = 0; j < Wo; j++) {                                          \
                            d[2 * j] = s[j];                                                    \
                            d[2 * j + 1] = 0;                                                   \
                        }                                                                       \
                } else {                                                                        \
                    if (a)                                                                      \
                        memcpy(d, a, sizeof(T) * W);                                            \
                    else                                                                        \
                        memset(d, 0, sizeof(T) * W);                                            \
                    if (s)                                                                      \
                        for (int j = 0; j < Wo; j++) d[(ptrdiff_t)j * sw] += s[j];              \
                }                                                                               \
                if (gate) {                                                                     \
                    const T *restrict g = gate + o;                                             \
                    for (int q = 0; q < W; q++) d[q] = g[q] > 0 ? d[q] : (T)0;                  \
                }                                                                               \
                if (rowbuf) fr_stream_##S(dx + o, rowbuf, W);                                   \
            }                                                                                   \
        if (rowbuf) fr_stream_fence();                                                          \
    }                                                                                           \
    /* lanes (F*C, FR_PW_LANES) += the products of dout (F, P) and xs (C, P): lane l of (f, c)  \
     * sums dout[f][p] * xs[c][p] over p = l mod FR_PW_LANES, in p order. Tiles of FR_PW_WF     \
     * rows by 2 channels; a tile's missing rows and channels repeat its last one (computed,    \
     * never stored), so every read stays in dout and xs. */                                    \
    FR_CLONES static void fr_pw_wgrad_##S(const T *restrict dout, const T *restrict xs,         \
                                          T *restrict lanes, int F, int C, ptrdiff_t P) {       \
        const ptrdiff_t Pv = P - P % FR_PW_LANES;                                               \
        for (int f0 = 0; f0 < F; f0 += FR_PW_WF)                                                \
            for (int c0 = 0; c0 < C; c0 += 2) {                                                 \
                const int fr = F - f0 < FR_PW_WF ? F - f0 : FR_PW_WF;                           \
                const int cr = C - c0 < 2 ? C - c0 : 2;                                         \
                const T *d[FR_PW_WF], *x[2];                                                    \
                T acc[FR_PW_WF][2][FR_PW_LANES];                                                \
                for (int i = 0; i < FR_PW_WF; i++)                                              \
                    d[i] = dout + (ptrdiff_t)(f0 + (i < fr ? i : fr - 1)) * P;                  \
                for (int k = 0; k < 2; k++) x[k] = xs + (ptrdiff_t)(c0 + (k < cr ? k : 0)) * P; \
                for (int i = 0; i < FR_PW_WF; i++)                                              \
                    for (int k = 0; k < 2; k++)                                                 \
                        for (int l = 0; l < FR_PW_LANES; l++)                                   \
                            acc[i][k][l] = i < fr && k < cr                                     \
                                ? lanes[((ptrdiff_t)(f0 + i) * C + c0 + k) * FR_PW_LANES + l]   \
                                : (T)0;                                                         \
                fr_pw_wtile_##S(d, x, Pv, acc);                                                 \
                for (ptrdiff_t p = Pv; p < P; p++)                                              \
                    for (int i = 0; i < FR_PW_WF; i++)                                          \
                        for (int k = 0; k < 2; k++) acc[i][k][p - Pv] += d[i][p] * x[k][p];     \
                for (int i = 0; i < fr; i++)                                                    \
                    for (int k = 0; k < cr; k++)                                                \
                        for (int l = 0; l < FR_PW_LANES; l++)                                   \
                            lanes[((ptrdiff_t)(f0 + i) * C + c0 + k) * FR_PW_LANES + l] =       \
                                acc[i][k][l];                                                   \
            }                                                                                   \
    }                                                                                           \
    /* out[k] = the FR_PW_LANES lanes of row k folded pairwise (a fixed tree), k < n. */        \
    static void fr_pw_fold_##S(const T *restrict lanes, T *restrict out, ptrdiff_t n) {         \
        for (ptrdiff_t k = 0; k < n; k++) {                                                     \
            T a[FR_PW_LANES];                                                                   \
            memcpy(a, lanes + k * FR_PW_LANES, sizeof a);                                       \
            FR_FOLD_PAIRWISE(a, FR_PW_LANES);                                                   \
            out[k] = a[0];                                                                      \
        }                                                                                       \
    }

FR_DEFINE_POINTWISE(float, f)
FR_DEFINE_POINTWISE(double, d)

#endif
