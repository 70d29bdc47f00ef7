/* golden_kinds.c - the registry of golden case kinds: manifest "kind" -> runner.
 * To add a kind: write tests/golden/golden_<kind>.c with golden_run_<kind>(),
 * declare it in golden.h and add one row here. A kind not listed FAILs. */
#include <stddef.h>

#include "golden.h"

const golden_kind golden_kinds[] = {
    {"dit_forward", golden_run_dit_forward},
    {"rope", golden_run_rope},
    {"qwen3", golden_run_qwen3},
    {"scheduler", golden_run_scheduler},
    {"torch_randn", golden_run_torch_randn},
    {"vae_decode", golden_run_vae_decode},
    {"vae_encode", golden_run_vae_encode},
    {"end_to_end", golden_run_end_to_end},
    {"img2img", golden_run_img2img},
    {"inpaint", golden_run_inpaint},
    {"gguf_dequant", golden_run_gguf_dequant},
    {NULL, NULL},
};
