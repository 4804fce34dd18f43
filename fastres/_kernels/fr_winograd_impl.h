/* Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions, one image at a time; included by
 * fr_direct_impl.h inside its per-dtype instantiation (T, L, VEC, FN as there).
 *
 * The output is cut into 2x2 tiles, TH x TW of them, numbered T = s*TW + t; tile (s, t) reads
 * the 4x4 input patch d at padded rows 2s..2s+3, columns 2t..2t+3. With U = G g G^T (the
 * weights, fr_wino_weights_), V = B^T d B and M = sum over input channels of U .* V (16
 * products of (F x C) by (C x tiles), fr_wino_gemm_), each tile is y = A^T M A: 4
 * multiplications per output and channel pair instead of 9.
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1].
 * Vectors hold L consecutive tiles, two halves of L/2 each inside one tile row (TW % (L/2) == 0);
 * a half's 2x2 outputs interleave into one vector of L outputs of one output row.
 * F(4x4, 3x3) (float32) follows at the end of the file, on the same layouts.
 */
/* Where tile q starts in a plane of rows `row` elements apart: tile (s, t) = (q / TW, q % TW)
 * covers rows 2s.., columns 2t.. (the two halves of a vector of tiles start at q and q + L/2). */
static inline __attribute__((always_inline)) ptrdiff_t FN(fr_wino_at_)(int q, int TW,
                                                                      ptrdiff_t row) {
    return 2 * (q / TW) * row + 2 * (q % TW);
}

/* The 16 elements of B^T d B for one vector of 4x4 patches d, stored es apart from v. */
static inline __attribute__((always_inline)) void FN(fr_wino_btdb_)(const VEC d[4][4], T *v,
                                                                   ptrdiff_t es) {
    VEC u[4][4];
    for (int j = 0; j < 4; j++) {
        u[0][j] = d[0][j] - d[2][j];
        u[1][j] = d[1][j] + d[2][j];
        u[2][j] = d[2][j] - d[1][j];
        u[3][j] = d[1][j] - d[3][j];
    }
    for (int r = 0; r < 4; r++) {
        FN(fr_st_)(v + (4 * r + 0) * es, u[r][0] - u[r][2]);
        FN(fr_st_)(v + (4 * r + 1) * es, u[r][1] + u[r][2]);
        FN(fr_st_)(v + (4 * r + 2) * es, u[r][2] - u[r][1]);
        FN(fr_st_)(v + (4 * r + 3) * es, u[r][1] - u[r][3]);
    }
}

/* The 2x2 outputs A^T m A + b of one vector of tiles from its 16 elements m. */
static inline __attribute__((always_inline)) void FN(fr_wino_atma_)(const VEC m[16], T b,
                                                                   VEC y[2][2]) {
    VEC r0[4], r1[4];
    for (int j = 0; j < 4; j++) {
        r0[j] = m[j] + m[4 + j] + m[8 + j];
        r1[j] = m[4 + j] - m[8 + j] - m[12 + j];
    }
    y[0][0] = r0[0] + r0[1] + r0[2] + b, y[0][1] = r0[1] - r0[2] - r0[3] + b;
    y[1][0] = r1[0] + r1[1] + r1[2] + b, y[1][1] = r1[1] - r1[2] - r1[3] + b;
}

/* The 16 elements of A dy A^T for one vector of 2x2 output-gradient tiles y, stored es apart
 * from v; A = [1 0; 1 1; 1 -1; 0 -1]. */
static inline __attribute__((always_inline)) void FN(fr_wino_adya_)(const VEC y[2][2], T *v,
                                                                   ptrdiff_t es) {
    const VEC p[4][2] = {{y[0][0], y[0][1]}, {y[0][0] + y[1][0], y[0][1] + y[1][1]},
                         {y[0][0] - y[1][0], y[0][1] - y[1][1]}, {-y[1][0], -y[1][1]}};
    for (int r = 0; r < 4; r++) {
        FN(fr_st_)(v + (4 * r + 0) * es, p[r][0]);
        FN(fr_st_)(v + (4 * r + 1) * es, p[r][0] + p[r][1]);
        FN(fr_st_)(v + (4 * r + 2) * es, p[r][0] - p[r][1]);
        FN(fr_st_)(v + (4 * r + 3) * es, -p[r][1]);
    }
}

/* V (16 planes es apart, each (C, NT)) = B^T d B for every tile of x (C, H, W) zero-padded
 * by ph, pw to Hp = 2TH + 2 = H + 2ph rows and Wp = 2TW + 2 = W + 2pw columns, one channel at
 * a time through xp (Hp*Wp, so that the transform reads it from L1). A half of a vector is
 * tiles t..t+L/2-1 of tile row s: padded row 2s + i, columns 2t.. (patch columns 0, 1
 * interleaved) and 2t + 2.. (columns 2, 3); the even and odd lanes of the two halves' loads are
 * the four columns. */
FR_CLONES static void FN(fr_wino_in_)(const T *restrict x, int C, int H, int W, int ph, int pw,
                                      T *restrict xp, int Hp, int Wp, int TW, int NT, int q0,
                                      int q1, T *restrict V, ptrdiff_t es) {
    /* Every channel is padded alike: the border of zeros is written once, then each channel
     * copies its rows into the interior (Hp = H + 2ph, Wp = W + 2pw; fr_pad_ per channel, with
     * its row-sized memcpy and memset calls, took 10% of a ResNet-20 training step). */
    memset(xp, 0, sizeof(T) * (size_t)Hp * Wp);
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < H; y++)
            FN(fr_copy_)(x + ((ptrdiff_t)c * H + y) * W, xp + (ptrdiff_t)(y + ph) * Wp + pw, W);
        for (int q = q0; q < q1; q += L) {
            const T *a0 = xp + FN(fr_wino_at_)(q, TW, Wp);
            const T *a1 = xp + FN(fr_wino_at_)(q + L / 2, TW, Wp);
            VEC d[4][4];
            for (int i = 0; i < 4; i++) {
                const VEC A0 = FN(fr_ld_)(a0 + i * Wp), A1 = FN(fr_ld_)(a1 + i * Wp);
                const VEC B0 = FN(fr_ld_)(a0 + i * Wp + 2), B1 = FN(fr_ld_)(a1 + i * Wp + 2);
                d[i][0] = __builtin_shufflevector(A0, A1, FR_EVEN_LANES);
                d[i][1] = __builtin_shufflevector(A0, A1, FR_ODD_LANES);
                d[i][2] = __builtin_shufflevector(B0, B1, FR_EVEN_LANES);
                d[i][3] = __builtin_shufflevector(B0, B1, FR_ODD_LANES);
            }
            FN(fr_wino_btdb_)(d, V + (ptrdiff_t)c * NT + q, es);
        }
    }
}

/* out (F, 2*TH, Wo) = A^T M A (+ bias) (+ res) (relu) (gate) from M (16 planes ms apart, each
 * (F, NT)). */
FR_CLONES static void FN(fr_wino_out_)(const T *restrict M, ptrdiff_t ms, int F, int TW, int NT,
                                       int q0, int q1, int Wo, T *out, const T *bias,
                                       const T *res, int relu, const T *gate) {
    const ptrdiff_t P = (ptrdiff_t)2 * (NT / TW) * Wo;
    for (int f = 0; f < F; f++) {
        const T b = bias ? bias[f] : (T)0;
        const T *mf = M + (ptrdiff_t)f * NT;
        const ptrdiff_t fo = (ptrdiff_t)f * P;
        for (int q = q0; q < q1; q += L) {
            VEC m[16], y[2][2];
            for (int e = 0; e < 16; e++) m[e] = FN(fr_ld_)(mf + e * ms + q);
            FN(fr_wino_atma_)(m, b, y);
            /* half h of the vector: tiles (s, t..t+L/2-1) -> outputs (2s + i, 2t..2t+L-1) */
            const ptrdiff_t o0 = fo + FN(fr_wino_at_)(q, TW, Wo);
            const ptrdiff_t o1 = fo + FN(fr_wino_at_)(q + L / 2, TW, Wo);
#define SH __builtin_shufflevector
            FN(fr_store_)(out, o0, SH(y[0][0], y[0][1], FR_LO_LANES), res, relu, gate);
            FN(fr_store_)(out, o0 + Wo, SH(y[1][0], y[1][1], FR_LO_LANES), res, relu, gate);
            FN(fr_store_)(out, o1, SH(y[0][0], y[0][1], FR_HI_LANES), res, relu, gate);
            FN(fr_store_)(out, o1 + Wo, SH(y[1][0], y[1][1], FR_HI_LANES), res, relu, gate);
#undef SH
        }
    }
}

/* M (F, NT) = U (F/4, C, 4 packed) x V (C, NT): a 4 x 3-vector register tile, the C rows of V
 * NT apart (the direct kernel's tile with a constant stride for its offset table and no
 * epilogue: 4-15% faster on these short reductions than calling fr_direct_fwd_). */
static inline __attribute__((always_inline)) void FN(fr_wino_gemm_tile_)(
    const T *restrict V, const T *restrict wt, int C, int NT, int q, T *restrict M, const int NV) {
    VEC acc[4][3];
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < NV; u++) acc[r][u] = (VEC){0};
    const T *vb = V + q;
    for (int c = 0; c < C; c++, vb += NT) {
        VEC x0 = FN(fr_ld_)(vb), x1 = x0, x2 = x0;
        if (NV > 1) x1 = FN(fr_ld_)(vb + L);
        if (NV > 2) x2 = FN(fr_ld_)(vb + 2 * L);
        const T *wk = wt + 4 * c;
        for (int r = 0; r < 4; r++) {
            const T wr = wk[r];
            acc[r][0] += wr * x0;
            if (NV > 1) acc[r][1] += wr * x1;
            if (NV > 2) acc[r][2] += wr * x2;
        }
    }
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < NV; u++) FN(fr_st_)(M + (ptrdiff_t)r * NT + q + u * L, acc[r][u]);
}

FR_CLONES static void FN(fr_wino_gemm_)(const T *V, const T *upk, int C, int NT, int q0, int q1,
                                        int F, T *M) {
    for (int ft = 0; ft < F / 4; ft++) {
        const T *wt = upk + (ptrdiff_t)ft * C * 4;
        T *m = M + (ptrdiff_t)ft * 4 * NT;
        int q = q0;
        for (; q + 3 * L <= q1; q += 3 * L) FN(fr_wino_gemm_tile_)(V, wt, C, NT, q, m, 3);
        if (q1 - q == 2 * L) FN(fr_wino_gemm_tile_)(V, wt, C, NT, q, m, 2);
        if (q1 - q == L) FN(fr_wino_gemm_tile_)(V, wt, C, NT, q, m, 1);
    }
}

/* Scratch between Winograd's 16 planes: keeps them off the same cache sets. */
#ifndef FR_WINO_GAP
#define FR_WINO_GAP 16
#endif
/* The weight gradient. With dy the 2x2 output-gradient tile and d the 4x4 input patch of a
 * tile, dW = G^T [sum over tiles and images of (A dy A^T) .* (B^T d B)] G (the forward read
 * backwards); the sums are 16 products (F x tiles) by (tiles x C) (fr_wino_wgrad_sum_), then
 * G^T . G (fr_wino_dw_out_).
 * DY (16 planes es apart, each (F, NT)) = A dy A^T for every tile of dout (F, 2TH, Wo), vectors
 * of tiles in halves as in fr_wino_in_. */
FR_CLONES static void FN(fr_wino_dy_)(const T *restrict dout, int F, int Wo, int NT,
                                      T *restrict DY, ptrdiff_t es) {
    const int TW = Wo / 2;
    const ptrdiff_t P = (ptrdiff_t)2 * (NT / TW) * Wo;
    for (int f = 0; f < F; f++) {
        const T *df = dout + (ptrdiff_t)f * P;
        for (int q = 0; q < NT; q += L) {
            const T *a0 = df + FN(fr_wino_at_)(q, TW, Wo);
            const T *a1 = df + FN(fr_wino_at_)(q + L / 2, TW, Wo);
            const VEC A0 = FN(fr_ld_)(a0), A1 = FN(fr_ld_)(a1);
            const VEC B0 = FN(fr_ld_)(a0 + Wo), B1 = FN(fr_ld_)(a1 + Wo);
            const VEC y[2][2] = {{__builtin_shufflevector(A0, A1, FR_EVEN_LANES),
                                  __builtin_shufflevector(A0, A1, FR_ODD_LANES)},
                                 {__builtin_shufflevector(B0, B1, FR_EVEN_LANES),
                                  __builtin_shufflevector(B0, B1, FR_ODD_LANES)}};
            FN(fr_wino_adya_)(y, DY + (ptrdiff_t)f * NT + q, es);
        }
    }
}

/* dwt (F, C) of one element = sum over nimg images (vs and ds apart) and their NT tiles of
 * DY (F, NT) x V (C, NT)^T: register tiles of 4 output channels x 3 input channels, each summed
 * over all the images before its horizontal sums (stored, or added to dwt with add):
 * fr_wgrad_tile_ with a constant row stride instead of its offset tables. */
static inline __attribute__((always_inline)) void FN(fr_wino_wgsum_tile_)(
    const T *restrict V, ptrdiff_t vs, const T *restrict DY, ptrdiff_t ds, int nimg, int NT,
    int c, T *restrict dwt, int C, int add, const int NK) {
    VEC acc[4][3];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NK; t++) acc[r][t] = (VEC){0};
    for (int n = 0; n < nimg; n++) {
        const T *vn = V + n * vs + (ptrdiff_t)c * NT, *dn = DY + n * ds;
        for (int q = 0; q < NT; q += L) {
            VEC x0 = FN(fr_ld_)(vn + q), x1 = x0, x2 = x0;
            if (NK > 1) x1 = FN(fr_ld_)(vn + NT + q);
            if (NK > 2) x2 = FN(fr_ld_)(vn + 2 * NT + q);
            for (int r = 0; r < 4; r++) {
                const VEC dv = FN(fr_ld_)(dn + (ptrdiff_t)r * NT + q);
                acc[r][0] += dv * x0;
                if (NK > 1) acc[r][1] += dv * x1;
                if (NK > 2) acc[r][2] += dv * x2;
            }
        }
    }
    for (int t = 0; t < NK; t++)
        FN(fr_hsum4_)(acc[0][t], acc[1][t], acc[2][t], acc[3][t], dwt + c + t, C, add);
}

/* dwt (16, F, C) = the sums over nimg transformed images, their V and DY vs and ds elements
 * apart, per element e (stored, or added to dwt with add), for the units u in [u0, u1) of
 * element e = u / (F/4) and output channels 4 (u % (F/4)) .. + 3 (all 16 F/4 of them, or a
 * share when threads split one sum). */
FR_CLONES static void FN(fr_wino_wgrad_sum_)(const T *V, ptrdiff_t vs, const T *DY, ptrdiff_t ds,
                                             int nimg, int C, int F, int NT, int u0, int u1,
                                             int add, T *dwt) {
    const ptrdiff_t es = (ptrdiff_t)C * NT + FR_WINO_GAP, ms = (ptrdiff_t)F * NT + FR_WINO_GAP;
    for (int u = u0; u < u1; u++) {
        const int e = u / (F / 4), ft = u % (F / 4);
        const T *d = DY + e * ms + (ptrdiff_t)ft * 4 * NT;
        T *g = dwt + ((ptrdiff_t)e * F + 4 * ft) * C;
        int c = 0;
        for (; c + 3 <= C; c += 3)
            FN(fr_wino_wgsum_tile_)(V + e * es, vs, d, ds, nimg, NT, c, g, C, add, 3);
        if (C - c == 2) FN(fr_wino_wgsum_tile_)(V + e * es, vs, d, ds, nimg, NT, c, g, C, add, 2);
        if (C - c == 1) FN(fr_wino_wgsum_tile_)(V + e * es, vs, d, ds, nimg, NT, c, g, C, add, 1);
    }
}

/* Winograd on the batch-lane layout (fr_lanes_in_: maps whose tile rows are narrower than a
 * vector, 4x4, 6x6, or odd ones like 7x7): a vector holds one tile of L images, so the
 * transforms load and store whole vectors, and V, M and DY hold (C or F) rows of NTL =
 * TH*TW*L, tile-major; the products and sums above run on them unchanged with NTL in place
 * of NT.
 * fr_wino_lanes_in_: V = B^T d B of xl (C, 2TH + 2, 2TW + 2, L), padded. */
FR_CLONES static void FN(fr_wino_lanes_in_)(const T *restrict xl, int C, int TH, int TW,
                                            T *restrict V, ptrdiff_t es) {
    const int Hp = 2 * TH + 2, Wp = 2 * TW + 2, NTL = TH * TW * L;
    for (int c = 0; c < C; c++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *a = xl + (((ptrdiff_t)c * Hp + 2 * s) * Wp + 2 * t) * L;
                VEC d[4][4];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) d[i][j] = FN(fr_ld_)(a + (i * Wp + j) * L);
                FN(fr_wino_btdb_)(d, V + (ptrdiff_t)c * NTL + (s * TW + t) * L, es);
            }
}

/* ol (F, 2TH, 2TW, L) = A^T M A (+ bias), M (16 planes ms apart, each (F, NTL)). */
FR_CLONES static void FN(fr_wino_lanes_out_)(const T *restrict M, ptrdiff_t ms, int F, int TH,
                                             int TW, const T *bias, T *restrict ol) {
    const int Wo = 2 * TW, NTL = TH * TW * L;
    for (int f = 0; f < F; f++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *mf = M + (ptrdiff_t)f * NTL + (s * TW + t) * L;
                VEC m[16], y[2][2];
                for (int e = 0; e < 16; e++) m[e] = FN(fr_ld_)(mf + e * ms);
                FN(fr_wino_atma_)(m, bias ? bias[f] : (T)0, y);
                T *o = ol + (((ptrdiff_t)f * 2 * TH + 2 * s) * Wo + 2 * t) * L;
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++) FN(fr_st_)(o + (i * Wo + j) * L, y[i][j]);
            }
}

/* DY (16 planes es apart, each (F, NTL)) = A dy A^T of dl (F, 2TH, 2TW, L). */
FR_CLONES static void FN(fr_wino_lanes_dy_)(const T *restrict dl, int F, int TH, int TW,
                                            T *restrict DY, ptrdiff_t es) {
    const int Wo = 2 * TW, NTL = TH * TW * L;
    for (int f = 0; f < F; f++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *a = dl + (((ptrdiff_t)f * 2 * TH + 2 * s) * Wo + 2 * t) * L;
                const VEC y[2][2] = {{FN(fr_ld_)(a), FN(fr_ld_)(a + L)},
                                     {FN(fr_ld_)(a + Wo * L), FN(fr_ld_)(a + (Wo + 1) * L)}};
                FN(fr_wino_adya_)(y, DY + (ptrdiff_t)f * NTL + (s * TW + t) * L, es);
            }
}

/* upk (16, O/4, K, 4) = G g G^T for output channels 4*ob0 .. 4*ob1 - 1 and every input channel
 * k, packed per element as for the direct kernel (O % 4 == 0), in double before rounding to T.
 * g is w[o][k] of w (O, K, 3, 3), or with flip w[k][o] rotated by 180 degrees, of w (K, O, 3, 3):
 * the weights of the input gradient's convolution. G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
 * 16 input channels at a time go through a local buffer, so that each element's plane (O*K
 * apart: the same cache sets) is written a run at a time, not one value at a time. */
static void FN(fr_wino_weights_)(const T *restrict w, int O, int K, int flip, int ob0, int ob1,
                                 T *restrict upk) {
    enum { KC = 16 };
    const ptrdiff_t es = (ptrdiff_t)O * K;
    T buf[16][KC * 4];
    for (int ob = ob0; ob < ob1; ob++)
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC;
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < 4; r++) {
                    const int o = 4 * ob + r;
                    const T *src = flip ? w + ((ptrdiff_t)(k0 + k) * O + o) * 9
                                        : w + ((ptrdiff_t)o * K + k0 + k) * 9;
                    double g[3][3], t[4][3];
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++)
                            g[i][j] = flip ? src[(2 - i) * 3 + 2 - j] : src[i * 3 + j];
                    for (int j = 0; j < 3; j++) {
                        t[0][j] = g[0][j];
                        t[1][j] = (g[0][j] + g[1][j] + g[2][j]) / 2;
                        t[2][j] = (g[0][j] - g[1][j] + g[2][j]) / 2;
                        t[3][j] = g[2][j];
                    }
                    for (int a = 0; a < 4; a++) {
                        buf[4 * a + 0][4 * k + r] = (T)t[a][0];
                        buf[4 * a + 1][4 * k + r] = (T)((t[a][0] + t[a][1] + t[a][2]) / 2);
                        buf[4 * a + 2][4 * k + r] = (T)((t[a][0] - t[a][1] + t[a][2]) / 2);
                        buf[4 * a + 3][4 * k + r] = (T)t[a][2];
                    }
                }
            for (int e = 0; e < 16; e++)
                memcpy(upk + e * es + ((ptrdiff_t)ob * K + k0) * 4, buf[e], sizeof(T) * 4 * kc);
        }
}

/* dw (F, C, 3, 3) = G^T W G, W[a][b] = dwt[4a + b][f*C + c], for f*C + c in [fc0, fc1): the
 * weight gradient from its transformed sums, in double before rounding to T; the 16 planes are
 * read 16 values at a time into a local buffer (as in fr_wino_weights_). */
static void FN(fr_wino_dw_out_)(const T *restrict dwt, int F, int C, ptrdiff_t fc0, ptrdiff_t fc1,
                                T *restrict dw) {
    enum { NC = 16 };
    const ptrdiff_t FC = (ptrdiff_t)F * C;
    T buf[16][NC];
    for (ptrdiff_t f0 = fc0; f0 < fc1; f0 += NC) {
        const int nc = fc1 - f0 < NC ? (int)(fc1 - f0) : NC;
        for (int e = 0; e < 16; e++) memcpy(buf[e], dwt + e * FC + f0, sizeof(T) * nc);
        for (int m = 0; m < nc; m++) {
            double t[3][4];
            for (int b = 0; b < 4; b++) {
                const double w0 = buf[b][m], w1 = buf[4 + b][m], w2 = buf[8 + b][m];
                const double w3 = buf[12 + b][m];
                t[0][b] = w0 + (w1 + w2) / 2;
                t[1][b] = (w1 - w2) / 2;
                t[2][b] = (w1 + w2) / 2 + w3;
            }
            T *d = dw + (f0 + m) * 9;
            for (int i = 0; i < 3; i++) {
                d[i * 3 + 0] = (T)(t[i][0] + (t[i][1] + t[i][2]) / 2);
                d[i * 3 + 1] = (T)((t[i][1] - t[i][2]) / 2);
                d[i * 3 + 2] = (T)((t[i][1] + t[i][2]) / 2 + t[i][3]);
            }
        }
    }
}


#if L == 8
/* ---- Winograd F(4x4, 3x3), float32 ----------------------------------------------------------
 * 4x4 output tiles from 6x6 input patches (the points 0, +-1, +-2 of Lavin & Gray):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *          0 4 0 -5 0 1],
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * 36 products per 16 outputs and channel pair (2.25 per output, F(2x2)'s 4), and the 36 planes
 * of transforms hold 2.25 values per pixel and channel instead of 4. The larger coefficients
 * cost accuracy: about 5e-6 of the largest output in float32 against F(2x2)'s 3e-7 (still 4x
 * inside the tests' tolerance); float64 keeps F(2x2). Layout as F(2x2)'s: 36 planes (C, NT),
 * tile q = s*TW + t, a vector = 8 tiles, two halves of 4 consecutive tiles of one tile row
 * (TW % 4 == 0), NT % 8 == 0. */
#define SH __builtin_shufflevector

/* r = B^T d for one column (or row) of six vectors. */
static inline __attribute__((always_inline)) void FN(fr_bt6_)(const VEC d[6], VEC r[6]) {
    const VEC t0 = d[4] - (T)4 * d[2], t1 = d[3] - (T)4 * d[1];
    const VEC t2 = d[4] - d[2], t3 = (T)2 * (d[3] - d[1]);
    r[0] = (T)4 * d[0] - (T)5 * d[2] + d[4];
    r[1] = t0 + t1;
    r[2] = t0 - t1;
    r[3] = t2 + t3;
    r[4] = t2 - t3;
    r[5] = (T)4 * d[1] - (T)5 * d[3] + d[5];
}

/* o = A^T m for six vectors. */
static inline __attribute__((always_inline)) void FN(fr_at6_)(const VEC m[6], VEC o[4]) {
    const VEC s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + s12 + s34;
    o[1] = d12 + (T)2 * d34;
    o[2] = s12 + (T)4 * s34;
    o[3] = d12 + (T)8 * d34 + m[5];
}

/* z = A y for four vectors, A = (A^T)^T. */
static inline __attribute__((always_inline)) void FN(fr_a6_)(const VEC y[4], VEC z[6]) {
    const VEC s02 = y[0] + y[2], s13 = y[1] + y[3];
    const VEC e = y[0] + (T)4 * y[2], o = (T)2 * y[1] + (T)8 * y[3];
    z[0] = y[0];
    z[1] = s02 + s13;
    z[2] = s02 - s13;
    z[3] = e + o;
    z[4] = e - o;
    z[5] = y[3];
}

/* The 2-D transforms of one vector of tiles, columns first, then rows (both layouts):
 * fr_btdb6_: the 36 elements of B^T d B of 6x6 patches d, stored es apart from v;
 * fr_atma6_: the 4x4 outputs A^T m A + b from the 36 elements m;
 * fr_adya6_: the 36 elements of A y A^T of 4x4 output-gradient tiles y, stored es apart. */
static inline __attribute__((always_inline)) void FN(fr_btdb6_)(const VEC d[6][6], T *v,
                                                               ptrdiff_t es) {
    VEC u[6][6];
    for (int j = 0; j < 6; j++) {
        VEC col[6], r[6];
        for (int i = 0; i < 6; i++) col[i] = d[i][j];
        FN(fr_bt6_)(col, r);
        for (int i = 0; i < 6; i++) u[i][j] = r[i];
    }
    for (int i = 0; i < 6; i++) {
        VEC r[6];
        FN(fr_bt6_)(u[i], r);
        for (int j = 0; j < 6; j++) FN(fr_st_)(v + (6 * i + j) * es, r[j]);
    }
}

static inline __attribute__((always_inline)) void FN(fr_atma6_)(const VEC m[36], T b,
                                                               VEC y[4][4]) {
    VEC u[4][6];
    for (int j = 0; j < 6; j++) {
        VEC col[6], r[4];
        for (int i = 0; i < 6; i++) col[i] = m[6 * i + j];
        FN(fr_at6_)(col, r);
        for (int i = 0; i < 4; i++) u[i][j] = r[i];
    }
    for (int i = 0; i < 4; i++) {
        FN(fr_at6_)(u[i], y[i]);
        for (int j = 0; j < 4; j++) y[i][j] += b;
    }
}

static inline __attribute__((always_inline)) void FN(fr_adya6_)(const VEC y[4][4], T *v,
                                                               ptrdiff_t es) {
    VEC z[6][4];
    for (int j = 0; j < 4; j++) {
        VEC col[4], r[6];
        for (int i = 0; i < 4; i++) col[i] = y[i][j];
        FN(fr_a6_)(col, r);
        for (int i = 0; i < 6; i++) z[i][j] = r[i];
    }
    for (int i = 0; i < 6; i++) {
        VEC r[6];
        FN(fr_a6_)(z[i], r);
        for (int j = 0; j < 6; j++) FN(fr_st_)(v + (6 * i + j) * es, r[j]);
    }
}

/* Image by image, a vector holds two halves of 4 tiles. fr_w4_pairs_: columns 4k + j (k < 4,
 * j < 4) of the 16 values x | y as two pairs of columns, p[0] = columns 0 | 1 and p[1] = 2 | 3
 * (4 tiles each); fr_w4_join_: the 8-tile vectors of a pair's two columns from the pairs p0,
 * p1 of the two halves. */
static inline __attribute__((always_inline)) void FN(fr_w4_pairs_)(VEC x, VEC y, VEC p[2]) {
    p[0] = SH(x, y, 0, 4, 8, 12, 1, 5, 9, 13);
    p[1] = SH(x, y, 2, 6, 10, 14, 3, 7, 11, 15);
}

static inline __attribute__((always_inline)) void FN(fr_w4_join_)(VEC p0, VEC p1, VEC *lo,
                                                                 VEC *hi) {
    *lo = SH(p0, p1, 0, 1, 2, 3, 8, 9, 10, 11);
    *hi = SH(p0, p1, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* Row i of the 6x6 patches of a half (4 tiles at a: columns 4k + j, k < 4, j < 6) as three
 * pairs of columns: p[0] = columns 0 | 1, p[1] = 2 | 3, p[2] = 4 | 5 (4 tiles each). The loads
 * end at column 17, the last column of the padded row for the row's last half. */
static inline __attribute__((always_inline)) void FN(fr_w4_row_)(const T *a, VEC p[3]) {
    const VEC x = FN(fr_ld_)(a), y = FN(fr_ld_)(a + 8), z = FN(fr_ld_)(a + 10);
    FN(fr_w4_pairs_)(x, y, p);
    p[2] = SH(SH(x, y, 4, 8, 12, 5, 9, 13, 0, 0), z, 0, 1, 2, 14, 3, 4, 5, 15);
}

/* Where the half of tiles q .. q+3 starts in a plane of rows `row` elements apart. */
static inline __attribute__((always_inline)) ptrdiff_t FN(fr_w4_at_)(int q, int TW,
                                                                    ptrdiff_t row) {
    return 4 * (q / TW) * row + 4 * (q % TW);
}

/* V (36 planes es apart, each (C, NT)) = B^T d B for the tiles [q0, q1) of x (C, H, W)
 * zero-padded by ph, pw (Hp = H + 2ph = 4TH + 2, Wp = W + 2pw = 4TW + 2) through xp. */
FR_CLONES static void FN(fr_wino4_in_)(const T *restrict x, int C, int H, int W, int ph, int pw,
                                       T *restrict xp, int Hp, int Wp, int TW, int NT, int q0,
                                       int q1, T *restrict V, ptrdiff_t es) {
    memset(xp, 0, sizeof(T) * (size_t)Hp * Wp);
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < H; y++)
            FN(fr_copy_)(x + ((ptrdiff_t)c * H + y) * W, xp + (ptrdiff_t)(y + ph) * Wp + pw, W);
        for (int q = q0; q < q1; q += L) {
            const T *a0 = xp + FN(fr_w4_at_)(q, TW, Wp), *a1 = xp + FN(fr_w4_at_)(q + 4, TW, Wp);
            VEC d[6][6]; /* d[i][j]: patch element (i, j) of the 8 tiles */
            for (int i = 0; i < 6; i++) {
                VEC p0[3], p1[3];
                FN(fr_w4_row_)(a0 + i * Wp, p0);
                FN(fr_w4_row_)(a1 + i * Wp, p1);
                for (int k = 0; k < 3; k++)
                    FN(fr_w4_join_)(p0[k], p1[k], &d[i][2 * k], &d[i][2 * k + 1]);
            }
            FN(fr_btdb6_)(d, V + (ptrdiff_t)c * NT + q, es);
        }
    }
}

/* The outputs of row i of a half's 4 tiles (y[j]: column j of each tile) in output order: 16
 * values, two vectors. */
static inline __attribute__((always_inline)) void FN(fr_w4_store_)(
    T *out, ptrdiff_t o, const VEC y[4], const T *res, int relu, const T *gate, const int half) {
    VEC s01, s23;
    if (half == 0) {
        s01 = SH(y[0], y[1], 0, 8, 1, 9, 2, 10, 3, 11);
        s23 = SH(y[2], y[3], 0, 8, 1, 9, 2, 10, 3, 11);
    } else {
        s01 = SH(y[0], y[1], 4, 12, 5, 13, 6, 14, 7, 15);
        s23 = SH(y[2], y[3], 4, 12, 5, 13, 6, 14, 7, 15);
    }
    FN(fr_store_)(out, o, SH(s01, s23, 0, 1, 8, 9, 2, 3, 10, 11), res, relu, gate);
    FN(fr_store_)(out, o + 8, SH(s01, s23, 4, 5, 12, 13, 6, 7, 14, 15), res, relu, gate);
}

/* out (F, 4TH, Wo) = A^T M A (+ bias) (+ res) (relu) (gate) from M (36 planes ms apart, each
 * (F, NT)), tiles [q0, q1). */
FR_CLONES static void FN(fr_wino4_out_)(const T *restrict M, ptrdiff_t ms, int F, int TW, int NT,
                                        int q0, int q1, int Wo, T *out, const T *bias,
                                        const T *res, int relu, const T *gate) {
    const ptrdiff_t P = (ptrdiff_t)4 * (NT / TW) * Wo;
    for (int f = 0; f < F; f++) {
        const T b = bias ? bias[f] : (T)0;
        const T *mf = M + (ptrdiff_t)f * NT;
        const ptrdiff_t fo = (ptrdiff_t)f * P;
        for (int q = q0; q < q1; q += L) {
            VEC m[36], y[4][4];
            for (int e = 0; e < 36; e++) m[e] = FN(fr_ld_)(mf + e * ms + q);
            FN(fr_atma6_)(m, b, y);
            const ptrdiff_t o0 = fo + FN(fr_w4_at_)(q, TW, Wo);
            const ptrdiff_t o1 = fo + FN(fr_w4_at_)(q + 4, TW, Wo);
            for (int i = 0; i < 4; i++) {
                FN(fr_w4_store_)(out, o0 + i * Wo, y[i], res, relu, gate, 0);
                FN(fr_w4_store_)(out, o1 + i * Wo, y[i], res, relu, gate, 1);
            }
        }
    }
}

/* The weight gradient by F(4x4, 3x3), as F(2x2)'s (fr_wino_dy_ and on): DY = A dy A^T (6x6) of
 * each 4x4 tile dy of dout; then the 36 sums (fr_wino_wgrad_sum_) and dw = G^T W G
 * (fr_wino4_dw_out_).
 * DY (36 planes es apart, each (F, NT)) = A dy A^T for every tile of dout (F, 4TH, Wo). */
FR_CLONES static void FN(fr_wino4_dy_)(const T *restrict dout, int F, int Wo, int NT,
                                       T *restrict DY, ptrdiff_t es) {
    const int TW = Wo / 4;
    const ptrdiff_t P = (ptrdiff_t)4 * (NT / TW) * Wo;
    for (int f = 0; f < F; f++) {
        const T *df = dout + (ptrdiff_t)f * P;
        for (int q = 0; q < NT; q += L) {
            const T *a0 = df + FN(fr_w4_at_)(q, TW, Wo), *a1 = df + FN(fr_w4_at_)(q + 4, TW, Wo);
            VEC y[4][4]; /* y[i][j]: element (i, j) of the 8 tiles */
            for (int i = 0; i < 4; i++) {
                VEC p0[2], p1[2];
                FN(fr_w4_pairs_)(FN(fr_ld_)(a0 + i * Wo), FN(fr_ld_)(a0 + i * Wo + 8), p0);
                FN(fr_w4_pairs_)(FN(fr_ld_)(a1 + i * Wo), FN(fr_ld_)(a1 + i * Wo + 8), p1);
                for (int k = 0; k < 2; k++)
                    FN(fr_w4_join_)(p0[k], p1[k], &y[i][2 * k], &y[i][2 * k + 1]);
            }
            FN(fr_adya6_)(y, DY + (ptrdiff_t)f * NT + q, es);
        }
    }
}

/* dw (F, C, 3, 3) = G^T W G, W[a][b] = dwt[6a + b][f*C + c], for f*C + c in [fc0, fc1), in
 * double (as fr_wino_dw_out_); G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0;
 * 0 -1/6 -1/6 1/6 1/6 1]. */
static void FN(fr_wino4_dw_out_)(const T *restrict dwt, int F, int C, ptrdiff_t fc0,
                                 ptrdiff_t fc1, T *restrict dw) {
    enum { NC = 16 };
    const ptrdiff_t FC = (ptrdiff_t)F * C;
    T buf[36][NC];
#define FR_GT6(o, w)                                                                            \
    do {                                                                                        \
        const double s12_ = (w)[1] + (w)[2], s34_ = (w)[3] + (w)[4];                          \
        (o)[0] = (w)[0] * 0.25 - s12_ * (1.0 / 6) + s34_ * (1.0 / 24);                          \
        (o)[1] = ((w)[2] - (w)[1]) * (1.0 / 6) + ((w)[3] - (w)[4]) * (1.0 / 12);                \
        (o)[2] = (s34_ - s12_) * (1.0 / 6) + (w)[5];                                            \
    } while (0)
    for (ptrdiff_t f0 = fc0; f0 < fc1; f0 += NC) {
        const int nc = fc1 - f0 < NC ? (int)(fc1 - f0) : NC;
        for (int e = 0; e < 36; e++) memcpy(buf[e], dwt + e * FC + f0, sizeof(T) * nc);
        for (int m = 0; m < nc; m++) {
            double t[3][6];
            for (int b = 0; b < 6; b++) {
                double col[6], o[3];
                for (int a = 0; a < 6; a++) col[a] = buf[6 * a + b][m];
                FR_GT6(o, col);
                for (int i = 0; i < 3; i++) t[i][b] = o[i];
            }
            T *d = dw + (f0 + m) * 9;
            for (int i = 0; i < 3; i++) {
                double o[3];
                FR_GT6(o, t[i]);
                for (int j = 0; j < 3; j++) d[i * 3 + j] = (T)o[j];
            }
        }
    }
#undef FR_GT6
}

/* upk (36, O/4, K, 4) = G g G^T (6x6) for output channels 4*ob0 .. 4*ob1 - 1, as
 * fr_wino_weights_ does for F(2x2) (flip: the input gradient's weights), in double. */
FR_CLONES static void FN(fr_wino4_weights_)(const T *restrict w, int O, int K, int flip, int ob0,
                                            int ob1, T *restrict upk) {
    /* A block of KC input channels x 4 output channels at a time: its 9 weights gathered into
     * rows g[i][j][p], p = 4k + r (the packed order), so that every step below is a loop over
     * the block's 64 pairs, which GCC vectorises (one pair at a time it stayed scalar, 1.4-1.75x
     * slower on 64x64 and 128x128 weights; 512x512 ones are bound by writing their 38 MB). */
    enum { KC = 16, NP = KC * 4 };
    const ptrdiff_t es = (ptrdiff_t)O * K;
    double g[3][3][NP], t[3][6][NP], r6[6][NP];
    T buf[36][NP];
    for (int ob = ob0; ob < ob1; ob++)
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC, np_ = 4 * kc;
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < 4; r++) {
                    const int o = 4 * ob + r;
                    const T *src = flip ? w + ((ptrdiff_t)(k0 + k) * O + o) * 9
                                        : w + ((ptrdiff_t)o * K + k0 + k) * 9;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++)
                            g[i][j][4 * k + r] = flip ? src[(2 - i) * 3 + 2 - j] : src[i * 3 + j];
                }
#define FR_G6(v, g0, g1, g2)                                                                    \
    for (int p = 0; p < np_; p++) {                                                             \
        const double a_ = (g0)[p], b_ = (g1)[p], c_ = (g2)[p];                                  \
        const double p_ = a_ * (1.0 / 24) + c_ * (1.0 / 6), q_ = b_ * (1.0 / 12);              \
        (v)[0][p] = a_ * 0.25;                                                                  \
        (v)[1][p] = -(a_ + b_ + c_) * (1.0 / 6);                                                \
        (v)[2][p] = -(a_ - b_ + c_) * (1.0 / 6);                                                \
        (v)[3][p] = p_ + q_;                                                                    \
        (v)[4][p] = p_ - q_;                                                                    \
        (v)[5][p] = c_;                                                                         \
    }
            for (int j = 0; j < 3; j++) /* t[j] = G g[:, j], column by column */
                FR_G6(t[j], g[0][j], g[1][j], g[2][j]);
            for (int a = 0; a < 6; a++) { /* U = t G^T, row by row */
                FR_G6(r6, t[0][a], t[1][a], t[2][a]);
                for (int b = 0; b < 6; b++)
                    for (int p = 0; p < np_; p++) buf[6 * a + b][p] = (T)r6[b][p];
            }
#undef FR_G6
            for (int e = 0; e < 36; e++)
                memcpy(upk + e * es + ((ptrdiff_t)ob * K + k0) * 4, buf[e], sizeof(T) * np_);
        }
}

/* F(4x4, 3x3) on the batch-lane layout (as F(2x2)'s above: a vector is one tile element of L
 * images, no shuffles): TH x TW tiles of 4x4, NTL = TH*TW*L columns, 36 planes.
 * V = B^T d B of xl (C, 4TH + 2, 4TW + 2, L), padded. */
FR_CLONES static void FN(fr_wino4_lanes_in_)(const T *restrict xl, int C, int TH, int TW,
                                             T *restrict V, ptrdiff_t es) {
    const int Hp = 4 * TH + 2, Wp = 4 * TW + 2, NTL = TH * TW * L;
    for (int c = 0; c < C; c++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *a = xl + (((ptrdiff_t)c * Hp + 4 * s) * Wp + 4 * t) * L;
                VEC d[6][6];
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 6; j++) d[i][j] = FN(fr_ld_)(a + (i * Wp + j) * L);
                FN(fr_btdb6_)(d, V + (ptrdiff_t)c * NTL + (s * TW + t) * L, es);
            }
}

/* ol (F, 4TH, 4TW, L) = A^T M A (+ bias), M (36 planes ms apart, each (F, NTL)). */
FR_CLONES static void FN(fr_wino4_lanes_out_)(const T *restrict M, ptrdiff_t ms, int F, int TH,
                                              int TW, const T *bias, T *restrict ol) {
    const int Wo = 4 * TW, NTL = TH * TW * L;
    for (int f = 0; f < F; f++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *mf = M + (ptrdiff_t)f * NTL + (s * TW + t) * L;
                VEC m[36], y[4][4];
                for (int e = 0; e < 36; e++) m[e] = FN(fr_ld_)(mf + e * ms);
                FN(fr_atma6_)(m, bias ? bias[f] : (T)0, y);
                T *o = ol + (((ptrdiff_t)f * 4 * TH + 4 * s) * Wo + 4 * t) * L;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) FN(fr_st_)(o + (i * Wo + j) * L, y[i][j]);
            }
}

/* DY (36 planes es apart, each (F, NTL)) = A dy A^T of dl (F, 4TH, 4TW, L). */
FR_CLONES static void FN(fr_wino4_lanes_dy_)(const T *restrict dl, int F, int TH, int TW,
                                             T *restrict DY, ptrdiff_t es) {
    const int Wo = 4 * TW, NTL = TH * TW * L;
    for (int f = 0; f < F; f++)
        for (int s = 0; s < TH; s++)
            for (int t = 0; t < TW; t++) {
                const T *a = dl + (((ptrdiff_t)f * 4 * TH + 4 * s) * Wo + 4 * t) * L;
                VEC y[4][4];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) y[i][j] = FN(fr_ld_)(a + (i * Wo + j) * L);
                FN(fr_adya6_)(y, DY + (ptrdiff_t)f * NTL + (s * TW + t) * L, es);
            }
}

#undef SH
#endif /* L == 8 */

/* ---- the drivers, F(m x m, 3x3) with m = 2 or 4 (4: float32 only) ------------------------- */
#if L == 8
#define FR_BY_M(m, call4, call2) \
    do {                         \
        if ((m) == 4)            \
            call4;               \
        else                     \
            call2;               \
    } while (0)
#else
#define FR_BY_M(m, call4, call2) call2
#endif

/* One image: out (F, Ho, Wo) = conv3x3(x (C, H, W), padding ph, pw) (+ bias) (+ res) (relu)
 * (gate), Ho = H + 2ph - 2 and Wo = W + 2pw - 2 multiples of m, TW = Wo/m a multiple of L/2,
 * NT = Ho*Wo/m^2 a multiple of L, F % 4 == 0. upk (E = (m + 2)^2, F/4, C, 4): U packed per
 * element as for the direct kernel. Only the tiles [q0, q1) (multiples of L): threads that
 * share an image take a band of tiles each, and every output element is computed by the same
 * code on the same data however the tiles are cut. Scratch: xp ((Ho + 2)*(Wo + 2)), V (E planes
 * of C*NT + FR_WINO_GAP), M (E of F*NT + FR_WINO_GAP), of which the band's columns are used. */
FR_CLONES static void FN(fr_wino_fwd_)(const T *x, int C, int H, int W, int ph, int pw,
                                       const T *upk, int F, T *xp, T *V, T *M, T *out,
                                       int Ho, int Wo, int q0, int q1, const T *bias,
                                       const T *res, int relu, const T *gate, int m) {
    const int TW = Wo / m, NT = Ho * Wo / (m * m), E = (m + 2) * (m + 2);
    const ptrdiff_t es = (ptrdiff_t)C * NT + FR_WINO_GAP, ms = (ptrdiff_t)F * NT + FR_WINO_GAP;
    FR_BY_M(m, FN(fr_wino4_in_)(x, C, H, W, ph, pw, xp, Ho + 2, Wo + 2, TW, NT, q0, q1, V, es),
            FN(fr_wino_in_)(x, C, H, W, ph, pw, xp, Ho + 2, Wo + 2, TW, NT, q0, q1, V, es));
    for (int e = 0; e < E; e++)
        FN(fr_wino_gemm_)(V + e * es, upk + (ptrdiff_t)e * F * C, C, NT, q0, q1, F, M + e * ms);
    FR_BY_M(m, FN(fr_wino4_out_)(M, ms, F, TW, NT, q0, q1, Wo, out, bias, res, relu, gate),
            FN(fr_wino_out_)(M, ms, F, TW, NT, q0, q1, Wo, out, bias, res, relu, gate));
}

/* The weight gradient's transforms of one image: V and DY (E planes each, es and ms apart, as
 * in fr_wino_fwd_) from x (C, H, W) and dout (F, Ho, Wo); xp is scratch for the padded image. */
FR_CLONES static void FN(fr_wino_wgrad_in_)(const T *x, int C, int H, int W, int ph, int pw,
                                            const T *dout, int F, T *xp, T *V, T *DY, int Ho,
                                            int Wo, int m) {
    const int NT = Ho * Wo / (m * m);
    const ptrdiff_t es = (ptrdiff_t)C * NT + FR_WINO_GAP, ms = (ptrdiff_t)F * NT + FR_WINO_GAP;
    FR_BY_M(m, FN(fr_wino4_in_)(x, C, H, W, ph, pw, xp, Ho + 2, Wo + 2, Wo / 4, NT, 0, NT, V, es),
            FN(fr_wino_in_)(x, C, H, W, ph, pw, xp, Ho + 2, Wo + 2, Wo / 2, NT, 0, NT, V, es));
    FR_BY_M(m, FN(fr_wino4_dy_)(dout, F, Wo, NT, DY, ms), FN(fr_wino_dy_)(dout, F, Wo, NT, DY, ms));
}

/* One group of nimg <= L images (xs apart) on the batch-lane layout: out (nimg images os
 * apart, each (F, Ho, Wo)) = conv3x3 (+ bias) (+ res, laid out as out) (relu) through xl (C,
 * m*TH + 2, m*TW + 2, L), V, M (as for fr_wino_fwd_, NTL columns) and ol (F, m*TH, m*TW, L),
 * TH = ceil(Ho/m), TW = ceil(Wo/m): a map that is not a multiple of m (7x7) is computed up to
 * one on more zero padding, and cropped. */
FR_CLONES static void FN(fr_wino_lanes_fwd_)(const T *x, ptrdiff_t xs, int nimg, int C, int H,
                                             int W, int ph, int pw, const T *upk, int F, T *xl,
                                             T *V, T *M, T *ol, T *out, ptrdiff_t os, int Ho,
                                             int Wo, const T *bias, const T *res, int relu,
                                             int m) {
    const int TH = (Ho + m - 1) / m, TW = (Wo + m - 1) / m, NTL = TH * TW * L;
    const int E = (m + 2) * (m + 2);
    const ptrdiff_t es = (ptrdiff_t)C * NTL + FR_WINO_GAP, ms = (ptrdiff_t)F * NTL + FR_WINO_GAP;
    FN(fr_lanes_in_)(x, xs, nimg, xl, C, H, W, ph, pw, m * TH - Ho, m * TW - Wo);
    FR_BY_M(m, FN(fr_wino4_lanes_in_)(xl, C, TH, TW, V, es),
            FN(fr_wino_lanes_in_)(xl, C, TH, TW, V, es));
    for (int e = 0; e < E; e++)
        FN(fr_wino_gemm_)(V + e * es, upk + (ptrdiff_t)e * F * C, C, NTL, 0, NTL, F, M + e * ms);
    FR_BY_M(m, FN(fr_wino4_lanes_out_)(M, ms, F, TH, TW, bias, ol),
            FN(fr_wino_lanes_out_)(M, ms, F, TH, TW, bias, ol));
    FN(fr_lanes_out_)(ol, F, Ho, Wo, m * TH, m * TW, nimg, out, os, res, relu);
}

/* The weight gradient's transforms of a group of nimg <= L images (xs and ds apart) on the
 * batch-lane layout, through xl (C, m*TH + 2, m*TW + 2, L) and dl (F, m*TH, m*TW, L) (as above:
 * the extra rows / columns have zero gradient, so their tiles add nothing). */
FR_CLONES static void FN(fr_wino_lanes_wgrad_in_)(const T *x, ptrdiff_t xs, int nimg, int C,
                                                  int H, int W, int ph, int pw, const T *dout,
                                                  ptrdiff_t ds, int F, T *xl, T *dl, T *V,
                                                  T *DY, int Ho, int Wo, int m) {
    const int TH = (Ho + m - 1) / m, TW = (Wo + m - 1) / m, NTL = TH * TW * L;
    const ptrdiff_t es = (ptrdiff_t)C * NTL + FR_WINO_GAP, ms = (ptrdiff_t)F * NTL + FR_WINO_GAP;
    FN(fr_lanes_in_)(x, xs, nimg, xl, C, H, W, ph, pw, m * TH - Ho, m * TW - Wo);
    FN(fr_lanes_in_)(dout, ds, nimg, dl, F, Ho, Wo, 0, 0, m * TH - Ho, m * TW - Wo);
    FR_BY_M(m, FN(fr_wino4_lanes_in_)(xl, C, TH, TW, V, es),
            FN(fr_wino_lanes_in_)(xl, C, TH, TW, V, es));
    FR_BY_M(m, FN(fr_wino4_lanes_dy_)(dl, F, TH, TW, DY, ms),
            FN(fr_wino_lanes_dy_)(dl, F, TH, TW, DY, ms));
}
#undef FR_BY_M
