/* lora.c - LoRA / LoKr adapter files -> merged DiT weights (or run-time low-rank terms).
 * Formats and rules: see lora.h. Flow: open every file, group its tensors by module,
 * resolve each module to one or three (fused qkv) DiT weights, check shapes, then
 * per weight merge all contributions row by row in float32 and round once. */
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

enum { PART_A, PART_B, PART_ALPHA, PART_W1, PART_W1A, PART_W1B, PART_W2, PART_W2A, PART_W2B, N_PARTS };

static const struct {
    const char *suffix;
    int part;
} lora_suffixes[] = {
    {".lora_A.weight", PART_A},   {".lora_B.weight", PART_B},     {".lora_down.weight", PART_A},
    {".lora_up.weight", PART_B},  {".alpha", PART_ALPHA},         {".lokr_w1", PART_W1},
    {".lokr_w1_a", PART_W1A},     {".lokr_w1_b", PART_W1B},       {".lokr_w2", PART_W2},
    {".lokr_w2_a", PART_W2A},     {".lokr_w2_b", PART_W2B},
};

static const char *const strip_prefixes[] = {"transformer.", "model.diffusion_model.", "diffusion_model.",
                                             "base_model.model.", "lora_unet_", "unet."};
static const char *const te_prefixes[] = {"lora_te_", "lora_te1_", "text_encoder.", "te.", "lora_te1."};

/* One DiT weight that adapters may target. */
typedef struct {
    char name[96]; /* normalized: '.' -> '_' */
    kn_mat *mat;
    struct contrib *c;
    int n_c;
} lora_target;

typedef struct contrib {
    int kron;
    float scale;
    float *a, *b; /* low-rank: a [r, cols], b [rows, r] (owned, f32) */
    int r;
    float *w1, *w2; /* kron: w1 [p, q], w2 [s, t]; rows = p*s, cols = q*t (owned) */
    int p, q, s, t;
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

static int add_target(lora_target **t, int *n, int *cap, const char *name, kn_mat *mat) {
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
    x->mat = mat;
    return 0;
}

/* Every matrix of the DiT under its diffusers name. */
static int build_targets(zi_dit *d, lora_target **t, int *n) {
    int cap = 0, rc = 0;
    *t = NULL, *n = 0;
    rc |= add_target(t, n, &cap, "t_embedder.mlp.0", &d->t_w1);
    rc |= add_target(t, n, &cap, "t_embedder.mlp.2", &d->t_w2);
    rc |= add_target(t, n, &cap, "cap_embedder.1", &d->cap_w);
    rc |= add_target(t, n, &cap, "all_x_embedder.2-1", &d->x_w);
    rc |= add_target(t, n, &cap, "all_final_layer.2-1.linear", &d->final_w);
    rc |= add_target(t, n, &cap, "all_final_layer.2-1.adaLN_modulation.1", &d->final_ada_w);
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
                rc |= add_target(t, n, &cap, nm, mats[k].m);
            }
        }
    return rc ? -1 : 0;
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

static int bad_shape(const char *path, const lora_group *g, const char *what, const zi_tensor *t, int64_t want_r,
                     int64_t want_c) {
    char b[64];
    return zi_err("%s: %s (%s): shape %s does not fit the model's weight [%lld, %lld] (a LoRA for another model?)",
                  path, g->orig, what, t ? zi_shape_str(b, sizeof b, t->ndim, t->shape) : "?", (long long)want_r,
                  (long long)want_c);
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
    if (g->part[PART_A] || g->part[PART_B]) {
        int64_t ar, ac, br, bc;
        if (!g->part[PART_A] || !g->part[PART_B])
            return zi_err("%s: %s: LoRA module has only one of its two factors (down/A and up/B)", path, g->orig);
        if (shape2(g->part[PART_A], &ar, &ac) || ac != cols) return bad_shape(path, g, "down/A", g->part[PART_A], -1, cols);
        if (shape2(g->part[PART_B], &br, &bc) || br != rows || bc != ar)
            return bad_shape(path, g, "up/B", g->part[PART_B], rows, ar);
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
    /* LoKr: every factor's shape first (sides within the weight's, ranks >= 1), then the products */
    const zi_tensor *W1 = g->part[PART_W1], *W1A = g->part[PART_W1A], *W1B = g->part[PART_W1B];
    const zi_tensor *W2 = g->part[PART_W2], *W2A = g->part[PART_W2A], *W2B = g->part[PART_W2B];
    int64_t p, q, s, t, r1 = 0, r2 = 0, k;
    if (W1) {
        if (shape2(W1, &p, &q)) return bad_shape(path, g, "lokr_w1", W1, -1, -1);
    } else if (W1A && W1B) {
        if (shape2(W1A, &p, &r1) || shape2(W1B, &k, &q) || r1 != k) return bad_shape(path, g, "lokr_w1_a/b", W1B, -1, -1);
    } else {
        return zi_err("%s: %s: LoKr module needs lokr_w1 or lokr_w1_a + lokr_w1_b", path, g->orig);
    }
    if (W2) {
        if (shape2(W2, &s, &t)) return bad_shape(path, g, "lokr_w2", W2, -1, -1);
    } else if (W2A && W2B) {
        if (shape2(W2A, &s, &r2) || shape2(W2B, &k, &t) || r2 != k) return bad_shape(path, g, "lokr_w2_a/b", W2B, -1, -1);
    } else {
        return zi_err("%s: %s: LoKr module needs lokr_w2 or lokr_w2_a + lokr_w2_b", path, g->orig);
    }
    /* sides checked one by one before the products: a zero-sized factor may have any other side */
    if (p < 1 || q < 1 || s < 1 || t < 1 || p > rows || s > rows || q > cols || t > cols || p * s != rows ||
        q * t != cols)
        return zi_err("%s: %s: kron(lokr_w1 [%lld, %lld], lokr_w2 [%lld, %lld]) does not give the model's weight "
                      "[%lld, %lld] (a LoKr for another model?)",
                      path, g->orig, (long long)p, (long long)q, (long long)s, (long long)t, (long long)rows,
                      (long long)cols);
    if ((!W1 && (r1 < 1 || r1 > LORA_MAX_RANK)) || (!W2 && (r2 < 1 || r2 > LORA_MAX_RANK)))
        return zi_err("%s: %s: LoKr factor rank %lld is out of range (1 to %d)", path, g->orig,
                      (long long)(!W1 && (r1 < 1 || r1 > LORA_MAX_RANK) ? r1 : r2), LORA_MAX_RANK);
    if (n_tg != 1)
        return zi_err("%s: %s: LoKr on a fused qkv weight is not supported (a Kronecker delta does not split into "
                      "q/k/v)", path, g->orig);
    int64_t rank = !W2 ? r2 : !W1 ? r1 : 0; /* the w2 rank wins, as in LyCORIS / ComfyUI / diffusers */
    float scale = user_scale * (has_alpha && rank ? alpha / (float)rank : 1.0f);
    if (!isfinite(scale)) return zi_err("%s: %s: scale x alpha / rank is not a finite number", path, g->orig);
    float *w1 = NULL, *w2 = NULL;
    if (W1) {
        w1 = f32_copy(W1);
    } else {
        float *a = f32_copy(W1A), *b = f32_copy(W1B);
        w1 = a && b ? matmul_small(a, b, (int)p, (int)r1, (int)q) : NULL;
        free(a), free(b);
    }
    if (W2) {
        w2 = f32_copy(W2);
    } else {
        float *a = f32_copy(W2A), *b = f32_copy(W2B);
        w2 = a && b ? matmul_small(a, b, (int)s, (int)r2, (int)t) : NULL;
        free(a), free(b);
    }
    if (!w1 || !w2) {
        free(w1), free(w2);
        return -1;
    }
    contrib c = {0};
    c.kron = 1;
    c.scale = scale;
    c.p = (int)p, c.q = (int)q, c.s = (int)s, c.t = (int)t;
    c.w1 = zi_malloc_aligned(sizeof(float) * (size_t)(p * q));
    c.w2 = zi_malloc_aligned(sizeof(float) * (size_t)(s * t));
    if (c.w1) memcpy(c.w1, w1, sizeof(float) * (size_t)(p * q));
    if (c.w2) memcpy(c.w2, w2, sizeof(float) * (size_t)(s * t));
    free(w1), free(w2);
    if (!c.w1 || !c.w2 || add_contrib(tg[0], &c)) {
        zi_free_aligned(c.w1), zi_free_aligned(c.w2);
        return -1;
    }
    return 0;
}

static float load_elem(const kn_mat *m, int64_t i) {
    switch (m->dtype) {
    case ZI_F32: return ((const float *)m->data)[i];
    case ZI_BF16: return zi_bf16_to_f32(((const uint16_t *)m->data)[i]);
    default: return zi_f16_to_f32(((const uint16_t *)m->data)[i]);
    }
}

/* Merge all contributions of one dense weight: new buffer (or in place when the model owns
 * it), 64 rows at a time in f32 (low-rank products B_rows . A through kn_gemm_nt), rounded
 * once to the weight's dtype. */
#define MERGE_ROWS 64
static int merge_dense(zi_dit *d, lora_target *t) {
    kn_mat *m = t->mat;
    const int64_t R = m->rows, C = m->cols;
    size_t es = zi_dtype_size(m->dtype);
    int in_place = zi_dit_owns(d, m->data), rc = -1;
    void *dst = in_place ? (void *)m->data : zi_malloc_aligned((size_t)(R * C) * es);
    float *rows = zi_malloc_aligned(sizeof(float) * (size_t)(MERGE_ROWS * C));
    float *dlt = zi_malloc_aligned(sizeof(float) * (size_t)(MERGE_ROWS * C));
    float **at = zi_calloc((size_t)t->n_c, sizeof *at); /* A^T [C, r] per low-rank term */
    if (!dst || !rows || !dlt || !at) goto out;
    for (int k = 0; k < t->n_c; k++) {
        const contrib *c = &t->c[k];
        if (c->kron) continue;
        if (!(at[k] = zi_malloc_aligned(sizeof(float) * (size_t)(C * c->r)))) goto out;
        for (int x = 0; x < c->r; x++)
            for (int64_t j = 0; j < C; j++) at[k][(size_t)j * c->r + x] = c->a[(size_t)x * C + j];
    }
    for (int64_t i0 = 0; i0 < R; i0 += MERGE_ROWS) {
        int64_t nr = R - i0 < MERGE_ROWS ? R - i0 : MERGE_ROWS;
        for (int64_t q = 0; q < nr * C; q++) rows[q] = load_elem(m, i0 * C + q);
        for (int k = 0; k < t->n_c; k++) {
            const contrib *c = &t->c[k];
            if (!c->kron) { /* dlt[nr, C] = B[i0.., r] . A[r, C] */
                if (kn_gemm_nt(dlt, C, c->b + (size_t)i0 * c->r, c->r, at[k], c->r, nr, C, c->r)) goto out;
                for (int64_t q = 0; q < nr * C; q++) rows[q] += c->scale * dlt[q];
            } else { /* kron: delta[i, j] = w1[i / s, j / t] * w2[i % s, j % t] */
                for (int64_t r = 0; r < nr; r++) {
                    int64_t i = i0 + r;
                    const float *w1r = c->w1 + (size_t)(i / c->s) * c->q, *w2r = c->w2 + (size_t)(i % c->s) * c->t;
                    for (int64_t j = 0; j < C; j++) rows[r * C + j] += c->scale * (w1r[j / c->t] * w2r[j % c->t]);
                }
            }
        }
        for (int64_t q = 0; q < nr * C; q++) {
            size_t o = (size_t)(i0 * C + q);
            if (m->dtype == ZI_F32) ((float *)dst)[o] = rows[q];
            else if (m->dtype == ZI_BF16) ((uint16_t *)dst)[o] = zi_f32_to_bf16(rows[q]);
            else ((uint16_t *)dst)[o] = zi_f32_to_f16(rows[q]);
        }
    }
    if (!in_place) {
        /* the mapped original is no longer read: drop its pages from this process */
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t a0 = ((uintptr_t)m->data + pg - 1) & ~(pg - 1), a1 = ((uintptr_t)m->data + (size_t)(R * C) * es) & ~(pg - 1);
        if (zi_dit_keep(d, dst)) {
            dst = NULL;
            goto out;
        }
        if (a1 > a0 && !zi_dit_owns(d, m->data)) madvise((void *)a0, a1 - a0, MADV_DONTNEED);
        m->data = dst;
        dst = NULL;
    }
    rc = 0;
out:
    if (!in_place) zi_free_aligned(dst);
    for (int k = 0; at && k < t->n_c; k++) zi_free_aligned(at[k]);
    free(at);
    zi_free_aligned(rows);
    zi_free_aligned(dlt);
    return rc;
}

/* Run-time terms: kn_mat.lora gets one kn_lowrank per contribution (LoKr cannot be one). */
static int attach_runtime(zi_dit *d, lora_target *t) {
    kn_lowrank *lr = zi_malloc_aligned(sizeof *lr * (size_t)(t->n_c + t->mat->n_lora));
    if (!lr) return -1;
    for (int k = 0; k < t->mat->n_lora; k++) lr[k] = t->mat->lora[k];
    int n = t->mat->n_lora;
    for (int k = 0; k < t->n_c; k++) {
        contrib *c = &t->c[k];
        if (c->kron) {
            zi_free_aligned(lr);
            return zi_err("LoKr on a %s weight (%s) is not supported: only dense weights can take a Kronecker delta",
                          zi_dtype_name(t->mat->dtype), t->name);
        }
        lr[n++] = (kn_lowrank){.a = c->a, .b = c->b, .rank = c->r, .scale = c->scale};
        if (zi_dit_keep(d, c->a) || zi_dit_keep(d, c->b)) {
            c->a = c->b = NULL;
            zi_free_aligned(lr);
            return -1;
        }
        c->a = c->b = NULL; /* now owned by the model */
    }
    if (zi_dit_keep(d, lr)) return -1;
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

int zi_lora_apply(zi_dit *dit, const zimage_lora *loras, int n, int lenient, int mode, char **warnings) {
    if (warnings) *warnings = NULL;
    if (n <= 0) return 0;
    lora_target *tg = NULL;
    int n_tg = 0, rc = -1;
    zi_st_file *files = zi_calloc((size_t)n, sizeof *files);
    lora_group *groups = NULL;
    char warn[2048] = "";
    if (!files || build_targets(dit, &tg, &n_tg)) goto out;
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
        int n_g = 0, n_bad = 0, n_te = 0;
        char bad[1024] = "", te[1024] = "";
        for (int ti = 0; ti < f->n_tensors; ti++) {
            const zi_tensor *t = &f->tensors[ti];
            const char *name = t->name;
            size_t len = strlen(name);
            int part = -1;
            size_t cut = len;
            for (size_t s = 0; s < sizeof lora_suffixes / sizeof lora_suffixes[0]; s++) {
                size_t sl = strlen(lora_suffixes[s].suffix);
                if (len > sl && !strcmp(name + len - sl, lora_suffixes[s].suffix)) {
                    part = lora_suffixes[s].part;
                    cut = len - sl;
                    break;
                }
            }
            /* PEFT adapter names: x.lora_A.default.weight */
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s", name);
            char *dflt = strstr(tmp, ".default.");
            if (part < 0 && dflt) {
                memmove(dflt, dflt + 8, strlen(dflt + 8) + 1); /* drop ".default" */
                size_t l2 = strlen(tmp);
                for (size_t s = 0; s < sizeof lora_suffixes / sizeof lora_suffixes[0]; s++) {
                    size_t sl = strlen(lora_suffixes[s].suffix);
                    if (l2 > sl && !strcmp(tmp + l2 - sl, lora_suffixes[s].suffix)) {
                        part = lora_suffixes[s].part;
                        cut = l2 - sl;
                        break;
                    }
                }
                name = tmp;
            }
            if (part < 0) {
                list_add(bad, sizeof bad, &n_bad, t->name);
                continue;
            }
            const char *mod = name;
            int is_te = 0;
            for (size_t k = 0; k < sizeof te_prefixes / sizeof te_prefixes[0]; k++)
                if (!strncmp(mod, te_prefixes[k], strlen(te_prefixes[k]))) is_te = 1;
            for (size_t k = 0; k < sizeof strip_prefixes / sizeof strip_prefixes[0]; k++) {
                size_t pl = strlen(strip_prefixes[k]);
                if ((size_t)(name + cut - mod) > pl && !strncmp(mod, strip_prefixes[k], pl)) {
                    mod += pl;
                    break;
                }
            }
            char key[160];
            if ((size_t)(name + cut - mod) >= sizeof key) { /* longer than any DiT module name: no match */
                list_add(bad, sizeof bad, &n_bad, t->name);
                continue;
            }
            norm_name(key, sizeof key, mod, (size_t)(name + cut - mod));
            if (is_te) {
                list_add(te, sizeof te, &n_te, t->name);
                continue;
            }
            int gi = 0;
            while (gi < n_g && strcmp(groups[gi].key, key)) gi++;
            if (gi == n_g) {
                snprintf(groups[n_g].key, sizeof groups[n_g].key, "%s", key);
                groups[n_g].orig = t->name;
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
            char key[160];
            alias_name(key, sizeof key, g->key);
            lora_target *one = find_target(tg, n_tg, key), *three[3] = {0};
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
            if (!one && !three[0]) {
                list_add(bad, sizeof bad, &n_bad, g->orig);
                continue;
            }
            if (group_apply(loras[li].path, g, one ? &one : three, one ? 1 : 3, loras[li].scale)) goto out;
        }
        if (n_te) {
            if (!lenient) {
                zi_err("%s: %d text-encoder LoRA tensors (%s%s): text-encoder adapters are not supported yet "
                       "(--lora-lenient skips them)", loras[li].path, n_te, te, n_te > 5 ? ", ..." : "");
                goto out;
            }
            size_t o = strlen(warn);
            snprintf(warn + o, sizeof warn - o, "%s%s: skipped %d text-encoder LoRA tensors (%s%s)", o ? "\n" : "",
                     loras[li].path, n_te, te, n_te > 5 ? ", ..." : "");
        }
        if (n_bad) {
            if (!lenient) {
                zi_err("%s: %d LoRA tensors match no weight of this transformer (a LoRA for another model?): %s%s "
                       "(--lora-lenient skips them)", loras[li].path, n_bad, bad, n_bad > 5 ? ", ..." : "");
                goto out;
            }
            size_t o = strlen(warn);
            snprintf(warn + o, sizeof warn - o, "%s%s: skipped %d unmatched LoRA tensors (%s%s)", o ? "\n" : "",
                     loras[li].path, n_bad, bad, n_bad > 5 ? ", ..." : "");
        }
        if (n_g == 0 && !n_te && !n_bad) {
            zi_err("%s: no LoRA tensors in this file", loras[li].path);
            goto out;
        }
    }
    /* merge (dense) or attach (other dtypes) */
    for (int i = 0; i < n_tg; i++) {
        if (!tg[i].n_c) continue;
        int all_zero = 1;
        for (int k = 0; k < tg[i].n_c; k++) all_zero &= tg[i].c[k].scale == 0;
        if (all_zero) continue; /* scale 0: exactly the base weight */
        if (mode != ZI_LORA_RUNTIME && is_dense(tg[i].mat->dtype)) {
            if (merge_dense(dit, &tg[i])) goto out;
        } else if (attach_runtime(dit, &tg[i])) {
            goto out;
        }
    }
    if (warnings && warn[0]) *warnings = zi_strdup(warn);
    rc = 0;
out:
    for (int i = 0; tg && i < n_tg; i++) {
        for (int k = 0; k < tg[i].n_c; k++) {
            zi_free_aligned(tg[i].c[k].a), zi_free_aligned(tg[i].c[k].b);
            zi_free_aligned(tg[i].c[k].w1), zi_free_aligned(tg[i].c[k].w2);
        }
        free(tg[i].c);
    }
    free(tg);
    free(groups);
    for (int li = 0; files && li < n; li++) zi_st_close(&files[li]);
    free(files);
    return rc;
}
