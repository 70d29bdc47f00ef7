/* golden_end_to_end.c - the whole pipeline (kind "end_to_end") through
 * zi_pipeline_generate, the code path of the CLI, with hooks observing every
 * intermediate: token ids, caption features, noise, sigmas, per-step DiT outputs
 * and latents, final latents, z, image and image_u8, for each weight variant the
 * manifest lists (variant-independent tensors are checked with the first one). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/pipeline/pipeline.h"
#include "golden.h"

#define E2E_FEAT_TOL 1e-4
#define E2E_STEP_TOL 1e-3
#define E2E_IMG_ATOL 2e-3
#define E2E_IMG_RTOL 1e-3

typedef struct {
    golden_case *c;
    const char *v; /* the weight variant ("f32", "bf16", ...) */
    int first;     /* the first variant: also checks ids and noise */
    int full;      /* per-step tensors exist for this variant */
    zimage_model *m;
    float *image;
    int H, W;
} e2e_ctx;

static void e2e_key(char *buf, size_t cap, const e2e_ctx *x, const char *name) {
    snprintf(buf, cap, "%s/%s", x->v, name);
}

static void on_tokens(void *u, int negative, const int32_t *ids, int n) {
    e2e_ctx *x = u;
    if (!x->first) return; /* ids are variant-independent */
    const zi_tensor *t = golden_tensor(x->c, negative ? "neg_input_ids" : "input_ids");
    const zi_tensor *mk = golden_tensor(x->c, negative ? "neg_attention_mask" : "attention_mask");
    if (!t || !mk || t->dtype != ZI_I32 || (mk->dtype != ZI_U8 && mk->dtype != ZI_I32) || t->numel != mk->numel ||
        t->numel < n) {
        golden_fail(x->c, negative ? "neg_input_ids" : "input_ids", "golden ids/mask missing or malformed");
        return;
    }
    /* the golden is padded to 512 with a mask; compare the masked prefix */
    int n_real = 0;
    for (int64_t i = 0; i < mk->numel; i++) {
        int on = mk->dtype == ZI_U8 ? ((const uint8_t *)mk->data)[i] : ((const int32_t *)mk->data)[i];
        n_real += on != 0;
    }
    x->c->n_checked++;
    int ok = n_real == n && memcmp(t->data, ids, sizeof(int32_t) * (size_t)n) == 0;
    printf("  %s %-28s %-34s %d tokens%s\n", ok ? "ok  " : "FAIL", x->c->name, negative ? "neg_input_ids" : "input_ids",
           n, ok ? "" : " (differ)");
    if (!ok) x->c->n_failed++;
}

static void on_text(void *u, int negative, const float *feats, int n, int dim) {
    e2e_ctx *x = u;
    char k[128];
    e2e_key(k, sizeof k, x, negative ? "neg_cap_feats" : "cap_feats");
    golden_check(x->c, k, feats, (int64_t)n * dim, E2E_FEAT_TOL, E2E_FEAT_TOL);
}

static void on_noise(void *u, const float *noise, int64_t n) {
    e2e_ctx *x = u;
    if (!x->first) return;
    golden_check(x->c, "noise", noise, n, 1e-5, 0); /* torch_randn tolerance */
}

static void on_sigmas(void *u, const float *sig, int n_steps) {
    e2e_ctx *x = u;
    char k[128];
    e2e_key(k, sizeof k, x, "sigmas");
    golden_check(x->c, k, sig, n_steps + 1, 1e-6, 1e-6);
    float *ts = malloc(sizeof(float) * (size_t)n_steps);
    if (!ts) {
        golden_fail(x->c, "timesteps", "out of memory");
        return;
    }
    for (int i = 0; i < n_steps; i++) ts[i] = zi_sched_timestep(sig[i]);
    e2e_key(k, sizeof k, x, "timesteps");
    golden_check(x->c, k, ts, n_steps, 1e-6, 1e-6);
    free(ts);
}

static void on_step(void *u, int step, float t_model, const float *dit_pos, const float *dit_neg,
                    const float *noise_pred, const float *latents, int64_t n) {
    e2e_ctx *x = u;
    if (!x->full) return;
    char k[128];
    snprintf(k, sizeof k, "%s/step%d.t_model", x->v, step);
    const zi_tensor *tt = golden_tensor(x->c, k);
    int B = tt ? (int)tt->numel : 1;
    if (B < 1 || B > 2 || (B == 2 && !dit_neg)) {
        golden_fail(x->c, k, "batch %d of the golden does not match the run (CFG %s)", B, dit_neg ? "on" : "off");
        return;
    }
    float tm[2] = {t_model, t_model};
    golden_check(x->c, k, tm, B, 1e-6, 1e-6);
    float *both = malloc(sizeof(float) * (size_t)(2 * n));
    if (!both) {
        golden_fail(x->c, k, "out of memory");
        return;
    }
    memcpy(both, dit_pos, sizeof(float) * (size_t)n);
    if (B == 2 && dit_neg) memcpy(both + n, dit_neg, sizeof(float) * (size_t)n);
    snprintf(k, sizeof k, "%s/step%d.dit_out", x->v, step);
    golden_check(x->c, k, both, B * n, E2E_STEP_TOL, E2E_STEP_TOL);
    free(both);
    if (noise_pred) {
        /* the official pipeline stores the negated guided output (the scheduler's velocity) */
        float *v = malloc(sizeof(float) * (size_t)n);
        if (!v) {
            golden_fail(x->c, "noise_pred", "out of memory");
            return;
        }
        for (int64_t i = 0; i < n; i++) v[i] = -noise_pred[i];
        snprintf(k, sizeof k, "%s/step%d.noise_pred", x->v, step);
        golden_check(x->c, k, v, n, E2E_STEP_TOL, E2E_STEP_TOL);
        free(v);
    }
    snprintf(k, sizeof k, "%s/step%d.latents", x->v, step);
    golden_check(x->c, k, latents, n, E2E_STEP_TOL, E2E_STEP_TOL);
}

static void on_latents(void *u, const float *lat, int64_t n) {
    e2e_ctx *x = u;
    char k[128];
    e2e_key(k, sizeof k, x, "latents");
    golden_check(x->c, k, lat, n, E2E_STEP_TOL, E2E_STEP_TOL);
    /* z = latents / scaling + shift, with the VAE config the pipeline loaded */
    float *z = malloc(sizeof(float) * (size_t)n);
    if (!z) {
        golden_fail(x->c, "z", "out of memory");
        return;
    }
    for (int64_t i = 0; i < n; i++) z[i] = lat[i] / x->m->vae->cfg.scaling + x->m->vae->cfg.shift;
    e2e_key(k, sizeof k, x, "z");
    golden_check(x->c, k, z, n, E2E_STEP_TOL, E2E_STEP_TOL);
    free(z);
}

static void on_image(void *u, const float *image, int H, int W) {
    e2e_ctx *x = u;
    char k[128];
    e2e_key(k, sizeof k, x, "image");
    x->c->bf16_stages = GOLDEN_BF16_S_IMAGE; /* DiT, then the VAE decoder */
    golden_check(x->c, k, image, 3 * (int64_t)H * W, E2E_IMG_ATOL, E2E_IMG_RTOL);
    x->c->bf16_stages = 0;
}

int golden_run_end_to_end(golden_case *c) {
    const char *prompt = json_string_value(golden_param(c, "prompt"));
    const char *neg = json_string_value(golden_param(c, "negative_prompt"));
    json_t *jg = golden_param(c, "guidance_scale");
    long long width, height, steps, seed;
    if (!prompt) return golden_fail(c, "params.prompt", "missing");
    if (golden_param_int(c, "width", -1, 16, 4096, &width) || golden_param_int(c, "height", -1, 16, 4096, &height) ||
        golden_param_int(c, "steps", -1, 1, 1000, &steps) || golden_param_int(c, "seed", -1, 0, INT64_MAX, &seed))
        return GOLDEN_FAIL;
    if (!json_is_number(jg)) return golden_fail(c, "params.guidance_scale", "missing");
    if (c->n_variants == 0) return golden_fail(c, "models", "the manifest lists no weight variant");
    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s/tiny-zimage/tokenizer/tokenizer.json", c->fixtures);
    for (int vi = 0; vi < c->n_variants; vi++) {
        const char *v = c->variants[vi];
        char dir[4096];
        if (golden_model_path(c, v, dir, sizeof dir)) return golden_fail(c, v, "%s", zi_last_error());
        zimage_load_params lp = zimage_load_params_default();
        lp.model_dir = dir;
        lp.tokenizer = tokpath; /* tiny-zimage-bf16 ships no tokenizer/ */
        lp.precision = golden_bf16 ? ZIMAGE_PRECISION_BF16 : ZIMAGE_PRECISION_F32;
        zimage_model *m;
        if (zimage_load(&m, &lp)) return golden_fail(c, v, "load: %s", zi_last_error());
        zimage_params p = zimage_params_default();
        p.prompt = prompt;
        p.negative_prompt = neg;
        p.width = (int)width;
        p.height = (int)height;
        p.steps = (int)steps;
        p.guidance = (float)json_number_value(jg);
        p.seed = (uint64_t)seed;
        char k[64];
        snprintf(k, sizeof k, "%s/step0.latents", v);
        e2e_ctx x = {c, v, vi == 0, zi_st_find(&c->st, k) != NULL, m, NULL, 0, 0};
        zi_pipeline_hooks h = {&x, on_tokens, on_text, on_noise, on_sigmas, on_step, on_latents, on_image, NULL};
        zimage_image img = {0};
        int rc = zi_pipeline_generate(m, &p, &img, &h);
        if (rc == 0) {
            snprintf(k, sizeof k, "%s/image_u8", v);
            c->bf16_stages = GOLDEN_BF16_S_IMAGE;
            golden_check_u8(c, k, img.rgb, 3 * (int64_t)img.width * img.height, 1, 0.01);
            c->bf16_stages = 0;
        } else {
            golden_fail(c, v, "generate: %s", zi_last_error());
        }
        zimage_image_free(&img);
        zimage_free(m);
    }
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
