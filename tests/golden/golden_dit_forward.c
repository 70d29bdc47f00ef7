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
            if (!cap || zi_dit_forward(m, x + (size_t)b * C * H * W, H, W, t[b], cap, (int)ct->shape[0],
                                       out + (size_t)b * C * H * W, with_inter ? dit_dump_check : NULL, &d)) {
                rc = GOLDEN_FAIL;
            }
            free(cap);
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
