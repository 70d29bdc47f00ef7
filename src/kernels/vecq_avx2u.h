/* vecq_avx2u.h - the integer vocabulary of gemm_q8_impl.h on AVX2 for weights stored as u8 <= 31
 * (the offset types of gemm_q8.h: Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q2_K): groups of four bytes,
 * vpmaddubsw (u8 weight x s8 activation, pairs summed to int16: exact, <= 2 * 31 * 127) over four
 * groups summed in int16 (<= 31496 < 2^15), then one vpmaddwd by ones widens to int32. Per 128
 * products 5 multiplier instructions instead of the 8 vpmaddwd of vecq_avx2.h (Zen 3 issues one
 * per cycle). Tile 4 x 16: 8 int32 accumulators + 4 weight vectors + sum + broadcast + ones.
 * Included only by gemm_q8_avx2u.c (-mavx2 -mfma). */
#ifndef ZI_VECQ_AVX2U_H
#define ZI_VECQ_AVX2U_H

#include "vecq_avx2_common.h"

#define KQ_MR 4
#define KQ_G 4
#define KQ_ABIAS 0
#define KQ_U8W 1
#define KQ_ACCEPTS(kind) KN_Q8_OFFSET(kind) /* u8 weights <= 31 */
#define KN_FN(name) name##_avx2u

/* t (int16) += pairwise sums of u8 weights b x s8 activations a */
KQ_INLINE qi qi_dot16(qi t, qi a, qi b) { return _mm256_add_epi16(t, _mm256_maddubs_epi16(b, a)); }
/* acc (int32) += sums of adjacent int16 pairs of t */
KQ_INLINE qi qi_widen(qi acc, qi t) { return _mm256_add_epi32(acc, _mm256_madd_epi16(t, _mm256_set1_epi16(1))); }

#endif
