/* gemm_bf16_impl.h - GEMM template on bf16 dot-product units: y = bf16(x) . bf16(W)^T with f32
 * accumulation (the bf16 precision mode of kn_linear). Instantiated by gemm_avx512bf16.c with
 * vdpbf16ps (vec_avx512bf16.h), and by gemm_generic.c with an exact scalar emulation of that
 * instruction (vec_generic.h), so the packing and driver logic below is tested on every CPU.
 *
 * A "pair" is two bfloat16 values of consecutive k in one 32-bit lane (even k in the low half).
 * The dot-product instruction multiplies lane-wise pairs and adds both products to an f32 lane:
 *   acc[l] += a.lo * b[l].lo + a.hi * b[l].hi
 * Packed layouts (kc2 = ceil(kc / 2) pairs per K block, zero padded):
 *   A panel: ap[kp*MR + i]        = pair(x[i][2kp], x[i][2kp+1])          (broadcast per row)
 *   B panel: bp[(p*kc2 + kp)*NR + j] = pair(W[NR p + j][2kp], W[NR p + j][2kp+1])
 * Blocking and threading are those of gemm_impl.h (one K block of MM_KC, items of column chunks
 * x row ranges, A packed once per row super-block). Needs vec_<isa>.h with KN_HAVE_BF16PAIR. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/error.h"
#include "impl.h"
#include "ukr_bf16_impl.h"

#define MB_KC 256                /* reduction depth per packed block (128 pairs) */
#define MB_MC (KN_MR * 24)       /* rows per A group */
#define MB_NC 2048               /* max columns per work item */
#define MB_ROWS (3 * MB_MC)      /* max rows per work item */

/* A panel of up to MR rows of x (row stride ld), columns [0, kc). */
static void mb_pack_a(uint32_t *dst, const float *src, int64_t ld, int64_t nrows, int64_t kc) {
    int64_t kc2 = (kc + 1) / 2;
    for (int64_t kp = 0; kp < kc2; kp++)
        for (int i = 0; i < KN_MR; i++) {
            float lo = 0, hi = 0;
            if (i < nrows) {
                lo = src[i * ld + 2 * kp];
                hi = 2 * kp + 1 < kc ? src[i * ld + 2 * kp + 1] : 0.0f;
            }
            dst[kp * KN_MR + i] = mb_pair(lo, hi);
        }
}

/* B panels of W rows [n0, n0+nc), columns [k0, k0+kc). bf16 weights are copied as pairs (exact);
 * other types are converted to f32 (dequantized, scaled) and rounded. */
static void mb_pack_b(uint32_t *bp, const kn_wsrc *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc) {
    int64_t kc2 = (kc + 1) / 2, np = (nc + KN_NR - 1) / KN_NR;
    float row[MB_KC + 1];
    for (int64_t p = 0; p < np; p++)
        for (int64_t j = 0; j < KN_NR; j++) {
            int64_t r = p * KN_NR + j;
            uint32_t *d = bp + p * kc2 * KN_NR + j;
            if (r >= nc) {
                for (int64_t kp = 0; kp < kc2; kp++) d[kp * KN_NR] = 0;
                continue;
            }
            if (B->direct && B->dt == ZI_BF16 && kc % 2 == 0) {
                const char *src = (const char *)B->data + (size_t)(n0 + r) * B->rs + (size_t)k0 * 2;
                for (int64_t kp = 0; kp < kc2; kp++) memcpy(&d[kp * KN_NR], src + 4 * kp, 4);
                continue;
            }
            if (B->direct) {
                zi_convert_to_f32(row, (const char *)B->data + (size_t)(n0 + r) * B->rs + (size_t)k0 * B->es, B->dt,
                                  (size_t)kc);
            } else {
                kn_wsrc_to_f32(B, n0 + r, k0, kc, row);
            }
            row[kc] = 0.0f;
            for (int64_t kp = 0; kp < kc2; kp++) d[kp * KN_NR] = mb_pair(row[2 * kp], row[2 * kp + 1]);
        }
}

typedef struct {
    uint32_t *ap;
    int64_t m0, ms, ms_pad;
} mb_apack;

static const uint32_t *mb_apanel(const mb_apack *A, int64_t kb, int64_t row) {
    return A->ap + kb * (MB_KC / 2) * A->ms_pad + (row / KN_MR) * (MB_KC / 2) * KN_MR;
}

static void mb_item(float *y, int64_t ldy, const mb_apack *A, const kn_wsrc *B, int64_t K, const float *bias, int acc,
                    int64_t n0, int64_t nc, int64_t r0, int64_t r1, uint32_t *bp) {
    for (int64_t kb = 0; kb * MB_KC < K; kb++) {
        int64_t k0 = kb * MB_KC, kc = K - k0 < MB_KC ? K - k0 : MB_KC, kc2 = (kc + 1) / 2;
        int mode = k0 > 0 ? 1 : acc ? 2 : 0;
        mb_pack_b(bp, B, n0, nc, k0, kc); // W[n0.., k0..] -> [nc/NR][kc2][NR] pairs
        for (int64_t mc0 = r0; mc0 < r1; mc0 += MB_MC) {
            int64_t mc1 = r1 - mc0 < MB_MC ? r1 : mc0 + MB_MC;
            for (int64_t j = 0; j < nc; j += KN_NR) {
                const uint32_t *bpan = bp + (j / KN_NR) * kc2 * KN_NR;
                const float *bb = bias ? bias + n0 + j : NULL;
                for (int64_t i = mc0; i < mc1; i += KN_MR) {
                    int mr = (int)(mc1 - i < KN_MR ? mc1 - i : KN_MR);
                    // [MR, kc] x [kc, NR] -> y[m0+i.., n0+j..]
                    mb_ukr(kc2, mb_apanel(A, kb, i), 1, KN_MR, bpan, y + (A->m0 + i) * ldy + n0 + j, ldy, mr, nc - j, mode, bb);
                }
            }
        }
    }
}

/* y[M, N] (+)= bf16(x) . bf16(W)^T (+ bias) for M > 4 (the caller takes small M elsewhere). */
int KN_FN(kn_gemm_bf16)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                        const kn_wsrc *B, const float *bias, int acc, int T) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if ((double)M * (double)N * (double)K < 65536.0) T = 1;
    int64_t npan = (N + KN_NR - 1) / KN_NR;
    int64_t cpan = kn_split_chunk_panels(npan, T, MB_NC / KN_NR);
    int64_t nchunk = (npan + cpan - 1) / cpan;
    int64_t msb = kn_split_superblock_rows(K, MB_KC, 2, MB_MC);
    int failed = 0;
    for (int64_t ms0 = 0; ms0 < M && !failed; ms0 += msb) {
        mb_apack A = {NULL, ms0, M - ms0 < msb ? M - ms0 : msb, 0};
        A.ms_pad = (A.ms + KN_MR - 1) / KN_MR * KN_MR;
        int64_t nmp = A.ms_pad / KN_MR, nkb = (K + MB_KC - 1) / MB_KC;
        int64_t nrr = kn_split_row_ranges(nchunk, T, A.ms, MB_ROWS, nmp);
        A.ap = kn_scratch_get(sizeof(uint32_t) * (size_t)A.ms_pad * (size_t)(nkb * (MB_KC / 2)));
        if (!A.ap) {
            failed = 1;
            break;
        }
#pragma omp parallel num_threads(T) if (T > 1)
        {
#pragma omp for schedule(static) collapse(2)
            for (int64_t kb = 0; kb < nkb; kb++)
                for (int64_t p = 0; p < nmp; p++) {
                    int64_t k0 = kb * MB_KC, kc = K - k0 < MB_KC ? K - k0 : MB_KC, i0 = p * KN_MR;
                    mb_pack_a((uint32_t *)mb_apanel(&A, kb, i0), x + (ms0 + i0) * ldx + k0, ldx,
                              A.ms - i0 < KN_MR ? A.ms - i0 : KN_MR, kc);
                }
            uint32_t *bp = kn_scratch_get(sizeof(uint32_t) * (MB_KC / 2) * (size_t)(cpan * KN_NR));
            if (!bp) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t c = 0; c < nchunk; c++)
                for (int64_t r = 0; r < nrr; r++) {
                    int64_t n0 = c * cpan * KN_NR, nc = N - n0 < cpan * KN_NR ? N - n0 : cpan * KN_NR;
                    int64_t r0 = nmp * r / nrr * KN_MR, r1 = nmp * (r + 1) / nrr * KN_MR;
                    if (r1 > A.ms) r1 = A.ms;
                    if (r0 >= r1 || !bp) continue;
                    mb_item(y, ldy, &A, B, K, bias, acc, n0, nc, r0, r1, bp);
                }
            kn_scratch_put(bp);
        }
        kn_scratch_put(A.ap);
    }
    if (failed) return zi_err("out of memory for bf16 GEMM scratch (M=%lld, N=%lld, K=%lld)", (long long)M,
                              (long long)N, (long long)K);
    return 0;
}
