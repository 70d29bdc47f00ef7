/* gemm_q8_amx.c - the int8-activation GEMM (gemm_q8_amx_impl.h) on AMX-INT8 tiles (TDPBSSD,
 * tile_amx.h) with the per-32-block scaling on AVX-512. Runs where the CPU and OS offer AMX-INT8
 * (kn_cpu_has_amx_int8: Sapphire Rapids and later) on the amx path; the same template is tested
 * on every CPU through gemm_q8_amx_emulated.c. Its speed is unmeasured (PERF.md entry 25). */
#if defined(__x86_64__)
#define MQ_VEC512 1
#include "tile_amx.h"
#include "gemm_q8_amx_impl.h"
#endif
