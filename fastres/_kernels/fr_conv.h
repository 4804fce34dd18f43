/* im2col / col2im for one image and one channel group, multi-versioned per ISA (FR_CLONES).
 *
 * col has C*KH*KW rows of H_out*W_out values, ld elements apart (ld >= H_out*W_out, so several
 * images can sit side by side in one matrix), row (c, i, j) holding input channel c shifted by kernel
 * offset (i, j): col[(c*KH + i)*KW + j][y*W_out + x] = x[c][y*sh + i - ph][x*sw + j - pw], zero
 * where that falls in the padding. Every index is clamped to the input, so no geometry the Python
 * layer accepts can read or write outside x, col or dx.
 */
#ifndef FASTRES_CONV_H
#define FASTRES_CONV_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

/* Output columns [*lo, *hi) whose input column x*s + j - p lies inside [0, W). */
static inline void fr_valid_range(int W, int W_out, int s, int j, int p, int *lo, int *hi) {
    int t = p - j;
    int a = t > 0 ? (t + s - 1) / s : 0;
    int last = W - 1 + p - j;               /* largest x*s allowed */
    int b = last < 0 ? 0 : last / s + 1;
    if (b > W_out) b = W_out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

#define FR_DEFINE_IM2COL(T, S)                                                                 \
    FR_CLONES static void fr_im2col_##S(const T *restrict x, T *restrict col, int C, int H,     \
                                        int W, int KH, int KW, int sh, int sw, int ph, int pw, \
                                        int H_out, int W_out, ptrdiff_t ld) {                  \
        for (int c = 0; c < C; c++)                                                            \
            for (int i = 0; i < KH; i++)                                                       \
                for (int j = 0; j < KW; j++) {                                                 \
                    T *dst = col + ((ptrdiff_t)(c * KH + i) * KW + j) * ld;                    \
                    int lo, hi;                                                                \
                    fr_valid_range(W, W_out, sw, j, pw, &lo, &hi);                             \
                    for (int y = 0; y < H_out; y++, dst += W_out) {                            \
                        int iy = y * sh + i - ph;                                              \
                        if (iy < 0 || iy >= H || lo == hi) {                                   \
                            memset(dst, 0, sizeof(T) * W_out);                                 \
                            continue;                                                          \
                        }                                                                      \
                        const T *row = x + ((ptrdiff_t)c * H + iy) * W;                        \
                        for (int q = 0; q < lo; q++) dst[q] = 0;                               \
                        if (sw == 1) {                                                         \
                            memcpy(dst + lo, row + (lo + j - pw), sizeof(T) * (hi - lo));      \
                        } else {                                                               \
                            for (int q = lo; q < hi; q++) dst[q] = row[q * sw + j - pw];       \
                        }                                                                      \
                        for (int q = hi; q < W_out; q++) dst[q] = 0;                           \
                    }                                                                          \
                }                                                                              \
    }                                                                                          \
    /* dx (C, H, W) += col2im(col); the caller zeroes dx first. Fixed loop order. */           \
    FR_CLONES static void fr_col2im_##S(const T *restrict col, T *restrict dx, int C, int H,   \
                                        int W, int KH, int KW, int sh, int sw, int ph, int pw, \
                                        int H_out, int W_out, ptrdiff_t ld) {                  \
        for (int c = 0; c < C; c++)                                                            \
            for (int i = 0; i < KH; i++)                                                       \
                for (int j = 0; j < KW; j++) {                                                 \
                    const T *src = col + ((ptrdiff_t)(c * KH + i) * KW + j) * ld;              \
                    int lo, hi;                                                                \
                    fr_valid_range(W, W_out, sw, j, pw, &lo, &hi);                             \
                    for (int y = 0; y < H_out; y++, src += W_out) {                            \
                        int iy = y * sh + i - ph;                                              \
                        if (iy < 0 || iy >= H) continue;                                       \
                        T *row = dx + ((ptrdiff_t)c * H + iy) * W;                             \
                        if (sw == 1) {                                                         \
                            const int off = j - pw;                                            \
                            for (int q = lo; q < hi; q++) row[q + off] += src[q];              \
                        } else {                                                               \
                            for (int q = lo; q < hi; q++) row[q * sw + j - pw] += src[q];      \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
    }                                                                                          \
    /* The F rows of m images (each (F, P), images ds elements apart) side by side in one     \
     * (F, m*P) matrix, and back. */                                                           \
    static void fr_images_to_cols_##S(const T *restrict img, ptrdiff_t ds, T *restrict cols,   \
                                      int m, int F, ptrdiff_t P) {                             \
        for (int f = 0; f < F; f++)                                                            \
            for (int i = 0; i < m; i++)                                                        \
                memcpy(cols + ((ptrdiff_t)f * m + i) * P, img + i * ds + f * P, sizeof(T) * P); \
    }                                                                                          \
    static void fr_cols_to_images_##S(const T *restrict cols, T *restrict img, ptrdiff_t ds,   \
                                      int m, int F, ptrdiff_t P) {                             \
        for (int f = 0; f < F; f++)                                                            \
            for (int i = 0; i < m; i++)                                                        \
                memcpy(img + i * ds + f * P, cols + ((ptrdiff_t)f * m + i) * P, sizeof(T) * P); \
    }                                                                                          \
    /* out[f][p] = [relu]((out[f][p] + b[f]) + res[f][p]) for an (F, P) block, as the other   \
     * kernels' epilogues; b and res may be NULL. One loop per case, so each vectorises. */     \
    FR_CLONES static void fr_epilogue_##S(T *restrict out, const T *restrict b,               \
                                          const T *restrict res, int relu, int F,              \
                                          ptrdiff_t P) {                                       \
        for (int f = 0; f < F; f++) {                                                          \
            const T v = b ? b[f] : (T)0;                                                       \
            T *restrict o = out + f * P;                                                       \
            const T *restrict r = res ? res + f * P : NULL;                                    \
            if (r && relu)                                                                     \
                for (ptrdiff_t p = 0; p < P; p++) {                                            \
                    T s = (o[p] + v) + r[p];                                                   \
                    o[p] = s <= 0 ? (T)0 : s;                                                  \
                }                                                                              \
            else if (r)                                                                        \
                for (ptrdiff_t p = 0; p < P; p++) o[p] = (o[p] + v) + r[p];                    \
            else if (relu)                                                                     \
                for (ptrdiff_t p = 0; p < P; p++) {                                            \
                    T s = o[p] + v;                                                            \
                    o[p] = s <= 0 ? (T)0 : s;                                                  \
                }                                                                              \
            else                                                                               \
                for (ptrdiff_t p = 0; p < P; p++) o[p] += v;                                   \
        }                                                                                      \
    }                                                                                          \
    /* acc[f] += sum_p d[f][p] for an (F, P) block: element p into lane p % 16, the lanes     \
     * folded pairwise (a fixed order; independent lanes let GCC vectorise, where one running  \
     * sum was a scalar add chain: 14% of a strided 1x1 convolution's backward). */            \
    FR_CLONES static void fr_row_sums_##S(const T *restrict d, T *restrict acc, int F,         \
                                          ptrdiff_t P) {                                       \
        const ptrdiff_t Pv = P - P % 16;                                                       \
        for (int f = 0; f < F; f++) {                                                          \
            const T *r = d + f * P;                                                            \
            T s[16] = {0};                                                                     \
            for (ptrdiff_t p = 0; p < Pv; p += 16)                                             \
                for (int l = 0; l < 16; l++) s[l] += r[p + l];                                 \
            for (ptrdiff_t p = Pv; p < P; p++) s[p - Pv] += r[p];                              \
            FR_FOLD_PAIRWISE(s, 16);                                                           \
            acc[f] += s[0];                                                                    \
        }                                                                                      \
    }                                                                                          \
    /* out[k] = part[0][k] + part[1][k] + ... (block order; blocks size apart), k0 <= k < k1:   \
     * block by block over the range, so the adds vectorise and out stays in cache. */         \
    FR_CLONES static void fr_sum_blocks_##S(const T *restrict part, int n_blocks,              \
                                            ptrdiff_t size, ptrdiff_t k0, ptrdiff_t k1,        \
                                            T *restrict out) {                                 \
        for (ptrdiff_t k = k0; k < k1; k++) out[k] = part[k];                                  \
        for (int b = 1; b < n_blocks; b++) {                                                   \
            const T *restrict p = part + b * size;                                             \
            for (ptrdiff_t k = k0; k < k1; k++) out[k] += p[k];                                \
        }                                                                                      \
    }

FR_DEFINE_IM2COL(float, f)
FR_DEFINE_IM2COL(double, d)

#endif
