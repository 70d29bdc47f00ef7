/* bf16_avx512.h - 16 floats to their bfloat16 bits on AVX-512, exactly as zi_f32_to_bf16 (round
 * to nearest even; a NaN stays a quiet NaN). Used where the AMX templates feed tiles: x and W
 * packing (gemm_amx_impl.h) and the queries (attention_amx_impl.h). Include only from files
 * compiled with AVX-512 (the amx instances); the emulated instances use the scalar function. */
#ifndef ZI_BF16_AVX512_H
#define ZI_BF16_AVX512_H
#if defined(__AVX512F__)
#include <immintrin.h>

/* the rounded bf16 in the low 16 bits of each 32-bit lane */
static inline __m512i kn_bf16x16_bits(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000)); /* (u | 0x400000) >> 16 = (u >> 16) | 0x40 */
    return _mm512_srli_epi32(r, 16);
}

/* 16 floats -> 16 bf16 stored at dst */
static inline void kn_bf16x16_store(uint16_t *dst, __m512 v) {
    _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(kn_bf16x16_bits(v)));
}

#endif
#endif
