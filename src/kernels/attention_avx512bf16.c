/* attention_avx512bf16.c - the bf16-mode flash attention on vdpbf16ps (attention_bf16_impl.h with
 * vec_avx512bf16.h): QK^T and PV on the bf16 dot-product unit, softmax in f32. Chosen where the
 * CPU has AVX512-BF16 without AMX (Zen 4/5, Cooper Lake); tested everywhere through the generic
 * path's exact emulation of the instruction. */
#if defined(__x86_64__)
#include "vec_avx512bf16.h"
#include "attention_bf16_impl.h"
#endif
