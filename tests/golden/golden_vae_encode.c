/* golden_vae_encode.c - golden cases of kind "vae_encode". */
#include "golden.h"

int golden_run_vae_encode(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
