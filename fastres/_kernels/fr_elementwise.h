/* Elementwise loops, multi-versioned per ISA (FR_CLONES). Callers split the range into chunks. */
#ifndef FASTRES_ELEMENTWISE_H
#define FASTRES_ELEMENTWISE_H
#include <stddef.h>
#include "fr_common.h"

#define FR_DEFINE_ELEMENTWISE(T, S)                                                          \
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
    FR_CLONES static void fr_mul_##S(const T *a, const T *b, T *out, ptrdiff_t n) {          \
        for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] * b[i];                              \
    }

FR_DEFINE_ELEMENTWISE(float, f)
FR_DEFINE_ELEMENTWISE(double, d)

#endif
