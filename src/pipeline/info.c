/* info.c - zimage_system_info: the CPU features found and the kernel path each op runs on
 * (`zimage info`, `zimage --version`, `-v`). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../common/error.h"
#include "../kernels/kernels.h"
#include "zimage.h"

static char info_buf[2048];
static pthread_once_t info_once = PTHREAD_ONCE_INIT;

static void info_build(void) {
    kn_cpu_describe(info_buf, sizeof info_buf);
    size_t o = strlen(info_buf);
    kn_isa isa;
    int bad = kn_isa_default(&isa);
    kn_isa saved = kn_get_isa();
    kn_set_isa(isa);
    snprintf(info_buf + o, sizeof info_buf - o,
             "path: %s%s -> --precision f32: GEMM, attention and conv on the %s fp32 kernels; --precision auto = %s\n"
             "--precision bf16: %s%s\n"
             "--precision int8: block-quantized (GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K) matmuls with M > 4 on\n"
             "  the int8 GEMM, %s; the rest as bf16\n",
             kn_isa_name(isa), bad ? " (ZIMAGE_ISA refused, see above)" : "", kn_kernel_name(),
             zimage_precision_auto() == ZIMAGE_PRECISION_BF16 ? "bf16" : "f32", kn_bf16_describe(),
             isa == KN_ISA_AMX ? "" : "; VAE convs in bf16 mode: row GEMMs on the same bf16 GEMM", kn_int8_describe());
    kn_set_isa(saved);
    if (bad) {
        o = strlen(info_buf);
        snprintf(info_buf + o, sizeof info_buf - o, "%s\n", zi_last_error());
    }
}

const char *zimage_system_info(void) {
    pthread_once(&info_once, info_build);
    return info_buf;
}
