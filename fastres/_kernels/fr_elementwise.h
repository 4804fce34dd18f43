/* Elementwise loops, multi-versioned per ISA (FR_CLONES). Callers split the range into chunks. */
#ifndef FASTRES_ELEMENTWISE_H
#define FASTRES_ELEMENTWISE_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

/* Each op: a static inline loop over one range (_run), and the multi-versioned entry point,
 * which streams its output past the caches when the caller asks (FR_STREAMED, fr_common.h).
 * add and mul may write over an input: each element is read before it is written. */

/* Bytes of fr_relu_mask's bits for n elements: 32 per started block of 256. */
#define FR_MASK_BYTES(n) (((n) + 255) / 256 * 32)
/* A streamed pass computes its ranges FR_STREAM_CHUNK elements apart: whole blocks of bits. */
_Static_assert(FR_STREAM_CHUNK % 256 == 0, "streamed ranges must start on a block of mask bits");

#define FR_DEFINE_ELEMENTWISE(T, UT, S)                                                      \
    static inline void fr_relu_grad_run_##S(const T *restrict dy, const T *restrict y,       \
                                            T *restrict dx, ptrdiff_t n) {                   \
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (T)0;                   \
    }                                                                                        \
    FR_CLONES static void fr_relu_grad_##S(const T *dy, const T *y, T *dx, ptrdiff_t n,      \
                                           int stream) {                                     \
        FR_STREAMED(S, T, dx, n, stream, fr_relu_grad_run_##S(dy + o_, y + o_, d_, m_));     \
    }                                                                                        \
    /* relu keeping its gradient's mask as bits m (x > 0), in blocks of 256 elements: the    \
     * block's 32 bytes are the L lanes (L = 32 / sizeof(T)) of a vector of unsigned UT, of  \
     * B = 256 / L bits each; bit B-1-k of lane j says whether element k * L + j is > 0 (the \
     * lanes are shifted left by one as each vector's bits come in, then read back from the  \
     * top), so packing and unpacking are lane-wise, with no shuffle across lanes; a partial \
     * last block keeps the same positions.                                                  \
     * n elements take FR_MASK_BYTES(n) bytes; a range starting at a multiple of 256 elements   \
     * starts its bits at byte offset / 8. */                                                \
    static inline void fr_relu_mask_run_##S(const T *restrict x, T *restrict y,              \
                                            unsigned char *restrict m, ptrdiff_t n) {        \
        const int l = (int)(32 / sizeof(T));                                                 \
        ptrdiff_t i = 0;                                                                     \
        for (; i + 256 <= n; i += 256) {                                                     \
            fr_bits_##S bits = {0};                                                          \
            for (int k = 0; k < 256 / l; k++) {                                              \
                fr_vec_##S v;                                                                \
                memcpy(&v, x + i + k * l, 32);                                               \
                fr_vec_##S r = (fr_vec_##S)((fr_ivec_##S)v & ~(v <= 0));                     \
                memcpy(y + i + k * l, &r, 32);                                               \
                bits = (bits + bits) - (fr_bits_##S)(v > 0); /* shift in 1 where v > 0 */    \
            }                                                                                \
            memcpy(m + i / 8, &bits, 32);                                                    \
        }                                                                                    \
        if (i < n) {                                                                         \
            UT bits[32 / sizeof(UT)] = {0};                                                  \
            for (ptrdiff_t r = 0; i + r < n; r++) {                                          \
                T v = x[i + r];                                                              \
                y[i + r] = v <= 0 ? (T)0 : v;                                                \
                bits[r % l] |= (UT)(v > 0) << (256 / l - 1 - r / l);                         \
            }                                                                                \
            memcpy(m + i / 8, bits, 32);                                                     \
        }                                                                                    \
    }                                                                                        \
    FR_CLONES static void fr_relu_mask_##S(const T *x, T *y, unsigned char *m, ptrdiff_t n,  \
                                           int stream) {                                     \
        FR_STREAMED(S, T, y, n, stream, fr_relu_mask_run_##S(x + o_, d_, m + o_ / 8, m_));   \
    }                                                                                        \
    /* dx = dy where the mask's bit is set, else +0 (fr_relu_mask's layout). */              \
    static inline void fr_relu_grad_mask_run_##S(const T *restrict dy,                       \
                                                 const unsigned char *restrict m,            \
                                                 T *restrict dx, ptrdiff_t n) {              \
        const int l = (int)(32 / sizeof(T));                                                 \
        ptrdiff_t i = 0;                                                                     \
        for (; i + 256 <= n; i += 256) {                                                     \
            fr_bits_##S bits;                                                                \
            memcpy(&bits, m + i / 8, 32);                                                    \
            for (int k = 0; k < 256 / l; k++) {                                              \
                fr_vec_##S v;                                                                \
                memcpy(&v, dy + i + k * l, 32);                                              \
                /* the top bit, as -1 or 0 */                                                \
                fr_vec_##S r = (fr_vec_##S)((fr_ivec_##S)v & ((fr_ivec_##S)bits < 0));       \
                memcpy(dx + i + k * l, &r, 32);                                              \
                bits += bits;                                                                \
            }                                                                                \
        }                                                                                    \
        if (i < n) {                                                                         \
            UT bits[32 / sizeof(UT)];                                                        \
            memcpy(bits, m + i / 8, 32);                                                     \
            for (ptrdiff_t r = 0; i + r < n; r++)                                            \
                dx[i + r] = (bits[r % l] >> (256 / l - 1 - r / l)) & 1 ? dy[i + r] : (T)0;   \
        }                                                                                    \
    }                                                                                        \
    FR_CLONES static void fr_relu_grad_mask_##S(const T *dy, const unsigned char *m, T *dx,  \
                                                ptrdiff_t n, int stream) {                   \
        FR_STREAMED(S, T, dx, n, stream,                                                     \
                    fr_relu_grad_mask_run_##S(dy + o_, m + o_ / 8, d_, m_));                 \
    }                                                                                        \
    static inline void fr_add_run_##S(const T *a, const T *b, T *out, ptrdiff_t n) {         \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] + b[i];                              \
    }                                                                                        \
    FR_CLONES static void fr_add_##S(const T *a, const T *b, T *out, ptrdiff_t n,            \
                                     int stream) {                                           \
        FR_STREAMED(S, T, out, n, stream, fr_add_run_##S(a + o_, b + o_, d_, m_));           \
    }                                                                                        \
    /* out = a + b where g > 0, else 0. Written with 32-byte vectors and a bit mask: as a    \
     * plain loop GCC moved the add under the condition and would not vectorise it. */       \
    static inline void fr_add_gated_run_##S(const T *restrict a, const T *restrict b,        \
                                            const T *restrict g, T *restrict out,            \
                                            ptrdiff_t n) {                                   \
        const int l = (int)(32 / sizeof(T));                                                 \
        ptrdiff_t i = 0;                                                                     \
        for (; i + l <= n; i += l) {                                                         \
            fr_vec_##S va, vb, vg;                                                           \
            memcpy(&va, a + i, 32), memcpy(&vb, b + i, 32), memcpy(&vg, g + i, 32);          \
            fr_vec_##S s = (fr_vec_##S)((fr_ivec_##S)(va + vb) & (vg > 0));                  \
            memcpy(out + i, &s, 32);                                                         \
        }                                                                                    \
        for (; i < n; i++) {                                                                 \
            T s = a[i] + b[i];                                                               \
            out[i] = g[i] > 0 ? s : (T)0;                                                    \
        }                                                                                    \
    }                                                                                        \
    FR_CLONES static void fr_add_gated_##S(const T *restrict a, const T *restrict b,         \
                                           const T *restrict g, T *restrict out, ptrdiff_t n, \
                                           int stream) {                                     \
        FR_STREAMED(S, T, out, n, stream, fr_add_gated_run_##S(a + o_, b + o_, g + o_, d_, m_)); \
    }                                                                                        \
    static inline void fr_mul_run_##S(const T *a, const T *b, T *out, ptrdiff_t n) {         \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] * b[i];                              \
    }                                                                                        \
    FR_CLONES static void fr_mul_##S(const T *a, const T *b, T *out, ptrdiff_t n,            \
                                     int stream) {                                           \
        FR_STREAMED(S, T, out, n, stream, fr_mul_run_##S(a + o_, b + o_, d_, m_));           \
    }

FR_DEFINE_ELEMENTWISE(float, unsigned, f)
FR_DEFINE_ELEMENTWISE(double, unsigned long long, d)

#endif
