/* attention_impl.h - flash-style multi-head attention template, instantiated per ISA by
 * attention_<isa>.c after vec_<isa>.h; uses the GEMM microkernel (ukr_impl.h).
 *
 * Per (head, block of ATT_FBQ queries) it streams ATT_FBK-key tiles: the score tile
 * S = Q K^T comes from the GEMM microkernel against a once-repacked K^T, then an online
 * softmax (running max and sum per query, vectorized exp), then O += P V with the same
 * microkernel. Scores exist only as one [FBQ, FBK] tile per thread: never an L x L matrix.
 * Deterministic: the work split never changes the summation order. bf16 precision mode: Q, K,
 * V and the probabilities P are rounded to bfloat16 where they enter the products (as in a
 * bf16 attention), max/sum/softmax stay f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "impl.h"
#include "attention_common_impl.h"
#include "ukr_impl.h"

/* K and V repacked once per call into NR-wide panels, so the microkernel's B operand is
 * contiguous (raw rows are 15 KB apart in the DiT, which maps a tile's rows onto a few L1
 * sets and thrashes it):
 *   kt[((g*njc + jc)*hd + e)*NR + c] = k[(NR jc + c)*ldk + g*hd + e]     (K^T, 0 past Lk)
 *   vp[((g*nec + ec)*Lkp + j)*NR + c] = v[j*ldv + g*hd + NR ec + c]       (0 past Lk or hd) */
static void att_pack_kv(float *kt, float *vp, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t Lk,
                        int64_t Lkp, int n_kv, int hd, int rb, int T) {
    int64_t njc = Lkp / KN_NR, nec = (hd + KN_NR - 1) / KN_NR;
#pragma omp parallel for num_threads(T) schedule(static) collapse(2) if (T > 1 && Lkp * n_kv * hd > 65536)
    for (int g = 0; g < n_kv; g++)
        for (int64_t jc = 0; jc < njc; jc++) {
            float *kd = kt + ((int64_t)g * njc + jc) * hd * KN_NR;
            for (int half = 0; half < KN_NR / KN_VW; half++) {
                int64_t j0 = jc * KN_NR + half * KN_VW, nj = Lk - j0 < KN_VW ? (Lk - j0 > 0 ? Lk - j0 : 0) : KN_VW;
                for (int e0 = 0; e0 < hd; e0 += KN_VW) {
                    int ne = hd - e0 < KN_VW ? hd - e0 : KN_VW;
                    vf r[KN_VW];
                    for (int i = 0; i < KN_VW; i++)
                        r[i] = i < nj ? v_load_n(k + (j0 + i) * ldk + (int64_t)g * hd + e0, ne) : v_zero();
                    if (rb)
                        for (int i = 0; i < KN_VW; i++) r[i] = v_round_bf16(r[i]);
                    v_transpose(r);
                    for (int q = 0; q < ne; q++) v_store(kd + (int64_t)(e0 + q) * KN_NR + half * KN_VW, r[q]);
                }
            }
            for (int64_t ec = 0; ec < nec; ec++) {
                int64_t ne = hd - ec * KN_NR, n0 = ne < KN_VW ? ne : KN_VW, n1 = ne - KN_VW;
                n1 = n1 < 0 ? 0 : n1 > KN_VW ? KN_VW : n1;
                float *vd = vp + (((int64_t)g * nec + ec) * Lkp + jc * KN_NR) * KN_NR;
                for (int64_t j = jc * KN_NR; j < jc * KN_NR + KN_NR; j++, vd += KN_NR) {
                    if (j >= Lk) {
                        v_store(vd, v_zero());
                        v_store(vd + KN_VW, v_zero());
                        continue;
                    }
                    const float *src = v + j * ldv + (int64_t)g * hd + ec * KN_NR;
                    vf a = v_load_n(src, n0), b = v_load_n(src + KN_VW, n1);
                    if (rb) a = v_round_bf16(a), b = v_round_bf16(b);
                    v_store(vd, a);
                    v_store(vd + KN_VW, b);
                }
            }
        }
}

/* One work item: queries [q0, q0+nq) of head h against its kv head. Scratch: buf[0] qp
 * [FBQ/MR][hd][MR] packed queries, buf[1] s [FBQ][FBK] scores then probabilities, buf[2] o
 * [FBQ][hd] unnormalized output. */
static void att_item(att_work *w, const att_call *c, int h, int64_t q0, int64_t nq) {
    float *qp = w->buf[0], *sc = w->buf[1], *o = w->buf[2];
    const float *q = c->q, *kt = c->kt, *vp = c->vt;
    int64_t ldq = c->ldq, Lkp = c->Lkp, Lk = c->Lk;
    int hd = c->hd, g = h / c->group, causal = c->causal, rb = c->rb;
    int64_t npan = (nq + KN_MR - 1) / KN_MR;
    for (int64_t p = 0; p < npan; p++) {
        int64_t r0 = p * KN_MR;
        mm_pack_panel(qp + p * hd * KN_MR, q + (q0 + r0) * ldq + (int64_t)h * hd, ldq,
                      nq - r0 < KN_MR ? nq - r0 : KN_MR, hd, rb);
    }
    for (int64_t i = 0; i < nq; i++) w->mx[i] = -INFINITY, w->sum[i] = 0.0f;
    memset(o, 0, sizeof(float) * (size_t)(nq * hd));
    int64_t nec = (hd + KN_NR - 1) / KN_NR;
    const float *ktg = kt + (int64_t)g * hd * Lkp;          /* [Lkp/NR][hd][NR] */
    const float *vpg = vp + (int64_t)g * nec * Lkp * KN_NR; /* [nec][Lkp][NR] */
    int64_t kend = causal ? (q0 + nq < Lk ? q0 + nq : Lk) : Lk;
    for (int64_t k0 = 0; k0 < kend; k0 += ATT_FBK) {
        int64_t nk = kend - k0 < ATT_FBK ? kend - k0 : ATT_FBK;
        /* S[nq, nk] = Q[nq, hd] . K[k0.., hd]^T */
        for (int64_t j = 0; j < nk; j += KN_NR)
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                mm_ukr(hd, qp + p * hd * KN_MR, 1, KN_MR, ktg + (k0 + j) * hd, KN_NR, sc + p * KN_MR * ATT_FBK + j,
                       ATT_FBK, mr, nk - j, 0, NULL);
            }
        for (int64_t i = 0; i < nq; i++) {
            int64_t lim = causal ? q0 + i + 1 - k0 : nk;
            if (lim > nk) lim = nk;
            float *si = sc + i * ATT_FBK;
            if (lim <= 0) { /* query i sees none of these keys */
                memset(si, 0, sizeof(float) * (size_t)nk);
                continue;
            }
            att_softmax_row(si, nk, lim, c->scale, &w->mx[i], &w->sum[i], o + i * hd, hd, rb);
        }
        /* O[nq, hd] += P[nq, nk] . V[k0.., hd] */
        for (int e = 0; e < hd; e += KN_NR)
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                mm_ukr(nk, sc + p * KN_MR * ATT_FBK, ATT_FBK, 1, vpg + ((e / KN_NR) * Lkp + k0) * KN_NR, KN_NR,
                       o + p * KN_MR * hd + e, hd, mr, hd - e, 1, NULL);
            }
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = w->sum[i] > 0 ? 1.0f / w->sum[i] : 0.0f;
        const float *oi = o + i * hd;
        float *dst = c->out + (q0 + i) * c->ldo + (int64_t)h * hd;
        for (int e = 0; e < hd; e++) dst[e] = oi[e] * inv;
    }
}

int KN_FN(kn_attention)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                            const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                            float scale, int causal, int bf16, int T) {
    if (Lk <= 0) {
        att_zero_output(out, ldo, Lq, n_heads, hd);
        return 0;
    }
    int64_t Lkp = (Lk + KN_NR - 1) / KN_NR * KN_NR;
    size_t hdp = (size_t)(hd + KN_NR - 1) / KN_NR * KN_NR;
    float *kt = kn_scratch_get(sizeof(float) * (size_t)n_kv_heads * (size_t)hd * (size_t)Lkp);
    float *vp = kn_scratch_get(sizeof(float) * (size_t)n_kv_heads * hdp * (size_t)Lkp);
    if (!kt || !vp) {
        kn_scratch_put(kt);
        kn_scratch_put(vp);
        return zi_err("out of memory for attention scratch (%lld keys)", (long long)Lk);
    }
    att_pack_kv(kt, vp, k, ldk, v, ldv, Lk, Lkp, n_kv_heads, hd, bf16, T);
    att_call c = {out, ldo, q, ldq, kt, vp, Lk, Lkp, hd, n_heads / n_kv_heads, scale, causal, bf16};
    const size_t bytes[4] = {sizeof(float) * ATT_FBQ * hdp, sizeof(float) * ATT_FBQ * ATT_FBK,
                             sizeof(float) * ATT_FBQ * hdp, 0};
    int rc = att_drive(&c, Lq, n_heads, ATT_FBQ, bytes, att_item, NULL, NULL, T);
    kn_scratch_put(kt);
    kn_scratch_put(vp);
    return rc;
}
