/* golden_vae_decode.c - golden cases of kind "vae_decode": DiT-space latents ->
 * decoder -> float image and uint8 RGB, for each VAE variant the manifest lists, plus
 * the decoder input z and the <variant>/inter/decoder.* intermediates where present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/vae/vae.h"
#include "golden.h"

static double VAE_ATOL = 1e-4, VAE_RTOL = 1e-4;

typedef struct {
    golden_case *c;
    const char *variant;
    int first; /* z is variant-independent: checked with the first variant */
} vae_dump_ctx;

static void vae_dump_check(void *user, const char *name, const float *data, int ch, int h, int w) {
    vae_dump_ctx *d = user;
    char key[256];
    int64_t n = (int64_t)ch * h * w;
    if (!strcmp(name, "z")) { /* z = latents/scaling + shift, float32 */
        if (d->first) golden_check(d->c, "z", data, n, 1e-6, 1e-6);
        return;
    }
    snprintf(key, sizeof key, "%s/inter/%s", d->variant, name);
    if (!golden_find(d->c, key)) return; /* goldens never reached are leftovers */
    golden_check(d->c, key, data, n, VAE_ATOL, VAE_RTOL);
}

int golden_run_vae_decode(golden_case *c) {
    golden_tol(c, &VAE_ATOL, &VAE_RTOL);
    const zi_tensor *lt = golden_input(c, "latents");
    if (!lt || lt->ndim != 4 || lt->shape[0] != 1) return golden_fail(c, "latents", "missing or not [1, C, h, w]");
    if (c->n_variants == 0) return golden_fail(c, "models", "the manifest lists no weight variant");
    int C = (int)lt->shape[1], h = (int)lt->shape[2], w = (int)lt->shape[3];
    float *lat = golden_f32(c, "latents", NULL);
    if (!lat) return golden_fail(c, "latents", "%s", zi_last_error());
    for (int vi = 0; vi < c->n_variants; vi++) {
        const char *var = c->variants[vi];
        char dir[4096], key[64];
        zi_vae *v;
        if (golden_model_path(c, var, dir, sizeof dir) || zi_vae_load(&v, dir)) {
            golden_fail(c, var, "%s", zi_last_error());
            continue;
        }
        int f = 1 << (v->cfg.n_levels - 1), H = f * h, W = f * w, oc = v->cfg.out_channels;
        if (C != v->cfg.latent_channels || oc != 3) {
            golden_fail(c, var, "latents have %d channels, VAE wants %d", C, v->cfg.latent_channels);
            zi_vae_free(v);
            continue;
        }
        float *img = malloc(sizeof(float) * (size_t)oc * H * W);
        uint8_t *u8 = malloc((size_t)H * W * 3);
        vae_dump_ctx d = {c, var, vi == 0};
        if (!img || !u8) {
            golden_fail(c, var, "out of memory");
        } else if (zi_vae_decode_ex(v, lat, h, w, img, vae_dump_check, &d)) {
            golden_fail(c, var, "decode: %s", zi_last_error());
        } else {
            snprintf(key, sizeof key, "%s/image", var);
            golden_check(c, key, img, (int64_t)oc * H * W, VAE_ATOL, VAE_RTOL);
            zi_vae_to_u8(img, H, W, u8);
            snprintf(key, sizeof key, "%s/image_u8", var);
            golden_check_u8(c, key, u8, (int64_t)H * W * 3, 1, 0.005);
        }
        free(img);
        free(u8);
        zi_vae_free(v);
    }
    free(lat);
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
