/* Batch-norm loops over one channel's contiguous H*W runs, multi-versioned per ISA (FR_CLONES).
 *
 * Sums run on `runs` runs of `len` elements, `stride` elements apart (the N axis of one channel).
 * They accumulate in double for float and double input alike, in FR_BN_LANES lanes: element i
 * of a run goes to lane i % FR_BN_LANES (the tail past the last full group to one scalar), and
 * the lanes are folded in a fixed tree. The order therefore depends on the shapes alone (never
 * on the thread count), and the independent lanes break the add-latency chain so GCC vectorises.
 * The forward's sums (fr_bn_sums) first add up to FR_BN_CHUNK elements per lane in the storage
 * type, then add that chunk's lanes to the double lanes: for float this drops three of the four
 * conversions and half the double arithmetic, which bounded the pass by compute on a 128-bit
 * FPU (Zen 1: 0.49 -> 0.27 ms for 2M floats on 2 threads). A chunk's few float roundings are
 * relative to that chunk's own small sum, and the shift (the caller's: near the mean) leaves
 * little to cancel, so the statistics stay within float32's resolution (2^-24) of exact: on
 * ReLU outputs (batch 128, 16@32x32) inv_std is within 2.4e-8 relative (1e-13 with double lanes
 * throughout), the normalised output's rms error 4.4e-8 against 4.2e-8 (PyTorch: 4.1e-8).
 * Elementwise passes compute in the storage type, as PyTorch does: for float that drops the
 * conversions, and the normalising pass ran 1.6x faster than in double (batch 128, one thread,
 * all three ResNet-20 shapes). The mean arrives split as mean_hi + mean_lo (mean_hi its rounding
 * to T): x - mean_hi is exact near the mean (Sterbenz), so (x - mean_hi) - mean_lo is within
 * about an ulp of x - mean itself even when |mean| >> std, where the rounded mean alone would
 * be off by an ulp of the mean.
 * Over runs of at most a 4 KB page (one image's plane of a CIFAR-sized map), the sums prefetch
 * the next run's cache line as they read each one: the hardware prefetchers do not cross pages
 * (backward sums 8-25% faster at ResNet-20's shapes, batch 128). Longer runs stream on their own.
 */
#ifndef FASTRES_BATCHNORM_H
#define FASTRES_BATCHNORM_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"

#define FR_BN_LANES 16
#define FR_BN_CHUNK 8 /* elements per lane summed in the storage type before widening */

/* How far ahead the sums prefetch: the next run when runs are short, else the line being read. */
#define FR_BN_AHEAD(r, runs, len, stride, T) \
    ((r) + 1 < (runs) && (len) * (ptrdiff_t)sizeof(T) <= 4096 ? (stride) : 0)

/* Fold the lanes pairwise (fixed order). */
static inline double fr_bn_fold(double *a) {
    FR_FOLD_PAIRWISE(a, FR_BN_LANES);
    return a[0];
}

#if defined(__GNUC__)
/* GCC/clang vector extensions: four vectors of four doubles hold the 16 lanes (lane 4k+l is
 * element l of vector k), so the grouping is exactly the portable loop's below. The plain loop
 * came out of the auto-vectoriser as a mix of vector and scalar lanes (seen in the disassembly).
 * Loads and stores are element lists: GCC 12 makes each one vcvtps2pd/vcvtpd2ps (or vmovupd),
 * whereas __builtin_convertvector(float4 -> double4) is split into two halves. */
#define FR_BN_LOAD(dst, p) (dst) = (fr_vec_d){(p)[0], (p)[1], (p)[2], (p)[3]}
#define FR_BN_STORE(T, p, v)                                                                    \
    do {                                                                                        \
        fr_vec_d v_ = (v);                                                                      \
        (p)[0] = (T)v_[0], (p)[1] = (T)v_[1], (p)[2] = (T)v_[2], (p)[3] = (T)v_[3];             \
    } while (0)
/* Lane accumulators and their fold. */
#define FR_BN_ACC(a) fr_vec_d a[4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}}
#define FR_BN_FOLD(a) (memcpy(lanes_, a, sizeof lanes_), fr_bn_fold(lanes_))
/* Chunk lanes in the storage type: 16 lanes in 2 float or 4 double vectors, lane j element
 * j % (32 / sizeof(T)) of vector j / (32 / sizeof(T)) (the 16 lanes in order, as above). */
#define FR_BN_CACC(T, V, a) V a[16 * sizeof(T) / 32] = {{0}}
#define FR_BN_CSUMS_GROUP(T, V)                                                                 \
    for (int k = 0; k < (int)(16 * sizeof(T) / 32); k++) {                                      \
        V d;                                                                                    \
        memcpy(&d, p + i + k * (32 / sizeof(T)), 32);                                           \
        d -= sh;                                                                                \
        c1[k] += d;                                                                             \
        c2[k] += d * d;                                                                         \
    }
/* Add the chunk lanes c to the double lanes a. */
static inline void fr_bn_widen_f(fr_vec_d *a, const fr_vec_f *c) {
    for (int k = 0; k < 2; k++) {
        a[2 * k] += (fr_vec_d){c[k][0], c[k][1], c[k][2], c[k][3]};
        a[2 * k + 1] += (fr_vec_d){c[k][4], c[k][5], c[k][6], c[k][7]};
    }
}
static inline void fr_bn_widen_d(fr_vec_d *a, const fr_vec_d *c) {
    for (int k = 0; k < 4; k++) a[k] += c[k];
}
#define FR_BN_DSUMS_GROUP(STORE)                                                                \
    for (int k = 0; k < 4; k++) {                                                               \
        fr_vec_d gk, xk;                                                                        \
        FR_BN_LOAD(gk, g + i + 4 * k);                                                          \
        FR_BN_LOAD(xk, p + i + 4 * k);                                                          \
        a1[k] += gk;                                                                            \
        a2[k] += gk * (xk - mean);                                                              \
        STORE                                                                                   \
    }
#define FR_BN_SCALE_STORE(T) FR_BN_STORE(T, q + i + 4 * k, gk * scale);
#else
/* Portable: the same 16 lanes as plain arrays. */
#define FR_BN_ACC(a) double a[FR_BN_LANES] = {0}
#define FR_BN_FOLD(a) fr_bn_fold(a)
#define FR_BN_CACC(T, V, a) T a[FR_BN_LANES] = {0}
#define FR_BN_CSUMS_GROUP(T, V)                                                                 \
    for (int j = 0; j < FR_BN_LANES; j++) {                                                     \
        T d = p[i + j] - sh;                                                                    \
        c1[j] += d;                                                                             \
        c2[j] += d * d;                                                                         \
    }
#define FR_BN_WIDEN_PORTABLE(S, T)                                                              \
    static inline void fr_bn_widen_##S(double *a, const T *c) {                                 \
        for (int j = 0; j < FR_BN_LANES; j++) a[j] += (double)c[j];                             \
    }
FR_BN_WIDEN_PORTABLE(f, float)
FR_BN_WIDEN_PORTABLE(d, double)
#define FR_BN_DSUMS_GROUP(STORE)                                                                \
    for (int j = 0; j < FR_BN_LANES; j++) {                                                     \
        double gk = (double)g[i + j];                                                           \
        a1[j] += gk;                                                                            \
        a2[j] += gk * ((double)p[i + j] - mean);                                                \
        STORE                                                                                   \
    }
#define FR_BN_SCALE_STORE(T) q[i + j] = (T)(gk * scale);
#endif
#define FR_BN_NOTHING

#define FR_DEFINE_BATCHNORM(T, S, V)                                                            \
    /* out[0] = sum(x - shift), out[1] = sum((x - shift)^2), shift a value of T. The shift (a   \
     * sample of the channel) keeps var = E[d^2] - E[d]^2 free of cancellation when             \
     * |mean| >> std. Chunks of FR_BN_CHUNK groups are summed in T (see the top). */            \
    FR_CLONES static void fr_bn_sums_##S(const T *restrict x, ptrdiff_t runs, ptrdiff_t len,    \
                                         ptrdiff_t stride, double shift, double *restrict out) { \
        FR_BN_ACC(a1);                                                                          \
        FR_BN_ACC(a2);                                                                          \
        double t1 = 0, t2 = 0, lanes_[FR_BN_LANES];                                             \
        const T sh = (T)shift;                                                                  \
        (void)lanes_;                                                                           \
        for (ptrdiff_t r = 0; r < runs; r++) {                                                  \
            const T *restrict p = x + r * stride;                                               \
            const ptrdiff_t ahead = FR_BN_AHEAD(r, runs, len, stride, T);                       \
            ptrdiff_t i = 0;                                                                    \
            while (i + FR_BN_LANES <= len) {                                                    \
                const ptrdiff_t end = len - i < FR_BN_LANES * FR_BN_CHUNK                       \
                                          ? len : i + FR_BN_LANES * FR_BN_CHUNK;                \
                FR_BN_CACC(T, V, c1);                                                           \
                FR_BN_CACC(T, V, c2);                                                           \
                for (; i + FR_BN_LANES <= end; i += FR_BN_LANES) {                              \
                    __builtin_prefetch(p + ahead + i);                                          \
                    FR_BN_CSUMS_GROUP(T, V)                                                     \
                }                                                                               \
                fr_bn_widen_##S(a1, c1);                                                        \
                fr_bn_widen_##S(a2, c2);                                                        \
            }                                                                                   \
            for (; i < len; i++) {                                                              \
                double d = (double)p[i] - (double)sh;                                           \
                t1 += d;                                                                        \
                t2 += d * d;                                                                    \
            }                                                                                   \
        }                                                                                       \
        out[0] = FR_BN_FOLD(a1) + t1;                                                           \
        out[1] = FR_BN_FOLD(a2) + t2;                                                           \
    }                                                                                           \
    /* out[0] = sum(dy), out[1] = sum(dy * (x - mean)). */                                      \
    FR_CLONES static void fr_bn_dsums_##S(const T *restrict dy, const T *restrict x,            \
                                          ptrdiff_t runs, ptrdiff_t len, ptrdiff_t stride,      \
                                          double mean, double *restrict out) {                  \
        FR_BN_ACC(a1);                                                                          \
        FR_BN_ACC(a2);                                                                          \
        double t1 = 0, t2 = 0, lanes_[FR_BN_LANES];                                             \
        (void)lanes_;                                                                           \
        for (ptrdiff_t r = 0; r < runs; r++) {                                                  \
            const T *restrict g = dy + r * stride, *restrict p = x + r * stride;                \
            const ptrdiff_t ahead = FR_BN_AHEAD(r, runs, len, stride, T);                       \
            ptrdiff_t i = 0;                                                                    \
            for (; i + FR_BN_LANES <= len; i += FR_BN_LANES) {                                  \
                __builtin_prefetch(g + ahead + i);                                              \
                __builtin_prefetch(p + ahead + i);                                              \
                FR_BN_DSUMS_GROUP(FR_BN_NOTHING)                                                \
            }                                                                                   \
            for (; i < len; i++) {                                                              \
                double gi = (double)g[i];                                                       \
                t1 += gi;                                                                       \
                t2 += gi * ((double)p[i] - mean);                                               \
            }                                                                                   \
        }                                                                                       \
        out[0] = FR_BN_FOLD(a1) + t1;                                                           \
        out[1] = FR_BN_FOLD(a2) + t2;                                                           \
    }                                                                                           \
    /* As fr_bn_dsums, and dx = scale * dy on the same runs (eval backward: one pass). */       \
    FR_CLONES static void fr_bn_dsums_scale_##S(const T *restrict dy, const T *restrict x,      \
                                                T *restrict dx, ptrdiff_t runs, ptrdiff_t len,  \
                                                ptrdiff_t stride, double mean, double scale,    \
                                                double *restrict out) {                         \
        FR_BN_ACC(a1);                                                                          \
        FR_BN_ACC(a2);                                                                          \
        double t1 = 0, t2 = 0, lanes_[FR_BN_LANES];                                             \
        (void)lanes_;                                                                           \
        for (ptrdiff_t r = 0; r < runs; r++) {                                                  \
            const T *restrict g = dy + r * stride, *restrict p = x + r * stride;                \
            T *restrict q = dx + r * stride;                                                    \
            ptrdiff_t i = 0;                                                                    \
            for (; i + FR_BN_LANES <= len; i += FR_BN_LANES)                                    \
                FR_BN_DSUMS_GROUP(FR_BN_SCALE_STORE(T))                                         \
            for (; i < len; i++) {                                                              \
                double gi = (double)g[i];                                                       \
                t1 += gi;                                                                       \
                t2 += gi * ((double)p[i] - mean);                                               \
                q[i] = (T)(gi * scale);                                                         \
            }                                                                                   \
        }                                                                                       \
        out[0] = FR_BN_FOLD(a1) + t1;                                                           \
        out[1] = FR_BN_FOLD(a2) + t2;                                                           \
    }                                                                                           \
    /* y = (x - mean) * scale + shift [+ res] [then max(., 0) if relu] over one run,            \
     * mean = mean_hi + mean_lo; res may be NULL. One loop per case, so each vectorises. */     \
    static inline void fr_bn_affine_run_##S(const T *restrict x, const T *restrict res,         \
                                            T *restrict y, ptrdiff_t n, T mean_hi, T mean_lo,   \
                                            T scale, T shift, int relu) {                       \
        if (res && relu)                                                                        \
            for (ptrdiff_t i = 0; i < n; i++) {                                                 \
                T v = ((x[i] - mean_hi) - mean_lo) * scale + shift + res[i];                    \
                y[i] = v <= 0 ? (T)0 : v;                                                       \
            }                                                                                   \
        else if (res)                                                                           \
            for (ptrdiff_t i = 0; i < n; i++)                                                   \
                y[i] = ((x[i] - mean_hi) - mean_lo) * scale + shift + res[i];                   \
        else if (relu)                                                                          \
            for (ptrdiff_t i = 0; i < n; i++) {                                                 \
                T v = ((x[i] - mean_hi) - mean_lo) * scale + shift;                             \
                y[i] = v <= 0 ? (T)0 : v;                                                       \
            }                                                                                   \
        else                                                                                    \
            for (ptrdiff_t i = 0; i < n; i++) y[i] = ((x[i] - mean_hi) - mean_lo) * scale + shift; \
    }                                                                                           \
    /* `rows` runs of len elements, `stride` apart, the first of channel c0 and each next one  \
     * of the channel dc (0 or 1) after it (mod C), each as fr_bn_affine_run with its channel's \
     * coef[4c .. 4c+3] = (mean_hi, mean_lo, scale, shift), streamed past the caches if stream \
     * (FR_STREAMED's reasoning): the rows of a work item of the (N*C, HW) view (stride len,    \
     * dc 1) or one channel's (stride C*HW, dc 0). One call and, when streaming, one fence per  \
     * work item instead of per run: at 16x16 maps (1 KB runs) a fence per run had cost the    \
     * backward's dx pass a quarter of its time. */                                             \
    FR_CLONES static void fr_bn_affine_rows_##S(const T *restrict x, const T *restrict res,     \
                                                T *restrict y, ptrdiff_t rows, ptrdiff_t len,   \
                                                ptrdiff_t stride, ptrdiff_t c0, ptrdiff_t dc,   \
                                                ptrdiff_t C, const T *restrict coef, int relu,  \
                                                int stream) {                                   \
        for (ptrdiff_t i = 0, c = c0; i < rows; i++, c = c + dc == C ? 0 : c + dc) {            \
            const T *restrict k = coef + 4 * c, *restrict xr = x + i * stride;                  \
            const T *restrict rr = res ? res + i * stride : NULL;                               \
            T *restrict yr = y + i * stride;                                                    \
            FR_STREAMED_UNFENCED(S, T, yr, len, stream,                                         \
                                 fr_bn_affine_run_##S(xr + o_, rr ? rr + o_ : NULL, d_, m_,     \
                                                      k[0], k[1], k[2], k[3], relu));           \
        }                                                                                       \
        if (stream) fr_stream_fence();                                                          \
    }                                                                                           \
    /* dx = a * dy + b * (x - mean) + c [+ add] over one run (training backward; add, the       \
     * gradient that reaches x by other paths, may be NULL). */                                 \
    static inline void fr_bn_dx_run_##S(const T *restrict dy, const T *restrict x,              \
                                        const T *restrict add, T *restrict dx, ptrdiff_t n,     \
                                        T mean_hi, T mean_lo, T a, T b, T c) {                  \
        if (add)                                                                                \
            for (ptrdiff_t i = 0; i < n; i++)                                                   \
                dx[i] = (a * dy[i] + (b * ((x[i] - mean_hi) - mean_lo) + c)) + add[i];          \
        else                                                                                    \
            for (ptrdiff_t i = 0; i < n; i++)                                                   \
                dx[i] = a * dy[i] + (b * ((x[i] - mean_hi) - mean_lo) + c);                     \
    }                                                                                           \
    /* Runs as fr_bn_affine_rows, each as fr_bn_dx_run with its channel's coef[5c .. 5c+4] =   \
     * (mean_hi, mean_lo, a, b, c). */                                                          \
    FR_CLONES static void fr_bn_dx_rows_##S(const T *restrict dy, const T *restrict x,          \
                                            const T *restrict add, T *restrict dx,              \
                                            ptrdiff_t rows, ptrdiff_t len, ptrdiff_t stride,    \
                                            ptrdiff_t c0, ptrdiff_t dc, ptrdiff_t C,            \
                                            const T *restrict coef, int stream) {               \
        for (ptrdiff_t i = 0, c = c0; i < rows; i++, c = c + dc == C ? 0 : c + dc) {            \
            const T *restrict k = coef + 5 * c, *restrict g = dy + i * stride;                  \
            const T *restrict xr = x + i * stride, *restrict ar = add ? add + i * stride : NULL; \
            T *restrict d = dx + i * stride;                                                    \
            FR_STREAMED_UNFENCED(S, T, d, len, stream,                                          \
                                 fr_bn_dx_run_##S(g + o_, xr + o_, ar ? ar + o_ : NULL, d_, m_, \
                                                  k[0], k[1], k[2], k[3], k[4]));               \
        }                                                                                       \
        if (stream) fr_stream_fence();                                                          \
    }

FR_DEFINE_BATCHNORM(float, f, fr_vec_f)
FR_DEFINE_BATCHNORM(double, d, fr_vec_d)

#endif
