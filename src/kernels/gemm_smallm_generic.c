/* gemm_smallm_generic.c - the small-M GEMM (gemm_smallm_impl.h) instantiated for generic (vec_generic.h). */
#include "vec_generic.h"
#include "gemm_smallm_impl.h"
