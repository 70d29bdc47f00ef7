/* gemm_q8_avx2u.c - the int8-activation GEMM (gemm_q8_impl.h) on AVX2 vpmaddubsw for the offset
 * weight types (vecq_avx2u.h: 4/5-bit and Q2_K); Q8_0, Q6_K, Q3_K run on gemm_q8_avx2.c. */
#if defined(__x86_64__)
#include "vecq_avx2u.h"
#include "gemm_q8_impl.h"
#endif
