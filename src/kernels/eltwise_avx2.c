/* eltwise_avx2.c - SiLU/SwiGLU, conv input transform, sum of squares (eltwise_impl.h) instantiated for avx2 (vec_avx2.h). */
#if defined(__x86_64__)
#include "vec_avx2.h"
#include "eltwise_impl.h"
#endif
