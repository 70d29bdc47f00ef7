/* eltwise_avx512.c - SiLU/SwiGLU, conv input transform, sum of squares (eltwise_impl.h) instantiated for avx512 (vec_avx512.h). */
#if defined(__x86_64__)
#include "vec_avx512.h"
#include "eltwise_impl.h"
#endif
