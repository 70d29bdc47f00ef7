/* gemm_q8_amx_emulated.c - gemm_q8_amx_impl.h on emulated tiles (tile_emulated.h, TDPBSSD in C)
 * with the scaling in plain C: a test instance of the AMX-INT8 kernel that runs on any CPU
 * (unit_q8.c requires it bit-identical to the generic instance). Never selected for real work. */
#include "tile_emulated.h"
#include "gemm_q8_amx_impl.h"
