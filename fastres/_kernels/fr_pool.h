/* Pooling loops over one (H, W) plane, multi-versioned per ISA (FR_CLONES).
 *
 * Callers (_pool.pyx) hand each plane of an NCHW array to exactly one thread, so every loop here
 * is serial and its results do not depend on the thread count. The window arithmetic and the
 * accumulation orders copy PyTorch's CPU kernels (aten/src/ATen/native/cpu/MaxPoolKernel.cpp,
 * AvgPoolKernel.cpp) so float32 results agree with PyTorch bit for bit:
 *   - max: start from -inf and the first in-bounds index, take v when (v > max || isnan(v)),
 *     scanning the window row by row (so ties go to the first maximum, NaN to the last NaN);
 *   - avg: sum the window row by row in T, then divide by the window clipped to the padded
 *     input (count_include_pad=True);
 *   - backward: zero the plane, then add each output's gradient in row-major output order.
 * Argmax indices are int32 flat offsets within the plane (the caller checks that H*W fits), or
 * for the 2x2 pool one byte per window.
 *
 * This header instantiates itself once per element type: the first pass defines the shared
 * helpers, then includes itself with T = float (suffix _f) and T = double (suffix _d), which
 * keeps the loops plain C instead of one long macro.
 */
#ifndef FR_POOL_T
#ifndef FASTRES_POOL_H
#define FASTRES_POOL_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fr_common.h"

#define FR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FR_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Entries in the stack buffer of gradient shares in the average-pooling backward. */
#define FR_GUP 2048

/* Outputs o in [*lo, *hi) whose window offset off = k - p lands inside the input,
 * 0 <= o*s + off < n. Only the first and last few outputs (those touching the padding) fall
 * outside, so short loops find the bounds without a division. */
static inline void fr_valid_outputs(ptrdiff_t n, ptrdiff_t s, ptrdiff_t off, ptrdiff_t n_out,
                                    ptrdiff_t *lo, ptrdiff_t *hi) {
    ptrdiff_t l = 0, h = n_out;
    while (l < h && l * s + off < 0) l++;
    while (h > l && (h - 1) * s + off >= n) h--;
    *lo = l;
    *hi = h;
}

/* t ? a : b through a bit mask (see fr_select below). */
static inline int32_t fr_select_i32(int t, int32_t a, int32_t b) {
    int32_t mask = -(int32_t)t;
    return (a & mask) | (b & ~mask);
}

/* Run a window-row loop with (KW, SW) as compile-time constants for the common shapes (GCC then
 * unrolls the window and vectorises across outputs with a fixed stride), with the runtime
 * values otherwise. */
#define FR_BY_SHAPE(LOOP)                                                                       \
    if (KW == 2 && SW == 2) { LOOP(2, 2) }                                                      \
    else if (KW == 3 && SW == 2) { LOOP(3, 2) }                                                 \
    else if (KW == 3 && SW == 1) { LOOP(3, 1) }                                                 \
    else if (KW == 2 && SW == 1) { LOOP(2, 1) }                                                 \
    else { LOOP(KW, SW) }

#define FR_POOL_T float
#define FR_POOL_U uint32_t
#define FR_FN(name) name##_f
#include "fr_pool.h"
#undef FR_POOL_T
#undef FR_POOL_U
#undef FR_FN

#define FR_POOL_T double
#define FR_POOL_U uint64_t
#define FR_FN(name) name##_d
#include "fr_pool.h"
#undef FR_POOL_T
#undef FR_POOL_U
#undef FR_FN

#endif /* FASTRES_POOL_H */
#else  /* ---- instantiated per type: T = FR_POOL_T, U = the unsigned integer of its width ---- */

#define T FR_POOL_T
#define U FR_POOL_U

/* t ? a : b through bit masks: GCC keeps a ?: on floats as a branch in the scalar remainder
 * loops after a vector body, and on random data that branch mispredicts half the time. */
static inline T FR_FN(fr_select)(int t, T a, T b) {
    U ua, ub, mask = -(U)t;
    memcpy(&ua, &a, sizeof(T));
    memcpy(&ub, &b, sizeof(T));
    ua = (ua & mask) | (ub & ~mask);
    memcpy(&a, &ua, sizeof(T));
    return a;
}

/* PyTorch's update: take v if it is larger or NaN. */
#define FR_MAX_STEP(v, i, m, mi)                                                                \
    do {                                                                                        \
        int t_ = ((v) > (m)) | ((v) != (v));                                                    \
        (m) = FR_FN(fr_select)(t_, (v), (m));                                                   \
        (mi) = fr_select_i32(t_, (i), (mi));                                                    \
    } while (0)

/* ---- max pooling ---------------------------------------------------------------------------- */

/* Any kernel/stride/padding. For each output row, the input rows of its windows are visited in
 * order; within one input row each output applies its window offsets left to right, so every
 * output scans its window row by row exactly as PyTorch does (offsets in the padding are -inf
 * and never taken, so they are skipped). Interior outputs (whole window inside the row) run a
 * vectorised loop; the few outputs touching the left/right padding run a scalar one. */
#define FR_MAX_INTERIOR(KW_, SW_)                                                               \
    for (ptrdiff_t ow = a; ow < b; ow++) {                                                      \
        const T *r = row + ow * (SW_) - PW;                                                     \
        int32_t i0 = rowbase + (int32_t)(ow * (SW_) - PW);                                      \
        T mo = m[ow];                                                                           \
        int32_t io = id[ow];                                                                    \
        for (int k = 0; k < (KW_); k++) FR_MAX_STEP(r[k], i0 + (int32_t)k, mo, io);             \
        m[ow] = mo;                                                                             \
        id[ow] = io;                                                                            \
    }

FR_CLONES static void FR_FN(fr_maxpool_plane)(const T *restrict x, T *restrict y,
                                              int32_t *restrict idx, ptrdiff_t H, ptrdiff_t W,
                                              ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t KH,
                                              ptrdiff_t KW, ptrdiff_t SH, ptrdiff_t SW,
                                              ptrdiff_t PH, ptrdiff_t PW) {
    ptrdiff_t a, b, unused;
    fr_valid_outputs(W, SW, -PW, OW, &a, &unused);          /* window starts inside */
    fr_valid_outputs(W, SW, KW - 1 - PW, OW, &unused, &b);  /* window ends inside */
    b = FR_MAX(a, b);
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        ptrdiff_t ih0 = oh * SH - PH, ih1 = FR_MIN(ih0 + KH, H);
        ih0 = FR_MAX(ih0, 0);
        T *restrict m = y + oh * OW;
        int32_t *restrict id = idx + oh * OW;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            m[ow] = -(T)INFINITY;
            id[ow] = (int32_t)(ih0 * W) + FR_MAX((int32_t)ow * (int32_t)SW - (int32_t)PW, 0);
        }
        for (ptrdiff_t ih = ih0; ih < ih1; ih++) {
            const T *restrict row = x + ih * W;
            int32_t rowbase = (int32_t)(ih * W);
            FR_BY_SHAPE(FR_MAX_INTERIOR)
            for (int side = 0; side < 2; side++) {  /* outputs [0, a) and [b, OW) */
                for (ptrdiff_t ow = side ? b : 0; ow < (side ? OW : a); ow++) {
                    ptrdiff_t iw0 = ow * SW - PW;
                    ptrdiff_t k0 = FR_MAX(0, -iw0), k1 = FR_MIN(KW, W - iw0);
                    for (ptrdiff_t k = k0; k < k1; k++)
                        FR_MAX_STEP(row[iw0 + k], rowbase + (int32_t)(iw0 + k), m[ow], id[ow]);
                }
            }
        }
    }
}

/* kernel 2x2, stride 2, no padding (the ResNet/Keras downsampling pool): the same rule unrolled
 * over the four candidates, storing where the maximum is in its window as one byte, k = 2*row +
 * column (0-3), instead of an int32 plane offset: the pass moves 25.2 -> 22 MB at ResNet-20's
 * 32@32x32, batch 128 (forward 2.0 -> 1.6 ms on a Zen 1 host). The top-left element always
 * ends up as the starting point (from -inf it is taken unless it is -inf, where k stays 0). */
FR_CLONES static void FR_FN(fr_maxpool2x2_plane)(const T *restrict x, T *restrict y,
                                                 uint8_t *restrict code, ptrdiff_t W,
                                                 ptrdiff_t OH, ptrdiff_t OW) {
    enum { BLOCK = 64 };
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        const T *r0 = x + 2 * oh * W, *r1 = r0 + W;
        T *yo = y + oh * OW;
        uint8_t *co = code + oh * OW;
        for (ptrdiff_t o0 = 0; o0 < OW; o0 += BLOCK) {
            /* the codes go through an int32 block: stored as bytes from the loop itself, GCC
             * 12 vectorised it 32 outputs at a time, and rows of 16 or fewer outputs (16x16 and
             * 8x8 maps) ran scalar, 4x slower than with int32 indices */
            int32_t kb[BLOCK];
            ptrdiff_t n = FR_MIN(BLOCK, OW - o0);
            for (ptrdiff_t j = 0; j < n; j++) {
                ptrdiff_t ow = o0 + j;
                T m = r0[2 * ow];
                int32_t k = 0;
                FR_MAX_STEP(r0[2 * ow + 1], 1, m, k);
                FR_MAX_STEP(r1[2 * ow], 2, m, k);
                FR_MAX_STEP(r1[2 * ow + 1], 3, m, k);
                yo[ow] = m;
                kb[j] = k;
            }
            for (ptrdiff_t j = 0; j < n; j++) co[o0 + j] = (uint8_t)kb[j];
        }
    }
}

/* dx = 0, then dx[idx[o]] += dy[o] in output order (overlapping windows accumulate). An index
 * outside [0, HW) is skipped and counted (the return value), so no idx writes out of bounds. */
FR_CLONES static ptrdiff_t FR_FN(fr_maxpool_grad_plane)(const T *restrict dy,
                                                        const int32_t *restrict idx,
                                                        T *restrict dx, ptrdiff_t HW,
                                                        ptrdiff_t OHW) {
    ptrdiff_t bad = 0;
    memset(dx, 0, (size_t)HW * sizeof(T));
    for (ptrdiff_t o = 0; o < OHW; o++) {
        size_t i = (size_t)(ptrdiff_t)idx[o];  /* a negative index wraps to a huge one */
        if (i < (size_t)HW)
            dx[i] += dy[o];
        else
            bad++;
    }
    return bad;
}

/* 2x2/stride 2/no padding: the windows tile the plane, so each dx element is written once
 * (0 + dy as the scatter would give, or 0) without a separate zeroing pass. A code other than
 * 0-3 writes no gradient, so any code is memory-safe. The codes are widened to int32 a block at
 * a time and the stores go through fr_select: read as bytes in the loop, or compared with `?:`,
 * GCC 12 left it scalar (2x slower). */
FR_CLONES static void FR_FN(fr_maxpool2x2_grad_plane)(const T *restrict dy,
                                                      const uint8_t *restrict code,
                                                      T *restrict dx, ptrdiff_t H, ptrdiff_t W,
                                                      ptrdiff_t OH, ptrdiff_t OW) {
    enum { BLOCK = 64 };
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        T *r0 = dx + 2 * oh * W, *r1 = r0 + W;
        const T *go = dy + oh * OW;
        const uint8_t *co = code + oh * OW;
        for (ptrdiff_t o0 = 0; o0 < OW; o0 += BLOCK) {
            int32_t kb[BLOCK];
            ptrdiff_t n = FR_MIN(BLOCK, OW - o0);
            for (ptrdiff_t j = 0; j < n; j++) kb[j] = co[o0 + j];
            for (ptrdiff_t j = 0; j < n; j++) {
                ptrdiff_t ow = o0 + j;
                T g = go[ow] + (T)0;
                r0[2 * ow] = FR_FN(fr_select)(kb[j] == 0, g, (T)0);
                r0[2 * ow + 1] = FR_FN(fr_select)(kb[j] == 1, g, (T)0);
                r1[2 * ow] = FR_FN(fr_select)(kb[j] == 2, g, (T)0);
                r1[2 * ow + 1] = FR_FN(fr_select)(kb[j] == 3, g, (T)0);
            }
        }
        if (W & 1) r0[W - 1] = r1[W - 1] = (T)0;
    }
    if (H & 1) memset(dx + (H - 1) * W, 0, (size_t)W * sizeof(T));
}

/* ---- average pooling ------------------------------------------------------------------------ */

/* Same traversal as max pooling: each output's sum runs over its window row by row, from 0. */
#define FR_SUM_INTERIOR(KW_, SW_)                                                               \
    for (ptrdiff_t ow = a; ow < b; ow++) {                                                      \
        const T *r = row + ow * (SW_) - PW;                                                     \
        T s = acc[ow];                                                                          \
        for (int k = 0; k < (KW_); k++) s += r[k];                                              \
        acc[ow] = s;                                                                            \
    }

FR_CLONES static void FR_FN(fr_avgpool_plane)(const T *restrict x, T *restrict y, ptrdiff_t H,
                                              ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW,
                                              ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t SH,
                                              ptrdiff_t SW, ptrdiff_t PH, ptrdiff_t PW) {
    ptrdiff_t a, b, unused;
    fr_valid_outputs(W, SW, -PW, OW, &a, &unused);
    fr_valid_outputs(W, SW, KW - 1 - PW, OW, &unused, &b);
    b = FR_MAX(a, b);
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        ptrdiff_t ih0 = oh * SH - PH, ih1 = FR_MIN(ih0 + KH, H + PH);
        T hsize = (T)(ih1 - ih0);  /* the divisor counts padded rows, clipped at H + PH */
        ih0 = FR_MAX(ih0, 0);
        ih1 = FR_MIN(ih1, H);
        T *restrict acc = y + oh * OW;
        for (ptrdiff_t ow = 0; ow < OW; ow++) acc[ow] = 0;
        for (ptrdiff_t ih = ih0; ih < ih1; ih++) {
            const T *restrict row = x + ih * W;
            FR_BY_SHAPE(FR_SUM_INTERIOR)
            for (int side = 0; side < 2; side++) {  /* outputs [0, a) and [b, OW) */
                for (ptrdiff_t ow = side ? b : 0; ow < (side ? OW : a); ow++) {
                    ptrdiff_t iw0 = ow * SW - PW;
                    ptrdiff_t k0 = FR_MAX(0, -iw0), k1 = FR_MIN(KW, W - iw0);
                    for (ptrdiff_t k = k0; k < k1; k++) acc[ow] += row[iw0 + k];
                }
            }
        }
        /* int32 and T arithmetic so this vectorises (AVX2 has no int64 -> float conversion);
         * hsize * wsize is exact or rounds once, like PyTorch's (float)(int64 product). */
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            int32_t iw0 = (int32_t)ow * (int32_t)SW - (int32_t)PW;
            T wsize = (T)(FR_MIN(iw0 + (int32_t)KW, (int32_t)(W + PW)) - iw0);
            acc[ow] = acc[ow] / (hsize * wsize);
        }
    }
}

/* kernel 2x2, stride 2, no padding: the general traversal's sum, ((0 + a) + b) + c) + d over
 * the window's two rows, and its divisor 2 * 2, unrolled (bit-identical to it). */
FR_CLONES static void FR_FN(fr_avgpool2x2_plane)(const T *restrict x, T *restrict y, ptrdiff_t W,
                                                 ptrdiff_t OH, ptrdiff_t OW) {
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        const T *r0 = x + 2 * oh * W, *r1 = r0 + W;
        T *yo = y + oh * OW;
        for (ptrdiff_t ow = 0; ow < OW; ow++)
            yo[ow] = ((((T)0 + r0[2 * ow]) + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1];
        for (ptrdiff_t ow = 0; ow < OW; ow++) yo[ow] = yo[ow] / (T)4;
    }
}

/* Backward: dx = 0, then each output adds its share dout / divisor to its window, outputs in
 * row-major order (PyTorch's order, which fixes the rounding where windows overlap).
 *
 * Along a row this is a transposed box filter, done as a gather: the shares of up to `n`
 * outputs are written into a zero buffer at stride SW ("upsampled", with KW - 1 zeros of margin
 * on each side), and each dx element of the row adds the KW buffer entries under its window,
 * right to left, i.e. the covering outputs in ascending order. One contiguous, vectorisable
 * loop per input row; the extra additions of +0 change no bits, because dx starts at +0 and a
 * sum that starts at +0 is never -0. Outputs are taken in chunks of `n`, in order, so each dx
 * element still sees its contributions in ascending output order. */
#define FR_SPREAD_ROW(KW_)                                                                      \
    for (ptrdiff_t iw = iwa; iw < iwb; iw++) {                                                  \
        T s = row[iw];                                                                          \
        for (ptrdiff_t k = (KW_) - 1; k >= 0; k--) s += base[iw - k];                           \
        row[iw] = s;                                                                            \
    }

FR_CLONES static void FR_FN(fr_avgpool_grad_plane)(const T *restrict dy, T *restrict dx,
                                                   ptrdiff_t H, ptrdiff_t W, ptrdiff_t OH,
                                                   ptrdiff_t OW, ptrdiff_t KH, ptrdiff_t KW,
                                                   ptrdiff_t SH, ptrdiff_t SW, ptrdiff_t PH,
                                                   ptrdiff_t PW) {
    T gup[FR_GUP];
    ptrdiff_t n = 2 * (KW - 1) < FR_GUP ? (FR_GUP - 2 * (KW - 1)) / SW : 0;
    memset(dx, 0, (size_t)(H * W) * sizeof(T));
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        ptrdiff_t ih0 = oh * SH - PH, ih1 = FR_MIN(ih0 + KH, H + PH);
        T hsize = (T)(ih1 - ih0);
        ih0 = FR_MAX(ih0, 0);
        ih1 = FR_MIN(ih1, H);
        if (n < 1) {  /* kernel or stride too wide for the buffer: PyTorch's loop as is */
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                ptrdiff_t iw0 = ow * SW - PW, iw1 = FR_MIN(iw0 + KW, W + PW);
                T g = dy[oh * OW + ow] / (hsize * (T)(iw1 - iw0));
                iw0 = FR_MAX(iw0, 0);
                iw1 = FR_MIN(iw1, W);
                for (ptrdiff_t ih = ih0; ih < ih1; ih++)
                    for (ptrdiff_t iw = iw0; iw < iw1; iw++) dx[ih * W + iw] += g;
            }
            continue;
        }
        for (ptrdiff_t c0 = 0; c0 < OW; c0 += n) {
            ptrdiff_t c1 = FR_MIN(c0 + n, OW);
            /* gup[KW - 1 + j] holds the share of output c0 + j/SW when SW divides j, else 0 */
            memset(gup, 0, (size_t)((c1 - c0) * SW + 2 * (KW - 1)) * sizeof(T));
            for (ptrdiff_t ow = c0; ow < c1; ow++) {
                int32_t iw0 = (int32_t)ow * (int32_t)SW - (int32_t)PW;
                T wsize = (T)(FR_MIN(iw0 + (int32_t)KW, (int32_t)(W + PW)) - iw0);
                gup[KW - 1 + (ow - c0) * SW] = dy[oh * OW + ow] / (hsize * wsize);
            }
            /* dx[iw] gathers base[iw - k], k = KW-1..0: the outputs whose window holds iw */
            const T *base = gup + (KW - 1) + PW - c0 * SW;
            ptrdiff_t iwa = FR_MAX(0, c0 * SW - PW);
            ptrdiff_t iwb = FR_MIN(W, (c1 - 1) * SW - PW + KW);
            for (ptrdiff_t ih = ih0; ih < ih1; ih++) {
                T *restrict row = dx + ih * W;
                if (KW == 2) { FR_SPREAD_ROW(2) }
                else if (KW == 3) { FR_SPREAD_ROW(3) }
                else { FR_SPREAD_ROW(KW) }
            }
        }
    }
}

/* kernel 2x2, stride 2, no padding: the windows tile the plane, so each dx element is written
 * once, 0 + dout / 4 as PyTorch's scatter gives (or 0 outside every window), without zeroing. */
FR_CLONES static void FR_FN(fr_avgpool2x2_grad_plane)(const T *restrict dy, T *restrict dx,
                                                      ptrdiff_t H, ptrdiff_t W, ptrdiff_t OH,
                                                      ptrdiff_t OW) {
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        T *r0 = dx + 2 * oh * W, *r1 = r0 + W;
        const T *go = dy + oh * OW;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            T g = (T)0 + go[ow] / ((T)2 * (T)2);
            r0[2 * ow] = r0[2 * ow + 1] = r1[2 * ow] = r1[2 * ow + 1] = g;
        }
        if (W & 1) r0[W - 1] = r1[W - 1] = (T)0;
    }
    if (H & 1) memset(dx + (H - 1) * W, 0, (size_t)W * sizeof(T));
}

/* ---- global average pooling ----------------------------------------------------------------- */

/* y[p] = mean of the HW values of plane p, for P consecutive planes. Sixteen lanes (element i
 * goes to lane i % 16, up to the last full group) folded halves onto halves, plus the last
 * HW % 16 elements summed in order: the order depends only on HW, never on the threads.
 * Written with GCC vector extensions (the auto-vectoriser left the lane array scalar), as four
 * 4-lane accumulators: one 16-lane vector was spilled to the stack on every add on AVX2 (GCC 12
 * splits a 64-byte float vector there), which made the AVX2 path 5x slower. */
#if defined(__GNUC__)
typedef T FR_FN(fr_v4) __attribute__((vector_size(4 * sizeof(T))));
FR_CLONES static void FR_FN(fr_plane_mean)(const T *restrict x, T *restrict y, ptrdiff_t P,
                                           ptrdiff_t HW) {
    typedef FR_FN(fr_v4) V4;
    for (ptrdiff_t p = 0; p < P; p++) {
        const T *xp = x + p * HW;
        V4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v; /* lanes 0-3, 4-7, 8-11, 12-15 */
        ptrdiff_t i = 0;
        for (; i + 16 <= HW; i += 16) {
            memcpy(&v, xp + i, sizeof v);
            a0 += v;
            memcpy(&v, xp + i + 4, sizeof v);
            a1 += v;
            memcpy(&v, xp + i + 8, sizeof v);
            a2 += v;
            memcpy(&v, xp + i + 12, sizeof v);
            a3 += v;
        }
        T tail = 0;
        for (; i < HW; i++) tail += xp[i];
        V4 a4 = (a0 + a2) + (a1 + a3); /* 16 lanes onto 8, then 8 onto 4 */
        y[p] = (((a4[0] + a4[2]) + (a4[1] + a4[3])) + tail) / (T)HW;
    }
}
#else
FR_CLONES static void FR_FN(fr_plane_mean)(const T *restrict x, T *restrict y, ptrdiff_t P,
                                           ptrdiff_t HW) {
    for (ptrdiff_t p = 0; p < P; p++) {
        const T *xp = x + p * HW;
        T acc[16] = {0}, tail = 0;
        ptrdiff_t i = 0;
        for (; i + 16 <= HW; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += xp[i + j];
        for (; i < HW; i++) tail += xp[i];
        for (int w = 8; w >= 4; w /= 2)
            for (int j = 0; j < w; j++) acc[j] += acc[j + w];
        y[p] = (((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail) / (T)HW;
    }
}
#endif

/* dx[p, :] = dy[p] / HW for P consecutive planes (PyTorch's mean backward divides). */
FR_CLONES static void FR_FN(fr_plane_fill)(const T *restrict dy, T *restrict dx, ptrdiff_t P,
                                           ptrdiff_t HW) {
    for (ptrdiff_t p = 0; p < P; p++) {
        T g = dy[p] / (T)HW;
        T *d = dx + p * HW;
        for (ptrdiff_t i = 0; i < HW; i++) d[i] = g;
    }
}

#undef FR_MAX_STEP
#undef FR_MAX_INTERIOR
#undef FR_SUM_INTERIOR
#undef FR_SPREAD_ROW
#undef T
#undef U
#endif /* FR_POOL_T */
