/* unit_kernels.c - kernels vs naive references. */
#include "unit.h"
void unit_kernels(void) {}
