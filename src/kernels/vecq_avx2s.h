/* vecq_avx2s.h - the integer vocabulary of gemm_q8_impl.h on AVX2 for small signed weights
 * (|q| <= 32: Q6_K, Q3_K, the signed 16-element types of gemm_q8.h): groups of four bytes,
 * activations as u8 = q + 128 (the template subtracts 128 * sum(w) per weight block, as for
 * vpdpbusd), vpmaddubsw (u8 activation x s8 weight, pairs summed to int16: <= 2 * 255 * 32, no
 * saturation) over two groups summed in int16 (<= 4 * 255 * 32 = 32640 < 2^15), then one vpmaddwd
 * by ones widens to int32. Per 128 products 6 multiplier instructions instead of the 8 vpmaddwd
 * of vecq_avx2.h. Tile 4 x 16 as vecq_avx2u.h. Included only by gemm_q8_avx2s.c (-mavx2 -mfma). */
#ifndef ZI_VECQ_AVX2S_H
#define ZI_VECQ_AVX2S_H

#include "vecq_avx2_common.h"

#define KQ_MR 4
#define KQ_G 4
#define KQ_ABIAS 128
#define KQ_U8W 1
#define KQ_SUMG 2                       /* groups per int16 partial sum */
#define KQ_ACCEPTS(kind) ((kind) == 3) /* |q| <= 32 */
#define KN_FN(name) name##_avx2s

/* t (int16) += pairwise sums of u8 activations a x s8 weights b */
KQ_INLINE qi qi_dot16(qi t, qi a, qi b) { return _mm256_add_epi16(t, _mm256_maddubs_epi16(a, b)); }
/* acc (int32) += sums of adjacent int16 pairs of t */
KQ_INLINE qi qi_widen(qi acc, qi t) { return _mm256_add_epi32(acc, _mm256_madd_epi16(t, _mm256_set1_epi16(1))); }

#endif
