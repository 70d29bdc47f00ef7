/* unit_safetensors.c - crafted bad files. */
#include "unit.h"
void unit_safetensors(const char *fixtures) { (void)fixtures; }
