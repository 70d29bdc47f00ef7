/* gemm_generic.c - the GEMM and the conv implicit GEMM (gemm_impl.h) instantiated for generic (vec_generic.h). */
#include "vec_generic.h"
#include "gemm_impl.h"
