/* Optimizer updates over one contiguous range, multi-versioned per ISA (FR_CLONES).
 *
 * Each loop evaluates the formula fastres.optim documents (PyTorch's) in the storage type T, one
 * rounded operation at a time and in the order of that module's NumPy code, with the
 * hyper-parameters rounded to T as NumPy rounds a Python float: the results are bit-identical to
 * the NumPy code, in one pass over the arrays instead of one per operation. setup.py therefore
 * builds this module with -ffp-contract=off (GCC would otherwise fuse a * b + c into one FMA,
 * rounded once). Arguments that are "off" (no weight decay, no momentum buffer, no amsgrad
 * maximum) are branched on outside the loops, as the NumPy code skips them.
 */
#ifndef FASTRES_OPTIM_H
#define FASTRES_OPTIM_H
#include <math.h>
#include <stddef.h>
#include "fr_common.h"

#define FR_DEFINE_OPTIM(T, SQRT, S)                                                             \
    /* g = grad [+ wd * p]; buf = g (first) or buf * mom + damp1 * g; d = buf or g + mom * buf \
     * (nesterov), or g without a buffer; p = p - lr * d. */                                   \
    FR_CLONES static void fr_sgd_##S(T *restrict p, const T *restrict grad, T *restrict buf,    \
                                     ptrdiff_t n, T lr, T wd, T mom, T damp1, int decay,        \
                                     int first, int nesterov) {                                 \
        for (ptrdiff_t i = 0; i < n; i++) {                                                     \
            T g = decay ? grad[i] + wd * p[i] : grad[i], d = g;                                 \
            if (buf) {                                                                          \
                T b = first ? g : buf[i] * mom + damp1 * g;                                     \
                buf[i] = b;                                                                     \
                d = nesterov ? g + mom * b : b;                                                 \
            }                                                                                   \
            p[i] = p[i] - lr * d;                                                               \
        }                                                                                       \
    }                                                                                           \
    /* keep != 1: p = p * keep (AdamW's decoupled decay); g = grad [+ wd * p] (Adam's L2);     \
     * m = m + c1 * (g - m); v = v * b2 + c2 * (g * g); vmax = max(vmax, v) (NaN wins, as      \
     * np.maximum; amsgrad only); p = p - step * (m / (sqrt(v or vmax) / bc2 + eps)). */       \
    FR_CLONES static void fr_adam_##S(T *restrict p, const T *restrict grad, T *restrict m,     \
                                      T *restrict v, T *restrict vmax, ptrdiff_t n, T keep,     \
                                      T wd, int decay, T c1, T b2, T c2, T step, T bc2, T eps,  \
                                      int decoupled) {                                          \
        for (ptrdiff_t i = 0; i < n; i++) {                                                     \
            T pi = decoupled ? p[i] * keep : p[i];                                              \
            T g = decay ? grad[i] + wd * pi : grad[i];                                          \
            T mi = m[i] + c1 * (g - m[i]);                                                      \
            T vi = v[i] * b2 + c2 * (g * g);                                                    \
            m[i] = mi;                                                                          \
            v[i] = vi;                                                                          \
            if (vmax) {                                                                         \
                T w = vmax[i];                                                                  \
                vi = (w != w || w > vi) ? w : vi;                                               \
                vmax[i] = vi;                                                                   \
            }                                                                                   \
            p[i] = pi - step * (mi / (SQRT(vi) / bc2 + eps));                                   \
        }                                                                                       \
    }                                                                                           \
    /* g = grad [+ wd * p]; s = s * alpha + c * (g * g); centered: a = a + c * (g - a),        \
     * avg = sqrt(s - a * a) + eps, else avg = sqrt(s) + eps; with a buffer:                   \
     * buf = buf * mom + g / avg, p = p - lr * buf, else p = p - lr * (g / avg). */            \
    FR_CLONES static void fr_rmsprop_##S(T *restrict p, const T *restrict grad,                 \
                                         T *restrict s, T *restrict a, T *restrict buf,         \
                                         ptrdiff_t n, T lr, T wd, int decay, T alpha, T c,      \
                                         T eps, T mom) {                                        \
        for (ptrdiff_t i = 0; i < n; i++) {                                                     \
            T g = decay ? grad[i] + wd * p[i] : grad[i];                                        \
            T si = s[i] * alpha + c * (g * g), avg;                                             \
            s[i] = si;                                                                          \
            if (a) {                                                                            \
                T ai = a[i] + c * (g - a[i]);                                                   \
                a[i] = ai;                                                                      \
                avg = SQRT(si - ai * ai) + eps;                                                 \
            } else {                                                                            \
                avg = SQRT(si) + eps;                                                           \
            }                                                                                   \
            if (buf) {                                                                          \
                T b = buf[i] * mom + g / avg;                                                   \
                buf[i] = b;                                                                     \
                p[i] = p[i] - lr * b;                                                           \
            } else {                                                                            \
                p[i] = p[i] - lr * (g / avg);                                                   \
            }                                                                                   \
        }                                                                                       \
    }

FR_DEFINE_OPTIM(float, sqrtf, f)
FR_DEFINE_OPTIM(double, sqrt, d)

#endif
