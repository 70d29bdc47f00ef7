/* golden_dit_forward.c - golden cases of kind "dit_forward". */
#include "golden.h"

int golden_run_dit_forward(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
