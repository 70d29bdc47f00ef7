/* gemm_generic.c - the GEMM, the conv implicit GEMM (gemm_impl.h) and the bf16-pair GEMM instantiated for generic (vec_generic.h). */
#include "vec_generic.h"
#include "gemm_impl.h"
#include "gemm_bf16_impl.h" /* bf16 mode on an exact emulation of vdpbf16ps (tests the template) */
