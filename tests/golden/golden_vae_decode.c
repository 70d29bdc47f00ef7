/* golden_vae_decode.c - golden cases of kind "vae_decode". */
#include "golden.h"

int golden_run_vae_decode(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
