/* unit_main.c - zimage-unit: unit tests (bad input files, kernels). */
#include <stdio.h>
#include "unit.h"

int unit_failures = 0, unit_passes = 0;

int main(int argc, char **argv) {
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    unit_safetensors(fixtures);
    unit_kernels();
    unit_q8();
    unit_png();
    unit_vae(fixtures);
    unit_tokenizer(fixtures);
    unit_comfy(fixtures);
    unit_gguf(fixtures);
    unit_fuzz(fixtures);
    unit_abi(fixtures);
    unit_json();
    unit_imgcond(fixtures);
    unit_lora(fixtures);
    unit_oom(fixtures);
    printf("unit: %d passed, %d failed\n", unit_passes, unit_failures);
    return unit_failures ? 1 : 0;
}
