/* unit_lora.c - LoRA / LoKr on the tiny DiT against weights merged OFFLINE by diffusers + PEFT
 * (tests/fixtures/lora/, made by tests/fixtures/make_lora_fixtures.py):
 *   - PEFT, kohya and ComfyUI (fused qkv) files built from the same factors merge to the
 *     same weights (bit for bit) and equal diffusers' fuse_lora result (f32: 1e-6; bf16:
 *     one rounding of the f32 sum, at most 1 ulp on rare ties);
 *   - the DiT forward with our merge equals the forward with the offline-merged weights;
 *   - LoKr (full and factorized Kronecker factors) equals the offline merge;
 *   - LoHa (LyCORIS Hadamard product; make_loha_fixtures.py: plain torch, the LyCORIS formula)
 *     equals the offline merge, on dense weights and on the Q8_0 GGUF (run-time Khatri-Rao terms,
 *     or dequantize + merge); scale 0 is exactly no LoHa; a LyCORIS "lycoris_" file = kohya's;
 *   - scale 0 is exactly no LoRA; run-time terms equal the merge (once kn_linear applies them);
 *   - LoKr on a Q8_0 GGUF DiT (run-time Kronecker-factored terms, or dequantize + merge when
 *     those would be larger) equals LoKr merged into gguf-py's dequantized weights;
 *   - text-encoder LoRAs (PEFT and kohya keys, run-time and merged) give the hidden states of
 *     transformers + PEFT; a full generation with a TE LoRA at scale 0.7 equals one with the
 *     encoder merged offline by PEFT, scale 0 equals none;
 *   - bad files: unmatched keys (error listing names, or warning when lenient), shapes
 *     of another model, text-encoder keys, a lone factor, missing file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/io/safetensors.h"
#include "../../src/io/st_writer.h"
#include "../../src/pipeline/lora.h"
#include "../../src/pipeline/pipeline.h"
#include "../../src/pipeline/quantize.h"
#include "unit.h"

static const char *const targets[] = {
    "layers.0.attention.to_q", "layers.0.attention.to_k", "layers.0.attention.to_v", "layers.0.attention.to_out.0",
    "layers.1.feed_forward.w1", "layers.1.feed_forward.w2", "layers.1.feed_forward.w3", "layers.1.adaLN_modulation.0",
    "noise_refiner.0.attention.to_v", "context_refiner.1.feed_forward.w2", "all_x_embedder.2-1",
    "all_final_layer.2-1.linear", "t_embedder.mlp.2", "cap_embedder.1"};
static const char *const lokr_targets[] = {"layers.1.attention.to_q", "layers.0.feed_forward.w2",
                                           "noise_refiner.1.feed_forward.w1"};
/* loha.safetensors (make_loha_fixtures.py) has the same three targets */
static const char *const loha_targets[] = {"layers.1.attention.to_q", "layers.0.feed_forward.w2",
                                           "noise_refiner.1.feed_forward.w1"};

/* The kn_mat of a diffusers weight name (the subset used here). */
static kn_mat *mat_of(zi_dit *d, const char *name) {
    if (!strcmp(name, "all_x_embedder.2-1")) return &d->x_w;
    if (!strcmp(name, "all_final_layer.2-1.linear")) return &d->final_w;
    if (!strcmp(name, "t_embedder.mlp.2")) return &d->t_w2;
    if (!strcmp(name, "cap_embedder.1")) return &d->cap_w;
    char set[32], rest[64];
    int i;
    if (sscanf(name, "%31[a-z_].%d.%63s", set, &i, rest) != 3) return NULL;
    zi_dit_block *b = !strcmp(set, "layers") ? &d->layers[i] : !strcmp(set, "noise_refiner") ? &d->noise_refiner[i]
                                                                                               : &d->context_refiner[i];
    if (!strcmp(rest, "attention.to_q")) return &b->wq;
    if (!strcmp(rest, "attention.to_k")) return &b->wk;
    if (!strcmp(rest, "attention.to_v")) return &b->wv;
    if (!strcmp(rest, "attention.to_out.0")) return &b->wo;
    if (!strcmp(rest, "feed_forward.w1")) return &b->w1;
    if (!strcmp(rest, "feed_forward.w2")) return &b->w2;
    if (!strcmp(rest, "feed_forward.w3")) return &b->w3;
    if (!strcmp(rest, "adaLN_modulation.0")) return &b->ada_w;
    return NULL;
}

static float elem(const kn_mat *m, int64_t i) {
    return m->dtype == ZI_F32 ? ((const float *)m->data)[i] : zi_bf16_to_f32(((const uint16_t *)m->data)[i]);
}

/* Deterministic DiT forward on the tiny model: 8x8 latent, 20 caption rows. */
static float *forward(zi_dit *d) {
    int h = 8, w = 8, L = 20;
    float *x = malloc(sizeof(float) * 16 * h * w), *cap = malloc(sizeof(float) * (size_t)L * d->cfg.cap_feat_dim);
    float *out = malloc(sizeof(float) * 16 * h * w);
    for (int i = 0; i < 16 * h * w; i++) x[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < L * d->cfg.cap_feat_dim; i++) cap[i] = cosf(0.11f * (float)i);
    if (zi_dit_forward(d, x, h, w, 0.3f, cap, L, out, NULL, NULL)) UNIT_CHECK(0, "forward: %s", zi_last_error());
    free(x), free(cap);
    return out;
}

/* Largest |a - b| / (atol + rtol |b|) with the DiT golden tolerance (2e-4, 2e-4): <= 1 passes. */
static double max_rel(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (2e-4 + 2e-4 * fabs((double)b[i]));
        m = d > m ? d : m;
    }
    return m;
}

static zi_dit *load(const char *fixtures, const char *variant) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/transformer", fixtures, variant);
    zi_dit *d = NULL;
    if (zi_dit_load(&d, p)) UNIT_CHECK(0, "load %s: %s", p, zi_last_error());
    return d;
}

/* Point the targets of d at the offline-merged tensors of `merged` (= loading that checkpoint). */
static void use_offline(zi_dit *d, zi_st_file *merged, const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        char k[128];
        snprintf(k, sizeof k, "%s.weight", names[i]);
        const zi_tensor *t = zi_st_find(merged, k);
        kn_mat *m = mat_of(d, names[i]);
        if (t && m) m->data = t->data;
        else UNIT_CHECK(0, "offline merged tensor %s missing", k);
    }
}

/* Compare merged weights with the offline ones: f32 within 1e-6 (+1e-6 rel); bf16 within 1 ulp. */
static void check_weights(zi_dit *d, zi_st_file *merged, const char *const *names, int n, const char *label) {
    for (int i = 0; i < n; i++) {
        char k[128];
        snprintf(k, sizeof k, "%s.weight", names[i]);
        const zi_tensor *t = zi_st_find(merged, k);
        kn_mat *m = mat_of(d, names[i]);
        if (!t || !m || t->numel != m->rows * m->cols) {
            UNIT_CHECK(0, "%s: %s missing or misshapen", label, k);
            continue;
        }
        double maxd = 0;
        int64_t ulp1 = 0, worse = 0;
        for (int64_t j = 0; j < t->numel; j++) {
            if (m->dtype == ZI_BF16) {
                int diff = abs((int)((const uint16_t *)m->data)[j] - (int)((const uint16_t *)t->data)[j]);
                ulp1 += diff == 1;
                worse += diff > 1;
            } else {
                double dd = fabs((double)elem(m, j) - ((const float *)t->data)[j]) /
                            (1.0 + fabs((double)((const float *)t->data)[j]));
                maxd = dd > maxd ? dd : maxd;
            }
        }
        if (m->dtype == ZI_BF16)
            UNIT_CHECK(worse == 0 && ulp1 <= t->numel / 100, "%s %s: %lld values 1 ulp off, %lld more", label, k,
                       (long long)ulp1, (long long)worse);
        else UNIT_CHECK(maxd <= 1e-6, "%s %s: merged weight differs from the offline merge by %.3g", label, k, maxd);
    }
}

static int write_lora(const char *path, const char *const *names, int n, int64_t rows, int64_t cols) {
    zi_st_writer w;
    zi_st_writer_init(&w);
    static float buf[64 * 256];
    for (int i = 0; i < 64 * 256; i++) buf[i] = 0.01f * (float)(i % 7);
    for (int i = 0; i < n; i++) {
        int down = strstr(names[i], "down") || strstr(names[i], "lora_A");
        int64_t sh[2] = {down ? 4 : rows, down ? cols : 4};
        if (strstr(names[i], ".alpha")) zi_st_writer_add(&w, names[i], ZI_F32, 0, sh, buf);
        else zi_st_writer_add(&w, names[i], ZI_F32, 2, sh, buf);
    }
    int rc = zi_st_writer_write(&w, path);
    zi_st_writer_free(&w);
    return rc;
}

/* One adapter file of explicitly shaped F32 tensors (data: enough zeros for the largest). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
} lora_spec;

static int write_spec(const char *path, const lora_spec *t, int n, float alpha) {
    static float zeros[256 * 64];
    zeros[0] = alpha; /* alpha tensors ([] shape) read element 0 */
    zi_st_writer w;
    zi_st_writer_init(&w);
    for (int i = 0; i < n; i++) zi_st_writer_add(&w, t[i].name, ZI_F32, t[i].ndim, t[i].shape, zeros);
    int rc = zi_st_writer_write(&w, path);
    zi_st_writer_free(&w);
    return rc;
}

/* Hostile factor shapes and values found while fuzzing (tests/fuzz/fuzz_lora.c, FUZZING.md):
 * each is refused with a message (no division by rank 0, no int64 overflow, no silent NaN). */
static void unit_lora_hostile(zi_dit *d, const char *tmp) {
    zimage_lora l = {tmp, 1.0f};
    const lora_spec rank0[] = {{"layers.0.attention.to_q.lora_A.weight", 2, {0, 64}},
                               {"layers.0.attention.to_q.lora_B.weight", 2, {64, 0}},
                               {"layers.0.attention.to_q.alpha", 0, {0, 0}}};
    write_spec(tmp, rank0, 3, 1.0f);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "rank 0"), "rank 0: %s",
               zi_last_error());
    /* LoKr sides of 2^59 next to a zero side: p * s would overflow int64 */
    const lora_spec huge[] = {{"layers.0.attention.to_q.lokr_w1", 2, {(int64_t)1 << 59, 0}},
                              {"layers.0.attention.to_q.lokr_w2", 2, {(int64_t)1 << 59, 0}}};
    write_spec(tmp, huge, 2, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "kron("), "huge: %s",
               zi_last_error());
    const lora_spec lokr0[] = {{"layers.0.attention.to_q.lokr_w1", 2, {8, 8}},
                               {"layers.0.attention.to_q.lokr_w2_a", 2, {8, 0}},
                               {"layers.0.attention.to_q.lokr_w2_b", 2, {0, 8}}};
    write_spec(tmp, lokr0, 3, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "rank 0"),
               "lokr rank 0: %s", zi_last_error());
    const lora_spec ok[] = {{"layers.0.attention.to_q.lora_A.weight", 2, {4, 64}},
                            {"layers.0.attention.to_q.lora_B.weight", 2, {64, 4}},
                            {"layers.0.attention.to_q.alpha", 0, {0, 0}}};
    write_spec(tmp, ok, 3, INFINITY);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "finite"), "alpha: %s",
               zi_last_error());
    write_spec(tmp, ok, 3, 3e38f); /* finite alpha, but 100 x alpha / 4 is not */
    l.scale = 100;
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "finite"), "scale: %s",
               zi_last_error());
    l.scale = 1;
    /* two tensors for one factor: lora_A and lora_down, or two prefixes (before: the last one silently won) */
    const lora_spec dup[] = {{"layers.0.attention.to_q.lora_A.weight", 2, {4, 64}},
                             {"layers.0.attention.to_q.lora_down.weight", 2, {4, 64}},
                             {"layers.0.attention.to_q.lora_B.weight", 2, {64, 4}}};
    write_spec(tmp, dup, 3, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "same factor"),
               "duplicate: %s", zi_last_error());
    const lora_spec dup2[] = {{"transformer.layers.0.attention.to_q.lora_A.weight", 2, {4, 64}},
                              {"diffusion_model.layers.0.attention.to_q.lora_A.weight", 2, {4, 64}},
                              {"layers.0.attention.to_q.lora_B.weight", 2, {64, 4}}};
    write_spec(tmp, dup2, 3, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "same factor"),
               "duplicate prefixes: %s", zi_last_error());
    /* LoHa: rank 0, ranks that disagree, a missing factor, shapes of 2^59, mixed kinds, a
     * duplicate factor, non-finite alpha / scale, Tucker (conv) factors */
    const lora_spec h0[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 0}}, {"layers.0.attention.to_q.hada_w1_b", 2, {0, 64}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {64, 0}}, {"layers.0.attention.to_q.hada_w2_b", 2, {0, 64}}};
    write_spec(tmp, h0, 4, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "LoHa rank 0"),
               "loha rank 0: %s", zi_last_error());
    const lora_spec hr[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w1_b", 2, {3, 64}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w2_b", 2, {2, 64}}};
    write_spec(tmp, hr, 4, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "hada_w1_b") &&
                   strstr(zi_last_error(), "does not fit"),
               "loha rank mismatch: %s", zi_last_error());
    write_spec(tmp, hr + 1, 3, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "needs all"),
               "loha missing factor: %s", zi_last_error());
    const lora_spec hh[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {(int64_t)1 << 59, 0}},
                            {"layers.0.attention.to_q.hada_w1_b", 2, {0, (int64_t)1 << 59}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {(int64_t)1 << 59, 0}},
                            {"layers.0.attention.to_q.hada_w2_b", 2, {0, (int64_t)1 << 59}}};
    write_spec(tmp, hh, 4, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "does not fit"),
               "loha huge: %s", zi_last_error());
    const lora_spec hm[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w1_b", 2, {2, 64}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w2_b", 2, {2, 64}},
                            {"layers.0.attention.to_q.lora_A.weight", 2, {4, 64}},
                            {"layers.0.attention.to_q.lora_B.weight", 2, {64, 4}}};
    write_spec(tmp, hm, 6, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "two adapter kinds"),
               "loha + lora: %s", zi_last_error());
    const lora_spec hd[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 2}},
                            {"diffusion_model.layers.0.attention.to_q.hada_w1_a", 2, {64, 2}},
                            {"layers.0.attention.to_q.hada_w1_b", 2, {2, 64}}};
    write_spec(tmp, hd, 3, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "same factor"),
               "loha duplicate: %s", zi_last_error());
    const lora_spec ha[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w1_b", 2, {2, 64}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {64, 3}}, {"layers.0.attention.to_q.hada_w2_b", 2, {3, 64}},
                            {"layers.0.attention.to_q.alpha", 0, {0, 0}}};
    write_spec(tmp, ha, 5, NAN);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "finite"),
               "loha alpha: %s", zi_last_error());
    write_spec(tmp, ha, 5, 3e38f); /* 100 x alpha / 2 overflows */
    l.scale = 100;
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "finite"),
               "loha scale: %s", zi_last_error());
    l.scale = 1;
    const lora_spec ht[] = {{"layers.0.attention.to_q.hada_w1_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w1_b", 2, {2, 64}},
                            {"layers.0.attention.to_q.hada_w2_a", 2, {64, 2}}, {"layers.0.attention.to_q.hada_w2_b", 2, {2, 64}},
                            {"layers.0.attention.to_q.hada_t1", 2, {2, 2}}, {"layers.0.attention.to_q.hada_t2", 2, {2, 2}}};
    write_spec(tmp, ht, 6, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "Tucker") &&
                   strstr(zi_last_error(), "layers.0.attention.to_q"),
               "loha tucker: %s", zi_last_error());
    char *warn = NULL;
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 1, ZI_LORA_AUTO, &warn, NULL) == 0 && warn && strstr(warn, "to_q"),
               "loha tucker lenient: %s", warn ? warn : zi_last_error());
    free(warn);
    /* a module name longer than the grouping key: unmatched, not truncated into another module */
    char longname[400];
    snprintf(longname, sizeof longname, "layers.0.attention.to_q.%0300d.lora_A.weight", 0);
    const lora_spec lng[] = {{longname, 2, {4, 64}}};
    write_spec(tmp, lng, 1, 0);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "match no weight"),
               "long name: %s", zi_last_error());
}

static void unit_lora_errors(const char *fixtures) {
    zi_dit *d = load(fixtures, "tiny-zimage");
    if (!d) return;
    char tmp[] = "/tmp/zimage-unit-loraXXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return;
    close(fd);
    char *warn = NULL;
    zimage_lora l = {tmp, 1.0f};
    /* an SD-style LoRA: nothing matches */
    const char *sd[] = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
                        "lora_unet_mid_block_attentions_0_proj_out.lora_down.weight",
                        "lora_unet_mid_block_attentions_0_proj_out.lora_up.weight"};
    write_lora(tmp, sd, 4, 64, 64);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, &warn, NULL) != 0 && strstr(zi_last_error(), "match no weight") &&
                   strstr(zi_last_error(), "lora_unet_down_blocks_0_attentions_0_proj_in"),
               "unmatched keys: %s", zi_last_error());
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 1, ZI_LORA_AUTO, &warn, NULL) == 0 && warn && strstr(warn, "skipped 2 unmatched"),
               "lenient: %s", warn ? warn : zi_last_error());
    free(warn);
    warn = NULL;
    /* right names, another model's shapes (in 128 instead of 64) */
    const char *wrong[] = {"diffusion_model.layers.0.attention.to_q.lora_A.weight",
                           "diffusion_model.layers.0.attention.to_q.lora_B.weight"};
    write_lora(tmp, wrong, 2, 64, 128);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "does not fit") &&
                   strstr(zi_last_error(), "to_q"),
               "shape: %s", zi_last_error());
    /* a lone factor */
    write_lora(tmp, wrong, 1, 64, 64);
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "only one"), "lone: %s",
               zi_last_error());
    /* text-encoder keys: skipped when no text encoder is given; with one, a shape of another
     * model (in 64, the tiny encoder's hidden is 8) names the tensor; layers it does not have
     * are unmatched; keys of its last layer are accepted (no effect on hidden_states[-2]) */
    const char *te[] = {"lora_te_model_layers_0_self_attn_q_proj.lora_down.weight",
                        "lora_te_model_layers_0_self_attn_q_proj.lora_up.weight"};
    write_lora(tmp, te, 2, 64, 64);
    int n_te = -1;
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, &n_te) == 0 && n_te == 0, "te skipped: %s",
               zi_last_error());
    char tp[4096];
    snprintf(tp, sizeof tp, "%s/tiny-zimage/text_encoder", fixtures);
    zi_qwen3 *q = NULL;
    if (zi_qwen3_load(&q, tp) == 0) {
        UNIT_CHECK(zi_lora_apply(d, q, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 &&
                       strstr(zi_last_error(), "does not fit") &&
                       strstr(zi_last_error(), "lora_te_model_layers_0_self_attn_q_proj"),
                   "te shape: %s", zi_last_error());
        const char *te40[] = {"text_encoder.layers.40.mlp.up_proj.lora_A.weight",
                              "text_encoder.layers.40.mlp.up_proj.lora_B.weight"};
        write_lora(tmp, te40, 2, 24, 8);
        UNIT_CHECK(zi_lora_apply(NULL, q, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 &&
                       strstr(zi_last_error(), "match no weight of this text encoder") &&
                       strstr(zi_last_error(), "text_encoder.layers.40.mlp.up_proj"),
                   "te layer 40: %s", zi_last_error());
        const char *te2[] = {"text_encoder.layers.2.mlp.up_proj.lora_A.weight",
                             "text_encoder.layers.2.mlp.up_proj.lora_B.weight"};
        write_lora(tmp, te2, 2, 24, 8);
        UNIT_CHECK(zi_lora_apply(NULL, q, &l, 1, 0, ZI_LORA_AUTO, NULL, &n_te) == 0 && n_te == 1,
                   "te last layer: %s", zi_last_error());
        const char *dit_in_te[] = {"text_encoder.layers.0.attention.to_q.lora_A.weight",
                                   "text_encoder.layers.0.attention.to_q.lora_B.weight"};
        write_lora(tmp, dit_in_te, 2, 64, 64);
        UNIT_CHECK(zi_lora_apply(d, q, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 &&
                       strstr(zi_last_error(), "text_encoder.layers.0.attention.to_q"),
                   "DiT names under a text-encoder prefix: %s", zi_last_error());
        zi_qwen3_free(q);
    } else UNIT_CHECK(0, "%s", zi_last_error());
    unit_lora_hostile(d, tmp);
    l.path = "/nonexistent/l.safetensors";
    UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) != 0 && strstr(zi_last_error(), "LoRA"), "missing: %s",
               zi_last_error());
    remove(tmp);
    zi_dit_free(d);
}

/* Largest |a - b| / (atol + rtol |b|). */
static double max_rel_tol(const float *a, const float *b, int64_t n, double tol) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (tol + tol * fabs((double)b[i]));
        m = d > m ? d : m;
    }
    return m;
}

/* LoKr / LoHa (kind "lokr" / "loha") on the Q8_0 GGUF DiT == the adapter merged into the dequantized
 * weights; scale 0 == none. In auto mode to_q gets run-time terms of rank q_rank and noise_refiner.1's
 * ffn w1 (factored form larger than a dense delta) is dequantized and merged. */
static void unit_lora_lyco_gguf(const char *fixtures, const char *kind, const char *const *tgts, int q_rank) {
    char gp[4096], lp[4096], mp[4096];
    snprintf(gp, sizeof gp, "%s/gguf/gguf_dit_q8_0_sdcpp.gguf", fixtures);
    snprintf(lp, sizeof lp, "%s/lora/%s.safetensors", fixtures, kind);
    snprintf(mp, sizeof mp, "%s/lora/merged_%s_q8_0.safetensors", fixtures, kind);
    zi_st_file merged;
    if (zi_st_open(&merged, mp)) {
        UNIT_CHECK(0, "%s", zi_last_error());
        return;
    }
    zi_dit *off = NULL, *base = NULL;
    if (zi_dit_load(&off, gp) || zi_dit_load(&base, gp)) {
        UNIT_CHECK(0, "load %s: %s", gp, zi_last_error());
        zi_dit_free(off), zi_st_close(&merged);
        return;
    }
    UNIT_CHECK(mat_of(off, "noise_refiner.1.feed_forward.w1")->dtype == ZI_Q8_0 &&
                   mat_of(off, "layers.1.attention.to_q")->dtype == ZI_Q8_0,
               "the GGUF's %s targets are not Q8_0", kind);
    for (int i = 0; i < 3; i++) { /* = a checkpoint with these three weights merged offline (f32) */
        char k[128];
        snprintf(k, sizeof k, "%s.weight", tgts[i]);
        const zi_tensor *t = zi_st_find(&merged, k);
        kn_mat *m = mat_of(off, tgts[i]);
        if (!t || t->numel != m->rows * m->cols) {
            UNIT_CHECK(0, "%s missing", k);
            continue;
        }
        m->dtype = ZI_F32, m->data = t->data, m->scale = 0;
    }
    float *want = forward(off), *none = forward(base);
    for (int mode = 0; mode < 2; mode++) {
        zi_dit *d = NULL;
        zimage_lora l = {lp, 1.0f};
        if (zi_dit_load(&d, gp) || zi_lora_apply(d, NULL, &l, 1, 0, mode ? ZI_LORA_RUNTIME : ZI_LORA_AUTO, NULL, NULL)) {
            UNIT_CHECK(0, "%s on gguf: %s", kind, zi_last_error());
            zi_dit_free(d);
            continue;
        }
        kn_mat *q = mat_of(d, "layers.1.attention.to_q"), *w1 = mat_of(d, "noise_refiner.1.feed_forward.w1");
        if (mode) UNIT_CHECK(q->dtype == ZI_Q8_0 && q->n_lora == 1 && w1->dtype == ZI_Q8_0 && w1->n_lora == 1,
                             "runtime: %s not attached as run-time terms", kind);
        else /* LoKr to_q: rank 2*3 terms; w1: w2 is a full [85, 32] (rank 64 > dense size): dequantized + merged;
              * LoHa to_q: rank 2*3 terms; w1: rank 8*7 = 56 x (170 + 64) > 170 x 64: dequantized + merged */
            UNIT_CHECK(q->dtype == ZI_Q8_0 && q->n_lora == 1 && q->lora[0].rank == q_rank && w1->dtype == ZI_F32 &&
                           w1->n_lora == 0,
                       "%s auto: to_q %s (%d terms), w1 %s (%d terms)", kind, zi_dtype_name(q->dtype), q->n_lora,
                       zi_dtype_name(w1->dtype), w1->n_lora);
        float *got = forward(d);
        double e = max_rel(got, want, 16 * 64), e0 = max_rel(none, want, 16 * 64);
        printf("  lora: %s on Q8_0 GGUF (%s) vs merged into the dequantized weights: %.3g of the DiT tolerance "
               "(without it: %.3g)\n", kind, mode ? "run-time" : "auto", e, e0);
        UNIT_CHECK(e <= 0.1 && e0 > 10, "%s on gguf (%s): %.3g of tol (without it: %.3g)", kind,
                   mode ? "run-time" : "auto", e, e0);
        free(got);
        zi_dit_free(d);
    }
    zi_dit *z = NULL;
    zimage_lora l0 = {lp, 0.0f};
    if (!zi_dit_load(&z, gp) && !zi_lora_apply(z, NULL, &l0, 1, 0, ZI_LORA_RUNTIME, NULL, NULL)) {
        float *got = forward(z);
        UNIT_CHECK(memcmp(got, none, sizeof(float) * 16 * 64) == 0, "%s on gguf at scale 0 changed the output", kind);
        free(got);
    } else UNIT_CHECK(0, "%s scale 0: %s", kind, zi_last_error());
    zi_dit_free(z);
    free(want), free(none);
    zi_dit_free(off), zi_dit_free(base);
    zi_st_close(&merged);
}

typedef struct {
    const zi_st_file *gold;
    const char *prefix;
    double worst;
    int n;
} te_cmp;

static void te_dump(void *u, const char *name, const float *d, int64_t rows, int64_t cols) {
    te_cmp *c = u;
    char k[96];
    snprintf(k, sizeof k, "%s%s", c->prefix, name);
    const zi_tensor *t = zi_st_find(c->gold, k);
    if (!t) return;
    if (t->numel != rows * cols) {
        UNIT_CHECK(0, "%s: %lld values, golden %lld", k, (long long)(rows * cols), (long long)t->numel);
        return;
    }
    double e = max_rel_tol(d, t->data, rows * cols, 1e-4); /* qwen3 golden tolerance 1e-4, 1e-4 */
    c->worst = e > c->worst ? e : c->worst;
    c->n++;
}

/* Text-encoder LoRA vs transformers + PEFT on the tiny Qwen3. */
static void unit_lora_te_hidden(const char *fixtures) {
    char tp[4096], gp[4096];
    snprintf(tp, sizeof tp, "%s/tiny-zimage/text_encoder", fixtures);
    snprintf(gp, sizeof gp, "%s/lora/te_lora_hidden.safetensors", fixtures);
    zi_st_file gold;
    if (zi_st_open(&gold, gp)) {
        UNIT_CHECK(0, "%s", zi_last_error());
        return;
    }
    const zi_tensor *ids = zi_st_find(&gold, "ids");
    if (!ids || ids->dtype != ZI_I32) {
        UNIT_CHECK(0, "%s: no I32 ids", gp);
        zi_st_close(&gold);
        return;
    }
    int n = (int)ids->numel;
    float *out = malloc(sizeof(float) * (size_t)n * 8);
    float *first = malloc(sizeof(float) * (size_t)n * 8);
    const char *files[2] = {"te_lora_peft", "te_lora_kohya"};
    for (int run = -1; run < 4; run++) { /* -1: no LoRA; then file x {run-time, merged} */
        zi_qwen3 *q = NULL;
        if (zi_qwen3_load(&q, tp)) {
            UNIT_CHECK(0, "%s", zi_last_error());
            break;
        }
        char lp[4096], label[96];
        if (run >= 0) {
            snprintf(lp, sizeof lp, "%s/lora/%s.safetensors", fixtures, files[run / 2]);
            zimage_lora l = {lp, 1.0f};
            int n_te = 0;
            if (zi_lora_apply(NULL, q, &l, 1, 0, run % 2 ? ZI_LORA_TE_MERGE : ZI_LORA_AUTO, NULL, &n_te)) {
                UNIT_CHECK(0, "%s: %s", lp, zi_last_error());
                zi_qwen3_free(q);
                continue;
            }
            UNIT_CHECK(n_te == 21, "%s: %d text-encoder modules, want 21 (7 x 3 layers)", lp, n_te);
            snprintf(label, sizeof label, "%s %s", files[run / 2], run % 2 ? "merged" : "run-time");
        } else snprintf(label, sizeof label, "no LoRA");
        te_cmp c = {&gold, run < 0 ? "base." : "", 0, 0};
        UNIT_CHECK(zi_qwen3_encode_dump(q, ids->data, n, out, te_dump, &c) == 0, "encode: %s", zi_last_error());
        printf("  lora: text encoder %-26s vs transformers+PEFT: %d hidden states, %.3g of the qwen3 tolerance\n",
               label, c.n, c.worst);
        UNIT_CHECK(c.n == 3 && c.worst <= 0.1, "%s: hidden states differ from transformers+PEFT (%.3g of tol)", label,
                   c.worst);
        if (run == 0) memcpy(first, out, sizeof(float) * (size_t)n * 8);
        if (run == 2) /* kohya (alpha/rank 0.5 at run time) = PEFT (0.5 folded into B): exact in binary */
            UNIT_CHECK(memcmp(first, out, sizeof(float) * (size_t)n * 8) == 0, "kohya and PEFT files differ");
        if (run >= 0) {
            kn_mat *m = zi_qwen3_mat(q, 0, 0);
            UNIT_CHECK(run % 2 ? m->n_lora == 0 : m->n_lora == 1, "%s: q_proj has %d run-time terms", label, m->n_lora);
        }
        zi_qwen3_free(q);
    }
    free(out), free(first);
    zi_st_close(&gold);
}

/* TE LoRA on a quantized text encoder (our Q8_0 GGUF of the tiny Qwen3: o_proj [8, 64] is the
 * one matrix with rows of 32-multiples, so it is Q8_0): run-time terms on the blocks equal the
 * same LoRA merged into a dequantized F32 copy (a consistency check of two paths: no
 * independent golden exists for our own quantizer's output); scale 0 is exactly none. */
static void unit_lora_te_gguf(const char *fixtures) {
    char src[4096], lp[4096], gg[] = "/tmp/zimage-unit-teq8XXXXXX";
    int fd = mkstemp(gg);
    if (fd < 0) return;
    close(fd);
    snprintf(src, sizeof src, "%s/tiny-zimage", fixtures);
    snprintf(lp, sizeof lp, "%s/lora/te_lora_kohya.safetensors", fixtures);
    zi_quantize_params qp = {.input = src, .output = gg, .type = ZI_Q8_0, .component = ZI_COMPONENT_TEXT_ENCODER,
                             .force = 1};
    if (zi_quantize_model(&qp)) {
        UNIT_CHECK(0, "quantize: %s", zi_last_error());
        remove(gg);
        return;
    }
    const int32_t ids[6] = {151644, 872, 198, 64, 2518, 38835};
    float out[4][6 * 8];
    const float scales[4] = {-1, 0, 1, 1}; /* none, scale 0, run-time, merged */
    int ok = 1;
    for (int r = 0; r < 4 && ok; r++) {
        zi_qwen3 *q = NULL;
        zimage_lora l = {lp, scales[r]};
        ok = zi_qwen3_load(&q, gg) == 0 &&
             (r == 0 || zi_lora_apply(NULL, q, &l, 1, 0, r == 3 ? ZI_LORA_TE_MERGE : ZI_LORA_AUTO, NULL, NULL) == 0);
        if (ok && r == 2) UNIT_CHECK(zi_qwen3_mat(q, 0, 3)->dtype == ZI_Q8_0 && zi_qwen3_mat(q, 0, 3)->n_lora == 1,
                                     "o_proj: %s with %d terms", zi_dtype_name(zi_qwen3_mat(q, 0, 3)->dtype),
                                     zi_qwen3_mat(q, 0, 3)->n_lora);
        if (ok && r == 3) UNIT_CHECK(zi_qwen3_mat(q, 0, 3)->dtype == ZI_F32, "o_proj not merged into F32");
        ok = ok && zi_qwen3_encode(q, ids, 6, out[r]) == 0;
        if (!ok) UNIT_CHECK(0, "TE GGUF run %d: %s", r, zi_last_error());
        zi_qwen3_free(q);
    }
    if (ok) {
        double e = max_rel_tol(out[2], out[3], 6 * 8, 1e-4), e0 = max_rel_tol(out[0], out[3], 6 * 8, 1e-4);
        printf("  lora: TE LoRA on a Q8_0 GGUF encoder, run-time vs dequantized+merged: %.3g of the qwen3 tolerance "
               "(without the LoRA: %.3g)\n", e, e0);
        UNIT_CHECK(e <= 0.1 && e0 > 10, "TE GGUF: run-time %.3g, none %.3g", e, e0);
        UNIT_CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0, "TE GGUF: scale 0 changed the output");
    }
    remove(gg);
}

typedef struct {
    float *text, *lat;
    int64_t n_text, n_lat;
} gen_obs;

static void go_text(void *u, int neg, const float *f, int n, int dim) {
    gen_obs *o = u;
    if (neg) return;
    free(o->text);
    o->n_text = (int64_t)n * dim;
    o->text = malloc(sizeof(float) * (size_t)o->n_text);
    memcpy(o->text, f, sizeof(float) * (size_t)o->n_text);
}
static void go_lat(void *u, const float *d, int64_t n) {
    gen_obs *o = u;
    free(o->lat);
    o->lat = malloc(sizeof(float) * (size_t)n);
    memcpy(o->lat, d, sizeof(float) * (size_t)n);
    o->n_lat = n;
}

static int te_generate(const char *model_dir, const char *te_dir, const zimage_lora *l, gen_obs *o) {
    zimage_load_params lp = zimage_load_params_default();
    lp.model_dir = model_dir;
    lp.text_encoder = te_dir;
    lp.loras = l;
    lp.n_loras = l ? 1 : 0;
    lp.precision = ZIMAGE_PRECISION_F32;
    lp.n_threads = 1;
    zimage_model *m = NULL;
    if (zimage_load(&m, &lp)) {
        UNIT_CHECK(0, "load: %s", zimage_last_error());
        return -1;
    }
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox in the snow";
    p.seed = 11;
    p.width = p.height = 32;
    p.steps = 4;
    zi_pipeline_hooks h = {.user = o, .on_text = go_text, .on_latents = go_lat};
    zimage_image img = {0};
    int rc = zi_pipeline_generate(m, &p, &img, &h);
    if (rc) UNIT_CHECK(0, "generate: %s", zimage_last_error());
    zimage_image_free(&img);
    zimage_free(m);
    return rc;
}

/* Full generation: TE LoRA at 0.7 == the encoder merged offline at 0.7 (PEFT); 0 == none. */
static void unit_lora_te_pipeline(const char *fixtures) {
    char md[4096], lp[4096], dir[] = "/tmp/zimage-unit-temergedXXXXXX", src[4200], dst[4200];
    snprintf(md, sizeof md, "%s/tiny-zimage", fixtures);
    snprintf(lp, sizeof lp, "%s/lora/te_lora_kohya.safetensors", fixtures);
    if (!mkdtemp(dir)) return;
    /* the offline-merged encoder: its layers shard + config + index, and the unchanged embedding shard */
    const char *parts[4] = {"config.json", "model.safetensors.index.json", "model-00002-of-00002.safetensors",
                            "model-00001-of-00002.safetensors"};
    for (int i = 0; i < 4; i++) {
        char abs_fix[4096];
        if (!realpath(fixtures, abs_fix)) break;
        snprintf(src, sizeof src, "%s/%s/%s", abs_fix, i < 3 ? "lora/te_merged_s07" : "tiny-zimage/text_encoder", parts[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, parts[i]);
        UNIT_CHECK(symlink(src, dst) == 0, "symlink %s", dst);
    }
    gen_obs none = {0}, zero = {0}, lora = {0}, off = {0};
    zimage_lora l0 = {lp, 0.0f}, l7 = {lp, 0.7f};
    if (!te_generate(md, NULL, NULL, &none) && !te_generate(md, NULL, &l0, &zero) && !te_generate(md, NULL, &l7, &lora) &&
        !te_generate(md, dir, NULL, &off) && none.n_lat == lora.n_lat && off.n_lat == lora.n_lat &&
        none.n_text == lora.n_text && off.n_text == lora.n_text) {
        UNIT_CHECK(zero.n_lat == none.n_lat && memcmp(zero.lat, none.lat, sizeof(float) * (size_t)none.n_lat) == 0 &&
                       memcmp(zero.text, none.text, sizeof(float) * (size_t)none.n_text) == 0,
                   "TE LoRA at scale 0 changed the generation");
        double et = max_rel_tol(lora.text, off.text, lora.n_text, 1e-4);
        double el = max_rel_tol(lora.lat, off.lat, lora.n_lat, 2e-4), e0 = max_rel_tol(none.lat, off.lat, none.n_lat, 2e-4);
        printf("  lora: generation with TE LoRA 0.7 vs offline-merged encoder: text %.3g of the qwen3 tolerance, "
               "latents %.3g of the DiT tolerance (without the LoRA: %.3g)\n", et, el, e0);
        UNIT_CHECK(et <= 0.1 && el <= 0.1 && e0 > 10, "TE LoRA generation differs from the offline merge (text %.3g, "
                   "latents %.3g, none %.3g)", et, el, e0);
    } else UNIT_CHECK(0, "TE LoRA generations failed");
    gen_obs *all[4] = {&none, &zero, &lora, &off};
    for (int i = 0; i < 4; i++) free(all[i]->text), free(all[i]->lat);
    for (int i = 0; i < 4; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, parts[i]);
        unlink(dst);
    }
    rmdir(dir);
}

/* LyCORIS' kohya-style names (lycoris_<module path with _>): the kohya file renamed from
 * lora_unet_ to lycoris_ must merge to the same weights, bit for bit. */
static void unit_lora_lycoris_prefix(const char *fixtures) {
    char kp[4096], tmp[] = "/tmp/zimage-unit-lycorisXXXXXX";
    snprintf(kp, sizeof kp, "%s/lora/lora_kohya.safetensors", fixtures);
    int fd = mkstemp(tmp);
    zi_st_file kf;
    if (fd < 0 || zi_st_open(&kf, kp)) {
        UNIT_CHECK(0, "lycoris prefix setup: %s", zi_last_error());
        if (fd >= 0) close(fd), remove(tmp);
        return;
    }
    close(fd);
    zi_st_writer w;
    zi_st_writer_init(&w);
    char(*names)[256] = calloc((size_t)kf.n_tensors, sizeof *names);
    int n_renamed = 0;
    for (int i = 0; names && i < kf.n_tensors; i++) {
        const zi_tensor *t = &kf.tensors[i];
        n_renamed += !strncmp(t->name, "lora_unet_", 10);
        snprintf(names[i], sizeof names[i], "lycoris_%s", strncmp(t->name, "lora_unet_", 10) ? t->name : t->name + 10);
        zi_st_writer_add(&w, names[i], t->dtype, t->ndim, t->shape, t->data);
    }
    int wrc = zi_st_writer_write(&w, tmp);
    zi_st_writer_free(&w);
    zi_dit *a = load(fixtures, "tiny-zimage"), *b = load(fixtures, "tiny-zimage");
    zimage_lora la = {kp, 1.0f}, lb = {tmp, 1.0f};
    if (names && !wrc && n_renamed == kf.n_tensors && a && b && !zi_lora_apply(a, NULL, &la, 1, 0, ZI_LORA_AUTO, NULL, NULL) &&
        !zi_lora_apply(b, NULL, &lb, 1, 0, ZI_LORA_AUTO, NULL, NULL)) {
        int same = 1;
        for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
            kn_mat *x = mat_of(a, targets[i]), *y = mat_of(b, targets[i]);
            same &= x->dtype == y->dtype && !memcmp(x->data, y->data, (size_t)(x->rows * x->cols) * zi_dtype_size(x->dtype));
        }
        UNIT_CHECK(same, "lycoris_ names merge differently from lora_unet_ ones");
    } else UNIT_CHECK(0, "lycoris prefix: %s (%d of %d renamed)", zi_last_error(), n_renamed, kf.n_tensors);
    zi_dit_free(a), zi_dit_free(b);
    free(names);
    zi_st_close(&kf);
    remove(tmp);
}

void unit_lora(const char *fixtures) {
    /* The forwards below are compared at f32 tolerances; an earlier suite may have left this
     * thread in bf16 mode (zimage_load with precision AUTO on a CPU with bf16 units). */
    kn_set_precision(KN_PREC_F32);
    const char *formats[3] = {"lora_peft", "lora_kohya", "lora_comfy"};
    const int NT = (int)(sizeof targets / sizeof targets[0]);
    const char *variants[2] = {"tiny-zimage", "tiny-zimage-bf16"};
    for (int v = 0; v < 2; v++) {
        char mp[4096];
        snprintf(mp, sizeof mp, "%s/lora/merged_lora_%s.safetensors", fixtures, v ? "bf16" : "f32");
        zi_st_file merged;
        if (zi_st_open(&merged, mp)) {
            UNIT_CHECK(0, "%s", zi_last_error());
            return;
        }
        zi_dit *off = load(fixtures, variants[v]);
        if (!off) return;
        use_offline(off, &merged, targets, NT);
        float *want = forward(off);
        float *first = NULL;
        kn_mat first_q = {0};
        void *first_q_copy = NULL;
        for (int f = 0; f < 3; f++) {
            char lp[4096];
            snprintf(lp, sizeof lp, "%s/lora/%s.safetensors", fixtures, formats[f]);
            zi_dit *d = load(fixtures, variants[v]);
            zimage_lora l = {lp, 1.0f};
            if (!d || zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL)) {
                UNIT_CHECK(0, "%s: %s", lp, zi_last_error());
                zi_dit_free(d);
                continue;
            }
            char label[128];
            snprintf(label, sizeof label, "%s on %s", formats[f], variants[v]);
            check_weights(d, &merged, targets, NT, label);
            float *got = forward(d);
            double e = max_rel(got, want, 16 * 64);
            printf("  lora: %-32s forward vs offline merge: %.3g of the DiT tolerance\n", label, e);
            UNIT_CHECK(e <= (v ? 1.0 : 0.1), "%s: forward differs from the offline-merged checkpoint (%.3g of tol)", label, e);
            kn_mat *q = mat_of(d, "layers.0.attention.to_q");
            size_t qb = (size_t)(q->rows * q->cols) * zi_dtype_size(q->dtype);
            if (!first) {
                first = got;
                first_q = *q;
                first_q_copy = malloc(qb);
                memcpy(first_q_copy, q->data, qb);
            } else {
                UNIT_CHECK(memcmp(first, got, sizeof(float) * 16 * 64) == 0, "%s: output differs from %s", label,
                           formats[0]);
                UNIT_CHECK(first_q.dtype == q->dtype && memcmp(first_q_copy, q->data, qb) == 0,
                           "%s: merged to_q differs from %s", label, formats[0]);
                free(got);
            }
            zi_dit_free(d);
        }
        free(first), free(first_q_copy), free(want);
        zi_dit_free(off);
        zi_st_close(&merged);
    }

    /* LoKr, LoHa: merged weights and forward vs the offline merge; scale 0 == none, bit for bit */
    for (int k = 0; k < 2; k++) {
        const char *kind = k ? "loha" : "lokr";
        const char *const *tgts = k ? loha_targets : lokr_targets;
        char lp[4096], mp[4096];
        snprintf(lp, sizeof lp, "%s/lora/%s.safetensors", fixtures, kind);
        snprintf(mp, sizeof mp, "%s/lora/merged_%s_f32.safetensors", fixtures, kind);
        zi_st_file merged;
        zi_dit *d = load(fixtures, "tiny-zimage"), *off = load(fixtures, "tiny-zimage"), *z = load(fixtures, "tiny-zimage");
        zimage_lora l = {lp, 1.0f}, l0 = {lp, 0.0f};
        if (d && off && z && !zi_st_open(&merged, mp)) {
            UNIT_CHECK(zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL) == 0, "%s: %s", kind, zi_last_error());
            check_weights(d, &merged, tgts, 3, kind);
            float *none = forward(off);
            use_offline(off, &merged, tgts, 3);
            float *a = forward(d), *b = forward(off);
            double e = max_rel(a, b, 16 * 64), e0 = max_rel(none, b, 16 * 64);
            printf("  lora: %s forward vs offline merge: %.3g of the DiT tolerance (without it: %.3g)\n", kind, e, e0);
            UNIT_CHECK(e <= 0.1 && e0 > 10, "%s forward differs (%.3g of tol; without it: %.3g)", kind, e, e0);
            UNIT_CHECK(zi_lora_apply(z, NULL, &l0, 1, 0, ZI_LORA_AUTO, NULL, NULL) == 0, "%s scale 0: %s", kind,
                       zi_last_error());
            float *c = forward(z);
            UNIT_CHECK(memcmp(c, none, sizeof(float) * 16 * 64) == 0, "%s at scale 0 changed the output", kind);
            free(a), free(b), free(c), free(none);
            zi_st_close(&merged);
        } else UNIT_CHECK(0, "%s setup: %s", kind, zi_last_error());
        zi_dit_free(d), zi_dit_free(off), zi_dit_free(z);
    }
    unit_lora_lycoris_prefix(fixtures);

    /* scale 0 == no LoRA, exactly; run-time terms == merge */
    {
        char lp[4096];
        snprintf(lp, sizeof lp, "%s/lora/lora_kohya.safetensors", fixtures);
        zi_dit *base = load(fixtures, "tiny-zimage"), *z = load(fixtures, "tiny-zimage");
        zimage_lora l0 = {lp, 0.0f};
        if (base && z) {
            UNIT_CHECK(zi_lora_apply(z, NULL, &l0, 1, 0, ZI_LORA_AUTO, NULL, NULL) == 0, "scale 0: %s", zi_last_error());
            float *a = forward(base), *b = forward(z);
            UNIT_CHECK(memcmp(a, b, sizeof(float) * 16 * 64) == 0, "scale 0 changed the output");
            free(a), free(b);
        }
        zi_dit_free(base), zi_dit_free(z);
        /* does kn_linear apply kn_mat.lora yet? (the kernel owner adds it) */
        float wv[4] = {1, 0, 0, 1}, av[2] = {1, 1}, bv[2] = {1, 1}, x[2] = {1, 2}, y[2];
        kn_lowrank lr = {.a = av, .b = bv, .rank = 1, .scale = 1};
        kn_mat W = {.dtype = ZI_F32, .rows = 2, .cols = 2, .data = wv, .lora = &lr, .n_lora = 1};
        kn_linear(y, x, 1, &W, NULL);
        if (y[0] == 1 + 3) {
            zimage_lora l1 = {lp, 1.0f};
            zi_dit *m = load(fixtures, "tiny-zimage"), *r = load(fixtures, "tiny-zimage");
            if (m && r && !zi_lora_apply(m, NULL, &l1, 1, 0, ZI_LORA_AUTO, NULL, NULL) &&
                !zi_lora_apply(r, NULL, &l1, 1, 0, ZI_LORA_RUNTIME, NULL, NULL)) {
                float *a = forward(m), *b = forward(r);
                double e = max_rel(b, a, 16 * 64);
                printf("  lora: run-time terms vs merge: %.3g of the DiT tolerance\n", e);
                UNIT_CHECK(e <= 0.1, "run-time LoRA differs from the merge (%.3g of tol)", e);
                free(a), free(b);
            } else UNIT_CHECK(0, "runtime: %s", zi_last_error());
            zi_dit_free(m), zi_dit_free(r);
        } else {
            printf("  lora: NOTE run-time LoRA check not run: kn_linear does not apply kn_mat.lora yet\n");
        }
    }
    unit_lora_errors(fixtures);
    unit_lora_lyco_gguf(fixtures, "lokr", lokr_targets, 6);
    unit_lora_lyco_gguf(fixtures, "loha", loha_targets, 6);
    unit_lora_te_hidden(fixtures);
    unit_lora_te_pipeline(fixtures);
    unit_lora_te_gguf(fixtures);
}
