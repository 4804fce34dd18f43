/* Shared C helpers for the fastres kernels.
 *
 * - OpenMP queries guarded so the package still builds (serially) without OpenMP.
 * - FR_CLONES: GCC function multi-versioning. A function marked with it is compiled for AVX-512
 *   (x86-64-v4), AVX2+FMA (x86-64-v3) and the x86-64 baseline; the dynamic loader picks the best
 *   one for the running CPU, so one wheel runs on any x86-64 machine without -march=native.
 *   Set FASTRES_NO_CLONES to compile the baseline only (to measure what the clones buy).
 */
#ifndef FASTRES_COMMON_H
#define FASTRES_COMMON_H

#include <stddef.h>
#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
static inline int fr_openmp_enabled(void) { return 1; }
static inline int fr_omp_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int fr_openmp_enabled(void) { return 0; }
static inline int fr_omp_max_threads(void) { return 1; }
#endif

/* Fold n lanes (a power of two) of the array a into a[0] pairwise: a[j] += a[j + w] for
 * w = n/2, ..., 1. The fixed tree every lane-wise sum here ends with (so its order depends on
 * the lane count alone, never on the thread count). */
#define FR_FOLD_PAIRWISE(a, n)                                                                  \
    do {                                                                                        \
        for (int w_ = (n) / 2; w_ >= 1; w_ /= 2)                                                \
            for (int j_ = 0; j_ < w_; j_++) (a)[j_] += (a)[j_ + w_];                            \
    } while (0)

#if defined(__GNUC__)
/* 32-byte vectors (GCC/clang vector extensions) of float (suffix f) or double (d): fr_vec_S,
 * fr_uvec_S the same for loads and stores at any element-aligned address (a cast pointer,
 * may_alias), fr_ivec_S of same-width signed ints (comparison results, masks), fr_bits_S of
 * same-width unsigned ints. Each clone compiles them to its ISA's vectors. */
#define FR_DEFINE_VEC(S, T, IT, UT)                                                            \
    typedef T fr_vec_##S __attribute__((vector_size(32)));                                     \
    typedef T fr_uvec_##S __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));     \
    typedef IT fr_ivec_##S __attribute__((vector_size(32)));                                   \
    typedef UT fr_bits_##S __attribute__((vector_size(32)));
FR_DEFINE_VEC(f, float, int, unsigned)
FR_DEFINE_VEC(d, double, long long, unsigned long long)
#undef FR_DEFINE_VEC
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FASTRES_NO_CLONES)
#define FR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FR_HAVE_CLONES 1
#else
#define FR_CLONES
#define FR_HAVE_CLONES 0
#endif

/* Streaming (non-temporal) stores: dst[i] = src[i] for i < n, written around the caches, with
 * no read-for-ownership of the destination lines. For elementwise passes whose output cannot
 * stay in the last-level cache anyway (the caller decides): the write then costs one memory
 * transfer instead of two. SSE2 is in every x86-64, so every clone may use it; elsewhere a
 * plain copy. Call fr_stream_fence() after the last streamed store of a call. */
#if defined(__SSE2__)
#include <emmintrin.h>
#include <stdint.h>
/* Scalar stores up to a 16-byte boundary of dst, then 16-byte streaming stores, then the tail. */
#define FR_DEFINE_STREAM(T, S, LOADU, STREAM)                                                  \
    static inline void fr_stream_##S(T *restrict dst, const T *restrict src, ptrdiff_t n) {   \
        const ptrdiff_t l = 16 / (ptrdiff_t)sizeof(T);                                         \
        ptrdiff_t i = 0;                                                                       \
        for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];                     \
        for (; i + l <= n; i += l) STREAM(dst + i, LOADU(src + i));                            \
        for (; i < n; i++) dst[i] = src[i];                                                    \
    }
FR_DEFINE_STREAM(float, f, _mm_loadu_ps, _mm_stream_ps)
FR_DEFINE_STREAM(double, d, _mm_loadu_pd, _mm_stream_pd)
#undef FR_DEFINE_STREAM
static inline void fr_stream_fence(void) { _mm_sfence(); }
#else
static inline void fr_stream_f(float *dst, const float *src, ptrdiff_t n) {
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
static inline void fr_stream_d(double *dst, const double *src, ptrdiff_t n) {
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
static inline void fr_stream_fence(void) {}
#endif
#define FR_STREAM_CHUNK 256 /* elements computed into a stack buffer per streamed copy */

/* The body of a pass writing n elements of type T (suffix S) to out: RUN computes elements
 * [o_, o_ + m_) into d_[0 .. m_). Without stream, once, straight into out; with stream, a
 * chunk at a time into a stack buffer that is then streamed to out (the same values), without
 * the closing fence (FR_STREAMED adds it; a caller writing many short runs fences once). */
#define FR_STREAMED_UNFENCED(S, T, out, n, stream, RUN)                                        \
    do {                                                                                        \
        if (!(stream)) {                                                                        \
            const ptrdiff_t o_ = 0, m_ = (n);                                                   \
            T *d_ = (out);                                                                      \
            RUN;                                                                                \
        } else {                                                                                \
            T buf_[FR_STREAM_CHUNK];                                                            \
            for (ptrdiff_t o_ = 0; o_ < (n); o_ += FR_STREAM_CHUNK) {                           \
                const ptrdiff_t m_ = (n) - o_ < FR_STREAM_CHUNK ? (n) - o_ : FR_STREAM_CHUNK;   \
                T *d_ = buf_;                                                                   \
                RUN;                                                                            \
                fr_stream_##S((out) + o_, buf_, m_);                                            \
            }                                                                                   \
        }                                                                                       \
    } while (0)
#define FR_STREAMED(S, T, out, n, stream, RUN)                                                 \
    do {                                                                                        \
        FR_STREAMED_UNFENCED(S, T, out, n, stream, RUN);                                        \
        if (stream) fr_stream_fence();                                                          \
    } while (0)

/* Which clone the loader picks on this CPU: 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline. */
static inline int fr_isa_level(void) {
#if FR_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

#endif
