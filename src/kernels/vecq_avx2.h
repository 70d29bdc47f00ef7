/* vecq_avx2.h - the integer vocabulary of gemm_q8_impl.h on AVX2: 8 int32 lanes, groups of two
 * int16 (sign-extended int8) multiplied and pair-summed by vpmaddwd (exact: |q| <= 128, no
 * saturation, so int8 weights of -128 are fine). Tile 6 x 16: 12 int32 accumulators + 2 weight
 * vectors + 1 broadcast = 15 of 16 ymm. Included only by gemm_q8_avx2.c (-mavx2 -mfma). */
#ifndef ZI_VECQ_AVX2_H
#define ZI_VECQ_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#define KQ_VW 8
#define KQ_NV 2
#define KQ_MR 6
#define KQ_G 2
#define KQ_ABIAS 0
#define KN_FN(name) name##_avx2
#define KQ_INLINE static inline __attribute__((always_inline))

typedef __m256i qi;
typedef __m256 qf;

KQ_INLINE qi qi_zero(void) { return _mm256_setzero_si256(); }
KQ_INLINE qi qi_bcast(uint32_t a) { return _mm256_set1_epi32((int)a); }
KQ_INLINE qi qi_loadw(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
KQ_INLINE qi qi_sub(qi a, qi b) { return _mm256_sub_epi32(a, b); }
KQ_INLINE qi qi_dot(qi acc, qi a, qi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
KQ_INLINE qf qf_load(const float *p) { return _mm256_loadu_ps(p); }
KQ_INLINE void qf_store(float *p, qf v) { _mm256_storeu_ps(p, v); }
KQ_INLINE qf qf_set1(float x) { return _mm256_set1_ps(x); }
KQ_INLINE qf qf_mul(qf a, qf b) { return _mm256_mul_ps(a, b); }
KQ_INLINE qf qf_fma(qf a, qf b, qf c) { return _mm256_fmadd_ps(a, b, c); }
KQ_INLINE qf qf_fnma(qf a, qf b, qf c) { return _mm256_fnmadd_ps(a, b, c); }
KQ_INLINE qf qf_cvt(qi a) { return _mm256_cvtepi32_ps(a); }

#endif
