/* golden_gguf_dit.c - DiT forward on a GGUF checkpoint (manifest kind "dit_forward" with
 * models.gguf; golden_run_dit_forward hands those here). The tiny DiT in ComfyUI names, quantized
 * by ggml, with or without the "model.diffusion_model." prefix, against the official module run
 * in float32 on ggml's dequantized weights: our loader must read the GGUF as is (weights stay
 * quantized in memory) and the output must match `gguf/out` at the DiT tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "golden.h"

/* The file holds the tensor types the manifest counts (params.gguf_tensor_types). */
static void gguf_dit_check_types(golden_case *c, const zi_dit *m) {
    json_t *want = golden_param(c, "gguf_tensor_types");
    int counts[ZI_DTYPE_COUNT] = {0}, total = 0, ok = json_is_object(want);
    for (int f = 0; f < m->store.n_files; f++)
        for (int t = 0; t < m->store.files[f].n_tensors; t++) counts[m->store.files[f].tensors[t].dtype]++, total++;
    const char *k;
    json_t *v;
    int listed = 0;
    json_object_foreach(want, k, v) {
        int found = 0;
        for (int t = 0; t < ZI_DTYPE_COUNT; t++)
            if (!strcmp(zi_dtype_name((zi_dtype)t), k)) {
                found = 1;
                ok &= counts[t] == json_integer_value(v);
            }
        ok &= found;
        listed += (int)json_integer_value(v);
    }
    ok &= listed == total;
    c->n_checked++;
    printf("  %s %-28s %-34s %d tensors\n", ok ? "ok  " : "FAIL", c->name, "gguf_tensor_types", total);
    if (!ok) c->n_failed++;
}

int golden_run_gguf_dit(golden_case *c) {
    double atol = 2e-4, rtol = 2e-4;
    golden_tol(c, &atol, &rtol);
    char path[4096];
    if (golden_model_path(c, "gguf", path, sizeof path)) return GOLDEN_FAIL;
    const zi_tensor *xt = golden_tensor(c, "x");
    if (!xt || xt->ndim != 5) return GOLDEN_FAIL;
    int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[3], W = (int)xt->shape[4];
    zi_dit *m;
    if (zi_dit_load(&m, path)) return GOLDEN_FAIL;
    int quantized = 0;
    for (int t = 0; t < m->store.files[0].n_tensors; t++) quantized += zi_dtype_is_block(m->store.files[0].tensors[t].dtype);
    gguf_dit_check_types(c, m);
    float *x = golden_f32(c, "x", NULL), *t = golden_f32(c, "t", NULL);
    float *out = malloc(sizeof(float) * (size_t)xt->numel);
    int rc = GOLDEN_PASS;
    for (int b = 0; b < B && rc == GOLDEN_PASS; b++) {
        char key[64];
        snprintf(key, sizeof key, "cap_feats.%d", b);
        const zi_tensor *ct = golden_tensor(c, key);
        float *cap = ct ? zi_tensor_to_f32(ct) : NULL;
        if (!cap || zi_dit_forward(m, x + (size_t)b * C * H * W, H, W, t[b], cap, (int)ct->shape[0],
                                   out + (size_t)b * C * H * W, NULL, NULL))
            rc = GOLDEN_FAIL;
        free(cap);
    }
    if (rc == GOLDEN_PASS) golden_check(c, "gguf/out", out, xt->numel, atol, rtol);
    golden_note(c, "%d tensors stay block-quantized in memory (kn_linear dequantizes per K panel)", quantized);
    free(x);
    free(t);
    free(out);
    zi_dit_free(m);
    return rc;
}
