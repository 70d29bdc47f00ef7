/* gemm_q8_avx512vnni.c - the int8-activation GEMM (gemm_q8_impl.h) on AVX512-VNNI vpdpbusd
 * (vecq_avx512vnni.h). Runs on CPUs with AVX512-VNNI (Zen 4/5, Cascade Lake and later); its
 * blocking and packing are tested everywhere through gemm_q8_generic.c (the same template on an
 * emulated vpdpbusd). Its speed is unmeasured (PERF.md). */
#if defined(__x86_64__)
#include "vecq_avx512vnni.h"
#include "gemm_q8_impl.h"
#endif
