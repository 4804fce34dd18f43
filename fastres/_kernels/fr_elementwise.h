/* Elementwise loops, multi-versioned per ISA (FR_CLONES). Callers split the range into chunks. */
#ifndef FASTRES_ELEMENTWISE_H
#define FASTRES_ELEMENTWISE_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

/* Each op: a static inline loop over one range (_run), and the multi-versioned entry point,
 * which streams its output past the caches when the caller asks (FR_STREAMED, fr_common.h).
 * add and mul may write over an input: each element is read before it is written. */
#define FR_DEFINE_ELEMENTWISE(T, IT, S)                                                          \
    static inline void fr_relu_run_##S(const T *restrict x, T *restrict y, ptrdiff_t n) {    \
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] <= 0 ? (T)0 : x[i];                      \
    }                                                                                        \
    FR_CLONES static void fr_relu_##S(const T *x, T *y, ptrdiff_t n, int stream) {           \
        FR_STREAMED(S, T, y, n, stream, fr_relu_run_##S(x + o_, d_, m_));                    \
    }                                                                                        \
    static inline void fr_relu_grad_run_##S(const T *restrict dy, const T *restrict y,       \
                                            T *restrict dx, ptrdiff_t n) {                   \
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (T)0;                    \
    }                                                                                        \
    FR_CLONES static void fr_relu_grad_##S(const T *dy, const T *y, T *dx, ptrdiff_t n,      \
                                           int stream) {                                     \
        FR_STREAMED(S, T, dx, n, stream, fr_relu_grad_run_##S(dy + o_, y + o_, d_, m_));     \
    }                                                                                        \
    static inline void fr_add_run_##S(const T *a, const T *b, T *out, ptrdiff_t n) {         \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] + b[i];                              \
    }                                                                                        \
    FR_CLONES static void fr_add_##S(const T *a, const T *b, T *out, ptrdiff_t n,            \
                                     int stream) {                                           \
        FR_STREAMED(S, T, out, n, stream, fr_add_run_##S(a + o_, b + o_, d_, m_));           \
    }                                                                                        \
    /* out = a + b where g > 0, else 0. Written with 32-byte vectors and a bit mask: as a      \
     * plain loop GCC moved the add under the condition and would not vectorise it. */        \
    static inline void fr_add_gated_run_##S(const T *restrict a, const T *restrict b,        \
                                            const T *restrict g, T *restrict out,            \
                                            ptrdiff_t n) {                                   \
        typedef T V __attribute__((vector_size(32)));                                        \
        typedef IT M __attribute__((vector_size(32)));                                       \
        const int l = (int)(32 / sizeof(T));                                                 \
        ptrdiff_t i = 0;                                                                     \
        for (; i + l <= n; i += l) {                                                         \
            V va, vb, vg;                                                                    \
            memcpy(&va, a + i, 32), memcpy(&vb, b + i, 32), memcpy(&vg, g + i, 32);          \
            V s = (V)((M)(va + vb) & (vg > (V){0}));                                         \
            memcpy(out + i, &s, 32);                                                         \
        }                                                                                    \
        for (; i < n; i++) {                                                                 \
            T s = a[i] + b[i];                                                               \
            out[i] = g[i] > 0 ? s : (T)0;                                                    \
        }                                                                                    \
    }                                                                                        \
    FR_CLONES static void fr_add_gated_##S(const T *restrict a, const T *restrict b,          \
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

FR_DEFINE_ELEMENTWISE(float, int, f)
FR_DEFINE_ELEMENTWISE(double, long long, d)

#endif
