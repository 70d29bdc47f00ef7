/* golden_img2img.c - image-conditioned generation (kinds "img2img" and "inpaint")
 * against diffusers' ZImageImg2ImgPipeline / ZImageInpaintPipeline run on the tiny
 * model (tests/fixtures/make_imgcond_goldens.py). Goes through zi_pipeline_generate,
 * the CLI's code path, reading the condition images from tests/fixtures/imgcond/
 * with the library's image reader; hooks observe the VAE moments, both generator
 * draws, the posterior sample, scale_noise, the latent mask and every step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/pipeline/pipeline.h"
#include "golden.h"

#define IC_ENC_TOL 1e-4   /* moments, image_latents: VAE encoder tolerance */
#define IC_RANDN_TOL 1e-5 /* generator draws: torch_randn tolerance */
#define IC_STEP_TOL 1e-3  /* latents: e2e per-step tolerance */
#define IC_IMG_ATOL 2e-3
#define IC_IMG_RTOL 1e-3

typedef struct {
    golden_case *c;
    const char *v;
    int full;
} ic_ctx;

static void ic_check(ic_ctx *x, const char *name, const float *d, int64_t n, double atol, double rtol) {
    char k[128];
    snprintf(k, sizeof k, "%s/%s", x->v, name);
    golden_check(x->c, k, d, n, atol, rtol);
}

static void on_tensor(void *u, const char *name, const float *d, int64_t n) {
    ic_ctx *x = u;
    double tol = !strcmp(name, "posterior_eps") || !strcmp(name, "noise") ? IC_RANDN_TOL
                 : !strcmp(name, "mask_latent")                           ? 0
                 : !strcmp(name, "latents_init")                          ? IC_STEP_TOL
                                                                          : IC_ENC_TOL;
    ic_check(x, name, d, n, tol, !strcmp(name, "posterior_eps") || !strcmp(name, "noise") ? 0 : tol);
}

static void on_sigmas(void *u, const float *sig, int n_steps) {
    ic_ctx *x = u;
    ic_check(x, "sigmas", sig, n_steps + 1, 1e-6, 1e-6);
    /* kept timesteps: the last kept_steps of the schedule */
    int kept = (int)json_integer_value(golden_param(x->c, "kept_steps"));
    if (kept < 1 || kept > n_steps) {
        golden_fail(x->c, "params.kept_steps", "%d out of range", kept);
        return;
    }
    float ts[1000];
    for (int i = 0; i < kept && i < 1000; i++) ts[i] = zi_sched_timestep(sig[n_steps - kept + i]);
    ic_check(x, "timesteps", ts, kept, 1e-6, 1e-6);
}

static void on_step(void *u, int step, float t_model, const float *dit_pos, const float *dit_neg,
                    const float *noise_pred, const float *latents, int64_t n) {
    (void)t_model, (void)dit_pos, (void)dit_neg, (void)noise_pred;
    ic_ctx *x = u;
    if (!x->full) return;
    char k[64];
    snprintf(k, sizeof k, "step%d.latents", step);
    x->c->bf16_stages = GOLDEN_BF16_S_IMG2IMG; /* VAE encoder, then the DiT */
    ic_check(x, k, latents, n, IC_STEP_TOL, IC_STEP_TOL);
    x->c->bf16_stages = 0;
}

static void on_latents(void *u, const float *lat, int64_t n) {
    ic_ctx *x = u;
    x->c->bf16_stages = GOLDEN_BF16_S_IMG2IMG;
    ic_check(x, "latents", lat, n, IC_STEP_TOL, IC_STEP_TOL);
    x->c->bf16_stages = 0;
}

static void on_image(void *u, const float *image, int H, int W) {
    ic_ctx *x = u;
    x->c->bf16_stages = GOLDEN_BF16_S_IMG2IMG_IMAGE; /* VAE encoder, DiT, VAE decoder */
    ic_check(x, "image", image, 3 * (int64_t)H * W, IC_IMG_ATOL, IC_IMG_RTOL);
    x->c->bf16_stages = 0;
}

/* The condition image file read by the library equals the pixels PIL gave diffusers. */
static int ic_load_input(golden_case *c, const char *param, const char *tensor, int gray, zimage_image *img) {
    const char *file = json_string_value(golden_param(c, param));
    char path[4096];
    snprintf(path, sizeof path, "%s/imgcond/%s", c->fixtures, file ? file : "?");
    if (zimage_image_load(path, img)) {
        golden_fail(c, tensor, "%s", zimage_last_error());
        return -1;
    }
    const zi_tensor *t = golden_input(c, tensor);
    int64_t npx = (int64_t)img->width * img->height;
    int ok = t && t->numel == npx * (gray ? 1 : 3);
    for (int64_t i = 0; ok && i < t->numel; i++)
        ok = ((const uint8_t *)t->data)[i] == (gray ? img->rgb[3 * i] : img->rgb[i]);
    c->n_checked++;
    printf("  %s %-28s %-34s %dx%d %s\n", ok ? "ok  " : "FAIL", c->name, tensor, img->width, img->height, file);
    if (!ok) c->n_failed++;
    return 0;
}

static int golden_run_imgcond(golden_case *c, int inpaint) {
    const char *prompt = json_string_value(golden_param(c, "prompt"));
    if (!prompt) return GOLDEN_FAIL;
    zimage_image init, mask = {0};
    if (ic_load_input(c, "init_image", "init_image_u8", 0, &init)) return GOLDEN_FAIL;
    if (inpaint && ic_load_input(c, "mask_image", "mask_u8", 1, &mask)) {
        zimage_image_free(&init);
        return GOLDEN_FAIL;
    }
    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s/tiny-zimage/tokenizer/tokenizer.json", c->fixtures);
    if (c->n_variants == 0) golden_fail(c, "models", "the manifest lists no weight variant");
    int rc = 0;
    for (int vi = 0; vi < c->n_variants && !rc; vi++) {
        const char *v = c->variants[vi];
        char dir[4096];
        if (golden_model_path(c, v, dir, sizeof dir)) {
            golden_fail(c, v, "%s", zi_last_error());
            rc = -1;
            break;
        }
        zimage_load_params lp = zimage_load_params_default();
        lp.model_dir = dir;
        lp.tokenizer = tokpath;
        lp.precision = golden_bf16 ? ZIMAGE_PRECISION_BF16 : ZIMAGE_PRECISION_F32;
        zimage_model *m;
        if (zimage_load(&m, &lp)) {
            golden_fail(c, v, "load: %s", zi_last_error());
            rc = -1;
            break;
        }
        zimage_params p = zimage_params_default();
        p.prompt = prompt;
        p.negative_prompt = json_string_value(golden_param(c, "negative_prompt"));
        p.width = (int)json_integer_value(golden_param(c, "width"));
        p.height = (int)json_integer_value(golden_param(c, "height"));
        p.steps = (int)json_integer_value(golden_param(c, "steps"));
        p.guidance = (float)json_number_value(golden_param(c, "guidance_scale"));
        p.seed = (uint64_t)json_integer_value(golden_param(c, "seed"));
        p.strength = json_number_value(golden_param(c, "strength"));
        p.init_image = &init;
        p.mask = inpaint ? &mask : NULL;
        char k[64];
        snprintf(k, sizeof k, "%s/step0.latents", v);
        ic_ctx x = {c, v, zi_st_find(&c->st, k) != NULL};
        zi_pipeline_hooks h = {.user = &x, .on_sigmas = on_sigmas, .on_step = on_step, .on_latents = on_latents,
                               .on_image = on_image, .on_tensor = on_tensor};
        zimage_image img = {0};
        rc = zi_pipeline_generate(m, &p, &img, &h);
        if (rc == 0) {
            snprintf(k, sizeof k, "%s/image_u8", v);
            c->bf16_stages = GOLDEN_BF16_S_IMG2IMG_IMAGE;
            golden_check_u8(c, k, img.rgb, 3 * (int64_t)img.width * img.height, 1, 0.01);
            c->bf16_stages = 0;
        } else {
            golden_fail(c, v, "generate: %s", zimage_last_error());
        }
        zimage_image_free(&img);
        zimage_free(m);
    }
    zimage_image_free(&init);
    zimage_image_free(&mask);
    return rc || c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}

int golden_run_img2img(golden_case *c) { return golden_run_imgcond(c, 0); }
int golden_run_inpaint(golden_case *c) { return golden_run_imgcond(c, 1); }
