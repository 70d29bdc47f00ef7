/* unit_imgcond.c - img2img / inpainting invariants on the tiny model, the JPEG
 * reader against PIL's decode, the image fit rule and the mask helpers.
 *   strength 1.0: the init image has no influence (two different images, same output);
 *   small strength: the output stays close to the VAE round trip of the input;
 *   all-white mask = img2img; all-black mask = the posterior sample decoded (final
 *   latents are the image latents), and with mask blur the original pixels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/io/image.h"
#include "../../src/io/jpeg.h"
#include "../../src/io/png.h"
#include "../../src/pipeline/imgcond.h"
#include "../../src/pipeline/pipeline.h"
#include "unit.h"

typedef struct {
    float *final_lat, *x0;
    int64_t n;
} ic_obs;

static void obs_tensor(void *u, const char *name, const float *d, int64_t n) {
    ic_obs *o = u;
    if (!strcmp(name, "image_latents")) {
        free(o->x0);
        o->x0 = malloc(sizeof(float) * (size_t)n);
        memcpy(o->x0, d, sizeof(float) * (size_t)n);
    }
}
static void obs_latents(void *u, const float *d, int64_t n) {
    ic_obs *o = u;
    free(o->final_lat);
    o->final_lat = malloc(sizeof(float) * (size_t)n);
    memcpy(o->final_lat, d, sizeof(float) * (size_t)n);
    o->n = n;
}

static int gen_n(zimage_model *m, const zimage_image *init, const zimage_image *mask, double strength, float blur,
                 int steps, zimage_image *out, ic_obs *o) {
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox";
    p.seed = 5;
    p.steps = steps;
    p.init_image = init;
    p.mask = mask;
    p.strength = strength;
    p.mask_blur = blur;
    zi_pipeline_hooks h = {.user = o, .on_latents = obs_latents, .on_tensor = obs_tensor};
    int rc = zi_pipeline_generate(m, &p, out, &h);
    if (rc) printf("  generate: %s\n", zimage_last_error());
    return rc;
}

static int gen(zimage_model *m, const zimage_image *init, const zimage_image *mask, double strength, float blur,
               zimage_image *out, ic_obs *o) {
    return gen_n(m, init, mask, strength, blur, 8, out, o);
}

static double mean_abs_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return s / (double)n;
}

static zimage_image solid(int w, int h, uint8_t v) {
    zimage_image im = {0};
    im.width = w, im.height = h;
    im.rgb = malloc((size_t)w * h * 3);
    memset(im.rgb, v, (size_t)w * h * 3);
    return im;
}

static void unit_imgcond_pipeline(const char *fixtures) {
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/tiny-zimage", fixtures);
    zimage_load_params lp = zimage_load_params_default();
    lp.model_dir = dir;
    zimage_model *m;
    if (zimage_load(&m, &lp)) {
        UNIT_CHECK(0, "load: %s", zimage_last_error());
        return;
    }
    zimage_image a, b;
    snprintf(path, sizeof path, "%s/imgcond/init_64x64.png", fixtures);
    UNIT_CHECK(zimage_image_load(path, &a) == 0, "load init: %s", zimage_last_error());
    snprintf(path, sizeof path, "%s/imgcond/init_64x64.jpg", fixtures);
    UNIT_CHECK(zimage_image_load(path, &b) == 0, "load jpg: %s", zimage_last_error());
    /* make b clearly different: invert it */
    for (int i = 0; i < 64 * 64 * 3; i++) b.rgb[i] = (uint8_t)(255 - b.rgb[i]);
    const size_t NB = 64 * 64 * 3;
    ic_obs o = {0};

    /* strength 1.0: the init image has no influence */
    zimage_image r1, r2;
    gen(m, &a, NULL, 1.0, 0, &r1, &o);
    gen(m, &b, NULL, 1.0, 0, &r2, &o);
    UNIT_CHECK(r1.rgb && r2.rgb && memcmp(r1.rgb, r2.rgb, NB) == 0, "strength 1.0: init image changed the output");

    /* small strength stays close to the VAE round trip of the input: decode(image_latents) */
    zimage_image small;
    gen_n(m, &a, NULL, 0.02, 0, 50, &small, &o); /* one step from sigma 0.058 (t_start 49 of 50) */
    float *img = malloc(sizeof(float) * NB);
    uint8_t *rt = malloc(NB);
    zi_vae_decode(m->vae, o.x0, 8, 8, img);
    zi_vae_to_u8(img, 64, 64, rt);
    double d_small = mean_abs_u8(small.rgb, rt, NB), d_full = mean_abs_u8(r1.rgb, rt, NB);
    printf("  img2img: mean |out - VAE round trip|: strength 0.02 %.2f, strength 1.0 %.2f\n", d_small, d_full);
    UNIT_CHECK(d_small < 0.5 * d_full, "strength 0.02 not close to the round trip: %.2f vs %.2f", d_small, d_full);

    /* inpainting with an all-white mask equals img2img at the same strength */
    zimage_image white = solid(64, 64, 255), black = solid(64, 64, 0), i2i, inp;
    gen(m, &a, NULL, 0.6, 0, &i2i, &o);
    gen(m, &a, &white, 0.6, 0, &inp, &o);
    UNIT_CHECK(i2i.rgb && inp.rgb && memcmp(i2i.rgb, inp.rgb, NB) == 0, "all-white mask differs from img2img");

    /* all-black mask: final latents are the image latents, the output their decode */
    zimage_image blk, blk_blur;
    gen(m, &a, &black, 0.6, 0, &blk, &o);
    UNIT_CHECK(o.final_lat && o.x0 && memcmp(o.final_lat, o.x0, sizeof(float) * (size_t)o.n) == 0,
               "all-black mask: final latents are not the image latents");
    zi_vae_decode(m->vae, o.x0, 8, 8, img);
    zi_vae_to_u8(img, 64, 64, rt);
    UNIT_CHECK(blk.rgb && memcmp(blk.rgb, rt, NB) == 0, "all-black mask: output is not the decoded image latents");
    /* ... and with a mask blur the original is pasted back: exactly the input */
    gen(m, &a, &black, 0.6, 4, &blk_blur, &o);
    UNIT_CHECK(blk_blur.rgb && memcmp(blk_blur.rgb, a.rgb, NB) == 0, "all-black mask + blur: not the original");

    /* bad inputs */
    zimage_params p = zimage_params_default();
    p.prompt = "x";
    p.init_image = &a;
    p.strength = 0;
    UNIT_CHECK(zimage_validate(m, &p) != 0 && strstr(zimage_last_error(), "strength"), "strength 0 accepted");
    p.strength = 1.5;
    UNIT_CHECK(zimage_validate(m, &p) != 0, "strength 1.5 accepted");
    p.strength = 1e-300;
    UNIT_CHECK(zimage_validate(m, &p) != 0 && strstr(zimage_last_error(), "no step"), "tiny strength: %s",
               zimage_last_error());
    p.strength = 0.5;
    zimage_image wrong = solid(32, 64, 255);
    p.mask = &wrong;
    UNIT_CHECK(zimage_validate(m, &p) != 0 && strstr(zimage_last_error(), "does not match"), "mask size: %s",
               zimage_last_error());
    p.mask = &white;
    p.init_image = NULL;
    UNIT_CHECK(zimage_validate(m, &p) != 0 && strstr(zimage_last_error(), "needs an init image"), "mask alone");

    zimage_image *all[] = {&a, &b, &r1, &r2, &small, &white, &black, &i2i, &inp, &blk, &blk_blur, &wrong};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) zimage_image_free(all[i]);
    free(img), free(rt), free(o.final_lat), free(o.x0);
    zimage_free(m);
}

static void unit_imgcond_io(const char *fixtures) {
    char path[4096], ref[4096];
    snprintf(path, sizeof path, "%s/imgcond/init_64x64.jpg", fixtures);
    snprintf(ref, sizeof ref, "%s/imgcond/init_64x64_jpg_decoded.png", fixtures);
    uint8_t *j = NULL, *r = NULL;
    int jw, jh, rw, rh;
    UNIT_CHECK(zi_image_read(path, &j, &jw, &jh) == 0, "jpeg: %s", zi_last_error());
    UNIT_CHECK(zi_png_read(ref, &r, &rw, &rh) == 0, "ref: %s", zi_last_error());
    if (j && r && jw == rw && jh == rh) {
        int maxd = 0;
        for (int i = 0; i < jw * jh * 3; i++) maxd = abs(j[i] - r[i]) > maxd ? abs(j[i] - r[i]) : maxd;
        UNIT_CHECK(maxd == 0, "JPEG decode differs from PIL's by up to %d", maxd);
    } else UNIT_CHECK(0, "jpeg size %dx%d vs %dx%d", jw, jh, rw, rh);
    free(j), free(r);
    /* bad files: truncated JPEG, garbage, empty, missing */
    FILE *f = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    char tmp[] = "/tmp/zimage-unit-jpgXXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        FILE *o = fdopen(fd, "wb");
        fwrite(buf, 1, n / 2, o);
        fclose(o);
        UNIT_CHECK(zi_image_read(tmp, &j, &jw, &jh) != 0 && strstr(zi_last_error(), "JPEG"), "truncated JPEG: %s",
                   zi_last_error());
        o = fopen(tmp, "wb");
        fputs("hello, not an image", o);
        fclose(o);
        UNIT_CHECK(zi_image_read(tmp, &j, &jw, &jh) != 0 && strstr(zi_last_error(), "not a PNG or JPEG"), "garbage: %s",
                   zi_last_error());
        o = fopen(tmp, "wb");
        fclose(o);
        UNIT_CHECK(zi_image_read(tmp, &j, &jw, &jh) != 0 && strstr(zi_last_error(), "empty"), "empty: %s",
                   zi_last_error());
        /* a JPEG header followed by garbage */
        o = fopen(tmp, "wb");
        fwrite(buf, 1, 20, o);
        for (int i = 0; i < 500; i++) fputc((i * 37) & 0xff, o);
        fclose(o);
        UNIT_CHECK(zi_image_read(tmp, &j, &jw, &jh) != 0, "corrupt JPEG accepted");
        remove(tmp);
    }
    UNIT_CHECK(zi_image_read("/nonexistent/x.jpg", &j, &jw, &jh) != 0 && strstr(zi_last_error(), "cannot open"),
               "missing file");
}

static void unit_imgcond_helpers(void) {
    /* fit: crop when at most 15 px larger; cover-resize otherwise */
    uint8_t src[20 * 18 * 3];
    for (int i = 0; i < 20 * 18 * 3; i++) src[i] = (uint8_t)(i * 7);
    uint8_t *d = NULL;
    UNIT_CHECK(zi_imgcond_fit(src, 20, 18, 3, 16, 16, &d) == 0, "fit crop");
    if (d) UNIT_CHECK(memcmp(d, src + (1 * 20 + 2) * 3, 16 * 3) == 0 && memcmp(d + 15 * 16 * 3, src + (16 * 20 + 2) * 3, 48) == 0,
                      "centered crop rows");
    free(d);
    uint8_t flat[40 * 30 * 3];
    memset(flat, 77, sizeof flat);
    UNIT_CHECK(zi_imgcond_fit(flat, 40, 30, 3, 64, 32, &d) == 0, "fit resize up");
    int same = 1;
    for (int i = 0; d && i < 64 * 32 * 3; i++) same &= d[i] == 77;
    UNIT_CHECK(d && same, "resizing a flat image must keep it flat");
    free(d);
    UNIT_CHECK(zi_imgcond_fit(flat, 40, 30, 3, 16, 16, &d) == 0, "fit resize down");
    free(d);
    /* get_timesteps: Python int(max(n - min(n*s, n), 0)) */
    UNIT_CHECK(zi_imgcond_t_start(8, 0.6) == 3 && zi_imgcond_t_start(4, 0.75) == 1 && zi_imgcond_t_start(8, 1.0) == 0 &&
                   zi_imgcond_t_start(10, 0.3) == 7 && zi_imgcond_t_start(5, 0.6) == 2,
               "t_start");
    /* binarize at L/255 >= 0.5: 127 -> 0, 128 -> 1 */
    uint8_t px[6] = {127, 127, 127, 128, 128, 128}, bin[2];
    zi_imgcond_mask_binarize(px, 2, 1, bin);
    UNIT_CHECK(bin[0] == 0 && bin[1] == 1, "binarize threshold");
}

typedef struct {
    int calls, last_step, w, h, cancel_at;
    uint8_t *last;
} pv_obs;

static int on_pv(void *u, int step, int total, const zimage_image *img) {
    pv_obs *o = u;
    (void)total;
    o->calls++;
    o->last_step = step;
    o->w = img->width, o->h = img->height;
    free(o->last);
    o->last = malloc((size_t)img->width * img->height * 3);
    memcpy(o->last, img->rgb, (size_t)img->width * img->height * 3);
    return o->cancel_at && o->calls >= o->cancel_at;
}

/* Previews: every N steps plus the last; at the last step sigma_next = 0, so the VAE preview's
 * x0 = z_final and it must equal the output image exactly; the linear preview is latent-sized;
 * a non-zero return cancels. */
static void unit_preview(const char *fixtures) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny-zimage", fixtures);
    zimage_load_params lp = zimage_load_params_default();
    lp.model_dir = dir;
    zimage_model *m;
    if (zimage_load(&m, &lp)) {
        UNIT_CHECK(0, "load: %s", zimage_last_error());
        return;
    }
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox";
    p.width = 64, p.height = 48;
    p.seed = 9;
    p.steps = 8;
    pv_obs o = {0};
    p.preview = on_pv;
    p.preview_user = &o;
    p.preview_every = 3;
    zimage_image img;
    UNIT_CHECK(zimage_generate(m, &p, &img) == 0, "preview run: %s", zimage_last_error());
    UNIT_CHECK(o.calls == 3 && o.last_step == 8 && o.w == 8 && o.h == 6 && img.timings.n_previews == 3,
               "linear previews: %d calls, last step %d, %dx%d", o.calls, o.last_step, o.w, o.h);
    zimage_image_free(&img);
    o.calls = 0;
    p.preview_vae = 1;
    p.preview_every = 0; /* every step */
    UNIT_CHECK(zimage_generate(m, &p, &img) == 0, "vae preview run: %s", zimage_last_error());
    UNIT_CHECK(o.calls == 8 && o.w == 64 && o.h == 48 && img.rgb && memcmp(o.last, img.rgb, 64 * 48 * 3) == 0,
               "VAE preview of the last step is not the output image (%d calls, %dx%d)", o.calls, o.w, o.h);
    zimage_image_free(&img);
    o.calls = 0;
    o.cancel_at = 2;
    p.preview_vae = 0;
    UNIT_CHECK(zimage_generate(m, &p, &img) != 0 && strstr(zimage_last_error(), "cancelled") && o.calls == 2,
               "preview cancel: %s", zimage_last_error());
    p.preview_every = -1;
    UNIT_CHECK(zimage_validate(m, &p) != 0, "preview_every -1 accepted");
    free(o.last);
    zimage_free(m);
}

/* low_memory drops the DiT's mapped pages before each VAE decode; the next generation faults
 * them back: every image must be bit-identical to a model that keeps them. */
static void unit_low_memory(const char *fixtures) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny-zimage", fixtures);
    zimage_model *m[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        zimage_load_params lp = zimage_load_params_default();
        lp.model_dir = dir;
        lp.low_memory = i;
        if (zimage_load(&m[i], &lp)) {
            UNIT_CHECK(0, "load (low_memory %d): %s", i, zimage_last_error());
            zimage_free(m[0]);
            return;
        }
    }
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox";
    p.width = 48, p.height = 32;
    p.seed = 3;
    p.steps = 3;
    zimage_image ref, got;
    UNIT_CHECK(zimage_generate(m[0], &p, &ref) == 0, "generate: %s", zimage_last_error());
    for (int rep = 0; rep < 2; rep++) {
        UNIT_CHECK(zimage_generate(m[1], &p, &got) == 0, "generate (low_memory): %s", zimage_last_error());
        UNIT_CHECK(ref.rgb && got.rgb && memcmp(ref.rgb, got.rgb, 48 * 32 * 3) == 0,
                   "low_memory generation %d differs from the default's", rep + 1);
        zimage_image_free(&got);
    }
    zimage_image_free(&ref);
    zimage_free(m[0]);
    zimage_free(m[1]);
}

void unit_imgcond(const char *fixtures) {
    unit_low_memory(fixtures);
    unit_preview(fixtures);
    unit_imgcond_helpers();
    unit_imgcond_io(fixtures);
    unit_imgcond_pipeline(fixtures);
}
