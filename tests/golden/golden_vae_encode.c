/* golden_vae_encode.c - golden cases of kind "vae_encode": image in [-1, 1] ->
 * encoder moments (mean | logvar) and DiT-space latents_mode, for the f32 and
 * bf16 tiny VAEs; also checks image = u8/255*2-1 against image_u8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/vae/vae.h"
#include "golden.h"

int golden_run_vae_encode(golden_case *c) {
    double atol = 1e-4, rtol = 1e-4;
    golden_tol(c, &atol, &rtol);
    const zi_tensor *it = golden_tensor(c, "image"), *ut = golden_tensor(c, "image_u8");
    if (!it || !ut || it->ndim != 4 || ut->numel != it->numel || ut->dtype != ZI_U8) return GOLDEN_FAIL;
    int Cin = (int)it->shape[1], H = (int)it->shape[2], W = (int)it->shape[3];
    float *img = golden_f32(c, "image", NULL);
    if (!img) return GOLDEN_FAIL;

    /* [H, W, 3] uint8 -> [3, H, W] float32 u8/255*2-1 */
    float *conv = malloc(sizeof(float) * (size_t)it->numel);
    const uint8_t *u8 = ut->data;
    for (int p = 0; p < H * W; p++)
        for (int ch = 0; ch < Cin; ch++) conv[(size_t)ch * H * W + p] = (float)u8[p * Cin + ch] / 255.0f * 2.0f - 1.0f;
    golden_check(c, "image", conv, it->numel, 0, 0);
    free(conv);

    const char *variants[2] = {"f32", "bf16"};
    int rc = GOLDEN_PASS;
    for (int vi = 0; vi < 2 && rc == GOLDEN_PASS; vi++) {
        char dir[4096], key[64];
        zi_vae *v;
        /* f32: decoder-only load, encoder built lazily; bf16: encoder only, eagerly */
        if (golden_model_path(c, variants[vi], dir, sizeof dir) ||
            (vi == 0 ? zi_vae_load(&v, dir) : zi_vae_load_ex(&v, dir, ZI_VAE_ENCODER))) {
            rc = GOLDEN_FAIL;
            break;
        }
        int f = 1 << (v->cfg.n_levels - 1), h = H / f, w = W / f, lc = v->cfg.latent_channels;
        int64_t n = (int64_t)lc * h * w;
        float *mom = malloc(sizeof(float) * (size_t)(2 * n)), *lat = malloc(sizeof(float) * (size_t)n);
        float *logvar = malloc(sizeof(float) * (size_t)n);
        if (zi_vae_encode(v, img, H, W, mom)) {
            rc = GOLDEN_FAIL;
        } else {
            snprintf(key, sizeof key, "%s/moments", variants[vi]);
            golden_check(c, key, mom, 2 * n, atol, rtol);
            snprintf(key, sizeof key, "%s/mean", variants[vi]);
            golden_check(c, key, mom, n, atol, rtol);
            for (int64_t i = 0; i < n; i++) { /* diffusers clamps logvar to [-30, 20] */
                float lv = mom[n + i];
                logvar[i] = lv < -30.0f ? -30.0f : (lv > 20.0f ? 20.0f : lv);
            }
            snprintf(key, sizeof key, "%s/logvar", variants[vi]);
            golden_check(c, key, logvar, n, atol, rtol);
            zi_vae_latents_mode(v, mom, h, w, lat);
            snprintf(key, sizeof key, "%s/latents_mode", variants[vi]);
            golden_check(c, key, lat, n, atol, rtol);
        }
        free(mom);
        free(lat);
        free(logvar);
        zi_vae_free(v);
    }
    free(img);
    return rc;
}
