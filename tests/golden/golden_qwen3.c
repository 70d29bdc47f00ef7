/* golden_qwen3.c - golden cases of kind "qwen3": prompt ids -> Qwen3 -> cap_feats.
 *
 * For each weight variant the manifest lists (f32, bf16): the real-token ids (attention_mask == 1) go
 * through zi_qwen3_encode; {v}/cap_feats is compared, and every {v}/hidden_states.i the
 * case holds is compared through the dump hook (hidden_states.N, the final-normed
 * output, via a zi_qwen3_load_all model). The case also checks rope_cos/rope_sin, bad
 * ids, and - for qwen3_cat - the other checkpoint layouts: a single file with
 * "model." names and no config (ComfyUI style, config inferred from shapes), and a
 * folder with config.json, one unsharded file, unprefixed names and no last layer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/io/store.h"
#include "../../src/text/qwen3.h"
#include "../../src/io/st_writer.h"
#include "golden.h"

typedef struct {
    golden_case *c;
    const char *variant;
    const char *only; /* check only this hidden state (NULL: all present in the case) */
    double atol, rtol;
} qwen3_dump_ctx;

static void qwen3_dump_check(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    qwen3_dump_ctx *d = user;
    if (d->only && strcmp(name, d->only) != 0) return;
    char full[128];
    snprintf(full, sizeof full, "%s/%s", d->variant, name);
    if (golden_find(d->c, full)) golden_check(d->c, full, data, rows * cols, d->atol, d->rtol);
}

/* Real-token ids: input_ids where attention_mask == 1 (right padding). */
static int32_t *qwen3_case_ids(golden_case *c, int *n_out) {
    const zi_tensor *ids = golden_input(c, "input_ids"), *mask = golden_input(c, "attention_mask");
    if (!ids || !mask) return NULL;
    if (ids->dtype != ZI_I32 || mask->dtype != ZI_U8 || ids->numel != mask->numel) {
        zi_err("%s: input_ids must be I32 and attention_mask U8 of the same size", c->name);
        return NULL;
    }
    int32_t *out = malloc(sizeof(int32_t) * (size_t)ids->numel);
    if (!out) return NULL;
    const int32_t *id = ids->data;
    const uint8_t *m = mask->data;
    int n = 0;
    for (int64_t i = 0; i < ids->numel; i++)
        if (m[i]) out[n++] = id[i];
    *n_out = n;
    return out;
}

static void qwen3_check_rope(golden_case *c, const zi_qwen3_config *cfg, int n) {
    if (!zi_st_find(&c->st, "rope_cos")) return;
    int hd = cfg->head_dim, half = hd / 2;
    float *cs = malloc(sizeof(float) * (size_t)n * half * 2 + 1), *full = malloc(sizeof(float) * (size_t)n * hd + 1);
    if (!cs || !full) {
        free(cs);
        free(full);
        golden_fail(c, "rope_cos", "out of memory");
        return;
    }
    float *sn = cs + (size_t)n * half;
    zi_qwen3_rope_table(hd, cfg->rope_theta, n, cs, sn);
    for (int pass = 0; pass < 2; pass++) {
        const float *t = pass ? sn : cs;
        for (int p = 0; p < n; p++)
            for (int j = 0; j < hd; j++) full[p * hd + j] = t[p * half + j % half]; /* [cos, cos] */
        golden_check(c, pass ? "rope_sin" : "rope_cos", full, (int64_t)n * hd, 1e-6, 0); /* README: 1e-6 */
    }
    free(cs);
    free(full);
}

/* Bad input must give an error, not a crash. */
static void qwen3_check_bad_ids(golden_case *c, zi_qwen3 *m) {
    const zi_qwen3_config *cfg = zi_qwen3_get_config(m);
    int32_t bad[3] = {1, cfg->vocab, 2};
    int32_t neg[1] = {-5};
    float out[3 * 64];
    char msg[256] = "";
    int ok = cfg->hidden <= 64 && zi_qwen3_encode(m, bad, 3, out) == -1 &&
             strstr(zi_last_error(), "outside the vocabulary") != NULL;
    snprintf(msg, sizeof msg, "%s", zi_last_error());
    ok = ok && zi_qwen3_encode(m, neg, 1, out) == -1 && zi_qwen3_encode(m, bad, 0, out) == -1;
    c->n_checked++;
    if (!ok) c->n_failed++;
    printf("  %s %-28s %-34s %s\n", ok ? "ok  " : "FAIL", c->name, "bad ids rejected", msg);
    zi_err_clear();
}

/* ---- alternative layouts (qwen3_cat only) ---------------------------------------- */

/* Write all tensors of `s` into one safetensors file; strip_model drops the "model." prefix,
 * skip_layer >= 0 leaves out that layer and norm.weight. */
static int write_merged(const zi_store *s, const char *path, int strip_model, int skip_layer) {
    char skip[32];
    snprintf(skip, sizeof skip, "layers.%d.", skip_layer);
    zi_st_writer w;
    zi_st_writer_init(&w);
    int rc = 0;
    for (int fi = 0; fi < s->n_files && rc == 0; fi++)
        for (int ti = 0; ti < s->files[fi].n_tensors && rc == 0; ti++) {
            const zi_tensor *t = &s->files[fi].tensors[ti];
            const char *name = t->name;
            if (strip_model && strncmp(name, "model.", 6) == 0) name += 6;
            if (skip_layer >= 0 && (strstr(name, skip) || !strcmp(name, "norm.weight"))) continue;
            rc = zi_st_writer_add(&w, name, t->dtype, t->ndim, t->shape, t->data);
        }
    if (rc == 0) rc = zi_st_writer_write(&w, path);
    zi_st_writer_free(&w);
    return rc;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[4096];
    size_t k;
    if (a && b)
        while ((k = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, k, b);
    if (a) fclose(a);
    if (b) fclose(b);
    return a && b ? 0 : zi_err("cannot copy %s to %s", from, to);
}

/* Encode with the model at `path` and compare with the variant's cap_feats. */
static void qwen3_check_layout(golden_case *c, const char *what, const char *path, const int32_t *ids, int n,
                               const char *variant, double atol, double rtol) {
    zi_qwen3 *m = NULL;
    char label[128];
    snprintf(label, sizeof label, "%s/cap_feats", variant);
    if (zi_qwen3_load(&m, path) != 0) {
        printf("  FAIL %-28s %s: %s\n", c->name, what, zi_last_error());
        c->n_checked++;
        c->n_failed++;
        return;
    }
    float *out = malloc(sizeof(float) * (size_t)n * zi_qwen3_hidden(m));
    if (zi_qwen3_encode(m, ids, n, out) == 0) {
        printf("  (%s)\n", what);
        golden_check(c, label, out, (int64_t)n * zi_qwen3_hidden(m), atol, rtol);
    } else {
        printf("  FAIL %-28s %s: %s\n", c->name, what, zi_last_error());
        c->n_checked++;
        c->n_failed++;
    }
    free(out);
    zi_qwen3_free(m);
}

static void qwen3_check_layouts(golden_case *c, const char *model_dir, const int32_t *ids, int n, const char *variant,
                                double atol, double rtol) {
    char dir[] = "/tmp/zi_qwen3_XXXXXX";
    if (!mkdtemp(dir)) {
        golden_fail(c, "layouts", "mkdtemp failed");
        return;
    }
    char single[256], sub[256], subfile[300], cfg_from[4200], cfg_to[300];
    snprintf(single, sizeof single, "%s/qwen_3_tiny.safetensors", dir);
    snprintf(sub, sizeof sub, "%s/text_encoder", dir);
    snprintf(subfile, sizeof subfile, "%s/model.safetensors", sub);
    snprintf(cfg_from, sizeof cfg_from, "%s/config.json", model_dir);
    snprintf(cfg_to, sizeof cfg_to, "%s/config.json", sub);
    zi_store s;
    const zi_qwen3_config *cfg = NULL;
    zi_qwen3 *probe = NULL;
    if (zi_store_open(&s, model_dir) == 0) {
        if (zi_qwen3_load(&probe, model_dir) == 0) cfg = zi_qwen3_get_config(probe);
        if (!cfg)
            golden_fail(c, "layouts", "%s", zi_last_error());
        else if (write_merged(&s, single, 0, -1) == 0)
            qwen3_check_layout(c, "single file, model. names, config inferred", single, ids, n, variant, atol, rtol);
        else
            golden_fail(c, "layouts", "write %s: %s", single, zi_last_error());
        if (cfg && mkdir(sub, 0700) == 0 && write_merged(&s, subfile, 1, cfg->n_layers - 1) == 0 &&
            copy_file(cfg_from, cfg_to) == 0)
            qwen3_check_layout(c, "unsharded folder, bare names, no last layer/norm", sub, ids, n, variant, atol,
                               rtol);
        else if (cfg)
            golden_fail(c, "layouts", "cannot write the unsharded folder %s: %s", sub, zi_last_error());
        zi_qwen3_free(probe);
        zi_store_close(&s);
    } else {
        golden_fail(c, "layouts", "%s", zi_last_error());
    }
    unlink(single);
    unlink(subfile);
    unlink(cfg_to);
    rmdir(sub);
    rmdir(dir);
}

/* ---- the case -------------------------------------------------------------------- */

static int qwen3_run_variant(golden_case *c, const char *variant, int first, const int32_t *ids, int n,
                             double atol, double rtol) {
    char path[4096], name[128];
    if (golden_model_path(c, variant, path, sizeof path) != 0) return -1;
    zi_qwen3 *m = NULL;
    if (zi_qwen3_load(&m, path) != 0) return -1;
    const zi_qwen3_config *cfg = zi_qwen3_get_config(m);
    int64_t H = zi_qwen3_hidden(m);
    float *out = malloc(sizeof(float) * (size_t)n * H + 1), *out_all = malloc(sizeof(float) * (size_t)n * H + 1);
    qwen3_dump_ctx d = {c, variant, NULL, atol, rtol};
    int rc = -1;
    if (!out || !out_all) {
        zi_err("out of memory");
        goto done;
    }
    if (zi_qwen3_encode_dump(m, ids, n, out, qwen3_dump_check, &d) != 0) goto done;
    snprintf(name, sizeof name, "%s/cap_feats", variant);
    golden_check(c, name, out, (int64_t)n * H, atol, rtol);

    /* hidden_states.N (final norm of the last layer) needs the otherwise skipped last layer */
    char last[64];
    snprintf(last, sizeof last, "hidden_states.%d", cfg->n_layers);
    snprintf(name, sizeof name, "%s/%s", variant, last);
    if (zi_st_find(&c->st, name)) {
        zi_qwen3 *ma = NULL;
        if (zi_qwen3_load_all(&ma, path) != 0) goto done;
        qwen3_dump_ctx da = {c, variant, last, atol, rtol};
        int r = zi_qwen3_encode_dump(ma, ids, n, out_all, qwen3_dump_check, &da);
        zi_qwen3_free(ma);
        if (r != 0) goto done;
        c->n_checked++;
        if (memcmp(out, out_all, sizeof(float) * (size_t)n * H) != 0) {
            c->n_failed++;
            printf("  FAIL %-28s load_all changed the encode output\n", c->name);
        }
    }
    if (first) { /* variant-independent checks */
        qwen3_check_rope(c, cfg, n);
        qwen3_check_bad_ids(c, m);
    }
    if (!strcmp(c->name, "qwen3_cat")) qwen3_check_layouts(c, path, ids, n, variant, atol, rtol);
    rc = 0;
done:
    free(out);
    free(out_all);
    zi_qwen3_free(m);
    return rc;
}

int golden_run_qwen3(golden_case *c) {
    double atol = 1e-4, rtol = 1e-4; /* README: qwen3 cap_feats, hidden_states.* */
    golden_tol(c, &atol, &rtol);
    if (c->n_variants == 0) return golden_fail(c, "models", "the manifest lists no weight variant");
    int n = 0;
    int32_t *ids = qwen3_case_ids(c, &n);
    if (!ids) return golden_fail(c, "input_ids", "%s", zi_last_error());
    for (int v = 0; v < c->n_variants; v++)
        if (qwen3_run_variant(c, c->variants[v], v == 0, ids, n, atol, rtol) != 0)
            golden_fail(c, c->variants[v], "%s", zi_last_error());
    free(ids);
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
