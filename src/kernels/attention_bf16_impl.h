/* attention_bf16_impl.h - flash attention on bf16 dot-product units: the attention of the bf16
 * precision mode where the CPU has them. S = Q K^T and O += P V run as bf16 pair products with
 * f32 accumulation (ukr_bf16_impl.h); the running max, the exponentials and the sums stay f32
 * (attention_common_impl.h). Instantiated by attention_avx512bf16.c (vdpbf16ps) and by
 * attention_generic.c (exact emulation of the instruction, so this template is tested on
 * every CPU). Same tiles, work split and determinism as the fp32 template (attention_impl.h).
 *
 * Pair layouts ("pair" = two bf16 of consecutive reduction index in one uint32, even in the
 * low half; hd2 = ceil(hd/2), Lk2 = Lkp/2, zero padding past hd and Lk):
 *   Q rows  qb[i*hd2 + ep]                          = pair(q[i][2ep], q[i][2ep+1])     per item
 *   K^T     kt[((g*njc + jc)*hd2 + ep)*NR + c]      = pair(k[NR jc + c][2ep], ...[2ep+1])
 *   V       vt[((g*nec + ec)*Lk2 + jp)*NR + c]      = pair(v[2jp][NR ec + c], v[2jp+1][...])
 *   P rows  pb[i*(FBK/2) + jp]                      = pair(p[i][2jp], p[i][2jp+1])     per tile
 * Q and P are read by the microkernel as row-major pair matrices (broadcast operand). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "attention_common_impl.h"
#include "impl.h"
#include "ukr_bf16_impl.h"

/* The bf16 bits of a value already rounded to bf16 (exact). */
static inline uint32_t atb_hi16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u >> 16;
}

static void atb_pack_kv(uint32_t *kt, uint32_t *vt, const float *k, int64_t ldk, const float *v, int64_t ldv,
                        int64_t Lk, int64_t Lkp, int n_kv, int hd, int T) {
    int64_t njc = Lkp / KN_NR, nec = (hd + KN_NR - 1) / KN_NR, hd2 = (hd + 1) / 2, Lk2 = Lkp / 2;
#pragma omp parallel for num_threads(T) schedule(static) collapse(2) if (T > 1 && Lkp * n_kv * hd > 65536)
    for (int g = 0; g < n_kv; g++)
        for (int64_t jc = 0; jc < njc; jc++) {
            uint32_t *kd = kt + ((int64_t)g * njc + jc) * hd2 * KN_NR;
            for (int c = 0; c < KN_NR; c++) {
                int64_t j = jc * KN_NR + c;
                const float *kr = k + j * ldk + (int64_t)g * hd;
                for (int64_t ep = 0; ep < hd2; ep++)
                    kd[ep * KN_NR + c] = j >= Lk ? 0 : mb_pair(kr[2 * ep], 2 * ep + 1 < hd ? kr[2 * ep + 1] : 0.0f);
            }
            /* V pairs of rows jc*NR .. jc*NR + NR (NR is even: NR/2 pair rows per column block) */
            for (int64_t ec = 0; ec < nec; ec++) {
                uint32_t *vd = vt + ((int64_t)g * nec + ec) * Lk2 * KN_NR;
                for (int64_t jp = jc * KN_NR / 2; jp < (jc + 1) * KN_NR / 2; jp++)
                    for (int c = 0; c < KN_NR; c++) {
                        int64_t e = ec * KN_NR + c, j0 = 2 * jp, j1 = 2 * jp + 1;
                        float lo = e < hd && j0 < Lk ? v[j0 * ldv + (int64_t)g * hd + e] : 0.0f;
                        float hi = e < hd && j1 < Lk ? v[j1 * ldv + (int64_t)g * hd + e] : 0.0f;
                        vd[jp * KN_NR + c] = mb_pair(lo, hi);
                    }
            }
        }
}

/* One work item: queries [q0, q0+nq) of head h against its kv head. Scratch: buf[0] qb
 * [FBQ][hd2] query pairs, buf[1] s [FBQ][FBK] scores then probabilities (bf16-rounded),
 * buf[2] pb [FBQ][FBK/2] probability pairs, buf[3] o [FBQ][hd] unnormalized output. */
static void atb_item(att_work *w, const att_call *c, int h, int64_t q0, int64_t nq) {
    uint32_t *qb = w->buf[0], *pb = w->buf[2];
    float *sc = w->buf[1], *o = w->buf[3];
    const float *q = c->q;
    const uint32_t *kt = c->kt, *vt = c->vt;
    int64_t ldq = c->ldq, Lkp = c->Lkp, Lk = c->Lk;
    int hd = c->hd, g = h / c->group, causal = c->causal;
    int64_t hd2 = (hd + 1) / 2, npan = (nq + KN_MR - 1) / KN_MR, nrows = npan * KN_MR;
    for (int64_t i = 0; i < nq; i++) {
        const float *qi = q + (q0 + i) * ldq + (int64_t)h * hd;
        for (int64_t ep = 0; ep < hd2; ep++) qb[i * hd2 + ep] = mb_pair(qi[2 * ep], 2 * ep + 1 < hd ? qi[2 * ep + 1] : 0.0f);
    }
    /* rows past nq up to the panel: zeros (read by the microkernel, results dropped) */
    memset(qb + nq * hd2, 0, sizeof(uint32_t) * (size_t)((nrows - nq) * hd2));
    for (int64_t i = nq; i < nrows; i++) memset(pb + i * (ATT_FBK / 2), 0, sizeof(uint32_t) * (ATT_FBK / 2));
    for (int64_t i = 0; i < nq; i++) w->mx[i] = -INFINITY, w->sum[i] = 0.0f;
    memset(o, 0, sizeof(float) * (size_t)(nq * hd));
    int64_t njc = Lkp / KN_NR, nec = (hd + KN_NR - 1) / KN_NR, Lk2 = Lkp / 2;
    const uint32_t *ktg = kt + (int64_t)g * njc * hd2 * KN_NR; /* [Lkp/NR][hd2][NR] */
    const uint32_t *vtg = vt + (int64_t)g * nec * Lk2 * KN_NR;  /* [nec][Lk2][NR] */
    int64_t kend = causal ? (q0 + nq < Lk ? q0 + nq : Lk) : Lk;
    for (int64_t k0 = 0; k0 < kend; k0 += ATT_FBK) {
        int64_t nk = kend - k0 < ATT_FBK ? kend - k0 : ATT_FBK, nk2 = (nk + 1) / 2;
        /* S[nq, nk] = Q[nq, hd] . K[k0.., hd]^T    (hd2 pairs per product) */
        for (int64_t j = 0; j < nk; j += KN_NR)
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                mb_ukr(hd2, qb + p * KN_MR * hd2, hd2, 1, ktg + ((k0 + j) / KN_NR) * hd2 * KN_NR,
                       sc + p * KN_MR * ATT_FBK + j, ATT_FBK, mr, nk - j, 0, NULL);
            }
        for (int64_t i = 0; i < nq; i++) {
            int64_t lim = causal ? q0 + i + 1 - k0 : nk;
            if (lim > nk) lim = nk;
            float *si = sc + i * ATT_FBK;
            uint32_t *pi = pb + i * (ATT_FBK / 2);
            if (lim <= 0) { /* query i sees none of these keys */
                memset(pi, 0, sizeof(uint32_t) * (size_t)nk2);
                continue;
            }
            att_softmax_row(si, nk, lim, c->scale, &w->mx[i], &w->sum[i], o + i * hd, hd, 1);
            for (int64_t jp = 0; jp < nk2; jp++) /* rounded already: the pair is the two high halves */
                pi[jp] = atb_hi16(si[2 * jp]) | (2 * jp + 1 < nk ? atb_hi16(si[2 * jp + 1]) << 16 : 0);
        }
        /* O[nq, hd] += P[nq, nk] . V[k0.., hd]    (nk2 pairs per product; k0 is even) */
        for (int e = 0; e < hd; e += KN_NR)
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                mb_ukr(nk2, pb + p * KN_MR * (ATT_FBK / 2), ATT_FBK / 2, 1,
                       vtg + ((e / KN_NR) * Lk2 + k0 / 2) * KN_NR, o + p * KN_MR * hd + e, hd, mr, hd - e, 1,
                       NULL);
            }
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = w->sum[i] > 0 ? 1.0f / w->sum[i] : 0.0f;
        const float *oi = o + i * hd;
        float *dst = c->out + (q0 + i) * c->ldo + (int64_t)h * hd;
        for (int e = 0; e < hd; e++) dst[e] = oi[e] * inv;
    }
}

int KN_FN(kn_attention_bf16)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads,
                             int hd, float scale, int causal, int T) {
    if (Lk <= 0) {
        att_zero_output(out, ldo, Lq, n_heads, hd);
        return 0;
    }
    int64_t Lkp = (Lk + KN_NR - 1) / KN_NR * KN_NR;
    size_t hd2 = (size_t)(hd + 1) / 2, hdp = (size_t)(hd + KN_NR - 1) / KN_NR * KN_NR;
    uint32_t *kt = kn_scratch_get(sizeof(uint32_t) * (size_t)n_kv_heads * hd2 * (size_t)Lkp);
    uint32_t *vt = kn_scratch_get(sizeof(uint32_t) * (size_t)n_kv_heads * hdp * (size_t)Lkp / 2);
    if (!kt || !vt) {
        kn_scratch_put(kt);
        kn_scratch_put(vt);
        return zi_err("out of memory for attention scratch (%lld keys)", (long long)Lk);
    }
    atb_pack_kv(kt, vt, k, ldk, v, ldv, Lk, Lkp, n_kv_heads, hd, T);
    att_call c = {out, ldo, q, ldq, kt, vt, Lk, Lkp, hd, n_heads / n_kv_heads, scale, causal, 1};
    const size_t bytes[4] = {sizeof(uint32_t) * ATT_FBQ * hd2, sizeof(float) * ATT_FBQ * ATT_FBK,
                             sizeof(uint32_t) * ATT_FBQ * (ATT_FBK / 2), sizeof(float) * ATT_FBQ * hdp};
    int rc = att_drive(&c, Lq, n_heads, ATT_FBQ, bytes, atb_item, NULL, NULL, T);
    kn_scratch_put(kt);
    kn_scratch_put(vt);
    return rc;
}
