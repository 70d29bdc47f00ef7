/* attention_amx.c - the bf16-mode flash attention on AMX tiles (attention_amx_impl.h with
 * tile_amx.h; the softmax on AVX-512 vectors). Runs where the CPU and OS offer AMX-BF16
 * (Sapphire Rapids and later); the same template is tested on every CPU through
 * attention_amx_emulated.c. */
#if defined(__x86_64__)
#include "vec_avx512.h"
#undef KN_FN
#include "tile_amx.h"
#include "attention_amx_impl.h"
#endif
