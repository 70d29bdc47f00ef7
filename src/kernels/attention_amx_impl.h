/* attention_amx_impl.h - the bf16-mode flash attention on AMX tiles (TDPBF16PS): S = Q K^T and
 * O += P V as bf16 tile products with f32 accumulation, the online softmax in f32 vectors
 * (attention_common_impl.h). Instantiated by attention_amx.c (real tiles, AVX-512 vectors) and
 * by attention_amx_emulated.c (tile_emulated.h, portable vectors), so the packing, tiling and
 * write-back are tested on every CPU. Same results contract as the other bf16 attention
 * (attention_bf16_impl.h): Q, K, V and P rounded to bf16 where they enter the products.
 *
 * Work item: one head h, a block of 32 queries (two 16-row tiles), streaming ATT_FBK keys.
 * Tiles: C0..C3 = a 32 x 32 f32 block, A4/A5 = 16 rows x 32 bf16, B6/B7 = 16 pairs x 16 columns.
 *   S[32, FBK] = Q[32, hdp] . K^T: per 32 keys, hdp/32 chunks of 4 loads + 4 TDPBF16PS.
 *   O[32, hdp] += P[32, nk] . V: per 32 output columns, C tiles loaded from O (kept in memory
 *   because hd = 128 needs 16 tiles), nk/32 chunks of 4 loads + 4 TDPBF16PS, stored back.
 * Layouts (hdp = hd rounded up to 32, Lkp = Lk rounded up to 32, zero padding):
 *   Q rows   qb[i*hdp + e]                        = bf16(q[q0 + i][e])                  per item
 *   K^T      kt[((g*nkb + kb)*hdp/2 + ep)*16 + c]  = pair(k[16 kb + c][2ep], [2ep+1])    per call
 *   V        vt[((g*nct + ct)*Lkp/2 + jp)*16 + c]  = pair(v[2jp][16 ct + c], v[2jp+1][..]) per call
 *   P rows   pb[i*FBK + j]                        = bf16(p[i][j])                       per tile
 * Needs vec_<isa>.h (vectors for the softmax), then the tile vocabulary (TILE_*) and KN_FN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "attention_common_impl.h"
#include "bf16_avx512.h"
#include "impl.h"

#define ATA_Q 32 /* queries per work item */

static inline uint32_t ata_pair(float lo, float hi) {
    return (uint32_t)zi_f32_to_bf16(lo) | ((uint32_t)zi_f32_to_bf16(hi) << 16);
}

static void ata_pack_kv(uint32_t *kt, uint32_t *vt, const float *k, int64_t ldk, const float *v, int64_t ldv,
                        int64_t Lk, int64_t Lkp, int n_kv, int hd, int64_t hdp, int T) {
    int64_t nkb = Lkp / 16, nct = hdp / 16, hd2 = hdp / 2, Lk2 = Lkp / 2;
#pragma omp parallel for num_threads(T) schedule(static) collapse(2) if (T > 1 && Lkp * n_kv * hd > 65536)
    for (int g = 0; g < n_kv; g++)
        for (int64_t kb = 0; kb < nkb; kb++) {
            uint32_t *kd = kt + ((int64_t)g * nkb + kb) * hd2 * 16;
            for (int c = 0; c < 16; c++) {
                int64_t j = kb * 16 + c;
                const float *kr = k + (j < Lk ? j : 0) * ldk + (int64_t)g * hd;
                for (int64_t ep = 0; ep < hd2; ep++) {
                    float lo = j < Lk && 2 * ep < hd ? kr[2 * ep] : 0.0f;
                    float hi = j < Lk && 2 * ep + 1 < hd ? kr[2 * ep + 1] : 0.0f;
                    kd[ep * 16 + c] = ata_pair(lo, hi);
                }
            }
            /* V pair rows of keys 16 kb .. 16 kb + 16 */
            for (int64_t ct = 0; ct < nct; ct++) {
                uint32_t *vd = vt + ((int64_t)g * nct + ct) * Lk2 * 16;
                for (int64_t jp = kb * 8; jp < kb * 8 + 8; jp++)
                    for (int c = 0; c < 16; c++) {
                        int64_t e = ct * 16 + c, j0 = 2 * jp, j1 = 2 * jp + 1;
                        float lo = e < hd && j0 < Lk ? v[j0 * ldv + (int64_t)g * hd + e] : 0.0f;
                        float hi = e < hd && j1 < Lk ? v[j1 * ldv + (int64_t)g * hd + e] : 0.0f;
                        vd[jp * 16 + c] = ata_pair(lo, hi);
                    }
            }
        }
}

/* The bf16 bits of a value already rounded to bf16 (exact). */
static inline uint16_t ata_hi16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

/* S[32, 32 keys at kb16*16] = Q[32, hdp] . K^T: C0/C1 rows 0-15, C2/C3 rows 16-31. */
static void ata_scores(const uint16_t *qb, const uint32_t *ktg, int64_t kb16, int64_t hdp, float *s) {
    int64_t hd2 = hdp / 2;
    TILE_ZERO(0);
    TILE_ZERO(1);
    TILE_ZERO(2);
    TILE_ZERO(3);
    for (int64_t ch = 0; ch < hdp / 32; ch++) {
        TILE_LOAD(4, qb + ch * 32, hdp * 2);                          /* Q rows 0-15, 32 dims */
        TILE_LOAD(5, qb + 16 * hdp + ch * 32, hdp * 2);               /* Q rows 16-31 */
        TILE_LOAD(6, ktg + (kb16 * hd2 + ch * 16) * 16, 64);             /* 16 dim pairs x keys 0-15 */
        TILE_LOAD(7, ktg + ((kb16 + 1) * hd2 + ch * 16) * 16, 64);       /* keys 16-31 */
        TILE_DP(0, 4, 6);
        TILE_DP(1, 4, 7);
        TILE_DP(2, 5, 6);
        TILE_DP(3, 5, 7);
    }
    TILE_STORE(0, s, ATT_FBK * 4);
    TILE_STORE(1, s + 16, ATT_FBK * 4);
    TILE_STORE(2, s + 16 * ATT_FBK, ATT_FBK * 4);
    TILE_STORE(3, s + 16 * ATT_FBK + 16, ATT_FBK * 4);
}

/* O[32, 32 columns at ct*16] += P[32, nk32] . V[keys k0.., columns]: C tiles round-trip O. */
static void ata_pv(float *o_all, const uint16_t *pb, const uint32_t *vtg, int64_t Lkp, int64_t k0, int64_t nk32,
                   int64_t ct, int64_t hdp) {
    int64_t Lk2 = Lkp / 2;
    float *o = o_all + ct * 16;
    TILE_LOAD(0, o, hdp * 4);
    TILE_LOAD(1, o + 16, hdp * 4);
    TILE_LOAD(2, o + 16 * hdp, hdp * 4);
    TILE_LOAD(3, o + 16 * hdp + 16, hdp * 4);
    for (int64_t kc = 0; kc < nk32 / 32; kc++) {
        int64_t jp = (k0 + kc * 32) / 2;
        TILE_LOAD(4, pb + kc * 32, ATT_FBK * 2);              /* P rows 0-15, 32 keys */
        TILE_LOAD(5, pb + 16 * ATT_FBK + kc * 32, ATT_FBK * 2); /* P rows 16-31 */
        TILE_LOAD(6, vtg + (ct * Lk2 + jp) * 16, 64);            /* 16 key pairs x columns 0-15 */
        TILE_LOAD(7, vtg + ((ct + 1) * Lk2 + jp) * 16, 64);      /* columns 16-31 */
        TILE_DP(0, 4, 6);
        TILE_DP(1, 4, 7);
        TILE_DP(2, 5, 6);
        TILE_DP(3, 5, 7);
    }
    TILE_STORE(0, o, hdp * 4);
    TILE_STORE(1, o + 16, hdp * 4);
    TILE_STORE(2, o + 16 * hdp, hdp * 4);
    TILE_STORE(3, o + 16 * hdp + 16, hdp * 4);
}

/* One work item: queries [q0, q0+nq) (nq <= 32) of head h against its kv head. Scratch: buf[0]
 * qb [32][hdp] bf16 queries, buf[1] s [32][FBK] scores then probabilities (bf16-rounded),
 * buf[2] pb [32][FBK] bf16 probabilities, buf[3] o [32][hdp] unnormalized output. */
static void ata_item(att_work *w, const att_call *c, int h, int64_t q0, int64_t nq) {
    uint16_t *qb = w->buf[0], *pb = w->buf[2];
    float *sc = w->buf[1], *o = w->buf[3];
    const float *q = c->q;
    const uint32_t *kt = c->kt, *vt = c->vt;
    int64_t ldq = c->ldq, Lkp = c->Lkp, Lk = c->Lk, hdp = ((int64_t)c->hd + 31) / 32 * 32;
    int hd = c->hd, g = h / c->group, causal = c->causal;
    memset(qb, 0, sizeof(uint16_t) * (size_t)(ATA_Q * hdp));
    for (int64_t i = 0; i < nq; i++) {
        const float *qi = q + (q0 + i) * ldq + (int64_t)h * hd;
        int e = 0;
#if defined(__AVX512F__)
        for (; e + 16 <= hd; e += 16) kn_bf16x16_store(qb + i * hdp + e, _mm512_loadu_ps(qi + e));
#endif
        for (; e < hd; e++) qb[i * hdp + e] = zi_f32_to_bf16(qi[e]);
    }
    memset(pb + nq * ATT_FBK, 0, sizeof(uint16_t) * (size_t)((ATA_Q - nq) * ATT_FBK)); /* rows past nq */
    memset(o, 0, sizeof(float) * (size_t)(ATA_Q * hdp));
    for (int64_t i = 0; i < nq; i++) w->mx[i] = -INFINITY, w->sum[i] = 0.0f;
    int64_t nkb = Lkp / 16, nct = hdp / 16;
    const uint32_t *ktg = kt + (int64_t)g * nkb * (hdp / 2) * 16;
    const uint32_t *vtg = vt + (int64_t)g * nct * (Lkp / 2) * 16;
    int64_t kend = causal ? (q0 + nq < Lk ? q0 + nq : Lk) : Lk;
    for (int64_t k0 = 0; k0 < kend; k0 += ATT_FBK) {
        int64_t nk = kend - k0 < ATT_FBK ? kend - k0 : ATT_FBK, nk32 = (nk + 31) / 32 * 32;
        for (int64_t j = 0; j < nk32; j += 32) ata_scores(qb, ktg, (k0 + j) / 16, hdp, sc + j);
        for (int64_t i = 0; i < nq; i++) {
            int64_t lim = causal ? q0 + i + 1 - k0 : nk;
            if (lim > nk) lim = nk;
            float *si = sc + i * ATT_FBK;
            uint16_t *pi = pb + i * ATT_FBK;
            if (lim <= 0) { /* query i sees none of these keys */
                memset(pi, 0, sizeof(uint16_t) * (size_t)nk32);
                continue;
            }
            att_softmax_row(si, nk, lim, c->scale, &w->mx[i], &w->sum[i], o + i * hdp, hd, 1);
            int64_t j = 0;
#if defined(__AVX512F__)
            for (; j + 16 <= nk; j += 16) /* the rounded probabilities' bf16 bits, 16 at a time */
                _mm256_storeu_si256((__m256i *)(pi + j),
                                    _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_loadu_si512(si + j), 16)));
#endif
            for (; j < nk32; j++) pi[j] = j < nk ? ata_hi16(si[j]) : 0;
        }
        for (int64_t ct = 0; ct < nct; ct += 2) ata_pv(o, pb, vtg, Lkp, k0, nk32, ct, hdp);
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = w->sum[i] > 0 ? 1.0f / w->sum[i] : 0.0f;
        const float *oi = o + i * hdp;
        float *dst = c->out + (q0 + i) * c->ldo + (int64_t)h * hd;
        for (int e = 0; e < hd; e++) dst[e] = oi[e] * inv;
    }
}

static void ata_tiles_on(void) { TILE_CONFIG(); }
static void ata_tiles_off(void) { TILE_RELEASE(); }

int KN_FN(kn_attention_bf16)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads,
                             int hd, float scale, int causal, int T) {
    if (Lk <= 0) {
        att_zero_output(out, ldo, Lq, n_heads, hd);
        return 0;
    }
    int64_t Lkp = (Lk + 31) / 32 * 32, hdp = ((int64_t)hd + 31) / 32 * 32;
    size_t kv_words = (size_t)n_kv_heads * (size_t)Lkp * (size_t)hdp / 2;
    uint32_t *kt = kn_scratch_get(sizeof(uint32_t) * kv_words), *vt = kn_scratch_get(sizeof(uint32_t) * kv_words);
    if (!kt || !vt) {
        kn_scratch_put(kt);
        kn_scratch_put(vt);
        return zi_err("out of memory for attention scratch (%lld keys)", (long long)Lk);
    }
    ata_pack_kv(kt, vt, k, ldk, v, ldv, Lk, Lkp, n_kv_heads, hd, hdp, T);
    att_call c = {out, ldo, q, ldq, kt, vt, Lk, Lkp, hd, n_heads / n_kv_heads, scale, causal, 1};
    const size_t bytes[4] = {sizeof(uint16_t) * ATA_Q * (size_t)hdp, sizeof(float) * ATA_Q * ATT_FBK,
                             sizeof(uint16_t) * ATA_Q * ATT_FBK, sizeof(float) * ATA_Q * (size_t)hdp};
    int rc = att_drive(&c, Lq, n_heads, ATA_Q, bytes, ata_item, ata_tiles_on, ata_tiles_off, T);
    kn_scratch_put(kt);
    kn_scratch_put(vt);
    return rc;
}
