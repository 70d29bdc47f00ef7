/* matmul.c - linear layers: y = x . W^T (+ b) with F32/BF16/F16 weights.
 *
 * Weights are converted to f32 one tile at a time (never the whole matrix),
 * then a blocked f32 inner kernel runs. The tile conversion is where bf16/int8
 * dot-product microkernels can later replace the f32 path. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define MM_NB 64  /* output features per tile */
#define MM_KB 256 /* reduction depth per tile */

void kn_gemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                int64_t N, int64_t K) {
#pragma omp parallel for schedule(static) collapse(2) if (M * N * K > 100000)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            const float *a = A + i * lda, *b = B + j * ldb;
            float s = 0;
            for (int64_t e = 0; e < K; e++) s += a[e] * b[e];
            C[i * ldc + j] = s;
        }
}

void kn_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const kn_mat *W,
                       const float *bias) {
    int64_t N = W->rows, K = W->cols;
    int64_t n_nb = (N + MM_NB - 1) / MM_NB;
#pragma omp parallel
    {
        float *wt = malloc(sizeof(float) * MM_NB * MM_KB);
#pragma omp for schedule(dynamic)
        for (int64_t nb = 0; nb < n_nb; nb++) {
            int64_t n0 = nb * MM_NB, nn = N - n0 < MM_NB ? N - n0 : MM_NB;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < nn; j++) y[i * ldy + n0 + j] = bias ? bias[n0 + j] : 0.0f;
            for (int64_t k0 = 0; k0 < K; k0 += MM_KB) {
                int64_t kk = K - k0 < MM_KB ? K - k0 : MM_KB;
                for (int64_t j = 0; j < nn; j++) {
                    size_t off = (size_t)((n0 + j) * K + k0);
                    size_t es = zi_dtype_size(W->dtype);
                    zi_convert_to_f32(wt + j * kk, (const char *)W->data + off * es, W->dtype, (size_t)kk);
                }
                for (int64_t i = 0; i < M; i++) {
                    const float *xr = x + i * ldx + k0;
                    float *yr = y + i * ldy + n0;
                    for (int64_t j = 0; j < nn; j++) {
                        const float *w = wt + j * kk;
                        float s = 0;
                        for (int64_t e = 0; e < kk; e++) s += xr[e] * w[e];
                        yr[j] += s;
                    }
                }
            }
        }
        free(wt);
    }
}

void kn_linear(float *y, const float *x, int64_t M, const kn_mat *W, const float *bias) {
    kn_linear_strided(y, W->rows, x, W->cols, M, W, bias);
}
