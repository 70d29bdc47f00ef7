/* gemm_amx_emulated.c - gemm_amx_impl.h on emulated tiles (tile_emulated.h): a test instance of
 * the AMX kernel that runs on any CPU (unit_kernels.c compares it with the reference). */
#include "tile_emulated.h"
#include "gemm_amx_impl.h"
