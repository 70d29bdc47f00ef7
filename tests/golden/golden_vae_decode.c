/* golden_vae_decode.c - golden cases of kind "vae_decode": DiT-space latents ->
 * decoder -> float image and uint8 RGB, for the f32 and bf16 tiny VAEs, plus the
 * decoder input z and the f32/inter/decoder.* intermediates where present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/vae/vae.h"
#include "golden.h"

static double VAE_ATOL = 1e-4, VAE_RTOL = 1e-4;

typedef struct {
    golden_case *c;
    int inter; /* compare f32/inter/ tensors */
} vae_dump_ctx;

static void vae_dump_check(void *user, const char *name, const float *data, int ch, int h, int w) {
    vae_dump_ctx *d = user;
    char key[256];
    int64_t n = (int64_t)ch * h * w;
    if (!strcmp(name, "z")) { /* z = latents/scaling + shift, float32 */
        golden_check(d->c, "z", data, n, 1e-6, 1e-6);
        return;
    }
    if (!d->inter) return;
    snprintf(key, sizeof key, "f32/inter/%s", name);
    if (!zi_st_find(&d->c->st, key)) return;
    golden_check(d->c, key, data, n, VAE_ATOL, VAE_RTOL);
}

int golden_run_vae_decode(golden_case *c) {
    const zi_tensor *lt = golden_tensor(c, "latents");
    if (!lt || lt->ndim != 4) return GOLDEN_FAIL;
    int C = (int)lt->shape[1], h = (int)lt->shape[2], w = (int)lt->shape[3];
    float *lat = golden_f32(c, "latents", NULL);
    if (!lat) return GOLDEN_FAIL;
    const char *variants[2] = {"f32", "bf16"};
    int rc = GOLDEN_PASS;
    for (int vi = 0; vi < 2 && rc == GOLDEN_PASS; vi++) {
        char dir[4096], key[64];
        if (golden_model_path(c, variants[vi], dir, sizeof dir)) {
            rc = GOLDEN_FAIL;
            break;
        }
        zi_vae *v;
        if (zi_vae_load(&v, dir)) {
            rc = GOLDEN_FAIL;
            break;
        }
        int f = 1 << (v->cfg.n_levels - 1), H = f * h, W = f * w, oc = v->cfg.out_channels;
        if (C != v->cfg.latent_channels || oc != 3) {
            zi_vae_free(v);
            zi_err("latents have %d channels, VAE wants %d", C, v->cfg.latent_channels);
            rc = GOLDEN_FAIL;
            break;
        }
        float *img = malloc(sizeof(float) * (size_t)oc * H * W);
        uint8_t *u8 = malloc((size_t)H * W * 3);
        vae_dump_ctx d = {c, vi == 0};
        if (zi_vae_decode_ex(v, lat, h, w, img, vae_dump_check, &d)) {
            rc = GOLDEN_FAIL;
        } else {
            snprintf(key, sizeof key, "%s/image", variants[vi]);
            golden_check(c, key, img, (int64_t)oc * H * W, VAE_ATOL, VAE_RTOL);
            zi_vae_to_u8(img, H, W, u8);
            snprintf(key, sizeof key, "%s/image_u8", variants[vi]);
            golden_check_u8(c, key, u8, (int64_t)H * W * 3, 1, 0.005);
        }
        free(img);
        free(u8);
        zi_vae_free(v);
    }
    free(lat);
    return rc;
}
