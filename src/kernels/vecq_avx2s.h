/* vecq_avx2s.h - the integer vocabulary of gemm_q8_impl.h on AVX2 for small signed weights
 * (|q| <= 32: Q6_K, Q3_K, the signed 16-element types of gemm_q8.h): groups of four bytes,
 * activations as u8 = q + 128 (the template subtracts 128 * sum(w) per weight block, as for
 * vpdpbusd), vpmaddubsw (u8 activation x s8 weight, pairs summed to int16: <= 2 * 255 * 32, no
 * saturation) over two groups summed in int16 (<= 4 * 255 * 32 = 32640 < 2^15), then one vpmaddwd
 * by ones widens to int32. Per 128 products 6 multiplier instructions instead of the 8 vpmaddwd
 * of vecq_avx2.h. Tile 4 x 16 as vecq_avx2u.h. Included only by gemm_q8_avx2s.c (-mavx2 -mfma). */
#ifndef ZI_VECQ_AVX2S_H
#define ZI_VECQ_AVX2S_H

#include <immintrin.h>
#include <stdint.h>

#define KQ_VW 8
#define KQ_NV 2
#define KQ_MR 4
#define KQ_G 4
#define KQ_ABIAS 128
#define KQ_U8W 1
#define KQ_SUMG 2                       /* groups per int16 partial sum */
#define KQ_ACCEPTS(kind) ((kind) == 3) /* |q| <= 32 */
#define KN_FN(name) name##_avx2s
#define KQ_INLINE static inline __attribute__((always_inline))

typedef __m256i qi;
typedef __m256 qf;

KQ_INLINE qi qi_zero(void) { return _mm256_setzero_si256(); }
KQ_INLINE qi qi_bcast(uint32_t a) { return _mm256_set1_epi32((int)a); }
KQ_INLINE qi qi_loadw(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
KQ_INLINE qi qi_sub(qi a, qi b) { return _mm256_sub_epi32(a, b); }
/* t (int16) += pairwise sums of u8 activations a x s8 weights b */
KQ_INLINE qi qi_dot16(qi t, qi a, qi b) { return _mm256_add_epi16(t, _mm256_maddubs_epi16(a, b)); }
/* acc (int32) += sums of adjacent int16 pairs of t */
KQ_INLINE qi qi_widen(qi acc, qi t) { return _mm256_add_epi32(acc, _mm256_madd_epi16(t, _mm256_set1_epi16(1))); }
KQ_INLINE qf qf_load(const float *p) { return _mm256_loadu_ps(p); }
KQ_INLINE void qf_store(float *p, qf v) { _mm256_storeu_ps(p, v); }
KQ_INLINE qf qf_set1(float x) { return _mm256_set1_ps(x); }
KQ_INLINE qf qf_mul(qf a, qf b) { return _mm256_mul_ps(a, b); }
KQ_INLINE qf qf_fma(qf a, qf b, qf c) { return _mm256_fmadd_ps(a, b, c); }
KQ_INLINE qf qf_fnma(qf a, qf b, qf c) { return _mm256_fnmadd_ps(a, b, c); }
KQ_INLINE qf qf_cvt(qi a) { return _mm256_cvtepi32_ps(a); }

#endif
