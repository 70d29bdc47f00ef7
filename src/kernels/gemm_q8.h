/* gemm_q8.h - private interface of the int8-activation GEMM (the int8 precision mode): the
 * ISA-independent scalar pieces (gemm_q8.c) and the per-ISA instances of gemm_q8_impl.h
 * (gemm_q8_generic.c, gemm_q8_avx2.c, gemm_q8_avx2u.c, gemm_q8_avx2s.c, gemm_q8_avx512vnni.c) and
 * of gemm_q8_amx_impl.h (AMX-INT8 tiles: gemm_q8_amx.c, gemm_q8_amx_emulated.c). Include only
 * from src/kernels/.
 *
 * y[M, N] = x[M, K] . W[N, K]^T with W block-quantized: x is quantized per block of 32 to int8
 * (Q8_0 style: d = max|x| / 127, q = round(x / d)), W is unpacked per packed panel to int8 with a
 * f32 scale and offset per weight block of 32, or of 16 for the types with 16-element sub-scales
 * (Q6_K, Q3_K, Q2_K): w = dw * q - mw, and each weight block's dot product is exact int32.
 * Float sequence per output element (the same on every ISA; docs/PRECISION.md):
 *   per 32-block b:  acc = fma(dx_b * dw_b, (float)isum_b, acc);  acc = fma(-mw_b, sx_b, acc)
 *   (sx_b = dx_b * (float)sum_k qx; the second step only for types with an offset)
 *   16-element types, per 32-block b, half h = 0 then 1 (isum_h, sx_h = dx_b * (float)sum_k qx
 *   over the 16 k of half h):  acc = fma(dx_b * dw_h, (float)isum_h, acc);  acc = fma(-mw_h, sx_h, acc)
 *   per 256-deep K block: y = acc + bias (first block), y = y + acc (later blocks). */
#ifndef ZI_GEMM_Q8_H
#define ZI_GEMM_Q8_H

#include <stdint.h>

#include "impl.h"

#define KQ_BLK 32 /* elements per activation / weight block */

/* 0: dt has no int8 panel form (today's dequantize path runs it); 1: w = d * q, q signed (Q8_0);
 * 2: w = d * q - m with q in [0, 31] (Q4_0, Q5_0 as d q - 8 d / d q - 16 d; Q4_1, Q5_1, Q4_K, Q5_K);
 * per 16 elements: 3: w = d * q, q signed (Q6_K: d = d_K sc, q in [-32, 31]; Q3_K: q in [-4, 3]);
 * 4: w = d * q - m, q in [0, 3] (Q2_K: d = d_K (sc & 15), m = dmin_K (sc >> 4)). */
int kn_q8_kind(zi_dtype dt);
#define KN_Q8_HALVES(kind) ((kind) >= 3 ? 2 : 1)         /* weight blocks per 32-block */
#define KN_Q8_OFFSET(kind) ((kind) == 2 || (kind) == 4) /* w has an offset; q is u8 <= 31 */
/* Unpack n weights (n a multiple of 32; src at a block start of dt, n whole blocks of dt) into
 * q[n] (int8), d[n / B] and m[n / B] (B = 32 / KN_Q8_HALVES: the weight block) with weight
 * k = d[k / B] * q[k] - m[k / B] exactly as zi_dequantize computes it (its parameters; it rounds
 * d q - m once to f32 where that is inexact). */
void kn_q8_unpack(zi_dtype dt, const void *src, int64_t n, int8_t *q, float *d, float *m);
/* Quantize 32 activations (ggml's quantize_row_q8_0_ref): d = max|x| / 127, q = round(x / d);
 * *sx = d * (float)sum(q). Non-finite input: d = NaN, q = 0 (the outputs become NaN). */
void kn_q8_quant_block(const float *x, int8_t *q, float *d, float *sx);
/* Write an f32 accumulator tile acc[mr][nr] (row stride nr) to y rows < mr, columns < n (<= nr):
 * mode 0: y = acc (+ bias), 1: y += acc, 2: y += acc (+ bias) (the per-256 K-block step of the
 * float sequence above; every instance ends with it). */
static inline void kn_q8_store(float *y, int64_t ldy, const float *acc, int nr, int mr, int64_t n, int mode,
                               const float *bias) {
    if (n > nr) n = nr;
    for (int i = 0; i < mr; i++)
        for (int64_t j = 0; j < n; j++) {
            float v = acc[i * nr + j];
            if (mode != 1 && bias) v = v + bias[j];
            y[i * ldy + j] = mode == 0 ? v : y[i * ldy + j] + v;
        }
}
/* The offset sums of the two 16-halves of a quantized block: sx[h] = d * (float)sum(q[16h ..]). */
void kn_q8_half_sums(const int8_t *q, float d, float *sx);

#define KN_DECLARE_Q8(isa)                                                                                  \
    int kn_gemm_q8_##isa(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K, \
                         const kn_wsrc *B, const float *bias, int acc, int T);
KN_DECLARE_Q8(generic) /* the VNNI template on an emulated vpdpbusd: the portable path */
KN_DECLARE_Q8(amxemu)  /* the AMX-INT8 template (gemm_q8_amx_impl.h) on emulated tiles: for tests only */
#if defined(__x86_64__)
KN_DECLARE_Q8(avx2)
KN_DECLARE_Q8(avx2u) /* unsigned (offset) weight types only: vpmaddubsw */
KN_DECLARE_Q8(avx2s) /* Q6_K, Q3_K only: vpmaddubsw on biased activations */
KN_DECLARE_Q8(avx512vnni)
KN_DECLARE_Q8(amx) /* TDPBSSD tiles: only where kn_cpu_has_amx_int8() */
#endif

/* The instance for weights of type dt on the calling thread's path (amx on the amx path where
 * the CPU has AMX-INT8, for kinds 1 and 2; avx512vnni on avx512/avx512bf16/amx CPUs with
 * AVX512-VNNI; on AVX2 avx2u for offset (u8) types, avx2s for kind 3, else avx2; else generic)
 * and its description (NULL ok). */
typedef int (*kn_gemm_q8_fn)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                             const kn_wsrc *B, const float *bias, int acc, int T);
kn_gemm_q8_fn kn_gemm_q8_get(zi_dtype dt, const char **name);

#endif
