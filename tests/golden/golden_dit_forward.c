/* golden_dit_forward.c - DiT forward cases (kind "dit_forward"): output for f32 and
 * bf16 weights, plus the f32/inter/ intermediates (valid rows of each batch item). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "golden.h"

static double DIT_ATOL = 2e-4, DIT_RTOL = 2e-4; /* README defaults; the manifest's values win */

typedef struct {
    golden_case *c;
    int item;
} dit_dump_ctx;

/* Compare one item's intermediate against rows [0, rows) of f32/inter/<name>[item]. */
static void dit_dump_check(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    dit_dump_ctx *d = user;
    char key[256], label[300];
    snprintf(key, sizeof key, "f32/inter/%s", name);
    const zi_tensor *t = zi_st_find(&d->c->st, key);
    if (!t) return; /* not every name has a golden */
    int64_t R = t->ndim == 3 ? t->shape[1] : 1, Cc = t->shape[t->ndim - 1];
    snprintf(label, sizeof label, "%s[%d]", key, d->item);
    if (Cc != cols || rows > R) {
        d->c->n_checked++;
        d->c->n_failed++;
        printf("  FAIL %-28s %-34s shape [%lld, %lld] vs golden rows %lld cols %lld\n", d->c->name, label,
               (long long)rows, (long long)cols, (long long)R, (long long)Cc);
        return;
    }
    float *want = zi_tensor_to_f32(t);
    golden_check_vals(d->c, label, data, want + (int64_t)d->item * R * Cc, rows * cols, DIT_ATOL, DIT_RTOL);
    free(want);
}

/* Compare rows [0, rows) of item `item` of a [B, R, C] golden (float or U8 mask). */
static void dit_check_rows(golden_case *c, const char *key, int item, const float *got, int64_t rows, int64_t cols,
                           double atol) {
    const zi_tensor *t = zi_st_find(&c->st, key);
    if (!t) return;
    int64_t R = t->shape[1], C = t->ndim == 3 ? t->shape[2] : 1;
    char label[300];
    snprintf(label, sizeof label, "%s[%d]", key, item);
    if (C != cols || rows > R) {
        c->n_checked++;
        c->n_failed++;
        printf("  FAIL %-28s %-34s shape mismatch\n", c->name, label);
        return;
    }
    float *want = zi_tensor_to_f32(t);
    golden_check_vals(c, label, got, want + (int64_t)item * R * C, rows * cols, atol, 0);
    free(want);
}

/* RoPE tables, attention masks and timestep frequencies the blocks received. */
static void dit_check_tables(golden_case *c, const zi_dit *m, int item, int H, int W, int64_t Lc) {
    int64_t Ht = H / 2, Wt = W / 2, Li = zi_dit_pad32(Ht * Wt), Lcp = zi_dit_pad32(Lc), L = Li + Lcp;
    int half = m->cfg.head_dim / 2;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)L * 3);
    float *cs = malloc(sizeof(float) * (size_t)(L * half)), *sn = malloc(sizeof(float) * (size_t)(L * half));
    float *ones = malloc(sizeof(float) * (size_t)L);
    zi_dit_positions(Ht, Wt, Lc, ids);
    zi_dit_rope_table(&m->cfg, ids, L, cs, sn);
    for (int64_t i = 0; i < L; i++) ones[i] = 1.0f;
    dit_check_rows(c, "f32/inter/x_embedded.freqs_cos", item, cs, Li, half, 1e-6);
    dit_check_rows(c, "f32/inter/x_embedded.freqs_sin", item, sn, Li, half, 1e-6);
    dit_check_rows(c, "f32/inter/cap_embedded.freqs_cos", item, cs + Li * half, Lcp, half, 1e-6);
    dit_check_rows(c, "f32/inter/cap_embedded.freqs_sin", item, sn + Li * half, Lcp, half, 1e-6);
    dit_check_rows(c, "f32/inter/unified.freqs_cos", item, cs, L, half, 1e-6);
    dit_check_rows(c, "f32/inter/unified.freqs_sin", item, sn, L, half, 1e-6);
    /* pad tokens are attended (mask 1) for every real row of the item */
    dit_check_rows(c, "f32/inter/x_embedded.attn_mask", item, ones, Li, 1, 0);
    dit_check_rows(c, "f32/inter/cap_embedded.attn_mask", item, ones, Lcp, 1, 0);
    dit_check_rows(c, "f32/inter/unified.attn_mask", item, ones, L, 1, 0);
    free(ids);
    free(cs);
    free(sn);
    free(ones);
}

int golden_run_dit_forward(golden_case *c) {
    golden_tol(c, &DIT_ATOL, &DIT_RTOL);
    const zi_tensor *xt = golden_tensor(c, "x");
    if (!xt || xt->ndim != 5) return GOLDEN_FAIL;
    int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[3], W = (int)xt->shape[4];
    float *x = golden_f32(c, "x", NULL), *t = golden_f32(c, "t", NULL);
    float *out = malloc(sizeof(float) * (size_t)xt->numel);
    const char *variants[2] = {"f32", "bf16"};
    int rc = GOLDEN_PASS;
    for (int vi = 0; vi < 2 && rc == GOLDEN_PASS; vi++) {
        char dir[4096];
        if (golden_model_path(c, variants[vi], dir, sizeof dir)) return GOLDEN_FAIL;
        zi_dit *m;
        if (zi_dit_load(&m, dir)) {
            rc = GOLDEN_FAIL;
            break;
        }
        for (int b = 0; b < B; b++) {
            char key[64];
            snprintf(key, sizeof key, "cap_feats.%d", b);
            const zi_tensor *ct = golden_tensor(c, key);
            float *cap = ct ? zi_tensor_to_f32(ct) : NULL;
            dit_dump_ctx d = {c, b};
            int with_inter = vi == 0 && zi_st_find(&c->st, "f32/inter/unified");
            if (with_inter && cap) dit_check_tables(c, m, b, H, W, ct->shape[0]);
            if (!cap || zi_dit_forward(m, x + (size_t)b * C * H * W, H, W, t[b], cap, (int)ct->shape[0],
                                       out + (size_t)b * C * H * W, with_inter ? dit_dump_check : NULL, &d)) {
                rc = GOLDEN_FAIL;
            }
            free(cap);
        }
        if (vi == 0 && zi_st_find(&c->st, "timestep_freqs")) { /* torch's float32 exp: within 1 ulp */
            float mine[128];
            zi_dit_timestep_freqs(mine);
            golden_check(c, "timestep_freqs", mine, 128, 0, 3e-7);
        }
        if (rc == GOLDEN_PASS) {
            char key[64];
            snprintf(key, sizeof key, "%s/out", variants[vi]);
            golden_check(c, key, out, xt->numel, DIT_ATOL, DIT_RTOL);
        }
        zi_dit_free(m);
    }
    free(x);
    free(t);
    free(out);
    return rc;
}
