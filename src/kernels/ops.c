/* ops.c - RMSNorm, LayerNorm and RoPE (portable C; the vectorized sum of squares comes from the
 * calling thread's instruction-set table). Norms accumulate in double; results do not depend on
 * the thread count. Attention and SiLU live in attention_impl.h / eltwise_impl.h (dispatch.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"

void kn_rmsnorm(float *y, const float *x, int64_t M, int64_t D, const float *g, float eps) {
    const kn_impl *im = kn_impl_get();
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (M * D > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * D;
        float *yr = y + i * D;
        double ss = im->sumsq(xr, D);
        float r = 1.0f / sqrtf((float)(ss / (double)D) + eps);
        if (g)
            for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * r * g[j];
        else
            for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * r;
    }
}

void kn_layernorm(float *y, const float *x, int64_t M, int64_t D, float eps) {
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (M * D > 65536)
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

void kn_rope_interleaved(float *x, int64_t L, int n_heads, int hd, int64_t ld, const float *cos, const float *sin) {
    int half = hd / 2;
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (L * n_heads * hd > 65536)
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
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (L * n_heads * hd > 65536)
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
