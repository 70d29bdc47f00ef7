/* gemm_q8_impl.h - the int8-activation GEMM template for block-quantized weights (the int8
 * precision mode of kn_linear; numerics in gemm_q8.h and docs/PRECISION.md). Instantiated per
 * ISA after an integer vocabulary (vecq_<isa>.h): gemm_q8_avx2.c (vpmaddwd on int16 pairs),
 * gemm_q8_avx2u.c / gemm_q8_avx2s.c (vpmaddubsw: u8 weights / u8-biased activations),
 * gemm_q8_avx512vnni.c (vpdpbusd) and gemm_q8_generic.c (vpdpbusd emulated in C, so the VNNI
 * blocking and packing are tested on every CPU).
 *
 * One int8 panel format serves every weight type: kn_q8_unpack turns any supported type into
 * int8 values + per-weight-block (32, or 16 elements) f32 scale and offset, so a single
 * microkernel runs them all.
 * A "group" is KQ_G consecutive k of one row in one 32-bit word (G = 2: two int16; G = 4: four
 * bytes, activations stored as u8 = q + 128 for vpdpbusd, corrected by 128 * sum(w) per block).
 * Layouts per K block (kc <= KQ_KC, nb = kc / 32 blocks, GPB = 32 / G groups per block; HB = 1
 * weight block per 32-block, or 2 (halves of 16, groups g < GPB/2 first) for the 16-element types;
 * w = b*HB + h indexes weight blocks):
 *   A panel (MR rows):  qa[(b*GPB + g)*MR + i] words, then dx[b*MR + i], sx[w*MR + i] floats
 *   B panel (NR cols):  qb[(b*GPB + g)*NR + j] words, then dw[w*NR + j], mw[w*NR + j] floats and
 *                       cw[w*NR + j] int32 (128 * sum of the weight block's weights when KQ_ABIAS)
 * The microkernel is instantiated for HB = 1 and HB = 2 (kq_ukr32, kq_ukr16); HB = 1 is the
 * float sequence of the 32-block types, unchanged.
 * Driver, blocking and threading: gemm_driver_impl.h (A quantized and packed once per row
 * super-block, shared by the threads; items of column chunks x row ranges pack their W slice).
 * Needs: KQ_VW (int32 lanes), KQ_NV (vectors per NR), KQ_MR, KQ_G, KQ_ABIAS, types qi/qf and
 * qi_zero/qi_bcast/qi_loadw/qi_sub/qi_dot/qf_load/qf_store/qf_set1/qf_mul/qf_fma/qf_fnma/qf_cvt, KN_FN;
 * KQ_U8W 1 (vecq_avx2u.h): weights are u8 <= 31 (the offset types only), activations s8, and
 * qi_dot16 (int16 products) / qi_widen (int16 pairs -> int32) replace qi_dot, KQ_SUMG groups (4
 * or 2) summed in int16 between widenings; vecq_avx2s.h: the same loop on u8 activations
 * (KQ_ABIAS) x small s8 weights; KQ_ACCEPTS(kind): the weight kinds an instance runs. */
#ifndef KQ_U8W
#define KQ_U8W 0
#endif
#ifndef KQ_SUMG
#define KQ_SUMG 4 /* KQ_U8W: groups per int16 partial sum */
#endif
#ifndef KQ_ACCEPTS
#define KQ_ACCEPTS(kind) ((kind) != 0) /* the kn_q8_kind values this instance runs */
#endif
#include <string.h>

#include "gemm_driver_impl.h"
#include "gemm_q8.h"

#define KQ_NR (KQ_VW * KQ_NV)
#define KQ_KC 256                   /* K block: 8 blocks of 32 (one k-quant super-block) */
#define KQ_GPB (KQ_BLK / KQ_G)      /* group words per 32-block */
#define KQ_MC (KQ_MR * 32)          /* rows per A group */
#define KQ_NC 2048                  /* max columns per work item */
#define KQ_ROWS (3 * KQ_MC)         /* max rows per work item */
#define KQ_ELEM 3                   /* bytes per element the driver reserves (A: <= 2.375, B: <= 2.75) */
#define KQ_APANEL ((int64_t)KQ_MR * (KQ_KC / KQ_G * 4 + KQ_KC / KQ_BLK * 12)) /* bytes per A panel (sx per 16) */

/* one group word from G int8 values (a: activation side) */
static inline uint32_t kq_word(const int8_t *q, int a) {
    if (KQ_G == 2) return (uint32_t)(uint16_t)(int16_t)q[0] | ((uint32_t)(uint16_t)(int16_t)q[1] << 16);
    uint32_t w;
    memcpy(&w, q, 4); /* four bytes, little-endian; + 128 in each byte (no carries: bytes are u8 after) */
    return a && KQ_ABIAS ? w ^ 0x80808080u : w;
}

/* ---------------------------------------------------------------- packing */

static char *kq_apanel(const kn_apack *A, int64_t kb, int64_t row) {
    return (char *)A->ap + (kb * (A->ms_pad / KQ_MR) + row / KQ_MR) * KQ_APANEL;
}

/* quantize rows [i0, i0 + MR) (fewer valid at the end) of K block kb into their A panel */
static void kq_pack_a(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * KQ_KC, kc = c->K - k0 < KQ_KC ? c->K - k0 : KQ_KC, nb = kc / KQ_BLK;
    int hb = KN_Q8_HALVES(kn_q8_kind(c->B->dt));
    int64_t nrows = A->ms - i0 < KQ_MR ? A->ms - i0 : KQ_MR;
    char *p = kq_apanel(A, kb, i0);
    uint32_t *qa = (uint32_t *)p;
    float *dx = (float *)(p + (int64_t)KQ_MR * KQ_KC / KQ_G * 4), *sx = dx + (int64_t)KQ_MR * KQ_KC / KQ_BLK;
    for (int64_t i = 0; i < KQ_MR; i++)
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[KQ_BLK];
            float d = 0.0f, s[2] = {0.0f, 0.0f};
            if (i < nrows) // x[m0 + i0 + i][k0 + 32 b ..] -> int8 block
                kn_q8_quant_block(c->x + (A->m0 + i0 + i) * c->ldx + k0 + b * KQ_BLK, q, &d, s);
            else
                memset(q, 0, sizeof q);
            if (hb == 2) kn_q8_half_sums(q, d, s); /* the offsets of 16-element weight blocks */
            for (int g = 0; g < KQ_GPB; g++) qa[(b * KQ_GPB + g) * KQ_MR + i] = kq_word(q + g * KQ_G, 1);
            dx[b * KQ_MR + i] = d;
            for (int h = 0; h < hb; h++) sx[(b * hb + h) * KQ_MR + i] = s[h];
        }
}

static int64_t kq_bpanel_bytes(int64_t nb, int hb) { return nb * ((int64_t)KQ_GPB * KQ_NR * 4 + hb * KQ_NR * 12); }

/* W rows [n0, n0 + nc) x columns [k0, k0 + kc) -> ceil(nc / NR) B panels (zero past nc); hb
 * weight blocks per 32-block */
static void kq_pack_b(char *bp, const kn_wsrc *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc, int hb) {
    int64_t nb = kc / KQ_BLK, nw = nb * hb, np = (nc + KQ_NR - 1) / KQ_NR, pb = kq_bpanel_bytes(nb, hb);
    int wl = KQ_BLK / hb; /* elements per weight block */
    int8_t q[KQ_KC];
    float d[2 * KQ_KC / KQ_BLK], m[2 * KQ_KC / KQ_BLK];
    for (int64_t p = 0; p < np; p++) {
        uint32_t *qb = (uint32_t *)(bp + p * pb);
        float *dw = (float *)(qb + nb * KQ_GPB * KQ_NR), *mw = dw + nw * KQ_NR;
        int32_t *cw = (int32_t *)(mw + nw * KQ_NR);
        for (int64_t j = 0; j < KQ_NR; j++) {
            int64_t r = p * KQ_NR + j;
            if (r < nc) { // W[n0 + r][k0 ..] -> int8 + scales
                kn_q8_unpack(B->dt, kn_wsrc_at(B, n0 + r, k0), kc, q, d, m);
            } else {
                memset(q, 0, sizeof q);
                memset(d, 0, sizeof d);
                memset(m, 0, sizeof m);
            }
            for (int64_t b = 0; b < nb; b++)
                for (int g = 0; g < KQ_GPB; g++) qb[(b * KQ_GPB + g) * KQ_NR + j] = kq_word(q + b * KQ_BLK + g * KQ_G, 0);
            for (int64_t w = 0; w < nw; w++) {
                int32_t s = 0;
                if (KQ_ABIAS)
                    for (int k = 0; k < wl; k++) s += q[w * wl + k];
                dw[w * KQ_NR + j] = d[w], mw[w * KQ_NR + j] = m[w], cw[w * KQ_NR + j] = KQ_ABIAS * s;
            }
        }
    }
}

/* ---------------------------------------------------------------- microkernel */

/* ct[MR][NR] = sum over the nb * hb weight blocks (hb: 1 or 2 per 32-block, a constant) of the
 * A panel's rows x the B panel's columns (float sequence of gemm_q8.h); off: the weight type has
 * an offset. */
static inline __attribute__((always_inline)) void kq_ukr_hb(int64_t nb, const char *ap, const char *bpan, int off,
                                                            float *ct, const int hb) {
    const int gpw = KQ_GPB / hb; /* groups per weight block */
    const int64_t nw = nb * hb;
    const uint32_t *qa = (const uint32_t *)ap, *qb = (const uint32_t *)bpan;
    const float *dx = (const float *)(ap + (int64_t)KQ_MR * KQ_KC / KQ_G * 4), *sx = dx + (int64_t)KQ_MR * KQ_KC / KQ_BLK;
    const float *dw = (const float *)(qb + nb * KQ_GPB * KQ_NR), *mw = dw + nw * KQ_NR;
    const int32_t *cw = (const int32_t *)(mw + nw * KQ_NR);
#pragma GCC unroll 16
    for (int i = 0; i < KQ_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < KQ_NV; v++) qf_store(ct + i * KQ_NR + v * KQ_VW, qf_set1(0.0f));
    for (int64_t b = 0; b < nw; b++) { /* weight block b (of 32-block b / hb) */
        qi s[KQ_MR][KQ_NV];
#pragma GCC unroll 16
        for (int i = 0; i < KQ_MR; i++)
#pragma GCC unroll 4
            for (int v = 0; v < KQ_NV; v++) s[i][v] = qi_zero();
        const uint32_t *a = qa + b * gpw * KQ_MR, *w = qb + b * gpw * KQ_NR;
        const float *dxb = dx + b / hb * KQ_MR;
#if KQ_U8W
        /* u8 weights <= 31: 4 groups of products summed in int16 (<= 4 * 2 * 31 * 127 < 2^15), widened
         * once; or (KQ_SUMG 2, vecq_avx2s.h) u8 activations x |w| <= 32: 2 groups (<= 4 * 255 * 32) */
        for (int g0 = 0; g0 < gpw; g0 += 4)
#pragma GCC unroll 4
            for (int v = 0; v < KQ_NV; v++) {
                qi b0 = qi_loadw(w + (g0 + 0) * KQ_NR + v * KQ_VW), b1 = qi_loadw(w + (g0 + 1) * KQ_NR + v * KQ_VW);
                qi b2 = qi_loadw(w + (g0 + 2) * KQ_NR + v * KQ_VW), b3 = qi_loadw(w + (g0 + 3) * KQ_NR + v * KQ_VW);
#pragma GCC unroll 16
                for (int i = 0; i < KQ_MR; i++) {
                    qi t = qi_dot16(qi_zero(), qi_bcast(a[(g0 + 0) * KQ_MR + i]), b0);
                    t = qi_dot16(t, qi_bcast(a[(g0 + 1) * KQ_MR + i]), b1);
                    if (KQ_SUMG == 2) s[i][v] = qi_widen(s[i][v], t), t = qi_zero();
                    t = qi_dot16(t, qi_bcast(a[(g0 + 2) * KQ_MR + i]), b2);
                    t = qi_dot16(t, qi_bcast(a[(g0 + 3) * KQ_MR + i]), b3);
                    s[i][v] = qi_widen(s[i][v], t);
                }
            }
#else
        for (int g = 0; g < gpw; g++) { // one group of k: [MR] x [NR] int32 += G products each
            qi bv[KQ_NV];
#pragma GCC unroll 4
            for (int v = 0; v < KQ_NV; v++) bv[v] = qi_loadw(w + g * KQ_NR + v * KQ_VW);
#pragma GCC unroll 16
            for (int i = 0; i < KQ_MR; i++) {
                qi av = qi_bcast(a[g * KQ_MR + i]);
#pragma GCC unroll 4
                for (int v = 0; v < KQ_NV; v++) s[i][v] = qi_dot(s[i][v], av, bv[v]);
            }
        }
#endif
        /* weight block b done: exact int32 sums -> scale and accumulate in f32 */
#pragma GCC unroll 4
        for (int v = 0; v < KQ_NV; v++) {
            qf dwv = qf_load(dw + b * KQ_NR + v * KQ_VW), mwv = qf_load(mw + b * KQ_NR + v * KQ_VW);
            qi cwv = qi_loadw((const uint32_t *)(cw + b * KQ_NR + v * KQ_VW));
#pragma GCC unroll 16
            for (int i = 0; i < KQ_MR; i++) {
                float *cp = ct + i * KQ_NR + v * KQ_VW;
                qi si = KQ_ABIAS ? qi_sub(s[i][v], cwv) : s[i][v];
                qf acc = qf_fma(qf_mul(qf_set1(dxb[i]), dwv), qf_cvt(si), qf_load(cp));
                if (off) acc = qf_fnma(mwv, qf_set1(sx[b * KQ_MR + i]), acc);
                qf_store(cp, acc);
            }
        }
    }
}

static void kq_ukr32(int64_t nb, const char *ap, const char *bpan, int off, float *ct) {
    kq_ukr_hb(nb, ap, bpan, off, ct, 1);
}
static void kq_ukr16(int64_t nb, const char *ap, const char *bpan, int off, float *ct) {
    kq_ukr_hb(nb, ap, bpan, off, ct, 2);
}

/* one work item: output columns [n0, n0 + nc) x rows [r0, r1) (relative to A->m0) */
static void kq_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmp) {
    (void)tmp;
    char *bp = bpv;
    int kind = kn_q8_kind(c->B->dt), off = KN_Q8_OFFSET(kind), hb = KN_Q8_HALVES(kind);
    float ct[KQ_MR * KQ_NR] __attribute__((aligned(64)));
    for (int64_t kb = 0; kb * KQ_KC < c->K; kb++) {
        int64_t k0 = kb * KQ_KC, kc = c->K - k0 < KQ_KC ? c->K - k0 : KQ_KC, nb = kc / KQ_BLK;
        int mode = k0 > 0 ? 1 : c->acc ? 2 : 0;
        int64_t pb = kq_bpanel_bytes(nb, hb);
        kq_pack_b(bp, c->B, n0, nc, k0, kc, hb); // W[n0.., k0..] -> int8 panels
        for (int64_t mc0 = r0; mc0 < r1; mc0 += KQ_MC) {
            int64_t mc1 = r1 - mc0 < KQ_MC ? r1 : mc0 + KQ_MC;
            for (int64_t j = 0; j < nc; j += KQ_NR)
                for (int64_t i = mc0; i < mc1; i += KQ_MR) {
                    int mr = (int)(mc1 - i < KQ_MR ? mc1 - i : KQ_MR);
                    // [MR, kc] x [kc, NR] -> y[m0+i.., n0+j..]
                    (hb == 2 ? kq_ukr16 : kq_ukr32)(nb, kq_apanel(A, kb, i), bp + (j / KQ_NR) * pb, off, ct);
                    kn_q8_store(c->y + (A->m0 + i) * c->ldy + n0 + j, c->ldy, ct, KQ_NR, mr, nc - j, mode,
                             c->bias ? c->bias + n0 + j : NULL);
                }
        }
    }
}

/* y[M, N] (+)= x[M, K] . W^T (+ bias) with W of a kn_q8_kind type, K a multiple of 32. */
int KN_FN(kn_gemm_q8)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                      const kn_wsrc *B, const float *bias, int acc, int T) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if (K % KQ_BLK || !kn_q8_kind(B->dt) || !KQ_ACCEPTS(kn_q8_kind(B->dt))) return zi_err("int8 GEMM: K = %lld or the weight type unsupported", (long long)K);
    static const kn_gemm_plan plan = {"int8", KQ_MR, KQ_NR, KQ_KC, KQ_MC, KQ_NC, KQ_ROWS, KQ_ELEM, 0,
                                      kq_pack_a, kq_item, NULL, NULL};
    kn_gemm_call c = {y, ldy, x, ldx, K, B, bias, acc, 0};
    return kn_gemm_drive(&plan, &c, M, N, T);
}
