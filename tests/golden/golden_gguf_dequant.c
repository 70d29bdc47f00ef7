/* golden_gguf_dequant.c - kind "gguf_dequant": ggml's own dequantization of a GGUF written
 * by ggml's quantizers (stable-diffusion.cpp convert). Every golden tensor must equal our
 * dequantization of the GGUF tensor of the same name bit for bit, every GGUF tensor must
 * have a golden, and our quantizer run on params.source must give the GGUF's block bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/common/quant.h"
#include "golden.h"

/* Our quantizer on the F32 source tensor vs the GGUF's blocks: count differing blocks. The
 * converter that wrote the fixtures passes ggml an importance matrix of ones (weighted search). */
static void dequant_check_quantizer(golden_case *c, const zi_st_file *src, const zi_tensor *q) {
    char label[300];
    snprintf(label, sizeof label, "quantize(%s) blocks", q->name);
    c->n_checked++;
    const zi_tensor *s = zi_st_find(src, q->name);
    if (!s || s->dtype != ZI_F32 || s->numel != q->numel) {
        printf("  FAIL %-28s %-34s source tensor missing or not F32 of the same size\n", c->name, label);
        c->n_failed++;
        return;
    }
    uint8_t *mine = malloc(q->nbytes);
    int64_t per_row = q->shape[q->ndim - 1];
    float *ones = malloc(sizeof(float) * (size_t)per_row);
    for (int64_t i = 0; i < per_row; i++) ones[i] = 1.0f;
    size_t n = zi_quantize_rows(q->dtype, s->data, mine, q->numel / per_row, per_row, ones);
    free(ones);
    size_t bb = zi_dtype_block_bytes(q->dtype);
    int64_t nb = (int64_t)(q->nbytes / bb), bad = 0, first = -1;
    for (int64_t b = 0; n == q->nbytes && b < nb; b++)
        if (memcmp(mine + b * bb, (const uint8_t *)q->data + b * bb, bb)) {
            if (first < 0) first = b;
            bad++;
        }
    int fail = n != q->nbytes || bad > 0;
    printf("  %s %-28s %-34s %lld of %lld blocks differ", fail ? "FAIL" : "ok  ", c->name, label, (long long)bad,
           (long long)nb);
    if (first >= 0) printf(" (first: block %lld)", (long long)first);
    printf("\n");
    if (fail) c->n_failed++;
    free(mine);
}

int golden_run_gguf_dequant(golden_case *c) {
    char path[4096], src_path[4096];
    if (golden_model_path(c, "gguf", path, sizeof path)) return GOLDEN_FAIL;
    json_t *type = golden_param(c, "type"), *source = golden_param(c, "source");
    if (!json_is_string(type) || !json_is_string(source))
        return zi_err("%s: params.type / params.source missing", c->name), GOLDEN_FAIL;
    snprintf(src_path, sizeof src_path, "%s/%s", c->fixtures, json_string_value(source));
    zi_dtype want_type = ZI_F32;
    int known = 0;
    for (int t = 0; t < ZI_DTYPE_COUNT; t++)
        if (!strcmp(zi_dtype_name((zi_dtype)t), json_string_value(type))) want_type = (zi_dtype)t, known = 1;
    if (!known) return zi_err("%s: unknown params.type", c->name), GOLDEN_FAIL;
    zi_st_file g, src;
    if (zi_st_open(&g, path)) return GOLDEN_FAIL;
    if (zi_st_open(&src, src_path)) {
        zi_st_close(&g);
        return GOLDEN_FAIL;
    }
    /* every golden tensor */
    json_t *tensors = json_object_get(c->manifest, "tensors");
    const char *name;
    json_t *v;
    json_object_foreach(tensors, name, v) {
        const zi_tensor *q = zi_st_find(&g, name);
        if (!q || q->dtype != want_type) {
            c->n_checked++;
            c->n_failed++;
            printf("  FAIL %-28s %-34s %s\n", c->name, name, q ? "GGUF tensor has another type" : "not in the GGUF");
            continue;
        }
        float *got = malloc(sizeof(float) * (size_t)q->numel);
        zi_convert_to_f32(got, q->data, q->dtype, (size_t)q->numel);
        golden_check(c, name, got, q->numel, 0, 0);
        free(got);
        dequant_check_quantizer(c, &src, q);
    }
    /* and every GGUF tensor has a golden */
    for (int i = 0; i < g.n_tensors; i++)
        if (!json_object_get(tensors, g.tensors[i].name)) {
            c->n_checked++;
            c->n_failed++;
            printf("  FAIL %-28s %-34s GGUF tensor without a golden\n", c->name, g.tensors[i].name);
        }
    zi_st_close(&src);
    zi_st_close(&g);
    return GOLDEN_PASS;
}
