/* gemm_avx512bf16.c - the bf16-mode GEMM on vdpbf16ps (gemm_bf16_impl.h with vec_avx512bf16.h).
 * Runs where the CPU has AVX512-BF16 (Zen 4/5, Cooper Lake, Sapphire Rapids and later); the same
 * template is tested everywhere through the generic path's exact emulation of the instruction. */
#if defined(__x86_64__)
#include "vec_avx512bf16.h"
#include "gemm_bf16_impl.h"
#endif
