/* ops.c - norms, activations, RoPE and attention kernels (OpenMP, auto-vectorized). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

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

void kn_rmsnorm(float *y, const float *x, int64_t M, int64_t D, const float *g, float eps) {
#pragma omp parallel for schedule(static) if (M * D > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * D;
        float *yr = y + i * D;
        double ss = 0;
        for (int64_t j = 0; j < D; j++) ss += (double)xr[j] * xr[j];
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

void kn_silu(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void kn_swiglu(float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

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

/* Flash-style attention: for each (head, block of queries) stream over key tiles,
 * keeping a running max and sum per query (online softmax). Scores live only in a
 * [QB, KB] tile per thread. */
#define ATT_QB 16
#define ATT_KB 128

void kn_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
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
