/* gemm_avx2.c - the GEMM and the conv implicit GEMM (gemm_impl.h) instantiated for avx2 (vec_avx2.h). */
#if defined(__x86_64__)
#include "vec_avx2.h"
#include "gemm_impl.h"
#endif
