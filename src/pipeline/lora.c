/* lora.c - LoRA / LoKr / LoHa adapter files -> merged DiT / text-encoder weights, or run-time low-rank terms.
 * Formats and rules: see lora.h. Flow: open every file, group its tensors by module,
 * resolve each module to one or three (fused qkv) DiT weights or to one Qwen3 weight, check
 * shapes, then per weight either merge all contributions row by row in float32 and round once,
 * or attach them as kn_lowrank terms (a Kronecker delta as kron(U1,U2) . kron(V1,V2)). */
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/dtype.h"
#include "../common/error.h"
#include "../io/safetensors.h"
#include "../kernels/kernels.h"

#define LORA_MAX_RANK 65536 /* low-rank factors and LoKr decompositions (full-rank LoRAs of the real DiT: 3840) */

enum {
    PART_A, PART_B, PART_ALPHA, PART_W1, PART_W1A, PART_W1B, PART_W2, PART_W2A, PART_W2B, /* LoRA, alpha, LoKr */
    PART_H1A, PART_H1B, PART_H2A, PART_H2B, PART_HT1, PART_HT2, /* LoHa (t1/t2: Tucker, conv layers only) */
    N_PARTS
};

static const struct {
    const char *suffix;
    int part;
} lora_suffixes[] = {
    {".lora_A.weight", PART_A},   {".lora_B.weight", PART_B},     {".lora_down.weight", PART_A},
    {".lora_up.weight", PART_B},  {".alpha", PART_ALPHA},         {".lokr_w1", PART_W1},
    {".lokr_w1_a", PART_W1A},     {".lokr_w1_b", PART_W1B},       {".lokr_w2", PART_W2},
    {".lokr_w2_a", PART_W2A},     {".lokr_w2_b", PART_W2B},       {".hada_w1_a", PART_H1A},
    {".hada_w1_b", PART_H1B},     {".hada_w2_a", PART_H2A},       {".hada_w2_b", PART_H2B},
    {".hada_t1", PART_HT1},       {".hada_t2", PART_HT2},
};

/* lycoris_: LyCORIS' own kohya-style names (LycorisNetwork.LORA_PREFIX = "lycoris" + "_" + module path
 * with '.' as '_', lycoris/kohya.py) */
static const char *const strip_prefixes[] = {"transformer.", "model.diffusion_model.", "diffusion_model.",
                                             "base_model.model.", "lora_unet_", "unet.", "lycoris_"};
/* text-encoder prefixes: kohya sd-scripts / musubi (lora_te_, lora_te1_ with several encoders),
 * diffusers / PEFT (text_encoder.), ComfyUI (text_encoders.<name>.transformer.model.) */
static const char *const te_prefixes[] = {"lora_te_", "lora_te1_", "text_encoder.", "text_encoders.", "te.",
                                          "lora_te1."};

/* Who owns buffers made for a weight (the DiT or the text encoder). */
typedef struct {
    int (*keep)(void *model, void *buf);
    int (*owns)(const void *model, const void *p);
    void *model;
} lora_owner;

/* One weight that adapters may target. */
typedef struct {
    char name[96]; /* normalized: '.' -> '_' */
    char disp[96]; /* as given (messages) */
    kn_mat *mat;
    const lora_owner *own;
    struct contrib *c;
    int n_c;
} lora_target;

enum { C_LORA, C_KRON, C_HADA };

typedef struct contrib {
    int kind; /* C_LORA, C_KRON or C_HADA */
    float scale;
    float *a, *b; /* low-rank: a [r, cols], b [rows, r] (owned, f32) */
    int r;
    float *w1, *w2; /* kron: w1 [p, q], w2 [s, t]; rows = p*s, cols = q*t (owned) */
    int p, q, s, t;
    float *w1a, *w1b, *w2a, *w2b; /* the factors when w1 / w2 came decomposed (else NULL): [p,r1] [r1,q] [s,r2] [r2,t] */
    int r1, r2;
    /* LoHa (kind == C_HADA): delta = (w1a [rows, r1] . w1b [r1, cols]) * (w2a [rows, r2] . w2b [r2, cols]),
     * the four owned in w1a, w1b, w2a, w2b */
} contrib;

typedef struct {
    char key[160];                /* normalized module name */
    const char *orig;             /* one original tensor name (for messages) */
    const zi_tensor *part[N_PARTS];
    int te;                       /* a text-encoder module */
} lora_group;

static void norm_name(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) dst[o++] = s[i] == '.' ? '_' : s[i];
    dst[o] = 0;
}

static int add_target(lora_target **t, int *n, int *cap, const char *name, kn_mat *mat, const lora_owner *own) {
    if (!mat || !mat->data) return 0;
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        lora_target *nt = realloc(*t, sizeof *nt * (size_t)nc);
        if (!nt) return zi_err("out of memory");
        *t = nt, *cap = nc;
    }
    lora_target *x = &(*t)[(*n)++];
    memset(x, 0, sizeof *x);
    norm_name(x->name, sizeof x->name, name, strlen(name));
    snprintf(x->disp, sizeof x->disp, "%s", strncmp(name, "te:", 3) ? name : name + 3);
    x->mat = mat;
    x->own = own;
    return 0;
}

static int dit_keep(void *m, void *buf) { return zi_dit_keep(m, buf); }
static int dit_owns(const void *m, const void *p) { return zi_dit_owns(m, p); }
static int te_keep(void *m, void *buf) { return zi_qwen3_keep(m, buf); }
static int te_owns(const void *m, const void *p) { return zi_qwen3_owns(m, p); }

/* Every matrix of the DiT under its diffusers name. */
static int build_targets(zi_dit *d, const lora_owner *own, lora_target **t, int *n, int *cap) {
    int rc = 0;
    rc |= add_target(t, n, cap, "t_embedder.mlp.0", &d->t_w1, own);
    rc |= add_target(t, n, cap, "t_embedder.mlp.2", &d->t_w2, own);
    rc |= add_target(t, n, cap, "cap_embedder.1", &d->cap_w, own);
    rc |= add_target(t, n, cap, "all_x_embedder.2-1", &d->x_w, own);
    rc |= add_target(t, n, cap, "all_final_layer.2-1.linear", &d->final_w, own);
    rc |= add_target(t, n, cap, "all_final_layer.2-1.adaLN_modulation.1", &d->final_ada_w, own);
    const char *sets[3] = {"noise_refiner", "context_refiner", "layers"};
    zi_dit_block *blk[3] = {d->noise_refiner, d->context_refiner, d->layers};
    int cnt[3] = {d->cfg.n_refiner, d->cfg.n_refiner, d->cfg.n_layers};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < cnt[s]; i++) {
            zi_dit_block *b = &blk[s][i];
            struct {
                const char *n;
                kn_mat *m;
            } mats[] = {{"attention.to_q", &b->wq},      {"attention.to_k", &b->wk},      {"attention.to_v", &b->wv},
                        {"attention.to_out.0", &b->wo},  {"feed_forward.w1", &b->w1},     {"feed_forward.w2", &b->w2},
                        {"feed_forward.w3", &b->w3},     {"adaLN_modulation.0", &b->ada_w}};
            for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
                char nm[96];
                snprintf(nm, sizeof nm, "%s.%d.%s", sets[s], i, mats[k].n);
                rc |= add_target(t, n, cap, nm, mats[k].m, own);
            }
        }
    return rc ? -1 : 0;
}

/* Every matrix of the loaded Qwen3 layers under "te:layers.N.<HF name>" (the prefix keeps
 * the two name spaces apart). */
static int build_te_targets(zi_qwen3 *q, const lora_owner *own, lora_target **t, int *n, int *cap) {
    int rc = 0;
    for (int i = 0; i < zi_qwen3_n_loaded(q); i++)
        for (int k = 0; k < ZI_QWEN3_N_MATS; k++) {
            char nm[96];
            snprintf(nm, sizeof nm, "te:layers.%d.%s", i, zi_qwen3_mat_name(k));
            rc |= add_target(t, n, cap, nm, zi_qwen3_mat(q, i, k), own);
        }
    return rc ? -1 : 0;
}

/* Text-encoder module key (normalized, prefix stripped) -> "te:layers_N_<proj>" in out.
 * Returns 1 if it names a projection of a Qwen3 layer (any N), 0 otherwise; *layer = N. */
static int te_key(const char *key, char *out, size_t cap, int *layer) {
    static const char *const skip[] = {"qwen3_4b_", "transformer_", "model_"}; /* ComfyUI / CausalLM wrappers */
    for (int again = 1; again;) {
        again = 0;
        for (size_t k = 0; k < sizeof skip / sizeof skip[0]; k++)
            if (!strncmp(key, skip[k], strlen(skip[k]))) key += strlen(skip[k]), again = 1;
    }
    int n = 0, len = 0;
    if (sscanf(key, "layers_%d_%n", &n, &len) != 1 || len == 0 || n < 0) return 0;
    for (int k = 0; k < ZI_QWEN3_N_MATS; k++) {
        char want[64];
        norm_name(want, sizeof want, zi_qwen3_mat_name(k), strlen(zi_qwen3_mat_name(k)));
        if (!strcmp(key + len, want)) {
            snprintf(out, cap, "te:layers_%d_%s", n, want);
            *layer = n;
            return 1;
        }
    }
    return 0;
}

static lora_target *find_target(lora_target *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}

/* ComfyUI / original-checkpoint aliases of diffusers names (normalized form). */
static void alias_name(char *out, size_t cap, const char *key) {
    static const char *const map[][2] = {{"x_embedder", "all_x_embedder_2-1"},
                                         {"final_layer_linear", "all_final_layer_2-1_linear"},
                                         {"final_layer_adaLN_modulation_1", "all_final_layer_2-1_adaLN_modulation_1"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(key, map[i][0])) {
            snprintf(out, cap, "%s", map[i][1]);
            return;
        }
    size_t n = strlen(key);
    if (n > 14 && !strcmp(key + n - 14, "_attention_out")) { /* attention.out -> attention.to_out.0 */
        snprintf(out, cap, "%.*s_attention_to_out_0", (int)(n - 14), key);
        return;
    }
    snprintf(out, cap, "%s", key);
}

static int add_contrib(lora_target *t, const contrib *c) {
    contrib *nc = realloc(t->c, sizeof *nc * (size_t)(t->n_c + 1));
    if (!nc) return zi_err("out of memory");
    t->c = nc;
    t->c[t->n_c++] = *c;
    return 0;
}

static float *f32_copy(const zi_tensor *t) { return zi_tensor_to_f32(t); }

/* C[m, n] = A[m, k] B[k, n] (small factor products, f32 with k ascending). */
static float *matmul_small(const float *A, const float *B, int m, int k, int n) {
    float *C = zi_calloc((size_t)m * n, sizeof(float));
    if (!C) return NULL;
    for (int i = 0; i < m; i++)
        for (int x = 0; x < k; x++) {
            float av = A[(size_t)i * k + x];
            for (int j = 0; j < n; j++) C[(size_t)i * n + j] += av * B[(size_t)x * n + j];
        }
    return C;
}

static int shape2(const zi_tensor *t, int64_t *r, int64_t *c) {
    if (!t || t->ndim != 2) return -1;
    *r = t->shape[0], *c = t->shape[1];
    return 0;
}

/* The model's weight (name, full shape) a module targets, for messages. */
static const char *target_desc(char *buf, size_t cap, lora_target **tg, int n_tg) {
    const char *nm = tg[0]->disp;
    if (n_tg == 3) snprintf(buf, cap, "%.*sqkv [%lld, %lld]", (int)(strlen(nm) - 4), nm, (long long)(3 * tg[0]->mat->rows),
                            (long long)tg[0]->mat->cols);
    else snprintf(buf, cap, "%s [%lld, %lld]", nm, (long long)tg[0]->mat->rows, (long long)tg[0]->mat->cols);
    return buf;
}

static int bad_shape(const char *path, const lora_group *g, const char *what, const zi_tensor *t, lora_target **tg,
                     int n_tg) {
    char b[64], d[160];
    return zi_err("%s: %s (%s): shape %s does not fit the %s weight %s (a LoRA for another model?)", path, g->orig,
                  what, t ? zi_shape_str(b, sizeof b, t->ndim, t->shape) : "?",
                  !strncmp(tg[0]->name, "te:", 3) ? "text encoder's" : "transformer's",
                  target_desc(d, sizeof d, tg, n_tg));
}

/* LoHa (LyCORIS "Hadamard product"): delta = (w1_a [rows, r] . w1_b [r, cols]) * (w2_a [rows, r2] .
 * w2_b [r2, cols]) elementwise, x alpha / r with r = hada_w1_b's rows (no alpha: 1). Checked against
 * LyCORIS: lycoris/functional/loha.py (HadaWeight.forward: (w1u @ w1d) * (w2u @ w2d) * scale) and
 * lycoris/modules/loha.py (LohaModule: scale = alpha / lora_dim; make_module_from_state_dict takes
 * lora_dim = w1b.size(0)); ComfyUI's weight_adapter/loha.py divides alpha by w1b.shape[0] too.
 * Rows of a fused qkv weight split like a LoRA's: the row slices of w1_a and w2_a. */
static int hada_apply(const char *path, const lora_group *g, lora_target **tg, int n_tg, float user_scale,
                      int has_alpha, float alpha) {
    const int64_t rows = tg[0]->mat->rows * n_tg, cols = tg[0]->mat->cols;
    const zi_tensor *H1A = g->part[PART_H1A], *H1B = g->part[PART_H1B], *H2A = g->part[PART_H2A], *H2B = g->part[PART_H2B];
    if (!H1A || !H1B || !H2A || !H2B)
        return zi_err("%s: %s: LoHa module needs all of hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b", path, g->orig);
    int64_t ar1, r1, x1, c1, ar2, r2, x2, c2;
    if (shape2(H1A, &ar1, &r1) || ar1 != rows) return bad_shape(path, g, "hada_w1_a", H1A, tg, n_tg);
    if (shape2(H2A, &ar2, &r2) || ar2 != rows) return bad_shape(path, g, "hada_w2_a", H2A, tg, n_tg);
    if (shape2(H1B, &x1, &c1) || x1 != r1 || c1 != cols) return bad_shape(path, g, "hada_w1_b", H1B, tg, n_tg);
    if (shape2(H2B, &x2, &c2) || x2 != r2 || c2 != cols) return bad_shape(path, g, "hada_w2_b", H2B, tg, n_tg);
    if (r1 < 1 || r1 > LORA_MAX_RANK || r2 < 1 || r2 > LORA_MAX_RANK)
        return zi_err("%s: %s: LoHa rank %lld is out of range (1 to %d)", path, g->orig,
                      (long long)(r1 < 1 || r1 > LORA_MAX_RANK ? r1 : r2), LORA_MAX_RANK);
    float scale = user_scale * (has_alpha ? alpha / (float)r1 : 1.0f);
    if (!isfinite(scale)) return zi_err("%s: %s: scale x alpha / rank is not a finite number", path, g->orig);
    float *f[4] = {f32_copy(H1A), f32_copy(H1B), f32_copy(H2A), f32_copy(H2B)};
    int rc = -1;
    if (!f[0] || !f[1] || !f[2] || !f[3]) goto hada_out;
    int64_t sub = rows / n_tg;
    for (int k = 0; k < n_tg; k++) {
        contrib c = {0};
        c.kind = C_HADA;
        c.scale = scale;
        c.r1 = (int)r1, c.r2 = (int)r2;
        c.w1a = malloc(sizeof(float) * (size_t)(sub * r1));
        c.w2a = malloc(sizeof(float) * (size_t)(sub * r2));
        c.w1b = malloc(sizeof(float) * (size_t)(r1 * cols));
        c.w2b = malloc(sizeof(float) * (size_t)(r2 * cols));
        if (c.w1a && c.w2a && c.w1b && c.w2b) {
            memcpy(c.w1a, f[0] + (size_t)(k * sub * r1), sizeof(float) * (size_t)(sub * r1)); /* rows k*sub.. */
            memcpy(c.w2a, f[2] + (size_t)(k * sub * r2), sizeof(float) * (size_t)(sub * r2));
            memcpy(c.w1b, f[1], sizeof(float) * (size_t)(r1 * cols));
            memcpy(c.w2b, f[3], sizeof(float) * (size_t)(r2 * cols));
        }
        if (!c.w1a || !c.w2a || !c.w1b || !c.w2b || add_contrib(tg[k], &c)) {
            if (!c.w1a || !c.w2a || !c.w1b || !c.w2b) zi_err("out of memory");
            free(c.w1a), free(c.w2a), free(c.w1b), free(c.w2b);
            goto hada_out;
        }
    }
    rc = 0;
hada_out:
    for (int k = 0; k < 4; k++) free(f[k]);
    return rc;
}

/* Turn one module group into contributions on 1 (or 3 for fused qkv) targets. */
static int group_apply(const char *path, const lora_group *g, lora_target **tg, int n_tg, float user_scale) {
    const int64_t rows = tg[0]->mat->rows * n_tg, cols = tg[0]->mat->cols;
    float alpha = 0;
    int has_alpha = g->part[PART_ALPHA] != NULL;
    if (has_alpha) {
        float *al = f32_copy(g->part[PART_ALPHA]);
        if (!al) return -1;
        if (g->part[PART_ALPHA]->numel != 1) {
            free(al);
            return zi_err("%s: %s.alpha must hold one number", path, g->orig);
        }
        alpha = al[0];
        free(al);
        if (!isfinite(alpha)) return zi_err("%s: %s.alpha is not a finite number", path, g->orig);
    }
    int is_lora = g->part[PART_A] || g->part[PART_B];
    int is_lokr = g->part[PART_W1] || g->part[PART_W1A] || g->part[PART_W1B] || g->part[PART_W2] ||
                  g->part[PART_W2A] || g->part[PART_W2B];
    int is_hada = g->part[PART_H1A] || g->part[PART_H1B] || g->part[PART_H2A] || g->part[PART_H2B];
    if (is_lora + is_lokr + is_hada > 1)
        return zi_err("%s: %s: one module holds factors of two adapter kinds (LoRA lora_A/B, LoKr lokr_*, LoHa hada_*)",
                      path, g->orig);
    if (is_hada) return hada_apply(path, g, tg, n_tg, user_scale, has_alpha, alpha);
    if (is_lora) {
        int64_t ar, ac, br, bc;
        if (!g->part[PART_A] || !g->part[PART_B])
            return zi_err("%s: %s: LoRA module has only one of its two factors (down/A and up/B)", path, g->orig);
        if (shape2(g->part[PART_A], &ar, &ac) || ac != cols) return bad_shape(path, g, "down/A", g->part[PART_A], tg, n_tg);
        if (shape2(g->part[PART_B], &br, &bc) || br != rows || bc != ar)
            return bad_shape(path, g, "up/B", g->part[PART_B], tg, n_tg);
        if (ar < 1 || ar > LORA_MAX_RANK)
            return zi_err("%s: %s: rank %lld is out of range (1 to %d)", path, g->orig, (long long)ar, LORA_MAX_RANK);
        float *A = f32_copy(g->part[PART_A]), *B = f32_copy(g->part[PART_B]);
        if (!A || !B) {
            free(A), free(B);
            return -1;
        }
        float scale = user_scale * (has_alpha ? alpha / (float)ar : 1.0f);
        if (!isfinite(scale)) {
            free(A), free(B);
            return zi_err("%s: %s: scale x alpha / rank is not a finite number", path, g->orig);
        }
        int64_t sub = rows / n_tg;
        for (int k = 0; k < n_tg; k++) {
            contrib c = {0};
            c.scale = scale;
            c.r = (int)ar;
            c.a = zi_malloc_aligned(sizeof(float) * (size_t)(ar * ac));
            c.b = zi_malloc_aligned(sizeof(float) * (size_t)(sub * ar));
            if (!c.a || !c.b) {
                zi_free_aligned(c.a), zi_free_aligned(c.b), free(A), free(B);
                return -1;
            }
            memcpy(c.a, A, sizeof(float) * (size_t)(ar * ac));
            memcpy(c.b, B + (size_t)(k * sub * ar), sizeof(float) * (size_t)(sub * ar)); /* rows k*sub.. of B */
            if (add_contrib(tg[k], &c)) {
                zi_free_aligned(c.a), zi_free_aligned(c.b), free(A), free(B);
                return -1;
            }
        }
        free(A), free(B);
        return 0;
    }
    /* LoKr: every factor's shape first (sides within the weight's, ranks in range), then the
     * products: a crafted file must not make them overflow or allocate absurd sizes */
    const zi_tensor *W1 = g->part[PART_W1], *W1A = g->part[PART_W1A], *W1B = g->part[PART_W1B];
    const zi_tensor *W2 = g->part[PART_W2], *W2A = g->part[PART_W2A], *W2B = g->part[PART_W2B];
    int64_t p = 0, q = 0, s = 0, t = 0, r1 = 0, r2 = 0, x;
    if (W1) {
        if (shape2(W1, &p, &q)) return bad_shape(path, g, "lokr_w1", W1, tg, n_tg);
    } else if (W1A && W1B) {
        if (shape2(W1A, &p, &r1) || shape2(W1B, &x, &q) || r1 != x) return bad_shape(path, g, "lokr_w1_a/b", W1B, tg, n_tg);
    } else {
        return zi_err("%s: %s: LoKr module needs lokr_w1 or lokr_w1_a + lokr_w1_b", path, g->orig);
    }
    if (W2) {
        if (shape2(W2, &s, &t)) return bad_shape(path, g, "lokr_w2", W2, tg, n_tg);
    } else if (W2A && W2B) {
        if (shape2(W2A, &s, &r2) || shape2(W2B, &x, &t) || r2 != x) return bad_shape(path, g, "lokr_w2_a/b", W2B, tg, n_tg);
    } else {
        return zi_err("%s: %s: LoKr module needs lokr_w2 or lokr_w2_a + lokr_w2_b", path, g->orig);
    }
    /* sides one by one before any product: a zero-sized factor may have any other side */
    if (p < 1 || q < 1 || s < 1 || t < 1 || p > rows || s > rows || q > cols || t > cols || p * s != rows ||
        q * t != cols)
        return zi_err("%s: %s: kron(lokr_w1 [%lld, %lld], lokr_w2 [%lld, %lld]) does not give the model's weight %s "
                      "[%lld, %lld] (a LoKr for another model?)",
                      path, g->orig, (long long)p, (long long)q, (long long)s, (long long)t, tg[0]->disp,
                      (long long)rows, (long long)cols);
    if ((!W1 && (r1 < 1 || r1 > LORA_MAX_RANK)) || (!W2 && (r2 < 1 || r2 > LORA_MAX_RANK)))
        return zi_err("%s: %s: LoKr factor rank %lld is out of range (1 to %d)", path, g->orig,
                      (long long)(!W1 && (r1 < 1 || r1 > LORA_MAX_RANK) ? r1 : r2), LORA_MAX_RANK);
    if (n_tg != 1)
        return zi_err("%s: %s: LoKr on a fused qkv weight is not supported (a Kronecker delta does not split into "
                      "q/k/v)", path, g->orig);
    int64_t rank = !W2 ? r2 : !W1 ? r1 : 0; /* the w2 rank wins, as in LyCORIS / ComfyUI / diffusers */
    float scale = user_scale * (has_alpha && rank ? alpha / (float)rank : 1.0f);
    if (!isfinite(scale)) return zi_err("%s: %s: scale x alpha / rank is not a finite number", path, g->orig);
    float *w1 = NULL, *w2 = NULL, *f[4] = {0}; /* f: w1_a, w1_b, w2_a, w2_b when given */
    int rc = -1;
    if (W1) {
        w1 = f32_copy(W1);
    } else {
        f[0] = f32_copy(W1A), f[1] = f32_copy(W1B);
        w1 = f[0] && f[1] ? matmul_small(f[0], f[1], (int)p, (int)r1, (int)q) : NULL;
    }
    if (W2) {
        w2 = f32_copy(W2);
    } else {
        f[2] = f32_copy(W2A), f[3] = f32_copy(W2B);
        w2 = f[2] && f[3] ? matmul_small(f[2], f[3], (int)s, (int)r2, (int)t) : NULL;
    }
    if (!w1 || !w2) goto lokr_out;
    contrib c = {0};
    c.kind = C_KRON;
    c.scale = scale;
    c.p = (int)p, c.q = (int)q, c.s = (int)s, c.t = (int)t;
    c.w1 = zi_malloc_aligned(sizeof(float) * (size_t)(p * q));
    c.w2 = zi_malloc_aligned(sizeof(float) * (size_t)(s * t));
    if (c.w1) memcpy(c.w1, w1, sizeof(float) * (size_t)(p * q));
    if (c.w2) memcpy(c.w2, w2, sizeof(float) * (size_t)(s * t));
    c.w1a = f[0], c.w1b = f[1], c.w2a = f[2], c.w2b = f[3], c.r1 = (int)r1, c.r2 = (int)r2;
    if (!c.w1 || !c.w2 || add_contrib(tg[0], &c)) {
        zi_free_aligned(c.w1), zi_free_aligned(c.w2);
        goto lokr_out;
    }
    f[0] = f[1] = f[2] = f[3] = NULL; /* now the contribution's */
    rc = 0;
lokr_out:
    free(w1), free(w2);
    for (int k = 0; k < 4; k++) free(f[k]);
    return rc;
}

/* A^T [cols, r] of A [r, cols] (new buffer): the right-hand side kn_gemm_nt wants. */
static float *transpose_new(const float *A, int r, int64_t cols) {
    float *at = zi_malloc_aligned(sizeof(float) * (size_t)(cols * r));
    if (!at) return NULL;
    for (int x = 0; x < r; x++)
        for (int64_t j = 0; j < cols; j++) at[(size_t)j * r + x] = A[(size_t)x * cols + j];
    return at;
}

/* Merge all contributions of one weight into a dense copy: a new buffer (or in place when the
 * model owns it and the dtype stays), in row chunks of ~MERGE_ELEMS floats (at least 64 rows) in
 * f32 (low-rank products B_rows . A through kn_gemm_nt; a LoHa's two products likewise, then
 * multiplied elementwise), rounded once to the weight's dtype; a block-quantized or scaled (fp8)
 * weight is dequantized and becomes F32 (exactly "merged into the dequantized weight"). Large
 * chunks: each kn_gemm_nt is one parallel region, and between regions the OpenMP workers spin
 * while this thread converts and adds (PERF.md, LoRA merge). */
#define MERGE_ELEMS ((int64_t)1 << 21)
static int merge_dense(lora_target *t) {
    kn_mat *m = t->mat;
    const lora_owner *own = t->own;
    const int64_t R = m->rows, C = m->cols;
    int64_t chunk = C > 0 && MERGE_ELEMS / C > 64 ? MERGE_ELEMS / C : 64; /* rows per step */
    if (chunk > R) chunk = R > 0 ? R : 1;
    int dense = zi_dtype_is_float(m->dtype) && (m->scale == 0 || m->scale == 1);
    zi_dtype out_dt = dense ? m->dtype : ZI_F32;
    size_t es = zi_dtype_size(out_dt), row_bytes = zi_dtype_row_bytes(m->dtype, C);
    int in_place = dense && own->owns(own->model, m->data), rc = -1;
    void *dst = in_place ? (void *)m->data : zi_malloc_aligned((size_t)(R * C) * es);
    float *rows = zi_malloc_aligned(sizeof(float) * (size_t)(chunk * C));
    float *dlt = zi_malloc_aligned(sizeof(float) * (size_t)(chunk * C));
    int any_hada = 0;
    for (int k = 0; k < t->n_c; k++) any_hada |= t->c[k].kind == C_HADA;
    float *dlt2 = any_hada ? zi_malloc_aligned(sizeof(float) * (size_t)(chunk * C)) : NULL;
    float **at = zi_calloc((size_t)(2 * t->n_c), sizeof *at); /* per term: A^T [C, r] (LoHa: w1b^T, w2b^T) */
    if (!dst || !rows || !dlt || (any_hada && !dlt2) || !at) goto out;
    for (int k = 0; k < t->n_c; k++) {
        const contrib *c = &t->c[k];
        if (c->kind == C_LORA && !(at[2 * k] = transpose_new(c->a, c->r, C))) goto out;
        if (c->kind == C_HADA &&
            (!(at[2 * k] = transpose_new(c->w1b, c->r1, C)) || !(at[2 * k + 1] = transpose_new(c->w2b, c->r2, C))))
            goto out;
    }
    for (int64_t i0 = 0; i0 < R; i0 += chunk) {
        int64_t nr = R - i0 < chunk ? R - i0 : chunk;
        for (int64_t r = 0; r < nr; r++) // rows[r, C] = dequantized W[i0 + r]
            zi_convert_to_f32(rows + r * C, (const char *)m->data + (size_t)(i0 + r) * row_bytes, m->dtype, (size_t)C);
        if (m->scale != 0 && m->scale != 1)
            for (int64_t q = 0; q < nr * C; q++) rows[q] *= m->scale;
        for (int k = 0; k < t->n_c; k++) {
            const contrib *c = &t->c[k];
            if (c->kind == C_LORA) { /* dlt[nr, C] = B[i0.., r] . A[r, C] */
                if (kn_gemm_nt(dlt, C, c->b + (size_t)i0 * c->r, c->r, at[2 * k], c->r, nr, C, c->r)) goto out;
                for (int64_t q = 0; q < nr * C; q++) rows[q] += c->scale * dlt[q];
            } else if (c->kind == C_HADA) { /* dlt = w1a[i0..] . w1b, dlt2 = w2a[i0..] . w2b: [nr, C] */
                if (kn_gemm_nt(dlt, C, c->w1a + (size_t)i0 * c->r1, c->r1, at[2 * k], c->r1, nr, C, c->r1) ||
                    kn_gemm_nt(dlt2, C, c->w2a + (size_t)i0 * c->r2, c->r2, at[2 * k + 1], c->r2, nr, C, c->r2))
                    goto out;
                for (int64_t q = 0; q < nr * C; q++) rows[q] += c->scale * (dlt[q] * dlt2[q]);
            } else { /* kron: delta[i, jb*t + l] = w1[i / s, jb] * w2[i % s, l] */
                for (int64_t r = 0; r < nr; r++) {
                    int64_t i = i0 + r;
                    const float *w1r = c->w1 + (size_t)(i / c->s) * c->q, *w2r = c->w2 + (size_t)(i % c->s) * c->t;
                    float *row = rows + r * C;
                    for (int jb = 0; jb < c->q; jb++)
                        for (int l = 0; l < c->t; l++) row[jb * c->t + l] += c->scale * (w1r[jb] * w2r[l]);
                }
            }
        }
    size_t o = (size_t)(i0 * C);
        if (out_dt == ZI_F32) memcpy((float *)dst + o, rows, sizeof(float) * (size_t)(nr * C));
        else if (out_dt == ZI_BF16)
            for (int64_t q = 0; q < nr * C; q++) ((uint16_t *)dst)[o + q] = zi_f32_to_bf16(rows[q]);
        else
            for (int64_t q = 0; q < nr * C; q++) ((uint16_t *)dst)[o + q] = zi_f32_to_f16(rows[q]);
    }
    if (!in_place) {
        /* the mapped original is no longer read: drop its pages from this process */
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t a0 = ((uintptr_t)m->data + pg - 1) & ~(pg - 1), a1 = ((uintptr_t)m->data + (size_t)R * row_bytes) & ~(pg - 1);
        if (own->keep(own->model, dst)) {
            dst = NULL;
            goto out;
        }
        if (a1 > a0 && !own->owns(own->model, m->data)) madvise((void *)a0, a1 - a0, MADV_DONTNEED);
        m->data = dst;
        m->dtype = out_dt;
        m->scale = 0;
        dst = NULL;
    }
    rc = 0;
out:
    if (!in_place) zi_free_aligned(dst);
    for (int k = 0; at && k < 2 * t->n_c; k++) zi_free_aligned(at[k]);
    free(at);
    zi_free_aligned(rows);
    zi_free_aligned(dlt);
    zi_free_aligned(dlt2);
    return rc;
}

/* One factor of a Kronecker product as U [m, R] . V [R, n] (dense, f32, new buffers): the given
 * decomposition when its rank is below min(m, n), else the identity on the smaller side. */
static int kron_side(const float *w, const float *fa, const float *fb, int fr, int m, int n, float **U, float **V, int *R) {
    int r = fa && fr < (m < n ? m : n) ? fr : (m < n ? m : n);
    *U = zi_calloc((size_t)m * r, sizeof(float));
    *V = zi_calloc((size_t)r * n, sizeof(float));
    if (!*U || !*V) return -1;
    if (fa && r == fr) {
        memcpy(*U, fa, sizeof(float) * (size_t)m * r);
        memcpy(*V, fb, sizeof(float) * (size_t)r * n);
    } else if (m <= n) { /* I_m . w */
        for (int i = 0; i < m; i++) (*U)[(size_t)i * r + i] = 1;
        memcpy(*V, w, sizeof(float) * (size_t)m * n);
    } else { /* w . I_n */
        memcpy(*U, w, sizeof(float) * (size_t)m * n);
        for (int i = 0; i < n; i++) (*V)[(size_t)i * n + i] = 1;
    }
    *R = r;
    return 0;
}

/* out [m1*m2, n1*n2] = kron(X [m1, n1], Y [m2, n2]) */
static void kron_fill(float *out, const float *X, int m1, int n1, const float *Y, int m2, int n2) {
    for (int i = 0; i < m1; i++)
        for (int k = 0; k < m2; k++)
            for (int j = 0; j < n1; j++)
                for (int l = 0; l < n2; l++)
                    out[((size_t)i * m2 + k) * ((size_t)n1 * n2) + (size_t)j * n2 + l] =
                        X[(size_t)i * n1 + j] * Y[(size_t)k * n2 + l];
}

/* Rank of the low-rank form of a Kronecker contribution (see kron_lowrank). */
static int64_t kron_rank(const contrib *c) {
    int64_t m1 = c->p < c->q ? c->p : c->q, m2 = c->s < c->t ? c->s : c->t;
    int64_t r1 = c->w1a && c->r1 < m1 ? c->r1 : m1, r2 = c->w2a && c->r2 < m2 ? c->r2 : m2;
    return r1 * r2;
}

/* kron(w1, w2) = kron(U1 V1, U2 V2) = kron(U1, U2) . kron(V1, V2): B [p*s, R1*R2], A [R1*R2, q*t]. */
static int kron_lowrank(contrib *c) {
    float *U1 = NULL, *V1 = NULL, *U2 = NULL, *V2 = NULL;
    int R1 = 0, R2 = 0, rc = -1;
    if (kron_side(c->w1, c->w1a, c->w1b, c->r1, c->p, c->q, &U1, &V1, &R1) ||
        kron_side(c->w2, c->w2a, c->w2b, c->r2, c->s, c->t, &U2, &V2, &R2))
        goto out;
    int64_t r = (int64_t)R1 * R2;
    c->b = zi_malloc_aligned(sizeof(float) * (size_t)((int64_t)c->p * c->s * r));
    c->a = zi_malloc_aligned(sizeof(float) * (size_t)(r * c->q * c->t));
    if (!c->a || !c->b) goto out;
    kron_fill(c->b, U1, c->p, R1, U2, c->s, R2);
    kron_fill(c->a, V1, R1, c->q, V2, R2, c->t);
    c->r = (int)r;
    rc = 0;
out:
    free(U1), free(V1), free(U2), free(V2);
    return rc;
}

/* (w1a . w1b) * (w2a . w2b) as one low-rank product (Khatri-Rao): B [rows, r1*r2] with
 * B[i, a*r2 + b] = w1a[i, a] w2a[i, b], A [r1*r2, cols] with A[a*r2 + b, j] = w1b[a, j] w2b[b, j]:
 * sum over (a, b) of B A = (sum_a w1a w1b) (sum_b w2a w2b) elementwise. */
static int hada_lowrank(contrib *c, int64_t rows, int64_t cols) {
    int64_t r = (int64_t)c->r1 * c->r2;
    if (r > LORA_MAX_RANK) return zi_err("LoHa rank %d x %d is too large for run-time terms", c->r1, c->r2);
    c->b = zi_malloc_aligned(sizeof(float) * (size_t)(rows * r));
    c->a = zi_malloc_aligned(sizeof(float) * (size_t)(r * cols));
    if (!c->a || !c->b) return -1;
    for (int64_t i = 0; i < rows; i++)
        for (int a = 0; a < c->r1; a++)
            for (int b = 0; b < c->r2; b++)
                c->b[(size_t)(i * r + a * c->r2 + b)] = c->w1a[(size_t)(i * c->r1 + a)] * c->w2a[(size_t)(i * c->r2 + b)];
    for (int a = 0; a < c->r1; a++)
        for (int b = 0; b < c->r2; b++)
            for (int64_t j = 0; j < cols; j++)
                c->a[(size_t)((a * c->r2 + b) * cols + j)] = c->w1b[(size_t)(a * cols + j)] * c->w2b[(size_t)(b * cols + j)];
    c->r = (int)r;
    return 0;
}

/* Run-time terms: kn_mat.lora gets one kn_lowrank per contribution (a LoKr one in its
 * Kronecker-factored low-rank form, a LoHa one in its Khatri-Rao form). */
static int attach_runtime(lora_target *t) {
    const lora_owner *own = t->own;
    kn_lowrank *lr = zi_malloc_aligned(sizeof *lr * (size_t)(t->n_c + t->mat->n_lora));
    if (!lr) return -1;
    for (int k = 0; k < t->mat->n_lora; k++) lr[k] = t->mat->lora[k];
    int n = t->mat->n_lora;
    for (int k = 0; k < t->n_c; k++) {
        contrib *c = &t->c[k];
        if (c->kind != C_LORA && !c->a && (c->kind == C_KRON ? kron_lowrank(c) : hada_lowrank(c, t->mat->rows, t->mat->cols))) {
            zi_free_aligned(lr);
            return -1;
        }
        lr[n++] = (kn_lowrank){.a = c->a, .b = c->b, .rank = c->r, .scale = c->scale};
        int bad = own->keep(own->model, c->a);
        bad |= own->keep(own->model, c->b);
        c->a = c->b = NULL; /* now owned by the model (or freed on failure) */
        if (bad) {
            zi_free_aligned(lr);
            return -1;
        }
    }
    if (own->keep(own->model, lr)) return -1;
    t->mat->lora = lr;
    t->mat->n_lora = n;
    return 0;
}

static int is_dense(zi_dtype t) { return t == ZI_F32 || t == ZI_BF16 || t == ZI_F16; }

/* Append "name" to a bounded list of at most 5 names. */
static void list_add(char *buf, size_t cap, int *count, const char *name) {
    if ((*count)++ < 5) {
        size_t o = strlen(buf);
        snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", name);
    }
}

/* Factors of a Kronecker or Hadamard contribution in low-rank form larger than a dense f32 delta
 * (or of a rank kn_lowrank cannot hold)? */
static int lowrank_too_big(const lora_target *t) {
    for (int k = 0; k < t->n_c; k++) {
        const contrib *c = &t->c[k];
        int64_t r = c->kind == C_KRON ? kron_rank(c) : c->kind == C_HADA ? (int64_t)c->r1 * c->r2 : 0;
        if (r > LORA_MAX_RANK || r * (t->mat->rows + t->mat->cols) > t->mat->rows * t->mat->cols) return 1;
    }
    return 0;
}

/* Split one tensor name into module key and part; -1 if it is no adapter tensor. The key is
 * normalized ('.' -> '_'), known prefixes stripped, "te:" in front for text-encoder prefixes. */
static int split_name(const char *full, char *key, size_t cap) {
    char tmp[512];
    if (strlen(full) >= sizeof tmp) return -1; /* longer than any module name: no match (never truncated) */
    snprintf(tmp, sizeof tmp, "%s", full);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) { /* PEFT adapter names: x.lora_A.default.weight */
            char *dflt = strstr(tmp, ".default.");
            if (!dflt) return -1;
            memmove(dflt, dflt + 8, strlen(dflt + 8) + 1);
        }
        size_t len = strlen(tmp);
        for (size_t s = 0; s < sizeof lora_suffixes / sizeof lora_suffixes[0]; s++) {
            size_t sl = strlen(lora_suffixes[s].suffix);
            if (len <= sl || strcmp(tmp + len - sl, lora_suffixes[s].suffix)) continue;
            const char *mod = tmp, *end = tmp + len - sl;
            int is_te = 0;
            for (size_t k = 0; k < sizeof te_prefixes / sizeof te_prefixes[0] && !is_te; k++) {
                size_t pl = strlen(te_prefixes[k]);
                if ((size_t)(end - mod) > pl && !strncmp(mod, te_prefixes[k], pl)) mod += pl, is_te = 1;
            }
            for (size_t k = 0; k < sizeof strip_prefixes / sizeof strip_prefixes[0] && !is_te; k++) {
                size_t pl = strlen(strip_prefixes[k]);
                if ((size_t)(end - mod) > pl && !strncmp(mod, strip_prefixes[k], pl)) {
                    mod += pl;
                    break;
                }
            }
            if ((size_t)(end - mod) + 3 >= cap) return -1; /* would be truncated: no match */
            snprintf(key, cap, "%s", is_te ? "te:" : "");
            norm_name(key + strlen(key), cap - strlen(key), mod, (size_t)(end - mod));
            return lora_suffixes[s].part;
        }
    }
    return -1;
}

int zi_lora_apply(zi_dit *dit, zi_qwen3 *te, const zimage_lora *loras, int n, int lenient, int mode, char **warnings,
                  int *te_modules) {
    if (warnings) *warnings = NULL;
    if (te_modules) *te_modules = 0;
    if (n <= 0) return 0;
    lora_target *tg = NULL;
    int n_tg = 0, cap = 0, rc = -1, n_te_mod = 0;
    zi_st_file *files = zi_calloc((size_t)n, sizeof *files);
    lora_group *groups = NULL;
    char warn[2048] = "";
    const lora_owner dit_own = {dit_keep, dit_owns, dit}, te_own = {te_keep, te_owns, te};
    if (!files || (dit && build_targets(dit, &dit_own, &tg, &n_tg, &cap)) ||
        (te && build_te_targets(te, &te_own, &tg, &n_tg, &cap)))
        goto out;
    const int te_layers = te ? zi_qwen3_get_config(te)->n_layers : 0;
    for (int li = 0; li < n; li++) {
        const char *path = loras[li].path;
        if (!path) {
            zi_err("LoRA %d: no path", li + 1);
            goto out;
        }
        if (!(loras[li].scale == loras[li].scale) || loras[li].scale < -100 || loras[li].scale > 100) {
            zi_err("%s: LoRA scale %g out of range [-100, 100]", path, (double)loras[li].scale);
            goto out;
        }
        if (zi_st_open(&files[li], path)) {
            zi_err_ctx("LoRA");
            goto out;
        }
        zi_st_file *f = &files[li];
        free(groups);
        groups = zi_calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *groups);
        if (!groups) goto out;
        int n_g = 0, n_bad = 0;
        char bad[1024] = "";
        for (int ti = 0; ti < f->n_tensors; ti++) {
            const zi_tensor *t = &f->tensors[ti];
            char key[160];
            int part = split_name(t->name, key, sizeof key);
            if (part < 0) {
                if (dit) list_add(bad, sizeof bad, &n_bad, t->name); /* else left to the DiT's pass */
                continue;
            }
            int gi = 0;
            while (gi < n_g && strcmp(groups[gi].key, key)) gi++;
            if (gi == n_g) {
                snprintf(groups[n_g].key, sizeof groups[n_g].key, "%s", key);
                groups[n_g].orig = t->name;
                groups[n_g].te = !strncmp(key, "te:", 3);
                n_g++;
            }
            if (groups[gi].part[part]) { /* e.g. lora_A and lora_down, or two prefixes, of one module */
                zi_err("%s: tensors '%s' and '%s' are the same factor of one module", loras[li].path,
                       groups[gi].part[part]->name, t->name);
                goto out;
            }
            groups[gi].part[part] = t;
        }
        /* resolve modules to weights */
        for (int gi = 0; gi < n_g; gi++) {
            lora_group *g = &groups[gi];
            lora_target *one = NULL, *three[3] = {0};
            int te_layer = -1, is_te_key = 0;
            char tkey[200];
            if (!g->te && dit) {
                char key[160];
                alias_name(key, sizeof key, g->key);
                one = find_target(tg, n_tg, key);
                size_t kl = strlen(key);
                if (!one && kl > 14 && !strcmp(key + kl - 14, "_attention_qkv")) { /* ComfyUI fused q|k|v */
                    const char *qkv[3] = {"to_q", "to_k", "to_v"};
                    for (int k = 0; k < 3; k++) {
                        char nm[200];
                        snprintf(nm, sizeof nm, "%.*s_attention_%s", (int)(kl - 14), key, qkv[k]);
                        three[k] = find_target(tg, n_tg, nm);
                    }
                    if (!three[0] || !three[1] || !three[2]) three[0] = NULL;
                }
            }
            if (!one && !three[0] && te) { /* the text encoder: explicit prefix, or raw PEFT names */
                is_te_key = te_key(g->key + (g->te ? 3 : 0), tkey, sizeof tkey, &te_layer);
                if (is_te_key) one = find_target(tg, n_tg, tkey);
                if (is_te_key && (one || te_layer < te_layers)) n_te_mod++;
                if (is_te_key && !one && te_layer < te_layers) continue; /* the last layer: no effect on hidden_states[-2] */
            }
            if (!one && !three[0] && !te && te_key(g->key + (g->te ? 3 : 0), tkey, sizeof tkey, &te_layer))
                continue; /* a text-encoder module, and no text encoder given here */
            if (!one && !three[0]) {
                if ((g->te && !te) || (!g->te && !dit)) continue; /* for a model not being loaded here */
                list_add(bad, sizeof bad, &n_bad, g->orig);
                continue;
            }
            if (g->part[PART_HT1] || g->part[PART_HT2]) { /* Tucker LoHa: conv kernels, no Linear weight */
                if (!lenient) {
                    zi_err("%s: %s: LoHa with Tucker factors (hada_t1 / hada_t2) is for convolution layers; the "
                           "module is a Linear weight (--lora-lenient skips it)", loras[li].path, g->orig);
                    goto out;
                }
                list_add(bad, sizeof bad, &n_bad, g->orig);
                continue;
            }
            if (group_apply(loras[li].path, g, one ? &one : three, one ? 1 : 3, loras[li].scale)) goto out;
        }
        if (n_bad) {
            if (!lenient) {
                const char *what = (dit && te) || (mode & ZI_LORA_TE_ELSEWHERE) ? "transformer or text encoder"
                                   : te                                        ? "text encoder"
                                                                               : "transformer";
                zi_err("%s: %d LoRA tensors match no weight of this %s (a LoRA for another model?): %s%s "
                       "(--lora-lenient skips them)", loras[li].path, n_bad, what, bad, n_bad > 5 ? ", ..." : "");
                goto out;
            }
            size_t o = strlen(warn);
            snprintf(warn + o, sizeof warn - o, "%s%s: skipped %d unmatched LoRA tensors (%s%s)", o ? "\n" : "",
                     loras[li].path, n_bad, bad, n_bad > 5 ? ", ..." : "");
        }
        if (f->n_tensors == 0) {
            zi_err("%s: no LoRA tensors in this file", loras[li].path);
            goto out;
        }
    }
    /* merge or attach */
    for (int i = 0; i < n_tg; i++) {
        lora_target *t = &tg[i];
        if (!t->n_c) continue;
        int all_zero = 1;
        for (int k = 0; k < t->n_c; k++) all_zero &= t->c[k].scale == 0;
        if (all_zero) continue; /* scale 0: exactly the base weight */
        int is_te = t->own == &te_own;
        int dense = is_dense(t->mat->dtype) && (t->mat->scale == 0 || t->mat->scale == 1);
        int forced = !is_te && (mode & ZI_LORA_RUNTIME);
        int runtime = forced || (is_te ? !(mode & ZI_LORA_TE_MERGE) : !dense);
        if (runtime && !forced && lowrank_too_big(t)) runtime = 0; /* dequantize and merge instead */
        if (runtime ? attach_runtime(t) : merge_dense(t)) goto out;
    }
    if (warnings && warn[0]) *warnings = zi_strdup(warn);
    if (te_modules) *te_modules = n_te_mod;
    rc = 0;
out:
    for (int i = 0; tg && i < n_tg; i++) {
        for (int k = 0; k < tg[i].n_c; k++) {
            contrib *c = &tg[i].c[k];
            zi_free_aligned(c->a), zi_free_aligned(c->b), zi_free_aligned(c->w1), zi_free_aligned(c->w2);
            free(c->w1a), free(c->w1b), free(c->w2a), free(c->w2b);
        }
        free(tg[i].c);
    }
    free(tg);
    free(groups);
    for (int li = 0; files && li < n; li++) zi_st_close(&files[li]);
    free(files);
    return rc;
}
