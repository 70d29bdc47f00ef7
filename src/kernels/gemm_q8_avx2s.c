/* gemm_q8_avx2s.c - the int8-activation GEMM (gemm_q8_impl.h) on AVX2 vpmaddubsw for the small
 * signed weight types Q6_K and Q3_K (vecq_avx2s.h: biased u8 activations x s8 weights). */
#if defined(__x86_64__)
#include "vecq_avx2s.h"
#include "gemm_q8_impl.h"
#endif
