/* golden_rope.c - golden cases of kind "rope". */
#include "golden.h"

int golden_run_rope(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
