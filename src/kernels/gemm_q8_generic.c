/* gemm_q8_generic.c - the int8-activation GEMM (gemm_q8_impl.h) on an exact C emulation of
 * vpdpbusd (vecq_emulated.h): the portable int8 path and the test instance of the VNNI kernel. */
#include "vecq_emulated.h"
#include "gemm_q8_impl.h"
