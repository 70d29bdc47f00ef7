/* gemm_q8_amx_impl.h - the int8-activation GEMM (the int8 precision mode, gemm_q8.h) on AMX-INT8
 * tiles (TDPBSSD: s8 x s8 -> int32). Instantiated by gemm_q8_amx.c with the real tile
 * instructions (tile_amx.h, scaling on AVX-512) and by gemm_q8_amx_emulated.c with the C tile
 * emulation (tile_emulated.h, scaling in plain C), so the packing, tiling and scaling below are
 * tested on every CPU (unit_q8.c: bit-identical to the generic instance).
 *
 * Activations are s8 in [-127, 127] and every weight type's int8 form fits s8 (Q8_0 signed, the
 * 4/5-bit types in [0, 31]), so TDPBSSD gives each block's exact isum_b directly (no +128 bias
 * as in the vpdpbusd instances). The weights carry one f32 scale (and offset) per 32-block of K,
 * so a tile product may span only one block: A tiles hold 32 int8 of K (16 rows x 32 B), B tiles
 * 8 quads of K (8 rows x 64 B), and after each block the int32 results are stored and scaled
 * into f32 accumulators in the exact order of gemm_q8.h:
 *   acc = fma(dx_b * dw_b, (float)isum_b, acc);  acc = fma(-mw_b, sx_b, acc) (offset types)
 *   per 256-deep K block: y = acc + bias (first), y = y + acc (later).
 * Tiles (kn_tile_config_q8): C0..C3 = a 32 x 32 int32 block (four 16 x 16), A4/A5 = rows 0-15 /
 * 16-31, B6/B7 = columns 0-15 / 16-31. Per 32-block: 4 TILEZERO, 4 loads, 4 TDPBSSD (each
 * 16 x 16 x 32 = 8192 MACs), 4 tile stores (4 KiB) and 32 x 32 scale-and-accumulate steps.
 * Expected speed limit (not measured, PERF.md entry 25): the TMUL is built for 64-deep tiles and
 * (assuming its time per TDPBSSD depends on the rows, not on K) runs at half its peak on 32-deep
 * ones: ~64 cycles of TMUL per block; the store + scaling is 64 zmm vectors x (cvt, mul, 1-2 fma,
 * load, store) ~ 128-190 cycles on two FMA pipes, so the scaling, not the TMUL, bounds the kernel
 * at roughly 65536 OP / ~190 cycles ~ 340 OP/cycle per core (vs 2048 at the TMUL peak).
 * Packed layouts (K block of MQ_KC = 256, nb = kc / 32 blocks):
 *   A (32 rows):  qa[b][r][e] = int8 of x[r][32 b + e] (1 KiB per block), then dx[b*32 + r], sx[b*32 + r]
 *   B (32 cols):  qb[(b*8 + g)*32 + j] = 4 int8 of W[j][32 b + 4 g ..] (1 KiB per block), then
 *                 dw[b*32 + j], mw[b*32 + j]
 * Needs the tile vocabulary (TILE_*, TILE_CONFIG_Q8, TILE_DPBSSD) and KN_FN first; MQ_VEC512 1
 * for the AVX-512 scaling (its float sequence is the plain C one, lane by lane). */
#ifndef MQ_VEC512
#define MQ_VEC512 0
#endif
#include <math.h>
#include <string.h>
#if MQ_VEC512
#include <immintrin.h>
#endif

#include "gemm_driver_impl.h"
#include "gemm_q8.h"

#define MQ_MR 32                  /* rows per A panel and per tile block */
#define MQ_NR 32                  /* columns per B panel and per tile block */
#define MQ_KC 256                 /* K block: 8 blocks of 32 (one k-quant super-block) */
#define MQ_NBK (MQ_KC / KQ_BLK)   /* blocks per K block */
#define MQ_MC 256                 /* rows per A group */
#define MQ_NC 1024                /* max columns per work item */
#define MQ_ROWS (3 * MQ_MC)       /* max rows per work item */
#define MQ_APANEL ((int64_t)MQ_MR * MQ_KC + (int64_t)MQ_MR * MQ_NBK * 8) /* bytes per A panel */
#define MQ_TMP (2 * MQ_MR * MQ_NR * 4) /* per-thread scratch: int32 tile results + f32 accumulators */

/* ---------------------------------------------------------------- packing */

static char *mq_apanel(const kn_apack *A, int64_t kb, int64_t row) {
    return (char *)A->ap + (kb * (A->ms_pad / MQ_MR) + row / MQ_MR) * MQ_APANEL;
}

/* quantize rows [i0, i0 + 32) (fewer valid at the end: zeros) of K block kb into their A panel */
static void mq_pack_a(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * MQ_KC, kc = c->K - k0 < MQ_KC ? c->K - k0 : MQ_KC, nb = kc / KQ_BLK;
    int64_t nrows = A->ms - i0 < MQ_MR ? A->ms - i0 : MQ_MR;
    char *p = mq_apanel(A, kb, i0);
    int8_t *qa = (int8_t *)p;
    float *dx = (float *)(p + (int64_t)MQ_MR * MQ_KC), *sx = dx + MQ_MR * MQ_NBK;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t r = 0; r < MQ_MR; r++) {
            int8_t *q = qa + (b * MQ_MR + r) * KQ_BLK;
            float d = 0.0f, s = 0.0f;
            if (r < nrows) // x[m0 + i0 + r][k0 + 32 b ..] -> one tile row of int8
                kn_q8_quant_block(c->x + (A->m0 + i0 + r) * c->ldx + k0 + b * KQ_BLK, q, &d, &s);
            else
                memset(q, 0, KQ_BLK);
            dx[b * MQ_MR + r] = d, sx[b * MQ_MR + r] = s;
        }
}

static int64_t mq_bpanel_bytes(int64_t nb) { return nb * ((int64_t)KQ_BLK * MQ_NR + MQ_NR * 8); }

/* W rows [n0, n0 + nc) x columns [k0, k0 + kc) -> ceil(nc / 32) B panels (zero past nc) */
static void mq_pack_b(char *bp, const kn_wsrc *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc) {
    int64_t nb = kc / KQ_BLK, np = (nc + MQ_NR - 1) / MQ_NR, pb = mq_bpanel_bytes(nb);
    int8_t q[MQ_KC];
    float d[MQ_NBK], m[MQ_NBK];
    for (int64_t p = 0; p < np; p++) {
        uint32_t *qb = (uint32_t *)(bp + p * pb);
        float *dw = (float *)(qb + nb * (KQ_BLK / 4) * MQ_NR), *mw = dw + nb * MQ_NR;
        for (int64_t j = 0; j < MQ_NR; j++) {
            int64_t r = p * MQ_NR + j;
            if (r < nc) { // W[n0 + r][k0 ..] -> int8 + scales
                kn_q8_unpack(B->dt, kn_wsrc_at(B, n0 + r, k0), kc, q, d, m);
            } else {
                memset(q, 0, sizeof q);
                memset(d, 0, sizeof d);
                memset(m, 0, sizeof m);
            }
            for (int64_t b = 0; b < nb; b++) {
                for (int g = 0; g < KQ_BLK / 4; g++) memcpy(&qb[(b * (KQ_BLK / 4) + g) * MQ_NR + j], q + b * KQ_BLK + 4 * g, 4);
                dw[b * MQ_NR + j] = d[b], mw[b * MQ_NR + j] = m[b];
            }
        }
    }
}

/* ---------------------------------------------------------------- tiles and scaling */

/* acc[32][32] (+)= the block's isum[32][32] scaled: dx, sx per row, dw, mw per column (gemm_q8.h) */
static void mq_scale(const int32_t *isum, float *acc, const float *dx, const float *sx, const float *dw,
                     const float *mw, int off) {
#if MQ_VEC512
    for (int i = 0; i < MQ_MR; i++) {
        __m512 dxv = _mm512_set1_ps(dx[i]), sxv = _mm512_set1_ps(sx[i]);
        for (int v = 0; v < MQ_NR / 16; v++) {
            float *ap = acc + i * MQ_NR + 16 * v;
            __m512 s = _mm512_cvtepi32_ps(_mm512_loadu_si512((const void *)(isum + i * MQ_NR + 16 * v)));
            __m512 a = _mm512_fmadd_ps(_mm512_mul_ps(dxv, _mm512_loadu_ps(dw + 16 * v)), s, _mm512_loadu_ps(ap));
            if (off) a = _mm512_fnmadd_ps(_mm512_loadu_ps(mw + 16 * v), sxv, a); /* a - mw sx, one rounding */
            _mm512_storeu_ps(ap, a);
        }
    }
#else
    for (int i = 0; i < MQ_MR; i++)
        for (int j = 0; j < MQ_NR; j++) {
            float a = fmaf(dx[i] * dw[j], (float)isum[i * MQ_NR + j], acc[i * MQ_NR + j]);
            if (off) a = fmaf(-mw[j], sx[i], a);
            acc[i * MQ_NR + j] = a;
        }
#endif
}

/* acc[32][32] = sum over nb blocks of the A panel's rows x the B panel's columns; isum: 32 x 32 int32 */
static void mq_block(int64_t nb, const char *ap, const char *bpan, int off, int32_t *isum, float *acc) {
    const int8_t *qa = (const int8_t *)ap;
    const float *dx = (const float *)(ap + (int64_t)MQ_MR * MQ_KC), *sx = dx + MQ_MR * MQ_NBK;
    const uint32_t *qb = (const uint32_t *)bpan;
    const float *dw = (const float *)(qb + nb * (KQ_BLK / 4) * MQ_NR), *mw = dw + nb * MQ_NR;
    memset(acc, 0, sizeof(float) * MQ_MR * MQ_NR);
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *a = qa + b * MQ_MR * KQ_BLK;
        const uint32_t *w = qb + b * (KQ_BLK / 4) * MQ_NR;
        TILE_ZERO(0);
        TILE_ZERO(1);
        TILE_ZERO(2);
        TILE_ZERO(3);
        TILE_LOAD(4, a, KQ_BLK);                  /* x rows 0-15, 32 int8 of block b */
        TILE_LOAD(5, a + 16 * KQ_BLK, KQ_BLK);    /* x rows 16-31 */
        TILE_LOAD(6, w, MQ_NR * 4);               /* 8 quads x columns 0-15 */
        TILE_LOAD(7, w + 16, MQ_NR * 4);          /* 8 quads x columns 16-31 */
        TILE_DPBSSD(0, 4, 6);
        TILE_DPBSSD(1, 4, 7);
        TILE_DPBSSD(2, 5, 6);
        TILE_DPBSSD(3, 5, 7);
        TILE_STORE(0, isum, MQ_NR * 4);
        TILE_STORE(1, isum + 16, MQ_NR * 4);
        TILE_STORE(2, isum + 16 * MQ_NR, MQ_NR * 4);
        TILE_STORE(3, isum + 16 * MQ_NR + 16, MQ_NR * 4);
        // exact int32 block sums [32, 32] -> f32 accumulators
        mq_scale(isum, acc, dx + b * MQ_MR, sx + b * MQ_MR, dw + b * MQ_NR, mw + b * MQ_NR, off);
    }
}

/* one work item: output columns [n0, n0 + nc) x rows [r0, r1) (relative to A->m0) */
static void mq_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmpv) {
    char *bp = bpv;
    int32_t *isum = tmpv;
    float *acc = (float *)(isum + MQ_MR * MQ_NR);
    int off = kn_q8_kind(c->B->dt) == 2;
    for (int64_t kb = 0; kb * MQ_KC < c->K; kb++) {
        int64_t k0 = kb * MQ_KC, kc = c->K - k0 < MQ_KC ? c->K - k0 : MQ_KC, nb = kc / KQ_BLK;
        int mode = k0 > 0 ? 1 : c->acc ? 2 : 0;
        int64_t pb = mq_bpanel_bytes(nb);
        mq_pack_b(bp, c->B, n0, nc, k0, kc); // W[n0.., k0..] -> int8 panels
        for (int64_t mc0 = r0; mc0 < r1; mc0 += MQ_MC) {
            int64_t mc1 = r1 - mc0 < MQ_MC ? r1 : mc0 + MQ_MC;
            for (int64_t j = 0; j < nc; j += MQ_NR)
                for (int64_t i = mc0; i < mc1; i += MQ_MR) {
                    int mr = (int)(mc1 - i < MQ_MR ? mc1 - i : MQ_MR);
                    // [32, kc] x [kc, 32] -> y[m0+i.., n0+j..]
                    mq_block(nb, mq_apanel(A, kb, i), bp + (j / MQ_NR) * pb, off, isum, acc);
                    kn_q8_store(c->y + (A->m0 + i) * c->ldy + n0 + j, c->ldy, acc, MQ_NR, mr, nc - j, mode,
                             c->bias ? c->bias + n0 + j : NULL);
                }
        }
    }
}

static void mq_tiles_on(void) { TILE_CONFIG_Q8(); }
static void mq_tiles_off(void) { TILE_RELEASE(); }

/* y[M, N] (+)= x[M, K] . W^T (+ bias) with W of kn_q8_kind 1 or 2, K a multiple of 32. */
int KN_FN(kn_gemm_q8)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                      const kn_wsrc *B, const float *bias, int acc, int T) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    int kind = kn_q8_kind(B->dt);
    if (K % KQ_BLK || (kind != 1 && kind != 2))
        return zi_err("int8 GEMM (AMX): K = %lld or the weight type unsupported", (long long)K);
    /* elem_bytes 2: A and B take 1.25 bytes per element (int8 + two floats per 32) */
    static const kn_gemm_plan plan = {"int8 AMX", MQ_MR, MQ_NR, MQ_KC, MQ_MC, MQ_NC, MQ_ROWS, 2, MQ_TMP,
                                      mq_pack_a, mq_item, mq_tiles_on, mq_tiles_off};
    kn_gemm_call c = {y, ldy, x, ldx, K, B, bias, acc, 0};
    return kn_gemm_drive(&plan, &c, M, N, T);
}
