/* gemm_smallm_avx512.c - the small-M GEMM (gemm_smallm_impl.h) instantiated for avx512 (vec_avx512.h). */
#if defined(__x86_64__)
#include "vec_avx512.h"
#include "gemm_smallm_impl.h"
#endif
