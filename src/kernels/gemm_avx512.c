/* gemm_avx512.c - the GEMM and the conv implicit GEMM (gemm_impl.h) instantiated for avx512 (vec_avx512.h). */
#if defined(__x86_64__)
#include "vec_avx512.h"
#include "gemm_impl.h"
#endif
