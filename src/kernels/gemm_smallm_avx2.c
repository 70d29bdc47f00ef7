/* gemm_smallm_avx2.c - the small-M GEMM (gemm_smallm_impl.h) instantiated for avx2 (vec_avx2.h). */
#if defined(__x86_64__)
#include "vec_avx2.h"
#include "gemm_smallm_impl.h"
#endif
