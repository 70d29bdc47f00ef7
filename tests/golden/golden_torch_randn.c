/* golden_torch_randn.c - golden cases of kind "torch_randn". */
#include "golden.h"

int golden_run_torch_randn(golden_case *c) {
    (void)c;
    return GOLDEN_SKIP;
}
