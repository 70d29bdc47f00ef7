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
#include "gemm_driver_impl.h"
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

/* Packed x (kn_apack): per K block kb, MR-row pair panels ap[kb*(KC/2)*ms_pad + p*(KC/2)*MR + kp*MR + i]. */
static const uint32_t *mb_apanel(const kn_apack *A, int64_t kb, int64_t row) {
    return (const uint32_t *)A->ap + kb * (MB_KC / 2) * A->ms_pad + (row / KN_MR) * (MB_KC / 2) * KN_MR;
}

static void mb_pack_a_panel(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * MB_KC, kc = c->K - k0 < MB_KC ? c->K - k0 : MB_KC;
    mb_pack_a((uint32_t *)mb_apanel(A, kb, i0), c->x + (A->m0 + i0) * c->ldx + k0, c->ldx,
              A->ms - i0 < KN_MR ? A->ms - i0 : KN_MR, kc);
}

static void mb_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmp) {
    (void)tmp;
    float *y = c->y;
    uint32_t *bp = bpv;
    const float *bias = c->bias;
    int64_t ldy = c->ldy, K = c->K;
    const kn_wsrc *B = c->B;
    int acc = c->acc;
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
    static const kn_gemm_plan plan = {"bf16", KN_MR, KN_NR, MB_KC, MB_MC, MB_NC, MB_ROWS, 2, 0,
                                      mb_pack_a_panel, mb_item, NULL, NULL};
    kn_gemm_call c = {y, ldy, x, ldx, K, B, bias, acc, 1};
    return kn_gemm_drive(&plan, &c, M, N, T);
}
