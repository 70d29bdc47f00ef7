/* vec_avx512bf16.h - the AVX-512 vocabulary (vec_avx512.h) plus bf16 pairs for vdpbf16ps
 * (gemm_bf16_impl.h). Included only by *_avx512bf16.c, compiled with -mavx512bf16 in addition. */
#ifndef ZI_VEC_AVX512BF16_H
#define ZI_VEC_AVX512BF16_H

#include "vec_avx512.h"

#undef KN_FN
#define KN_FN(name) name##_avx512bf16

#define KN_HAVE_BF16PAIR 1
typedef __m512i vp; /* 16 lanes of (bf16 even k, bf16 odd k) */
KN_INLINE vp vp_load(const uint32_t *p) { return _mm512_loadu_si512((const void *)p); }
KN_INLINE vp vp_bcast(uint32_t x) { return _mm512_set1_epi32((int)x); }
/* acc[l] += a[l].lo * b[l].lo + a[l].hi * b[l].hi  (32 products, 64 FLOP) */
KN_INLINE vf v_dpbf16(vf acc, vp a, vp b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

#endif
