/* pipeline.c - model loading and the text-to-image loop behind include/zimage.h. */
#include "pipeline.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/error.h"
#include "../io/json.h"
#include "../io/image.h"
#include "../io/png.h"
#include "../kernels/kernels.h"
#include "../sampling/randn.h"
#include "../text/qwen3.h"
#include "imgcond.h"
#include "lora.h"
#include "preview.h"

#define ZI_LATENT_CHANNELS 16
#define ZI_MAX_STEPS 1000

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *zimage_last_error(void) { return zi_last_error(); }

size_t zimage_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

zimage_load_params zimage_load_params_default(void) {
    zimage_load_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    return p;
}

zimage_params zimage_params_default(void) {
    zimage_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.guidance = -1.0f;
    p.cfg_truncation = 1.0f;
    p.seed = ZIMAGE_SEED_RANDOM;
    p.max_sequence_length = 512;
    p.strength = -1.0;
    return p;
}

/* ---------------------------------------------------------------- parameter structs */

/* The public parameter structs only grow at the end; struct_size tells how much of
 * the struct the caller's header knew. These are the ends of the first release:
 * never change them. */
#define LOAD_PARAMS_V1_SIZE (offsetof(zimage_load_params, precision) + sizeof(int))
#define PARAMS_V1_SIZE (offsetof(zimage_params, cancel) + sizeof(volatile int *))
#define PARAMS_MAX_SIZE 65536 /* anything larger is not a struct_size */

/* out = defaults, then the first min(struct_size, sizeof) bytes of the caller's struct. */
static int params_copy(void *out, size_t out_size, const void *in, size_t v1_size, const char *what) {
    if (!in) return zi_err("%s: NULL", what);
    size_t n;
    memcpy(&n, in, sizeof n);
    if (n < v1_size || n > PARAMS_MAX_SIZE)
        return zi_err("%s.struct_size = %zu: initialize the struct with %s_default()", what, n, what);
    memcpy(out, in, n < out_size ? n : out_size); /* fields the caller does not know keep their defaults */
    memcpy(out, &out_size, sizeof out_size);
    return 0;
}

int zi_pipeline_load_params(zimage_load_params *out, const zimage_load_params *in) {
    *out = zimage_load_params_default();
    return params_copy(out, sizeof *out, in, LOAD_PARAMS_V1_SIZE, "zimage_load_params");
}

int zi_pipeline_params(zimage_params *out, const zimage_params *in) {
    *out = zimage_params_default();
    return params_copy(out, sizeof *out, in, PARAMS_V1_SIZE, "zimage_params");
}

/* ---------------------------------------------------------------- loading */

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = zi_malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* Explicit path, else model_dir/sub; NULL if neither given. */
char *zi_pipeline_component_path(const char *explicit_path, const char *dir, const char *sub) {
    if (explicit_path) return zi_strdup(explicit_path);
    if (dir) return path_join(dir, sub);
    return NULL;
}

int zi_pipeline_is_gguf(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    char m[4] = {0};
    int r = f && fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    if (f) fclose(f);
    return r;
}

char *zi_pipeline_tokenizer_path(const char *explicit_path, const char *dir, const char *text_encoder) {
    if (explicit_path) return zi_strdup(explicit_path);
    char *p = dir ? path_join(dir, "tokenizer/tokenizer.json") : NULL;
    if (p && path_exists(p)) return p;
    if (zi_pipeline_is_gguf(text_encoder)) {
        free(p);
        return zi_strdup(text_encoder);
    }
    return p;
}

/* Base (undistilled) Z-Image configs carry "siglip_feat_dim" (docs/MODEL.md §1); Turbo does not. */
static int detect_base_model(const char *transformer_path) {
    char *cfg = path_join(transformer_path, "config.json");
    int base = 0;
    if (cfg && path_exists(cfg)) {
        json_t *j = zi_json_load_file(cfg);
        if (j) base = json_object_get(j, "siglip_feat_dim") != NULL;
        json_decref(j);
    }
    free(cfg);
    return base;
}

/* AUTO -> bf16 only where the path has bf16 dot-product units (AVX512-BF16, AMX), where it is
 * faster; elsewhere the bf16 mode only rounds inputs on the f32 units, so AUTO is f32. */
kn_precision zi_precision_resolve(int precision, kn_isa isa) {
    if (precision == ZIMAGE_PRECISION_BF16) return KN_PREC_BF16;
    if (precision == ZIMAGE_PRECISION_INT8) return KN_PREC_INT8;
    if (precision == ZIMAGE_PRECISION_F32) return KN_PREC_F32;
    kn_isa saved = kn_get_isa();
    kn_set_isa(isa);
    int units = kn_has_bf16_units();
    kn_set_isa(saved);
    return units ? KN_PREC_BF16 : KN_PREC_F32;
}

int zimage_precision_auto(void) {
    kn_isa isa;
    kn_isa_default(&isa);
    return zi_precision_resolve(ZIMAGE_PRECISION_AUTO, isa) == KN_PREC_BF16 ? ZIMAGE_PRECISION_BF16 : ZIMAGE_PRECISION_F32;
}

int zimage_load(zimage_model **out, const zimage_load_params *lp) {
    *out = NULL;
    zimage_load_params pn;
    if (zi_pipeline_load_params(&pn, lp)) return -1;
    const zimage_load_params *p = &pn;
    if (!p->model_dir && (!p->transformer || !p->text_encoder || !p->vae ||
                          (!p->tokenizer && !zi_pipeline_is_gguf(p->text_encoder))))
        return zi_err("no model given: set model_dir, or all of transformer, text_encoder, tokenizer and vae "
                      "(the tokenizer may be omitted when the text encoder is a GGUF file)");
    if (p->model_dir && !path_exists(p->model_dir)) return zi_err("%s: model folder does not exist", p->model_dir);
    zimage_model *m = zi_calloc(1, sizeof *m);
    if (!m) return -1;
    m->n_threads = p->n_threads;
    if (kn_isa_default(&m->isa)) goto fail;
    if (p->precision < ZIMAGE_PRECISION_AUTO || p->precision > ZIMAGE_PRECISION_INT8) {
        zi_err("precision = %d: expected ZIMAGE_PRECISION_AUTO, _F32, _BF16 or _INT8", p->precision);
        goto fail;
    }
    m->precision = zi_precision_resolve(p->precision, m->isa);
    if (p->vae_precision < ZIMAGE_PRECISION_AUTO || p->vae_precision > ZIMAGE_PRECISION_BF16) {
        zi_err("vae_precision = %d: expected ZIMAGE_PRECISION_AUTO, _F32 or _BF16", p->vae_precision);
        goto fail;
    }
    m->low_memory = p->low_memory != 0;
    m->vae_precision = p->vae_precision != ZIMAGE_PRECISION_AUTO ? zi_precision_resolve(p->vae_precision, m->isa)
                       : m->precision == KN_PREC_INT8 ? KN_PREC_BF16 /* int8 mode: the VAE as bf16 */
                                                      : m->precision;
    kn_set_threads(m->n_threads); /* kernel settings belong to the calling thread */
    kn_set_isa(m->isa);
    m->transformer_path = zi_pipeline_component_path(p->transformer, p->model_dir, "transformer");
    m->text_encoder_path = zi_pipeline_component_path(p->text_encoder, p->model_dir, "text_encoder");
    m->tokenizer_path = zi_pipeline_tokenizer_path(p->tokenizer, p->model_dir, m->text_encoder_path);
    m->vae_path = zi_pipeline_component_path(p->vae, p->model_dir, "vae");
    if (!m->transformer_path || !m->text_encoder_path || !m->tokenizer_path || !m->vae_path) goto fail;

    /* list every missing component at once */
    char missing[2048] = "";
    const char *paths[4] = {m->transformer_path, m->text_encoder_path, m->tokenizer_path, m->vae_path};
    const char *what[4] = {"transformer", "text encoder", "tokenizer", "VAE"};
    for (int i = 0; i < 4; i++)
        if (!path_exists(paths[i])) {
            size_t o = strlen(missing);
            snprintf(missing + o, sizeof missing - o, "\n  %s: %s", what[i], paths[i]);
        }
    if (missing[0]) {
        zi_err("model files missing:%s", missing);
        goto fail;
    }

    zi_sched_config_default(&m->sched);
    char *sc = p->scheduler_config ? zi_strdup(p->scheduler_config)
                                   : (p->model_dir ? path_join(p->model_dir, "scheduler/scheduler_config.json") : NULL);
    if (sc && (p->scheduler_config || path_exists(sc))) {
        if (zi_sched_config_load(&m->sched, sc)) {
            free(sc);
            goto fail;
        }
    }
    free(sc);

    if (zi_tokenizer_load(&m->tok, m->tokenizer_path)) goto fail;
    if (p->n_loras < 0 || (p->n_loras > 0 && !p->loras)) {
        zi_err("n_loras = %d but no loras given", p->n_loras);
        goto fail;
    }
    /* validate the text encoder now (shapes, adapters), then release it until generation;
     * adapters: text-encoder modules checked here (applied again at each encode), the rest
     * applied to the DiT below */
    zi_qwen3 *te = NULL; /* not run here: mapped, not read ahead (each encode loads and reads it) */
    if (zi_qwen3_load_unread(&te, m->text_encoder_path)) goto fail;
    int te_hidden = zi_qwen3_hidden(te), te_modules = 0;
    char *te_warn = NULL;
    if (p->n_loras &&
        zi_lora_apply(NULL, te, p->loras, p->n_loras, p->lora_lenient, ZI_LORA_AUTO, &te_warn, &te_modules)) {
        zi_qwen3_free(te);
        goto fail;
    }
    zi_qwen3_free(te);
    if (zi_dit_load(&m->dit, m->transformer_path)) {
        free(te_warn);
        goto fail;
    }
    if (p->n_loras && zi_lora_apply(m->dit, NULL, p->loras, p->n_loras, p->lora_lenient, ZI_LORA_TE_ELSEWHERE,
                                    &m->warnings, NULL)) {
        free(te_warn);
        goto fail;
    }
    if (te_warn) { /* one text for both passes */
        size_t a = strlen(te_warn), b = m->warnings ? strlen(m->warnings) : 0;
        char *w = zi_malloc(a + b + 2);
        if (!w) {
            free(te_warn);
            goto fail;
        }
        snprintf(w, a + b + 2, "%s%s%s", m->warnings ? m->warnings : "", b ? "\n" : "", te_warn);
        free(m->warnings), free(te_warn);
        m->warnings = w;
    }
    if (te_modules > 0) { /* keep the list: the encoder is reloaded (and adapted) per prompt */
        if (!(m->te_loras = zi_calloc((size_t)p->n_loras, sizeof *m->te_loras))) goto fail;
        for (int i = 0; i < p->n_loras; i++, m->n_te_loras++) {
            m->te_loras[i].scale = p->loras[i].scale;
            if (!(m->te_loras[i].path = zi_strdup(p->loras[i].path))) goto fail;
        }
    }
    if (te_hidden != m->dit->cfg.cap_feat_dim) {
        zi_err("text encoder width %d does not match the transformer's cap_feat_dim %d", te_hidden,
               m->dit->cfg.cap_feat_dim);
        goto fail;
    }
    if (zi_vae_load_ex(&m->vae, m->vae_path, ZI_VAE_DECODER)) goto fail;
    if (detect_base_model(m->transformer_path)) {
        m->default_steps = 50;
        m->default_guidance = 4.0f;
    } else {
        m->default_steps = 8;
        m->default_guidance = 0.0f;
    }
    *out = m;
    return 0;
fail:
    zimage_free(m);
    return -1;
}

void zimage_free(zimage_model *m) {
    if (!m) return;
    zi_dit_free(m->dit);
    zi_vae_free(m->vae);
    zi_tokenizer_free(m->tok);
    free(m->transformer_path);
    free(m->text_encoder_path);
    free(m->tokenizer_path);
    free(m->vae_path);
    free(m->warnings);
    for (int i = 0; i < m->n_te_loras; i++) free((char *)m->te_loras[i].path);
    free(m->te_loras);
    free(m);
}

const char *zimage_load_warnings(const zimage_model *m) { return m ? m->warnings : NULL; }

int zimage_default_steps(const zimage_model *m) { return m->default_steps; }
float zimage_default_guidance(const zimage_model *m) { return m->default_guidance; }

/* ---------------------------------------------------------------- generation */

static void resolve_params(const zimage_model *m, const zimage_params *p, int *W, int *H, int *steps, float *g) {
    const zimage_image *init = p->init_image;
    int dw = init && init->width > 0 ? init->width / 16 * 16 : 1024, dh = init && init->height > 0 ? init->height / 16 * 16 : 1024;
    *W = p->width ? p->width : dw;
    *H = p->height ? p->height : dh;
    *steps = p->steps ? p->steps : m->default_steps;
    *g = p->guidance < 0 ? m->default_guidance : p->guidance;
}

double zi_pipeline_work_bytes(const zimage_model *m, int W, int H, int max_tokens) {
    const zi_dit_config *c = &m->dit->cfg;
    double L = (double)zi_dit_pad32((int64_t)(H / 16) * (W / 16)) + (double)zi_dit_pad32(max_tokens);
    double ffn_rows = L < 1024 ? L : 1024;
    /* DiT: U, h, q, k, v, att [L, D] + packed K/V in attention + FFN [rows, F] x 2 */
    double dit = 4.0 * (8.0 * L * c->dim + 2.0 * ffn_rows * c->ffn_dim);
    /* VAE decode: measured ~1.55 GB per megapixel + ~0.4 GB for the FLUX AE (PERF.md), dominated
     * by the full-resolution activations of 256 channels; scale for other widths, keep margin */
    const zi_vae_config *vc = &m->vae->cfg;
    double full_res_ch = vc->ch[0] > vc->ch[1] ? vc->ch[0] : vc->ch[1];
    double vae = 0.5e9 + 2.0e9 * (full_res_ch / 256.0) * ((double)W * H / (1024.0 * 1024.0));
    return dit > vae ? dit : vae;
}

int zimage_validate(const zimage_model *m, const zimage_params *user_p) {
    zimage_params pn;
    if (zi_pipeline_params(&pn, user_p)) return -1;
    const zimage_params *p = &pn;
    int W, H, steps;
    float g;
    resolve_params(m, p, &W, &H, &steps, &g);
    if (!p->prompt) return zi_err("no prompt given");
    if (p->init_image || p->mask) {
        const zimage_image *im = p->init_image, *mk = p->mask;
        if (!im) return zi_err("a mask needs an init image (inpainting)");
        if (!im->rgb || im->width < 1 || im->height < 1) return zi_err("init image is empty");
        if (im->width < 16 || im->height < 16)
            return zi_err("init image %dx%d is too small (at least 16x16)", im->width, im->height);
        if (mk && (!mk->rgb || mk->width != im->width || mk->height != im->height))
            return zi_err("mask size %dx%d does not match the init image size %dx%d", mk->width, mk->height,
                          im->width, im->height);
        double s = p->strength < 0 ? (mk ? 1.0 : 0.6) : p->strength;
        if (!(s > 0 && s <= 1)) return zi_err("strength = %g: must be in (0, 1]", s);
        if (!(p->mask_blur >= 0 && p->mask_blur <= 256))
            return zi_err("mask blur = %g: must be between 0 and 256 pixels", (double)p->mask_blur);
        int st = p->steps ? p->steps : m->default_steps;
        if (st >= 1 && st <= ZI_MAX_STEPS && zi_imgcond_t_start(st, s) >= st)
            return zi_err("strength %g of %d steps leaves no step to run", s, st);
    }
    if (p->preview_every < 0) return zi_err("preview_every = %d: must be >= 0", p->preview_every);
    const int f = 16; /* VAE factor 8 x patch 2 */
    int max_side = 2 * 8 * (m->dit->cfg.axes_lens[1] < m->dit->cfg.axes_lens[2] ? m->dit->cfg.axes_lens[1]
                                                                                 : m->dit->cfg.axes_lens[2]) - f;
    if (W <= 0 || H <= 0 || W % f || H % f)
        return zi_err("image size %dx%d: width and height must be positive multiples of 16", W, H);
    if (W > max_side || H > max_side)
        return zi_err("image size %dx%d: each side must be at most %d (RoPE table limit)", W, H, max_side);
    if (steps < 1 || steps > ZI_MAX_STEPS) return zi_err("steps = %d: must be between 1 and %d", steps, ZI_MAX_STEPS);
    if (!(g >= 0 && g <= 100)) return zi_err("guidance = %g: must be between 0 and 100", (double)g);
    if (!(p->cfg_truncation >= 0)) return zi_err("cfg_truncation = %g: must be >= 0", (double)p->cfg_truncation);
    if (p->max_sequence_length < 1 || p->max_sequence_length > m->dit->cfg.axes_lens[0] - 2)
        return zi_err("max_sequence_length = %d: must be between 1 and %d", p->max_sequence_length,
                      m->dit->cfg.axes_lens[0] - 2);
    /* refuse sizes whose working memory cannot fit, instead of being killed mid-run */
    double need = zi_pipeline_work_bytes(m, W, H, p->max_sequence_length);
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (have > 0 && need > have)
        return zi_err("image size %dx%d needs about %.1f GiB of working memory; this machine has %.1f GiB", W, H,
                      need / (1 << 30), have / (1 << 30));
    return 0;
}

int zi_pipeline_encode_prompt(const zi_tokenizer *tok, const char *te_path, const zimage_lora *loras, int n_loras,
                              const char *prompt, int max_len, float **feats, int *n_tokens, int *dim,
                              const zi_pipeline_hooks *h, int negative) {
    int32_t *ids = NULL;
    int n = 0;
    *feats = NULL;
    /* tokenize in full to know the real length, then cut on the right like upstream */
    if (zi_tokenizer_encode_prompt(tok, prompt, 1 << 30, &ids, &n)) return negative ? zi_err_ctx("negative prompt") : -1;
    *n_tokens = n;
    if (n > max_len) n = max_len;
    if (h && h->on_tokens) h->on_tokens(h->user, negative, ids, n);
    zi_qwen3 *te = NULL;
    if (zi_qwen3_load(&te, te_path) || (n_loras && zi_lora_apply(NULL, te, loras, n_loras, 1, ZI_LORA_AUTO, NULL, NULL))) {
        zi_qwen3_free(te);
        free(ids);
        return -1;
    }
    int hid = zi_qwen3_hidden(te);
    float *out = zi_malloc((size_t)n * (size_t)hid * sizeof(float));
    int rc = out ? zi_qwen3_encode(te, ids, n, out) : -1;
    zi_qwen3_free(te); /* release the encoder's weights before the DiT runs */
    free(ids);
    if (rc) {
        free(out);
        return -1;
    }
    if (h && h->on_text) h->on_text(h->user, negative, out, n, hid);
    *feats = out;
    *dim = hid;
    return 0;
}

static int report(const zimage_params *p, zimage_stage st, int step, int total, double secs) {
    if (p->cancel && *p->cancel) return 1;
    if (p->progress && p->progress(p->progress_user, st, step, total, secs)) return 1;
    return 0;
}

/* ||v||_2 over n values (double accumulation). */
static double vec_norm(const float *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Image conditioning state of one generation (img2img / inpainting). */
typedef struct {
    int on, inpaint;
    int t_start;          /* first kept schedule index (diffusers get_timesteps) */
    uint8_t *orig;        /* fitted init image [H, W, 3] (for the mask-blur overlay) */
    float *x0;            /* image_latents [16, h, w]: the VAE posterior sample in DiT space */
    float *noise;         /* the generator's second draw [16, h, w] */
    float *mask;          /* inpainting: latent mask [h, w], 1 = repaint */
    float *alpha;         /* mask blur > 0: blurred pixel mask [H, W] */
} imgcond;

static void imgcond_free(imgcond *ic) {
    free(ic->orig);
    free(ic->x0);
    free(ic->noise);
    free(ic->mask);
    free(ic->alpha);
}

static void hook_tensor(const zi_pipeline_hooks *h, const char *name, const float *d, int64_t n) {
    if (h && h->on_tensor) h->on_tensor(h->user, name, d, n);
}

/* diffusers prepare_latents (+ inpaint mask): fit, encode, sample the posterior with the
 * generator's first draw, draw the noise second. z receives scale_noise at sig[t_start]. */
static int imgcond_prepare(zimage_model *m, const zimage_params *p, int W, int H, int steps, const float *sig,
                           zi_rng *rng, float *z, imgcond *ic, const zi_pipeline_hooks *h) {
    const int lh = H / 8, lw = W / 8;
    const int64_t n = (int64_t)ZI_LATENT_CHANNELS * lh * lw;
    const zimage_image *im = p->init_image;
    ic->on = 1;
    ic->inpaint = p->mask != NULL;
    double strength = p->strength < 0 ? (ic->inpaint ? 1.0 : 0.6) : p->strength;
    ic->t_start = zi_imgcond_t_start(steps, strength);
    int rc = -1;
    float *img = NULL, *moments = NULL, *eps = NULL;
    uint8_t *mfit = NULL, *bin = NULL;
    if (zi_imgcond_fit(im->rgb, im->width, im->height, 3, W, H, &ic->orig)) goto out;
    img = zi_malloc(sizeof(float) * 3 * (size_t)W * H);
    moments = zi_malloc(sizeof(float) * 2 * (size_t)n);
    eps = zi_malloc(sizeof(float) * (size_t)n);
    ic->x0 = zi_malloc(sizeof(float) * (size_t)n);
    ic->noise = zi_malloc(sizeof(float) * (size_t)n);
    if (!img || !moments || !eps || !ic->x0 || !ic->noise) goto out;
    zi_imgcond_to_float(ic->orig, W, H, img);
    kn_set_precision(m->vae_precision);
    int bad = zi_vae_encode(m->vae, img, H, W, moments);
    kn_set_precision(m->precision);
    if (bad) goto out;
    hook_tensor(h, "moments", moments, 2 * n);
    zi_rng_randn(rng, eps, n); /* first draw: latent_dist.sample(generator) */
    hook_tensor(h, "posterior_eps", eps, n);
    zi_imgcond_posterior(moments, eps, n, m->vae->cfg.shift, m->vae->cfg.scaling, ic->x0);
    hook_tensor(h, "image_latents", ic->x0, n);
    zi_rng_randn(rng, ic->noise, n); /* second draw: the noise */
    hook_tensor(h, "noise", ic->noise, n);
    zi_imgcond_scale_noise(ic->x0, ic->noise, sig[ic->t_start], n, z);
    hook_tensor(h, "latents_init", z, n);
    if (ic->inpaint) {
        /* diffusers also encodes the masked image with a third draw; its latents are never used */
        bin = zi_malloc((size_t)W * H);
        ic->mask = zi_malloc(sizeof(float) * (size_t)lh * lw);
        if (!bin || !ic->mask) goto out;
        if (zi_imgcond_fit(p->mask->rgb, p->mask->width, p->mask->height, 3, W, H, &mfit)) goto out;
        zi_imgcond_mask_binarize(mfit, W, H, bin);
        zi_imgcond_mask_latent(bin, W, H, ic->mask);
        hook_tensor(h, "mask_latent", ic->mask, (int64_t)lh * lw);
        if (p->mask_blur > 0) {
            ic->alpha = zi_malloc(sizeof(float) * (size_t)W * H);
            if (!ic->alpha || zi_imgcond_mask_blur(bin, W, H, p->mask_blur, ic->alpha)) goto out;
        }
    }
    rc = 0;
out:
    free(img);
    free(moments);
    free(eps);
    free(mfit);
    free(bin);
    return rc;
}

/* Preview after a step: x0 = z_after + sigma_next u (= x_t + sigma_t u before the step), then the
 * linear projection (1/8 size) or the real VAE decode. */
static int preview_emit(zimage_model *m, const zimage_params *p, const float *z, const float *u, float sigma_next,
                        int64_t n, int lh, int lw, int step, int total, zimage_image *out) {
    double t0 = now_s();
    int rc = -1, cancel = 0;
    float *x0 = zi_malloc(sizeof(float) * (size_t)n), *img = NULL;
    zimage_image pv;
    memset(&pv, 0, sizeof pv);
    if (!x0) return -1;
    for (int64_t k = 0; k < n; k++) x0[k] = z[k] + sigma_next * u[k];
    if (p->preview_vae) {
        pv.width = lw * 8, pv.height = lh * 8;
        img = zi_malloc(sizeof(float) * 3 * (size_t)pv.width * pv.height);
        pv.rgb = zi_malloc((size_t)3 * pv.width * pv.height);
        kn_set_precision(m->vae_precision);
        int bad = !img || !pv.rgb || zi_vae_decode(m->vae, x0, lh, lw, img);
        kn_set_precision(m->precision); /* back to the DiT's for the next steps */
        if (bad) goto out;
        zi_vae_to_u8(img, pv.height, pv.width, pv.rgb);
    } else {
        pv.width = lw, pv.height = lh;
        pv.rgb = zi_malloc((size_t)3 * lw * lh);
        if (!pv.rgb) goto out;
        zi_preview_linear(x0, lh, lw, pv.rgb);
    }
    pv.steps = total;
    pv.seed = out->seed;
    pv.guidance = out->guidance;
    out->timings.preview += now_s() - t0;
    out->timings.n_previews++;
    cancel = p->preview(p->preview_user, step, total, &pv);
    rc = cancel ? 1 : 0;
out:
    free(x0);
    free(img);
    free(pv.rgb);
    return rc;
}

/* Inpainting after step i: keep the generated latents inside the mask, the original
 * noised to the next sigma (clean after the last step) outside. */
static void imgcond_blend(const imgcond *ic, float *z, int64_t n, int hw, float sigma_next, int last) {
    for (int64_t k = 0; k < n; k++) {
        float m = ic->mask[k % hw];
        float proper = last ? ic->x0[k] : sigma_next * ic->noise[k] + (1.0f - sigma_next) * ic->x0[k];
        z[k] = (1.0f - m) * proper + m * z[k];
    }
}

int zi_pipeline_generate(zimage_model *m, const zimage_params *user_p, zimage_image *out, const zi_pipeline_hooks *h) {
    memset(out, 0, sizeof *out);
    zimage_params pn;
    if (zi_pipeline_params(&pn, user_p)) return -1;
    const zimage_params *p = &pn;
    if (zimage_validate(m, p)) return -1;
    kn_set_threads(m->n_threads); /* kernel settings belong to the calling thread */
    kn_set_isa(m->isa);
    kn_set_precision(m->precision);
    int W, H, steps;
    float g;
    resolve_params(m, p, &W, &H, &steps, &g);
    const int lh = H / 8, lw = W / 8;
    const int64_t n = (int64_t)ZI_LATENT_CHANNELS * lh * lw;
    const int cfg = g > 1.0f; /* official pipeline: CFG only when guidance > 1 */
    double t0 = now_s();
    int rc = -1;
    float *pos = NULL, *neg = NULL, *z = NULL, *u = NULL, *un = NULL, *guided = NULL, *sig = NULL, *img = NULL;
    imgcond ic = {0};
    int n_pos = 0, n_neg = 0, dim = 0;
    uint64_t seed = p->seed == ZIMAGE_SEED_RANDOM ? zi_seed_random() : p->seed;
    if (seed == ZIMAGE_SEED_RANDOM) seed = 0;
    out->seed = seed;
    out->steps = steps;
    out->guidance = g;

    /* 1. text -> caption features (encoder loaded and released inside) */
    if (report(p, ZIMAGE_STAGE_TEXT, 0, steps, 0)) goto cancelled;
    if (zi_pipeline_encode_prompt(m->tok, m->text_encoder_path, m->te_loras, m->n_te_loras, p->prompt, p->max_sequence_length, &pos, &n_pos, &dim,
                                  h, 0))
        goto done;
    out->prompt_tokens = n_pos;
    out->prompt_truncated = n_pos > p->max_sequence_length;
    if (n_pos > p->max_sequence_length) n_pos = p->max_sequence_length;
    if (cfg && zi_pipeline_encode_prompt(m->tok, m->text_encoder_path, m->te_loras, m->n_te_loras, p->negative_prompt ? p->negative_prompt : "",
                                         p->max_sequence_length, &neg, &n_neg, &dim, h, 1))
        goto done;
    if (n_neg > p->max_sequence_length) n_neg = p->max_sequence_length;
    out->timings.text = now_s() - t0;
    kn_scratch_trim(); /* the text encoder's scratch is not needed by the DiT */

    /* 2. initial latents (noise, or the noised init image) and schedule */
    z = zi_malloc((size_t)n * sizeof(float));
    u = zi_malloc((size_t)n * sizeof(float));
    un = cfg ? zi_malloc((size_t)n * sizeof(float)) : NULL;
    guided = cfg ? zi_malloc((size_t)n * sizeof(float)) : NULL;
    sig = zi_malloc((size_t)(steps + 1) * sizeof(float));
    if (!z || !u || !sig || (cfg && (!un || !guided))) goto done;
    if (zi_sched_sigmas_for_image(&m->sched, steps, (int64_t)(H / 16) * (W / 16), sig)) goto done;
    if (h && h->on_sigmas) h->on_sigmas(h->user, sig, steps);
    zi_rng rng;
    zi_rng_seed(&rng, seed);
    int first = 0; /* first schedule index run */
    if (p->init_image) {
        if (imgcond_prepare(m, p, W, H, steps, sig, &rng, z, &ic, h)) goto done;
        first = ic.t_start;
    } else {
        zi_rng_randn(&rng, z, n);
        if (h && h->on_noise) h->on_noise(h->user, z, n);
    }
    const int run = steps - first; /* steps actually run (out->steps keeps the schedule length) */

    /* 3. denoising loop: flow-matching Euler on -u */
    double td = now_s();
    if (report(p, ZIMAGE_STAGE_DENOISE, 0, run, 0)) goto cancelled;
    for (int k = 0; k < run; k++) {
        const int i = first + k;
        double ts = now_s();
        float t_model = zi_sched_t_model(sig[i]);
        if (zi_dit_forward(m->dit, z, lh, lw, t_model, pos, n_pos, u, NULL, NULL)) {
            zi_err_ctx("denoising step %d of %d", k + 1, run);
            goto done;
        }
        int cfg_now = cfg && !(p->cfg_truncation <= 1.0f && t_model > p->cfg_truncation);
        const float *pred = u;
        if (cfg_now) {
            if (zi_dit_forward(m->dit, z, lh, lw, t_model, neg, n_neg, un, NULL, NULL)) {
                zi_err_ctx("denoising step %d of %d (negative prompt)", k + 1, run);
                goto done;
            }
            float *np = guided; /* u_pos + g (u_pos - u_neg); u and un stay intact for the hooks */
            for (int64_t q = 0; q < n; q++) np[q] = u[q] + g * (u[q] - un[q]);
            if (p->cfg_normalization) {
                double npos = vec_norm(u, n), nnew = vec_norm(np, n), kf = 1.0;
                if (nnew > kf * npos) {
                    float s = (float)(kf * npos / nnew);
                    for (int64_t q = 0; q < n; q++) np[q] *= s;
                }
            }
            pred = np;
        }
        zi_sched_euler_step(z, pred, n, sig[i], sig[i + 1]);
        if (ic.inpaint) imgcond_blend(&ic, z, n, lh * lw, sig[i + 1], i == steps - 1);
        if (h && h->on_step) h->on_step(h->user, k, t_model, u, cfg_now ? un : NULL, cfg_now ? pred : NULL, z, n);
        int every = p->preview_every > 0 ? p->preview_every : 1;
        if (p->preview && ((k + 1) % every == 0 || k == run - 1)) {
            int pr = preview_emit(m, p, z, pred, sig[i + 1], n, lh, lw, k + 1, run, out);
            if (pr < 0) goto done;
            if (pr > 0) goto cancelled;
        }
        double dt = now_s() - ts;
        if (k < (int)(sizeof out->timings.step / sizeof out->timings.step[0])) out->timings.step[k] = dt;
        if (report(p, ZIMAGE_STAGE_DENOISE, k + 1, run, dt)) goto cancelled;
    }
    out->timings.denoise = now_s() - td;
    if (h && h->on_latents) h->on_latents(h->user, z, n);

    /* 4. VAE decode -> uint8 RGB (+ the original pasted back outside a blurred mask) */
    double tv = now_s();
    if (report(p, ZIMAGE_STAGE_DECODE, run, run, 0)) goto cancelled;
    img = zi_malloc((size_t)3 * W * H * sizeof(float));
    out->rgb = zi_malloc((size_t)3 * W * H);
    if (!img || !out->rgb) goto done;
    kn_set_precision(m->vae_precision);
    if (m->low_memory) zi_dit_release_pages(m->dit); /* peak = max(DiT, VAE), not their sum */
    if (zi_vae_decode(m->vae, z, lh, lw, img)) goto done;
    if (h && h->on_image) h->on_image(h->user, img, H, W);
    zi_vae_to_u8(img, H, W, out->rgb);
    if (ic.alpha) zi_imgcond_overlay(ic.orig, ic.alpha, W, H, out->rgb);
    out->width = W;
    out->height = H;
    out->timings.decode = now_s() - tv;
    out->timings.total = now_s() - t0;
    report(p, ZIMAGE_STAGE_DONE, run, run, out->timings.total);
    rc = 0;
    goto done;
cancelled:
    zi_err("cancelled");
done:
    if (rc) {
        free(out->rgb);
        out->rgb = NULL;
    }
    imgcond_free(&ic);
    free(pos);
    free(neg);
    free(z);
    free(u);
    free(un);
    free(guided);
    free(sig);
    free(img);
    return rc;
}

int zimage_generate(zimage_model *m, const zimage_params *p, zimage_image *out) {
    return zi_pipeline_generate(m, p, out, NULL);
}

void zimage_image_free(zimage_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
}

int zimage_image_load(const char *path, zimage_image *img) {
    memset(img, 0, sizeof *img);
    if (!path) return zi_err("no image path given");
    return zi_image_read(path, &img->rgb, &img->width, &img->height);
}

int zimage_image_decode(const void *data, size_t len, int max_side, int flags, zimage_image *img) {
    memset(img, 0, sizeof *img);
    if (!data && len) return zi_err("no image data given");
    if (flags & ~ZIMAGE_DECODE_ALPHA_MASK) return zi_err("zimage_image_decode: unknown flags 0x%x", (unsigned)flags);
    return zi_image_decode(data, len, "image", max_side, flags & ZIMAGE_DECODE_ALPHA_MASK ? ZI_PNG_ALPHA_MASK : 0,
                           &img->rgb, &img->width, &img->height);
}

/* The PNG of an image with its metadata (A1111-style "parameters" plus one text chunk per
 * setting) written to `path` (path != NULL) or into a new buffer *out / *len. */
static int png_with_metadata(const zimage_image *img, const zimage_params *user_p, const char *model_name,
                             const char *path, uint8_t **out, size_t *len) {
    if (!img || !img->rgb) return zi_err("no image to save");
    zimage_params pn;
    if (user_p && zi_pipeline_params(&pn, user_p)) return -1;
    const zimage_params *p = user_p ? &pn : NULL;
    const char *neg = p && p->negative_prompt ? p->negative_prompt : "";
    const char *prompt = p && p->prompt ? p->prompt : "";
    size_t cap = strlen(prompt) + strlen(neg) + 1024;
    char *params = zi_malloc(cap);
    if (!params) return -1;
    /* A1111-style "parameters": prompt, optional negative line, then key: value list */
    size_t o = (size_t)snprintf(params, cap, "%s\n", prompt);
    if (neg[0]) o += (size_t)snprintf(params + o, cap - o, "Negative prompt: %s\n", neg);
    snprintf(params + o, cap - o, "Steps: %d, Sampler: Euler (flow matching), CFG scale: %g, Seed: %llu, Size: %dx%d, Model: %s, Version: zimage %s",
             img->steps, (double)img->guidance, (unsigned long long)img->seed, img->width, img->height,
             model_name ? model_name : "Z-Image", ZIMAGE_VERSION);
    char seed[32], steps[16], guid[32], size[64];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)img->seed);
    snprintf(steps, sizeof steps, "%d", img->steps);
    snprintf(guid, sizeof guid, "%g", (double)img->guidance);
    snprintf(size, sizeof size, "%dx%d", img->width, img->height);
    const char *kv[] = {"parameters", params, "prompt", prompt, "negative_prompt", neg, "seed", seed, "steps", steps,
                        "guidance", guid, "size", size, "model", model_name ? model_name : "Z-Image", "Software",
                        "zimage " ZIMAGE_VERSION, NULL};
    int rc = path ? zi_png_write(path, img->rgb, img->width, img->height, kv)
                  : zi_png_encode(img->rgb, img->width, img->height, kv, out, len);
    free(params);
    return rc;
}

int zimage_save_png(const zimage_image *img, const char *path, const zimage_params *p, const char *model_name) {
    if (!path) return zi_err("PNG write: no output path");
    return png_with_metadata(img, p, model_name, path, NULL, NULL);
}

int zimage_png_encode(const zimage_image *img, const zimage_params *p, const char *model_name, uint8_t **png,
                      size_t *len) {
    if (!png || !len) return zi_err("zimage_png_encode: NULL output");
    *png = NULL;
    *len = 0;
    return png_with_metadata(img, p, model_name, NULL, png, len);
}
