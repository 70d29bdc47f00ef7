/* ops.c - norms, activations, RoPE and attention kernels.
 *
 * Attention (used by every DiT block, the text encoder and the VAE mid-block) is
 * flash-style: per (head, block of 112 queries) it streams 128-key tiles, computing
 * the score tile with the GEMM microkernel (simd.h) against a once-transposed K,
 * an online softmax with a vectorized exp, and P.V with the same microkernel.
 * The portable path (no AVX-512, or out of memory) is the plain scalar version.
 * SiLU/SwiGLU use the vectorized exp; norms accumulate in double. All results are
 * deterministic for a given input (work split never changes summation order). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "simd.h"

static int kn_threads = 0;

void kn_set_threads(int n) {
#ifdef _OPENMP
    kn_threads = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(kn_threads);
#else
    (void)n;
    kn_threads = 1;
#endif
}

int kn_get_threads(void) {
#ifdef _OPENMP
    return kn_threads > 0 ? kn_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* sum of x[j]^2 in double (8 partial sums per lane group on AVX-512: fixed order). */
static double ops_sumsq(const float *x, int64_t n) {
    double ss = 0;
    int64_t j = 0;
#ifdef KN_HAVE_AVX512
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (; j + 16 <= n; j += 16) {
        __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + j)), x1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8));
        a0 = _mm512_fmadd_pd(x0, x0, a0);
        a1 = _mm512_fmadd_pd(x1, x1, a1);
    }
    ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
#endif
    for (; j < n; j++) ss += (double)x[j] * x[j];
    return ss;
}

void kn_rmsnorm(float *y, const float *x, int64_t M, int64_t D, const float *g, float eps) {
#pragma omp parallel for schedule(static) if (M * D > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * D;
        float *yr = y + i * D;
        double ss = ops_sumsq(xr, D);
        float r = 1.0f / sqrtf((float)(ss / (double)D) + eps);
        if (g)
            for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * r * g[j];
        else
            for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * r;
    }
}

void kn_layernorm(float *y, const float *x, int64_t M, int64_t D, float eps) {
#pragma omp parallel for schedule(static) if (M * D > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * D;
        float *yr = y + i * D;
        double s = 0, ss = 0;
        for (int64_t j = 0; j < D; j++) s += xr[j];
        double mean = s / (double)D;
        for (int64_t j = 0; j < D; j++) {
            double d = xr[j] - mean;
            ss += d * d;
        }
        float r = 1.0f / sqrtf((float)(ss / (double)D) + eps);
        float m = (float)mean;
        for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] - m) * r;
    }
}

/* Elementwise ops run over 4096-element chunks so chunk boundaries (and results) don't
 * depend on the thread count. */
#define OPS_CHUNK 4096

/* gate[i] = silu(gate[i]) * (up ? up[i] : 1); multiplying by 1 is exact, so kn_silu is unchanged */
static void ops_silu_mul(float *gate, const float *up, int64_t n) {
    int64_t nch = (n + OPS_CHUNK - 1) / OPS_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i = c * OPS_CHUNK, end = i + OPS_CHUNK < n ? i + OPS_CHUNK : n;
#ifdef KN_HAVE_AVX512
        const __m512 one = _mm512_set1_ps(1.0f);
        for (; i < end; i += 16) {
            __mmask16 m = end - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - i)) - 1u);
            __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = up ? _mm512_maskz_loadu_ps(m, up + i) : one;
            __m512 e = kn_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
            _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
        }
#endif
        for (; i < end; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * (up ? up[i] : 1.0f);
    }
}

void kn_silu(float *x, int64_t n) { ops_silu_mul(x, NULL, n); }

void kn_swiglu(float *gate, const float *up, int64_t n) { ops_silu_mul(gate, up, n); }

void kn_rope_interleaved(float *x, int64_t L, int n_heads, int hd, int64_t ld, const float *cos, const float *sin) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if (L * n_heads * hd > 65536)
    for (int64_t i = 0; i < L; i++) {
        const float *c = cos + i * half, *s = sin + i * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + i * ld + (int64_t)h * hd;
            for (int p = 0; p < half; p++) {
                float a = v[2 * p], b = v[2 * p + 1];
                v[2 * p] = a * c[p] - b * s[p];
                v[2 * p + 1] = a * s[p] + b * c[p];
            }
        }
    }
}

void kn_rope_halfsplit(float *x, int64_t L, int n_heads, int hd, int64_t ld, const float *cos, const float *sin) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if (L * n_heads * hd > 65536)
    for (int64_t i = 0; i < L; i++) {
        const float *c = cos + i * half, *s = sin + i * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + i * ld + (int64_t)h * hd;
            for (int p = 0; p < half; p++) {
                float a = v[p], b = v[p + half];
                v[p] = a * c[p] - b * s[p];
                v[p + half] = b * c[p] + a * s[p];
            }
        }
    }
}

/* Portable flash-style attention: for each (head, block of queries) stream over key tiles,
 * keeping a running max and sum per query (online softmax). Scores live only in a
 * [QB, KB] tile per thread. */
#define ATT_QB 16
#define ATT_KB 128

static void att_scalar(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                       const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                       float scale, int causal) {
    int group = n_heads / n_kv_heads;
    int64_t n_qb = (Lq + ATT_QB - 1) / ATT_QB;
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * ATT_QB * ATT_KB);
        float *acc = malloc(sizeof(float) * ATT_QB * (size_t)hd);
        float mx[ATT_QB], sum[ATT_QB];
#pragma omp for schedule(dynamic) collapse(2)
        for (int h = 0; h < n_heads; h++) {
            for (int64_t qb = 0; qb < n_qb; qb++) {
                int g = h / group;
                int64_t q0 = qb * ATT_QB, nq = Lq - q0 < ATT_QB ? Lq - q0 : ATT_QB;
                for (int i = 0; i < nq; i++) {
                    mx[i] = -INFINITY;
                    sum[i] = 0;
                }
                memset(acc, 0, sizeof(float) * ATT_QB * (size_t)hd);
                int64_t kend = causal ? (q0 + nq < Lk ? q0 + nq : Lk) : Lk;
                for (int64_t k0 = 0; k0 < kend; k0 += ATT_KB) {
                    int64_t nk = kend - k0 < ATT_KB ? kend - k0 : ATT_KB;
                    for (int i = 0; i < nq; i++) {
                        const float *qi = q + (q0 + i) * ldq + (int64_t)h * hd;
                        float *si = s + i * ATT_KB;
                        float bmax = -INFINITY;
                        for (int64_t j = 0; j < nk; j++) {
                            float d;
                            if (causal && k0 + j > q0 + i) {
                                d = -INFINITY;
                            } else {
                                const float *kj = k + (k0 + j) * ldk + (int64_t)g * hd;
                                d = 0;
                                for (int e = 0; e < hd; e++) d += qi[e] * kj[e];
                                d *= scale;
                            }
                            si[j] = d;
                            if (d > bmax) bmax = d;
                        }
                        if (bmax == -INFINITY) continue;
                        float nmax = bmax > mx[i] ? bmax : mx[i];
                        float corr = expf(mx[i] - nmax);
                        float *ai = acc + (int64_t)i * hd;
                        if (corr != 1.0f)
                            for (int e = 0; e < hd; e++) ai[e] *= corr;
                        float ls = 0;
                        for (int64_t j = 0; j < nk; j++) {
                            float p = expf(si[j] - nmax);
                            ls += p;
                            if (p == 0.0f) continue;
                            const float *vj = v + (k0 + j) * ldv + (int64_t)g * hd;
                            for (int e = 0; e < hd; e++) ai[e] += p * vj[e];
                        }
                        sum[i] = sum[i] * corr + ls;
                        mx[i] = nmax;
                    }
                }
                for (int i = 0; i < nq; i++) {
                    float *o = out + (q0 + i) * ldo + (int64_t)h * hd;
                    float inv = sum[i] > 0 ? 1.0f / sum[i] : 0.0f;
                    for (int e = 0; e < hd; e++) o[e] = acc[(int64_t)i * hd + e] * inv;
                }
            }
        }
        free(s);
        free(acc);
    }
}

#ifdef KN_HAVE_AVX512
#ifndef ATT_FBQ
#define ATT_FBQ (KN_MR * 8) /* queries per work item (8 microkernel row panels) */
#endif
#ifndef ATT_FBK
#define ATT_FBK 128 /* keys per tile */
#endif

/* K and V repacked once per call into 32-wide panels, so the microkernel's B operand is
 * contiguous (raw rows are 15 KB apart in the DiT, which maps a tile's rows onto a few
 * L1 sets and thrashes it):
 *   kt[((g*njc + jc)*hd + e)*32 + c] = k[(32 jc + c)*ldk + g*hd + e]     (K^T, 0 past Lk)
 *   vp[((g*nec + ec)*Lkp + j)*32 + c] = v[j*ldv + g*hd + 32 ec + c]       (0 past Lk or hd) */
static void att_pack_kv(float *kt, float *vp, const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t Lk,
                        int64_t Lkp, int n_kv, int hd) {
    int64_t njc = Lkp / 32, nec = (hd + 31) / 32;
#pragma omp parallel for schedule(static) collapse(2) if (Lkp * n_kv * hd > 65536)
    for (int g = 0; g < n_kv; g++)
        for (int64_t jc = 0; jc < njc; jc++) {
            float *kd = kt + ((int64_t)g * njc + jc) * hd * 32;
            for (int half = 0; half < 2; half++) {
                int64_t j0 = jc * 32 + half * 16, nj = Lk - j0 < 16 ? (Lk - j0 > 0 ? Lk - j0 : 0) : 16;
                for (int e0 = 0; e0 < hd; e0 += 16) {
                    int ne = hd - e0 < 16 ? hd - e0 : 16;
                    __mmask16 em = (__mmask16)(ne == 16 ? 0xFFFF : (1u << ne) - 1u);
                    __m512 r[16];
                    for (int i = 0; i < 16; i++)
                        r[i] = i < nj ? _mm512_maskz_loadu_ps(em, k + (j0 + i) * ldk + (int64_t)g * hd + e0)
                                      : _mm512_setzero_ps();
                    kn_transpose16(r);
                    for (int q = 0; q < ne; q++) _mm512_store_ps(kd + (int64_t)(e0 + q) * 32 + half * 16, r[q]);
                }
            }
            for (int64_t ec = 0; ec < nec; ec++) {
                __mmask16 m0, m1;
                kn_masks32(hd - ec * 32, &m0, &m1);
                float *vd = vp + (((int64_t)g * nec + ec) * Lkp + jc * 32) * 32;
                for (int64_t j = jc * 32; j < jc * 32 + 32; j++, vd += 32) {
                    if (j >= Lk) {
                        _mm512_store_ps(vd, _mm512_setzero_ps());
                        _mm512_store_ps(vd + 16, _mm512_setzero_ps());
                        continue;
                    }
                    const float *src = v + j * ldv + (int64_t)g * hd + ec * 32;
                    _mm512_store_ps(vd, _mm512_maskz_loadu_ps(m0, src));
                    _mm512_store_ps(vd + 16, _mm512_maskz_loadu_ps(m1, src + 16));
                }
            }
        }
}

/* Per-thread scratch for one (head, query block) work item. */
typedef struct {
    float *qp;   /* [FBQ/14][hd][14] packed queries */
    float *s;    /* [FBQ][FBK] scores, then probabilities */
    float *o;    /* [FBQ][hd] unnormalized output */
    float mx[ATT_FBQ], sum[ATT_FBQ];
} att_scratch;

/* Online-softmax update of score row s[0..nk) whose first `lim` entries are visible:
 * s <- exp(scale*s - new_max) (0 past lim); rescales the output row o[0..hd). */
static void att_softmax_row(float *s, int64_t nk, int64_t lim, float scale, float *mx, float *sum, float *o,
                            int hd) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < lim; j += 16) {
        __mmask16 m = lim - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (lim - j)) - 1u);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), vs);
        _mm512_storeu_ps(s + j, x); /* s has FBK >= j + 16 floats */
        vmax = _mm512_mask_max_ps(vmax, m, vmax, x);
    }
    float bmax = _mm512_reduce_max_ps(vmax);
    float nmax = bmax > *mx ? bmax : *mx;
    float corr = *mx == -INFINITY ? 0.0f : expf(*mx - nmax);
    const __m512 vn = _mm512_set1_ps(nmax);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; j += 16) {
        __mmask16 m = lim - j >= 16 ? (__mmask16)0xFFFF : lim - j <= 0 ? 0 : (__mmask16)((1u << (lim - j)) - 1u);
        __m512 p = _mm512_maskz_mov_ps(m, kn_exp512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vn)));
        vsum = _mm512_add_ps(vsum, p);
        _mm512_storeu_ps(s + j, p);
    }
    *sum = *sum * corr + _mm512_reduce_add_ps(vsum);
    *mx = nmax;
    if (corr != 1.0f) {
        const __m512 vc = _mm512_set1_ps(corr);
        for (int e = 0; e < hd; e += 16) {
            __mmask16 m = hd - e >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hd - e)) - 1u);
            _mm512_mask_storeu_ps(o + e, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + e), vc));
        }
    }
}

/* One work item: queries [q0, q0+nq) of head h against kv head g. */
static void att_item(att_scratch *w, float *out, int64_t ldo, const float *q, int64_t ldq, const float *kt,
                     const float *vp, int64_t Lkp, int64_t Lk, int h, int g, int hd, float scale, int causal,
                     int64_t q0, int64_t nq) {
    int64_t npan = (nq + KN_MR - 1) / KN_MR;
    for (int64_t p = 0; p < npan; p++) {
        int64_t r0 = p * KN_MR;
        kn_pack_panel14(w->qp + p * hd * KN_MR, q + (q0 + r0) * ldq + (int64_t)h * hd, ldq,
                        nq - r0 < KN_MR ? nq - r0 : KN_MR, hd);
    }
    for (int64_t i = 0; i < nq; i++) w->mx[i] = -INFINITY, w->sum[i] = 0.0f;
    memset(w->o, 0, sizeof(float) * (size_t)(nq * hd));
    int64_t nec = (hd + 31) / 32;
    const float *ktg = kt + (int64_t)g * hd * Lkp;     /* [Lkp/32][hd][32] */
    const float *vpg = vp + (int64_t)g * nec * Lkp * 32; /* [nec][Lkp][32] */
    int64_t kend = causal ? (q0 + nq < Lk ? q0 + nq : Lk) : Lk;
    for (int64_t k0 = 0; k0 < kend; k0 += ATT_FBK) {
        int64_t nk = kend - k0 < ATT_FBK ? kend - k0 : ATT_FBK;
        /* S[nq, nk] = Q[nq, hd] . K[k0.., hd]^T */
        for (int64_t j = 0; j < nk; j += KN_NR) {
            __mmask16 m0, m1;
            kn_masks32(nk - j, &m0, &m1);
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                kn_ukr(hd, w->qp + p * hd * KN_MR, 1, KN_MR, ktg + (k0 + j) * hd, 32, w->s + p * KN_MR * ATT_FBK + j,
                       ATT_FBK, mr, m0, m1, 0, 0, NULL);
            }
        }
        for (int64_t i = 0; i < nq; i++) {
            int64_t lim = causal ? q0 + i + 1 - k0 : nk;
            if (lim > nk) lim = nk;
            float *si = w->s + i * ATT_FBK;
            if (lim <= 0) { /* query i sees none of these keys */
                memset(si, 0, sizeof(float) * (size_t)nk);
                continue;
            }
            att_softmax_row(si, nk, lim, scale, &w->mx[i], &w->sum[i], w->o + i * hd, hd);
        }
        /* O[nq, hd] += P[nq, nk] . V[k0.., hd] */
        for (int e = 0; e < hd; e += KN_NR) {
            __mmask16 m0, m1;
            kn_masks32(hd - e, &m0, &m1);
            for (int64_t p = 0; p < npan; p++) {
                int mr = (int)(nq - p * KN_MR < KN_MR ? nq - p * KN_MR : KN_MR);
                kn_ukr(nk, w->s + p * KN_MR * ATT_FBK, ATT_FBK, 1, vpg + ((e / 32) * Lkp + k0) * 32, 32,
                       w->o + p * KN_MR * hd + e, hd, mr, m0, m1, 0, 1, NULL);
            }
        }
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = w->sum[i] > 0 ? 1.0f / w->sum[i] : 0.0f;
        const float *oi = w->o + i * hd;
        float *dst = out + (q0 + i) * ldo + (int64_t)h * hd;
        for (int e = 0; e < hd; e++) dst[e] = oi[e] * inv;
    }
}

/* Returns -1 (nothing written) if scratch memory is unavailable. */
static int att_fast(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                    float scale, int causal) {
    int group = n_heads / n_kv_heads;
    int64_t Lkp = (Lk + 31) / 32 * 32;
    size_t hdp = (size_t)(hd + 15) / 16 * 16;
    size_t hd32 = (size_t)(hd + 31) / 32 * 32;
    float *kt = kn_scratch_get(sizeof(float) * (size_t)n_kv_heads * (size_t)hd * (size_t)Lkp);
    float *vp = kn_scratch_get(sizeof(float) * (size_t)n_kv_heads * hd32 * (size_t)Lkp);
    if (!kt || !vp) {
        kn_scratch_put(kt);
        kn_scratch_put(vp);
        return -1;
    }
    att_pack_kv(kt, vp, k, ldk, v, ldv, Lk, Lkp, n_kv_heads, hd);
    int64_t nqb = (Lq + ATT_FBQ - 1) / ATT_FBQ;
    int failed = 0;
#pragma omp parallel if ((double)Lq * (double)Lk * hd * n_heads > 1e6)
    {
        att_scratch *w = calloc(1, sizeof *w);
        if (w) {
            w->qp = kn_scratch_get(sizeof(float) * ATT_FBQ * hdp);
            w->s = kn_scratch_get(sizeof(float) * ATT_FBQ * ATT_FBK);
            w->o = kn_scratch_get(sizeof(float) * ATT_FBQ * hdp);
        }
        int ok = w && w->qp && w->s && w->o;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) { /* all threads agree after the barrier */
#pragma omp for schedule(dynamic) collapse(2)
            for (int h = 0; h < n_heads; h++)
                for (int64_t qb = 0; qb < nqb; qb++) {
                    int64_t q0 = qb * ATT_FBQ, nq = Lq - q0 < ATT_FBQ ? Lq - q0 : ATT_FBQ;
                    att_item(w, out, ldo, q, ldq, kt, vp, Lkp, Lk, h, h / group, hd, scale, causal, q0, nq);
                }
        }
        if (w) {
            kn_scratch_put(w->qp);
            kn_scratch_put(w->s);
            kn_scratch_put(w->o);
        }
        free(w);
    }
    kn_scratch_put(kt);
    kn_scratch_put(vp);
    return failed ? -1 : 0;
}
#endif

void kn_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                  const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                  float scale, int causal) {
    if (Lq <= 0 || n_heads <= 0 || hd <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads) return; /* invalid */
#ifdef KN_HAVE_AVX512
    if (Lk > 0 && att_fast(out, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, n_heads, n_kv_heads, hd,
                                             scale, causal) == 0)
        return;
#endif
    att_scalar(out, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, n_heads, n_kv_heads, hd, scale, causal);
}
