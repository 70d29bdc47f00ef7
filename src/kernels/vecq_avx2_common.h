/* vecq_avx2_common.h - the part of gemm_q8_impl.h's integer vocabulary that the three AVX2
 * instances share: 8 int32 / 8 float lanes in ymm registers, loads, broadcasts and the f32
 * epilogue. Each instance header (vecq_avx2.h: vpmaddwd; vecq_avx2u.h: vpmaddubsw on u8 weights;
 * vecq_avx2s.h: vpmaddubsw on u8 activations) includes it and adds its tile shape and dot products. */
#ifndef ZI_VECQ_AVX2_COMMON_H
#define ZI_VECQ_AVX2_COMMON_H

#include <immintrin.h>
#include <stdint.h>

#define KQ_VW 8
#define KQ_NV 2
#define KQ_INLINE static inline __attribute__((always_inline))

typedef __m256i qi;
typedef __m256 qf;

KQ_INLINE qi qi_zero(void) { return _mm256_setzero_si256(); }
KQ_INLINE qi qi_bcast(uint32_t a) { return _mm256_set1_epi32((int)a); }
KQ_INLINE qi qi_loadw(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
KQ_INLINE qi qi_sub(qi a, qi b) { return _mm256_sub_epi32(a, b); }
KQ_INLINE qf qf_load(const float *p) { return _mm256_loadu_ps(p); }
KQ_INLINE void qf_store(float *p, qf v) { _mm256_storeu_ps(p, v); }
KQ_INLINE qf qf_set1(float x) { return _mm256_set1_ps(x); }
KQ_INLINE qf qf_mul(qf a, qf b) { return _mm256_mul_ps(a, b); }
KQ_INLINE qf qf_fma(qf a, qf b, qf c) { return _mm256_fmadd_ps(a, b, c); }
KQ_INLINE qf qf_fnma(qf a, qf b, qf c) { return _mm256_fnmadd_ps(a, b, c); }
KQ_INLINE qf qf_cvt(qi a) { return _mm256_cvtepi32_ps(a); }

#endif
