/* Elementwise loops, multi-versioned per ISA (FR_CLONES). Callers split the range into chunks. */
#ifndef FASTRES_ELEMENTWISE_H
#define FASTRES_ELEMENTWISE_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

#define FR_DEFINE_ELEMENTWISE(T, IT, S)                                                          \
    FR_CLONES static void fr_relu_##S(const T *restrict x, T *restrict y, ptrdiff_t n) {     \
        for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (T)0;                      \
    }                                                                                        \
    FR_CLONES static void fr_relu_grad_##S(const T *restrict dy, const T *restrict y,        \
                                           T *restrict dx, ptrdiff_t n) {                    \
        for (ptrdiff_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (T)0;                    \
    }                                                                                        \
    FR_CLONES static void fr_add_##S(const T *a, const T *b, T *out, ptrdiff_t n) {          \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] + b[i];                              \
    }                                                                                        \
    /* out = a + b where g > 0, else 0. Written with 32-byte vectors and a bit mask: as a      \
     * plain loop GCC moved the add under the condition and would not vectorise it. */        \
    FR_CLONES static void fr_add_gated_##S(const T *restrict a, const T *restrict b,          \
                                           const T *restrict g, T *restrict out, ptrdiff_t n) { \
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
    FR_CLONES static void fr_mul_##S(const T *a, const T *b, T *out, ptrdiff_t n) {          \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] * b[i];                              \
    }

FR_DEFINE_ELEMENTWISE(float, int, f)
FR_DEFINE_ELEMENTWISE(double, long long, d)

#endif
