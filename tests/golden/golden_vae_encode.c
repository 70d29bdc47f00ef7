/* golden_vae_encode.c - golden cases of kind "vae_encode": image in [-1, 1] ->
 * encoder moments (mean | logvar) and DiT-space latents_mode, for each VAE variant
 * the manifest lists; also checks image = u8/255*2-1 against image_u8. The first
 * variant is loaded decoder-only (encoder built on first use), the others
 * encoder-only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/vae/vae.h"
#include "golden.h"

int golden_run_vae_encode(golden_case *c) {
    double atol = 1e-4, rtol = 1e-4;
    golden_tol(c, &atol, &rtol);
    const zi_tensor *it = golden_input(c, "image"), *ut = golden_tensor(c, "image_u8");
    if (!it || !ut || it->ndim != 4 || it->shape[0] != 1 || ut->numel != it->numel || ut->dtype != ZI_U8)
        return golden_fail(c, "image, image_u8", "missing or not [1, 3, H, W] and U8 of the same size");
    if (c->n_variants == 0) return golden_fail(c, "models", "the manifest lists no weight variant");
    int Cin = (int)it->shape[1], H = (int)it->shape[2], W = (int)it->shape[3];
    float *img = golden_f32(c, "image", NULL);
    if (!img) return golden_fail(c, "image", "%s", zi_last_error());

    /* [H, W, 3] uint8 -> [3, H, W] float32 u8/255*2-1 */
    float *conv = malloc(sizeof(float) * (size_t)it->numel);
    if (!conv) {
        free(img);
        return golden_fail(c, "image", "out of memory");
    }
    const uint8_t *u8 = ut->data;
    for (int p = 0; p < H * W; p++)
        for (int ch = 0; ch < Cin; ch++) conv[(size_t)ch * H * W + p] = (float)u8[p * Cin + ch] / 255.0f * 2.0f - 1.0f;
    golden_check(c, "image", conv, it->numel, 0, 0);
    free(conv);

    for (int vi = 0; vi < c->n_variants; vi++) {
        const char *var = c->variants[vi];
        char dir[4096], key[64];
        zi_vae *v;
        /* first: decoder-only load, encoder built on first use; others: encoder only */
        if (golden_model_path(c, var, dir, sizeof dir) ||
            (vi == 0 ? zi_vae_load(&v, dir) : zi_vae_load_ex(&v, dir, ZI_VAE_ENCODER))) {
            golden_fail(c, var, "%s", zi_last_error());
            continue;
        }
        int f = 1 << (v->cfg.n_levels - 1), h = H / f, w = W / f, lc = v->cfg.latent_channels;
        int64_t n = (int64_t)lc * h * w;
        float *mom = malloc(sizeof(float) * (size_t)(2 * n)), *lat = malloc(sizeof(float) * (size_t)n);
        float *logvar = malloc(sizeof(float) * (size_t)n);
        if (!mom || !lat || !logvar) {
            golden_fail(c, var, "out of memory");
        } else if (zi_vae_encode(v, img, H, W, mom)) {
            golden_fail(c, var, "encode: %s", zi_last_error());
        } else {
            snprintf(key, sizeof key, "%s/moments", var);
            golden_check(c, key, mom, 2 * n, atol, rtol);
            snprintf(key, sizeof key, "%s/mean", var);
            golden_check(c, key, mom, n, atol, rtol);
            for (int64_t i = 0; i < n; i++) { /* diffusers clamps logvar to [-30, 20] */
                float lv = mom[n + i];
                logvar[i] = lv < -30.0f ? -30.0f : (lv > 20.0f ? 20.0f : lv);
            }
            snprintf(key, sizeof key, "%s/logvar", var);
            golden_check(c, key, logvar, n, atol, rtol);
            zi_vae_latents_mode(v, mom, h, w, lat);
            snprintf(key, sizeof key, "%s/latents_mode", var);
            golden_check(c, key, lat, n, atol, rtol);
        }
        free(mom);
        free(lat);
        free(logvar);
        zi_vae_free(v);
    }
    free(img);
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
