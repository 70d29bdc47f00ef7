/* vecq_avx2.h - the integer vocabulary of gemm_q8_impl.h on AVX2: 8 int32 lanes, groups of two
 * int16 (sign-extended int8) multiplied and pair-summed by vpmaddwd (exact: |q| <= 128, no
 * saturation, so int8 weights of -128 are fine). Tile 6 x 16: 12 int32 accumulators + 2 weight
 * vectors + 1 broadcast = 15 of 16 ymm. Included only by gemm_q8_avx2.c (-mavx2 -mfma). */
#ifndef ZI_VECQ_AVX2_H
#define ZI_VECQ_AVX2_H

#include "vecq_avx2_common.h"

#define KQ_MR 6
#define KQ_G 2
#define KQ_ABIAS 0
#define KN_FN(name) name##_avx2

KQ_INLINE qi qi_dot(qi acc, qi a, qi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }

#endif
