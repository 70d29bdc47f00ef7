/* golden_qwen3.c - golden cases of kind "qwen3". */
#include "golden.h"

int golden_run_qwen3(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
