/* golden_scheduler.c - golden cases of kind "scheduler". */
#include "golden.h"

int golden_run_scheduler(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
