/* golden_dit_forward.c - DiT forward cases (kind "dit_forward"): the output for each
 * weight variant the manifest lists, plus the <variant>/inter/ intermediates (valid
 * rows of each batch item), RoPE tables, masks and timestep frequencies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "../../src/kernels/kernels.h"
#include "golden.h"

static double DIT_ATOL = 2e-4, DIT_RTOL = 2e-4; /* README defaults; the manifest's values win */

typedef struct {
    golden_case *c;
    const char *variant;
    int item;
} dit_dump_ctx;

/* Compare one item's intermediate against rows [0, rows) of <variant>/inter/<name>[item]. */
static void dit_dump_check(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    dit_dump_ctx *d = user;
    char key[256], label[300];
    snprintf(key, sizeof key, "%s/inter/%s", d->variant, name);
    const zi_tensor *t = golden_find(d->c, key);
    if (!t) return; /* not every name has a golden; goldens never reached are leftovers */
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
    if (!want || t->numel < (int64_t)(d->item + 1) * R * Cc) {
        golden_fail(d->c, label, "unreadable golden or fewer items than the batch");
        free(want);
        return;
    }
    golden_check_vals(d->c, label, data, want + (int64_t)d->item * R * Cc, rows * cols, DIT_ATOL, DIT_RTOL);
    free(want);
}

/* Compare rows [0, rows) of item `item` of a [B, R, C] golden (float or U8 mask). */
static void dit_check_rows(golden_case *c, const char *variant, const char *name, int item, const float *got,
                           int64_t rows, int64_t cols, double atol) {
    char key[256], label[300];
    snprintf(key, sizeof key, "%s/inter/%s", variant, name);
    const zi_tensor *t = golden_find(c, key);
    if (!t) return;
    snprintf(label, sizeof label, "%s[%d]", key, item);
    if (t->ndim < 2 || t->ndim > 3) {
        golden_fail(c, label, "golden is not [B, R] or [B, R, C]");
        return;
    }
    int64_t R = t->shape[1], C = t->ndim == 3 ? t->shape[2] : 1;
    if (C != cols || rows > R || t->shape[0] <= item) {
        golden_fail(c, label, "shape mismatch");
        return;
    }
    float *want = zi_tensor_to_f32(t);
    if (!want) {
        golden_fail(c, label, "%s", zi_last_error());
        return;
    }
    golden_check_vals(c, label, got, want + (int64_t)item * R * C, rows * cols, atol, 0);
    free(want);
}

/* RoPE tables, attention masks and timestep frequencies the blocks received. */
static void dit_check_tables(golden_case *c, const char *v, const zi_dit *m, int item, int H, int W, int64_t Lc) {
    int64_t Ht = H / 2, Wt = W / 2, Li = zi_dit_pad32(Ht * Wt), Lcp = zi_dit_pad32(Lc), L = Li + Lcp;
    int half = m->cfg.head_dim / 2;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)L * 3);
    float *cs = malloc(sizeof(float) * (size_t)(L * half)), *sn = malloc(sizeof(float) * (size_t)(L * half));
    float *ones = malloc(sizeof(float) * (size_t)L);
    zi_dit_positions(Ht, Wt, Lc, ids);
    zi_dit_rope_table(&m->cfg, ids, L, cs, sn);
    for (int64_t i = 0; i < L; i++) ones[i] = 1.0f;
    dit_check_rows(c, v, "x_embedded.freqs_cos", item, cs, Li, half, 1e-6);
    dit_check_rows(c, v, "x_embedded.freqs_sin", item, sn, Li, half, 1e-6);
    dit_check_rows(c, v, "cap_embedded.freqs_cos", item, cs + Li * half, Lcp, half, 1e-6);
    dit_check_rows(c, v, "cap_embedded.freqs_sin", item, sn + Li * half, Lcp, half, 1e-6);
    dit_check_rows(c, v, "unified.freqs_cos", item, cs, L, half, 1e-6);
    dit_check_rows(c, v, "unified.freqs_sin", item, sn, L, half, 1e-6);
    /* pad tokens are attended (mask 1) for every real row of the item */
    dit_check_rows(c, v, "x_embedded.attn_mask", item, ones, Li, 1, 0);
    dit_check_rows(c, v, "cap_embedded.attn_mask", item, ones, Lcp, 1, 0);
    dit_check_rows(c, v, "unified.attn_mask", item, ones, L, 1, 0);
    free(ids);
    free(cs);
    free(sn);
    free(ones);
}

/* cap_lens (an input) must agree with the caption feature tensors. */
static void dit_check_cap_lens(golden_case *c, int B) {
    const zi_tensor *cl = golden_find(c, "cap_lens");
    if (!cl) return;
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) {
        char key[64];
        snprintf(key, sizeof key, "cap_feats.%d", b);
        const zi_tensor *ct = golden_find(c, key);
        lens[b] = ct && ct->ndim == 2 ? (int32_t)ct->shape[0] : -1;
    }
    golden_check_i32(c, "cap_lens", lens, B);
    free(lens);
}

/* int8 mode (golden.h): the relative L2 error vs the golden, and proof that the int8 GEMM ran:
 * the same forward in plain bf16 mode must give a different output. */
static void dit_int8_ran(golden_case *c, const char *okey, zi_dit *m, const float *x, const float *t, const float *out, int B, int C,
                         int H, int W, int64_t numel) {
    float *want = golden_f32(c, okey, NULL), *b16 = malloc(sizeof(float) * (size_t)numel);
    int differ = 0;
    kn_set_precision(KN_PREC_BF16);
    for (int b = 0; b < B && b16; b++) {
        char key[64];
        snprintf(key, sizeof key, "cap_feats.%d", b);
        const zi_tensor *ct = golden_input(c, key);
        float *cap = ct && ct->ndim == 2 ? zi_tensor_to_f32(ct) : NULL;
        if (cap && zi_dit_forward(m, x + (size_t)b * C * H * W, H, W, t[b], cap, (int)ct->shape[0],
                                  b16 + (size_t)b * C * H * W, NULL, NULL))
            golden_fail(c, key, "bf16 forward: %s", zi_last_error());
        free(cap);
    }
    kn_set_precision(KN_PREC_INT8);
    double e2 = 0, w2 = 0;
    for (int64_t i = 0; want && b16 && i < numel; i++) {
        differ |= out[i] != b16[i];
        e2 += ((double)out[i] - want[i]) * ((double)out[i] - want[i]), w2 += (double)want[i] * want[i];
    }
    printf("  int8 mode: output relative L2 error vs the golden %.3g\n", sqrt(e2 / (w2 + 1e-300)));
    c->n_checked++;
    if (!differ) golden_fail(c, okey, "int8 mode gave the bf16 mode's output: the int8 GEMM did not run");
    free(want), free(b16);
}

/* One weight variant: load, forward every batch item, compare. */
static int dit_run_variant(golden_case *c, const char *v, const float *x, const float *t, float *out, int B, int C,
                           int H, int W, int64_t numel) {
    char dir[4096], key[256];
    if (golden_model_path(c, v, dir, sizeof dir)) return golden_fail(c, v, "%s", zi_last_error());
    zi_dit *m;
    if (zi_dit_load(&m, dir)) return golden_fail(c, v, "load: %s", zi_last_error());
    snprintf(key, sizeof key, "%s/inter/unified", v);
    int with_inter = zi_st_find(&c->st, key) != NULL; /* probe only: the dump hook compares it */
    for (int b = 0; b < B; b++) {
        snprintf(key, sizeof key, "cap_feats.%d", b);
        const zi_tensor *ct = golden_input(c, key);
        float *cap = ct && ct->ndim == 2 ? zi_tensor_to_f32(ct) : NULL;
        dit_dump_ctx d = {c, v, b};
        if (!cap) {
            golden_fail(c, key, "missing or not [L, cap_feat_dim]");
            continue;
        }
        if (with_inter) dit_check_tables(c, v, m, b, H, W, ct->shape[0]);
        if (zi_dit_forward(m, x + (size_t)b * C * H * W, H, W, t[b], cap, (int)ct->shape[0],
                           out + (size_t)b * C * H * W, with_inter ? dit_dump_check : NULL, &d))
            golden_fail(c, key, "forward: %s", zi_last_error());
        free(cap);
    }
    if (zi_st_find(&c->st, "timestep_freqs")) { /* torch's float32 exp: within 1 ulp */
        float mine[128];
        zi_dit_timestep_freqs(mine);
        golden_check(c, "timestep_freqs", mine, 128, 0, 3e-7);
    }
    snprintf(key, sizeof key, "%s/out", v);
    golden_check(c, key, out, numel, DIT_ATOL, DIT_RTOL);
    if (golden_int8) dit_int8_ran(c, key, m, x, t, out, B, C, H, W, numel);
    zi_dit_free(m);
    return GOLDEN_PASS;
}

int golden_run_dit_forward(golden_case *c) {
    golden_tol(c, &DIT_ATOL, &DIT_RTOL);
    const zi_tensor *xt = golden_input(c, "x"), *tt = golden_input(c, "t");
    if (!xt || xt->ndim != 5 || !tt || tt->numel != xt->shape[0])
        return golden_fail(c, "x, t", "inputs missing or not [B,C,1,H,W] and [B]");
    if (c->n_variants == 0) return golden_fail(c, "models", "the manifest lists no weight variant");
    int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[3], W = (int)xt->shape[4];
    float *x = golden_f32(c, "x", NULL), *t = golden_f32(c, "t", NULL);
    float *out = malloc(sizeof(float) * (size_t)xt->numel);
    dit_check_cap_lens(c, B);
    for (int vi = 0; vi < c->n_variants && x && t && out; vi++)
        dit_run_variant(c, c->variants[vi], x, t, out, B, C, H, W, xt->numel);
    free(x);
    free(t);
    free(out);
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
