/* golden_end_to_end.c - golden cases of kind "end_to_end". */
#include "golden.h"

int golden_run_end_to_end(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
