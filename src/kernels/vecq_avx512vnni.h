/* vecq_avx512vnni.h - the integer vocabulary of gemm_q8_impl.h on AVX512-VNNI: 16 int32 lanes,
 * vpdpbusd on quads (activations as u8 = q + 128, weights s8; the template subtracts
 * 128 * sum(w) per block). Same 8 x 32 tile as vecq_emulated.h, which tests this blocking on
 * any CPU. Included only by gemm_q8_avx512vnni.c (-mavx512f -mavx512vnni ...). */
#ifndef ZI_VECQ_AVX512VNNI_H
#define ZI_VECQ_AVX512VNNI_H

#include <immintrin.h>
#include <stdint.h>

#define KQ_VW 16
#define KQ_NV 2
#define KQ_MR 8
#define KQ_G 4
#define KQ_ABIAS 128
#define KN_FN(name) name##_avx512vnni
#define KQ_INLINE static inline __attribute__((always_inline))

typedef __m512i qi;
typedef __m512 qf;

KQ_INLINE qi qi_zero(void) { return _mm512_setzero_si512(); }
KQ_INLINE qi qi_bcast(uint32_t a) { return _mm512_set1_epi32((int)a); }
KQ_INLINE qi qi_loadw(const uint32_t *p) { return _mm512_loadu_si512((const void *)p); }
KQ_INLINE qi qi_sub(qi a, qi b) { return _mm512_sub_epi32(a, b); }
KQ_INLINE qi qi_dot(qi acc, qi a, qi b) { return _mm512_dpbusd_epi32(acc, a, b); }
KQ_INLINE qf qf_load(const float *p) { return _mm512_loadu_ps(p); }
KQ_INLINE void qf_store(float *p, qf v) { _mm512_storeu_ps(p, v); }
KQ_INLINE qf qf_set1(float x) { return _mm512_set1_ps(x); }
KQ_INLINE qf qf_mul(qf a, qf b) { return _mm512_mul_ps(a, b); }
KQ_INLINE qf qf_fma(qf a, qf b, qf c) { return _mm512_fmadd_ps(a, b, c); }
KQ_INLINE qf qf_fnma(qf a, qf b, qf c) { return _mm512_fnmadd_ps(a, b, c); }
KQ_INLINE qf qf_cvt(qi a) { return _mm512_cvtepi32_ps(a); }

#endif
