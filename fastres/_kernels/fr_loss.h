/* Per-row softmax cross-entropy, multi-versioned per ISA (FR_CLONES).
 *
 * libm's exp/expf are scalar calls that stop GCC from vectorising the row loops (measured at
 * ~6 ns per logit), so the exponentials here are written as branch-free C that GCC vectorises in
 * each clone: Cody-Waite range reduction x = k ln2 + r, |r| <= ln2/2, a polynomial for e^r, and
 * 2^k built in the exponent bits. They are valid for x <= 0 and NaN, the only arguments that
 * occur (logits minus the row max).
 * Accuracy (checked against libm over [-750, 0] and the subnormal edge): fr_exp_d within 2 ulp,
 * fr_exp_f within 2 ulp (1 ulp measured); results that would be subnormal are flushed to 0 (a
 * softmax term below FLT_MIN / DBL_MIN times the row's largest one, which is 1); NaN propagates.
 */
#ifndef FASTRES_LOSS_H
#define FASTRES_LOSS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fr_common.h"

/* GCC will not if-convert the floating-point selects below (clamps, max, NaN pass-through) while
 * comparisons may trap, which keeps every loop here scalar; nothing in fastres reads the FP
 * exception flags, so allow it for this header only. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

static inline float fr_exp_f(float x) {
    const float lo = -87.33654475f; /* log(FLT_MIN): below it the result would be subnormal */
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < lo ? lo : x;
    float kb = xc * 1.44269504089f + magic;
    float k = kb - magic;
    /* ln2 split in two so that k * ln2_hi is exact (Cephes). */
    float r = xc - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    uint32_t kbits, sbits; /* unsigned: a NaN's garbage bits must not overflow a signed int */
    memcpy(&kbits, &kb, sizeof kbits);
    sbits = (kbits - 0x4B400000u + 127u) << 23; /* 2^k as float bits */
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    y = y * scale;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

static inline double fr_exp_d(double x) {
    const double lo = -708.3964185322641; /* log(DBL_MIN) */
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = x < lo ? lo : x;
    double kb = xc * 1.4426950408889634 + magic;
    double k = kb - magic;
    /* ln2_hi has 32 trailing zero bits, so k * ln2_hi is exact for |k| < 2^20 (fdlibm). */
    double r = xc - k * 6.93147180369123816490e-01;
    r = r - k * 1.90821492927058770002e-10;
    /* e^r = 1 + r + r^2/2! + ... + r^13/13!; the next term is < 2e-17 for |r| <= ln2/2. */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    double y = p * r + 1.0;
    uint64_t kbits, sbits;
    memcpy(&kbits, &kb, sizeof kbits);
    sbits = (kbits - UINT64_C(0x4338000000000000) + 1023u) << 52;
    double scale;
    memcpy(&scale, &sbits, sizeof scale);
    y = y * scale;
    y = x < lo ? 0.0 : y;
    return x != x ? x : y;
}

/* Four iterations of the flat exp loop in one: more independent work in flight for the
 * out-of-order core (10 classes, batch 128: the kernel call 7.6 -> 7.2 us). */
#if defined(__GNUC__) && !defined(__clang__)
#define FR_XENT_UNROLL _Pragma("GCC unroll 4")
#else
#define FR_XENT_UNROLL
#endif

/* `omp simd reduction` lets GCC keep vector-wide partial sums; a serial build (no OpenMP) gets
 * plain loops instead of unknown-pragma warnings. */
#if defined(_OPENMP)
#define FR_PRAGMA(x) _Pragma(#x)
#else
#define FR_PRAGMA(x)
#endif

/* Rows z[0 .. R) (K logits each, true classes y) of a block, R <= FR_XENT_ROWS: returns the sum
 * of the rows' losses
 *     log sum_j exp(z_j - m) - (1 - eps) (z_y - m) - eps/K sum_j (z_j - m),   m = max_j z_j,
 * which is PyTorch's (1 - eps) * nll + eps/K * sum_j (-log p_j) written on shifted logits, so
 * that no exp overflows and huge logits keep their precision, and writes
 *     g_j = (softmax_j - target_j) * scale,   target = (1 - eps) onehot(y) + eps/K.
 * g first holds z_j - m, then exp(z_j - m): the exponentials run as one flat loop over the
 * block, so GCC fills whole vectors however few classes a row has (per row, 10 classes left
 * most lanes of each vector idle). Each row's sum s of exponentials lies in [1, K] (its largest
 * term is exp(0) = 1), so the block's logarithms are taken as one: log prod_r s_r, the product
 * kept below 2^512 by moving powers of two into an exponent; a libm log per row had cost more
 * than the row's exponentials. Sums run in double for both types; for long rows `omp simd`
 * lets GCC keep vector-wide partial sums (a fixed order for a given build and CPU, whatever
 * the threads). The gradient's last step, e_j * (scale / s) - scale * eps/K, runs in T, as
 * PyTorch's does (8 floats a vector instead of 4 doubles). NaN logits give a NaN loss and
 * gradient. */
#define FR_XENT_ROWS 64
/* Rows shorter than this reduce in scalar loops: a vector-wide reduction (`omp simd`) would
 * spend more folding its lanes than summing a few classes. */
#define FR_XENT_SIMD_K 64
/* sum_j (double)g[j] for a short row, in four interleaved partial sums (element j to sum
 * j % 4, folded as (0 + 2) + (1 + 3), then the tail) rather than one chain of K dependent
 * adds (128 x 10 float32: the kernel call 7.9 -> 7.6 us). */
#define FR_DEFINE_XENT_SUM4(T, S)                                                            \
    static inline double fr_xent_sum4_##S(const T *restrict g, ptrdiff_t K) {                \
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, t = 0.0;                              \
        ptrdiff_t j = 0;                                                                     \
        for (; j + 4 <= K; j += 4) {                                                         \
            a0 += (double)g[j];                                                              \
            a1 += (double)g[j + 1];                                                          \
            a2 += (double)g[j + 2];                                                          \
            a3 += (double)g[j + 3];                                                          \
        }                                                                                    \
        for (; j < K; j++) t += (double)g[j];                                                \
        return ((a0 + a2) + (a1 + a3)) + t;                                                  \
    }
FR_DEFINE_XENT_SUM4(float, f)
FR_DEFINE_XENT_SUM4(double, d)

#define FR_DEFINE_XENT(T, S)                                                                 \
    FR_CLONES static double fr_xent_rows_##S(const T *restrict z, ptrdiff_t R, ptrdiff_t K,  \
                                             const int64_t *restrict y, double eps,          \
                                             double scale, T *restrict g) {                  \
        T m[FR_XENT_ROWS];                                                                   \
        double s[FR_XENT_ROWS], linear = 0.0, prod = 1.0, off = eps / (double)K * scale;    \
        int64_t e2 = 0;                                                                      \
        for (ptrdiff_t r = 0; r < R; r++) {                                                  \
            const T *restrict zr = z + r * K;                                                \
            T *restrict gr = g + r * K;                                                      \
            T mr = zr[0];                                                                    \
            if (K < FR_XENT_SIMD_K)                                                          \
                for (ptrdiff_t j = 1; j < K; j++) mr = zr[j] > mr ? zr[j] : mr;              \
            else                                                                             \
                FR_PRAGMA(omp simd reduction(max : mr))                                      \
                for (ptrdiff_t j = 1; j < K; j++) mr = zr[j] > mr ? zr[j] : mr;              \
            for (ptrdiff_t j = 0; j < K; j++) gr[j] = zr[j] - mr;                            \
            m[r] = mr;                                                                       \
        }                                                                                    \
        FR_XENT_UNROLL                                                                       \
        for (ptrdiff_t i = 0; i < R * K; i++) g[i] = fr_exp_##S(g[i]);                       \
        for (ptrdiff_t r = 0; r < R; r++) {                                                  \
            const T *restrict zr = z + r * K;                                                \
            const T *restrict gr = g + r * K;                                                \
            double sum = 0.0, sum_t = 0.0;                                                   \
            if (K < FR_XENT_SIMD_K)                                                          \
                sum = fr_xent_sum4_##S(gr, K);                                               \
            else                                                                             \
                FR_PRAGMA(omp simd reduction(+ : sum))                                       \
                for (ptrdiff_t j = 0; j < K; j++) sum += (double)gr[j];                      \
            linear += (1.0 - eps) * (double)(zr[y[r]] - m[r]);                               \
            if (eps > 0.0) { /* the smoothing term's sum, only when it is used: eps == 0     \
                                must not touch it, as 0 * (-inf) would make a loss NaN */    \
                if (K < FR_XENT_SIMD_K)                                                      \
                    for (ptrdiff_t j = 0; j < K; j++) sum_t += (double)(zr[j] - m[r]);       \
                else                                                                         \
                    FR_PRAGMA(omp simd reduction(+ : sum_t))                                 \
                    for (ptrdiff_t j = 0; j < K; j++) sum_t += (double)(zr[j] - m[r]);       \
                linear += eps * sum_t / (double)K;                                           \
            }                                                                                \
            s[r] = sum;                                                                      \
            prod *= sum;                                                                     \
            if (prod > 0x1p512) { /* s <= K < 2^63: prod stays finite. (_loss.pyx's work     \
                                     items keep a block's product below 2^448; this keeps    \
                                     the function right for any R and K.) */                 \
                prod *= 0x1p-512;                                                            \
                e2 += 512;                                                                   \
            }                                                                                \
        }                                                                                    \
        for (ptrdiff_t r = 0; r < R; r++) {                                                  \
            T *restrict gr = g + r * K;                                                      \
            double p_y = (double)gr[y[r]] / s[r];                                            \
            const T inv_s = (T)(scale / s[r]), off_t = (T)off;                               \
            for (ptrdiff_t j = 0; j < K; j++) gr[j] = gr[j] * inv_s - off_t;                 \
            gr[y[r]] = (T)((p_y - eps / (double)K - (1.0 - eps)) * scale);                   \
        }                                                                                    \
        return log(prod) + (double)e2 * 0.69314718055994530942 - linear;                     \
    }

FR_DEFINE_XENT(float, f)
FR_DEFINE_XENT(double, d)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
