/* attention_amx_emulated.c - attention_amx_impl.h on emulated tiles (tile_emulated.h) and portable
 * vectors: a test instance of the AMX attention that runs on any CPU (unit_kernels.c compares it
 * with the reference). */
#include "vec_generic.h"
#undef KN_FN
#include "tile_emulated.h"
#include "attention_amx_impl.h"
