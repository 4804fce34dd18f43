/* Helpers of the linear kernels, multi-versioned per ISA (FR_CLONES). */
#ifndef FASTRES_LINEAR_H
#define FASTRES_LINEAR_H
#include <stddef.h>
#include "fr_common.h"

#define FR_COLSUM_MAX 256 /* callers pass at most this many columns (SUM_BLOCK in _linear.pyx) */

/* out[j] = sum_i a[i*lda + j] for j < cols (<= FR_COLSUM_MAX), rows summed in order, in double
 * for both types: a float32 bias gradient over a large batch keeps float32 precision. */
#define FR_DEFINE_LINEAR(T, S)                                                               \
    FR_CLONES static void fr_colsum_##S(const T *restrict a, ptrdiff_t rows, ptrdiff_t cols,  \
                                        ptrdiff_t lda, T *restrict out) {                    \
        double acc[FR_COLSUM_MAX];                                                           \
        for (ptrdiff_t j = 0; j < cols; j++) acc[j] = 0.0;                                   \
        for (ptrdiff_t i = 0; i < rows; i++) {                                               \
            const T *restrict row = a + i * lda;                                             \
            for (ptrdiff_t j = 0; j < cols; j++) acc[j] += (double)row[j];                   \
        }                                                                                    \
        for (ptrdiff_t j = 0; j < cols; j++) out[j] = (T)acc[j];                             \
    }                                                                                        \
    /* c[i*ldc + j] = b[j] for i < rows, j < cols: the bias rows gemm then adds onto. */     \
    FR_CLONES static void fr_fill_rows_##S(const T *restrict b, ptrdiff_t rows,              \
                                           ptrdiff_t cols, T *restrict c, ptrdiff_t ldc) {   \
        for (ptrdiff_t i = 0; i < rows; i++) memcpy(c + i * ldc, b, (size_t)cols * sizeof(T)); \
    }

FR_DEFINE_LINEAR(float, f)
FR_DEFINE_LINEAR(double, d)

#endif
