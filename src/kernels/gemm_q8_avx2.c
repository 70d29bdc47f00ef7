/* gemm_q8_avx2.c - the int8-activation GEMM (gemm_q8_impl.h) on AVX2 vpmaddwd (vecq_avx2.h). */
#if defined(__x86_64__)
#include "vecq_avx2.h"
#include "gemm_q8_impl.h"
#endif
