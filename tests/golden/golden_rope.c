/* golden_rope.c - position ids (exact) and 3-axis RoPE cos/sin tables (kind "rope"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "golden.h"

/* only the config is needed: build a zi_dit_config from config.json via a full load */
int golden_run_rope(golden_case *c) {
    char cfg_path[4096];
    if (c->n_variants != 1 || strcmp(c->variants[0], "any"))
        return golden_fail(c, "models", "a rope case names exactly one config, models.any");
    if (golden_model_path(c, "any", cfg_path, sizeof cfg_path)) return GOLDEN_FAIL;
    char *slash = strrchr(cfg_path, '/');
    if (slash) *slash = 0; /* folder of config.json */
    zi_dit *m;
    if (zi_dit_load(&m, cfg_path)) return GOLDEN_FAIL;
    long long h, w, Lc;
    if (golden_param_int(c, "latent_hw", 0, 2, 4096, &h) || golden_param_int(c, "latent_hw", 1, 2, 4096, &w) ||
        (golden_param(c, "cap_len") ? golden_param_int(c, "cap_len", -1, 1, 65536, &Lc)
                                    : golden_param_int(c, "cap_lens", 0, 1, 65536, &Lc))) {
        zi_dit_free(m);
        return GOLDEN_FAIL;
    }
    int64_t Ht = h / 2, Wt = w / 2, Limg_pad = zi_dit_pad32(Ht * Wt), Lc_pad = zi_dit_pad32(Lc), L = Limg_pad + Lc_pad;
    int half = m->cfg.head_dim / 2;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)L * 3);
    float *cs = malloc(sizeof(float) * (size_t)L * half), *sn = malloc(sizeof(float) * (size_t)L * half);
    zi_dit_positions(Ht, Wt, Lc, ids);
    zi_dit_rope_table(&m->cfg, ids, L, cs, sn);
    golden_check_i32(c, "x_pos_ids", ids, Limg_pad * 3);
    golden_check_i32(c, "cap_pos_ids", ids + Limg_pad * 3, Lc_pad * 3);
    /* pad masks: 1 where the token is padding */
    float *mask = malloc(sizeof(float) * (size_t)L);
    for (int64_t i = 0; i < L; i++) mask[i] = i < Limg_pad ? (i >= Ht * Wt) : (i - Limg_pad >= Lc);
    golden_check(c, "x_pad_mask", mask, Limg_pad, 0, 0);
    golden_check(c, "cap_pad_mask", mask + Limg_pad, Lc_pad, 0, 0);
    double atol = 1e-6, rtol = 0;
    golden_tol(c, &atol, &rtol);
    golden_check(c, "x_freqs_cos", cs, Limg_pad * half, atol, rtol);
    golden_check(c, "x_freqs_sin", sn, Limg_pad * half, atol, rtol);
    golden_check(c, "cap_freqs_cos", cs + Limg_pad * half, Lc_pad * half, atol, rtol);
    golden_check(c, "cap_freqs_sin", sn + Limg_pad * half, Lc_pad * half, atol, rtol);
    free(ids);
    free(cs);
    free(sn);
    free(mask);
    zi_dit_free(m);
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
