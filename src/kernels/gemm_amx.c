/* gemm_amx.c - the bf16-mode GEMM on AMX tiles (gemm_amx_impl.h with tile_amx.h). Runs where
 * the CPU and OS offer AMX-BF16 (Sapphire Rapids and later); the same template is tested on
 * every CPU through gemm_amx_emulated.c. */
#if defined(__x86_64__)
#include "tile_amx.h"
#include "gemm_amx_impl.h"
#endif
