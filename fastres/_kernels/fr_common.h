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

#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
static inline int fr_openmp_enabled(void) { return 1; }
static inline int fr_omp_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int fr_openmp_enabled(void) { return 0; }
static inline int fr_omp_max_threads(void) { return 1; }
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FASTRES_NO_CLONES)
#define FR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FR_HAVE_CLONES 1
#else
#define FR_CLONES
#define FR_HAVE_CLONES 0
#endif

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
