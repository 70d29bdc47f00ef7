/* dit.c - S3-DiT forward pass (docs/MODEL.md §5), written to read like it.
 *
 *   t -> sinusoid -> t_embedder MLP -> c (adaLN input)
 *   latent -> patchify -> x_embedder -> pad to 32 (x_pad_token) -> noise_refiner (modulated)
 *   cap feats -> RMSNorm -> cap_embedder -> pad to 32 (cap_pad_token) -> context_refiner
 *   U = [image ; caption] -> 30 modulated blocks -> final layer -> unpatchify
 *
 * Weight names: diffusers/official, or ComfyUI single-file names (fused qkv), with or
 * without a "model.diffusion_model." prefix. */
#include "dit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/error.h"
#include "../io/json.h"

static const char *const dit_prefixes[] = {"model.diffusion_model.", "diffusion_model.", "model."};

/* ---------------------------------------------------------------- loading */

/* Sizes of a checkpoint without config.json (ComfyUI single file), read off the weights.
 * RoPE axes follow the official split of head_dim: [hd/4, 3hd/8, 3hd/8] (= [32, 48, 48]). */
static json_t *dit_config_from_shapes(const zi_store *s) {
    const zi_tensor *cap = zi_store_find(s, "cap_embedder.1.weight");
    const zi_tensor *qn = zi_store_find(s, "layers.0.attention.norm_q.weight");
    if (!qn) qn = zi_store_find(s, "layers.0.attention.q_norm.weight");
    const zi_tensor *xe = zi_store_find(s, "all_x_embedder.2-1.weight");
    if (!xe) xe = zi_store_find(s, "x_embedder.weight");
    if (!cap || cap->ndim != 2 || !qn || qn->ndim != 1 || !xe || xe->ndim != 2 || qn->shape[0] % 8) {
        zi_err("%s: not a Z-Image transformer (cap_embedder.1, layers.0 q-norm or x_embedder missing)", s->path);
        return NULL;
    }
    int64_t dim = cap->shape[0], hd = qn->shape[0];
    int n_layers = 0, n_ref = 0;
    char name[128];
    for (;; n_layers++) {
        snprintf(name, sizeof name, "layers.%d.ffn_norm1.weight", n_layers);
        if (!zi_store_has(s, name)) break;
    }
    for (;; n_ref++) {
        snprintf(name, sizeof name, "noise_refiner.%d.ffn_norm1.weight", n_ref);
        if (!zi_store_has(s, name)) break;
    }
    return json_pack("{s:I, s:I, s:i, s:i, s:I, s:I, s:[I, I, I]}", "dim", (json_int_t)dim, "n_heads",
                     (json_int_t)(dim / hd), "n_layers", n_layers, "n_refiner_layers", n_ref, "in_channels",
                     (json_int_t)(xe->shape[1] / 4), "cap_feat_dim", (json_int_t)cap->shape[1], "axes_dims",
                     (json_int_t)(hd / 4), (json_int_t)(3 * hd / 8), (json_int_t)(3 * hd / 8));
}

static int dit_config_load(zi_dit_config *c, const char *dir, const zi_store *s) {
    char path[4096];
    struct stat st;
    int single_file = stat(dir, &st) == 0 && S_ISREG(st.st_mode);
    /* a single .safetensors (ComfyUI) has no config.json: sizes come from the weight shapes */
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = single_file ? dit_config_from_shapes(s) : zi_json_load_file(path);
    if (!j) return -1;
    long long v;
    long long arr[8];
    int n, rc = -1;
    /* defaults = Z-Image-Turbo */
    c->dim = 3840, c->n_heads = 30, c->n_layers = 30, c->n_refiner = 2, c->in_channels = 16;
    c->patch = 2, c->cap_feat_dim = 2560, c->rope_theta = 256.0f, c->t_scale = 1000.0f, c->norm_eps = 1e-5f;
    int ax[3] = {32, 48, 48}, al[3] = {1536, 512, 512};
    memcpy(c->axes_dims, ax, sizeof ax);
    memcpy(c->axes_lens, al, sizeof al);
#define GETI(key, field)                                                 \
    v = c->field;                                                        \
    if (zi_json_get_int_opt(j, key, &v, path)) goto done;                \
    if (v <= 0 || v > 1000000) {                                         \
        zi_err("%s: \"%s\" = %lld is out of range", path, key, v);      \
        goto done;                                                       \
    }                                                                    \
    c->field = (int)v;
    GETI("dim", dim)
    GETI("n_heads", n_heads)
    GETI("n_layers", n_layers)
    GETI("n_refiner_layers", n_refiner)
    GETI("in_channels", in_channels)
    GETI("cap_feat_dim", cap_feat_dim)
#undef GETI
    if (zi_json_get_float_range(j, "rope_theta", 0, 1.0, 1e12, &c->rope_theta, path) ||
        zi_json_get_float_range(j, "t_scale", 0, 1e-6, 1e9, &c->t_scale, path) ||
        zi_json_get_float_range(j, "norm_eps", 0, 1e-30, 1.0, &c->norm_eps, path))
        goto done;
    if (json_object_get(j, "all_patch_size")) {
        if (zi_json_get_int_array(j, "all_patch_size", 1, 64, arr, 8, &n, path)) goto done;
        if (n != 1 || arr[0] != 2) {
            zi_err("%s: all_patch_size must be [2] (only patch size 2 is supported)", path);
            goto done;
        }
    }
    if (json_object_get(j, "all_f_patch_size")) {
        if (zi_json_get_int_array(j, "all_f_patch_size", 1, 64, arr, 8, &n, path)) goto done;
        if (n != 1 || arr[0] != 1) {
            zi_err("%s: all_f_patch_size must be [1]", path);
            goto done;
        }
    }
    if (json_object_get(j, "axes_dims")) {
        if (zi_json_get_int_array(j, "axes_dims", 0, 1000000, arr, 8, &n, path)) goto done;
        if (n != 3) {
            zi_err("%s: axes_dims must have 3 entries", path);
            goto done;
        }
        for (int i = 0; i < 3; i++) c->axes_dims[i] = (int)arr[i];
    }
    if (json_object_get(j, "axes_lens")) {
        if (zi_json_get_int_array(j, "axes_lens", 1, 1000000, arr, 8, &n, path)) goto done;
        if (n != 3) {
            zi_err("%s: axes_lens must have 3 entries", path);
            goto done;
        }
        for (int i = 0; i < 3; i++) c->axes_lens[i] = (int)arr[i];
    }
    if (c->dim % c->n_heads) {
        zi_err("%s: dim %d is not a multiple of n_heads %d", path, c->dim, c->n_heads);
        goto done;
    }
    c->head_dim = c->dim / c->n_heads;
    if (c->axes_dims[0] + c->axes_dims[1] + c->axes_dims[2] != c->head_dim || c->head_dim % 2 ||
        c->axes_dims[0] % 2 || c->axes_dims[1] % 2 || c->axes_dims[2] % 2) {
        zi_err("%s: axes_dims must be even and sum to head_dim %d", path, c->head_dim);
        goto done;
    }
    c->ffn_dim = (int)((double)c->dim / 3.0 * 8.0);
    rc = 0;
done:
    json_decref(j);
    return rc;
}

void zi_dit_release_pages(zi_dit *m) { zi_store_release_pages(&m->store); }

int zi_dit_keep(zi_dit *m, void *buf) { return zi_owned_add(&m->owned, buf); }

/* exact start of an owned buffer (views into the middle of one, e.g. fused k/v, answer 0) */
int zi_dit_owns(const zi_dit *m, const void *p) { return zi_owned_has(&m->owned, p); }

/* Round an F32 matrix to a new BF16 buffer and let the kernel drop the file pages. */
static const void *dit_to_bf16(zi_dit *m, const zi_tensor *t) {
    uint16_t *b = zi_malloc_aligned((size_t)t->numel * sizeof(uint16_t));
    if (!b || zi_dit_keep(m, b)) return NULL;
    const float *f = t->data;
    for (int64_t i = 0; i < t->numel; i++) b[i] = zi_f32_to_bf16(f[i]);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a0 = ((uintptr_t)t->data + pg - 1) & ~(pg - 1), a1 = ((uintptr_t)t->data + t->nbytes) & ~(pg - 1);
    if (a1 > a0) madvise((void *)a0, a1 - a0, MADV_DONTNEED);
    return b;
}

static int dit_mat(zi_dit *m, kn_mat *out, const char *name, int64_t rows, int64_t cols) {
    const zi_tensor *t = zi_store_get2(&m->store, name, rows, cols);
    if (!t) return -1;
    *out = (kn_mat){.dtype = t->dtype, .rows = t->shape[0], .cols = t->shape[1], .data = t->data, .scale = t->scale};
    if (m->weights_bf16 && t->dtype == ZI_F32) {
        if (!(out->data = dit_to_bf16(m, t))) return -1;
        out->dtype = ZI_BF16;
    }
    return 0;
}

/* Bytes of F32 matrices in the store (decides the AUTO weight policy). */
static uint64_t dit_f32_matrix_bytes(const zi_store *s) {
    uint64_t n = 0;
    for (int i = 0; i < s->n_files; i++)
        for (int j = 0; j < s->files[i].n_tensors; j++) {
            const zi_tensor *t = &s->files[i].tensors[j];
            if (t->dtype == ZI_F32 && t->ndim == 2) n += t->nbytes;
        }
    return n;
}

/* A [1, n] or [n] vector (pad tokens are [1, dim] in diffusers, [dim] in some files). */
static float *dit_vec(zi_dit *m, const char *name, int64_t n) {
    const zi_tensor *t = zi_store_find(&m->store, name);
    if (t && t->ndim == 2 && t->shape[0] == 1) {
        int64_t sh[2] = {1, n};
        t = zi_store_get(&m->store, name, 2, sh);
        return t ? zi_tensor_to_f32(t) : NULL;
    }
    return zi_store_get_vec(&m->store, name, n);
}

/* First name that exists among the candidates (diffusers first, then ComfyUI). */
static const char *dit_pick(zi_dit *m, const char *a, const char *b) {
    return zi_store_has(&m->store, a) || !b ? a : b;
}

static int dit_block_load(zi_dit *m, zi_dit_block *b, const char *p, int modulated) {
    const zi_dit_config *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, hd = c->head_dim;
    char n[512], n2[512];
    snprintf(n, sizeof n, "%s.attention.qkv.weight", p);
    if (zi_store_has(&m->store, n)) { /* ComfyUI: fused [3D, D] */
        kn_mat qkv;
        if (dit_mat(m, &qkv, n, 3 * D, D)) return -1;
        size_t rb = zi_dtype_row_bytes(qkv.dtype, D); /* rows of q, then k, then v */
        b->wq = b->wk = b->wv = qkv;
        b->wq.rows = b->wk.rows = b->wv.rows = D;
        b->wk.data = (const char *)qkv.data + (size_t)D * rb;
        b->wv.data = (const char *)qkv.data + (size_t)(2 * D) * rb;
        snprintf(n, sizeof n, "%s.attention.out.weight", p);
        if (dit_mat(m, &b->wo, n, D, D)) return -1;
    } else {
        snprintf(n, sizeof n, "%s.attention.to_q.weight", p);
        if (dit_mat(m, &b->wq, n, D, D)) return -1;
        snprintf(n, sizeof n, "%s.attention.to_k.weight", p);
        if (dit_mat(m, &b->wk, n, D, D)) return -1;
        snprintf(n, sizeof n, "%s.attention.to_v.weight", p);
        if (dit_mat(m, &b->wv, n, D, D)) return -1;
        snprintf(n, sizeof n, "%s.attention.to_out.0.weight", p);
        if (dit_mat(m, &b->wo, n, D, D)) return -1;
    }
    snprintf(n, sizeof n, "%s.attention.norm_q.weight", p);
    snprintf(n2, sizeof n2, "%s.attention.q_norm.weight", p);
    if (!(b->norm_q = zi_store_get_vec(&m->store, dit_pick(m, n, n2), hd))) return -1;
    snprintf(n, sizeof n, "%s.attention.norm_k.weight", p);
    snprintf(n2, sizeof n2, "%s.attention.k_norm.weight", p);
    if (!(b->norm_k = zi_store_get_vec(&m->store, dit_pick(m, n, n2), hd))) return -1;
    snprintf(n, sizeof n, "%s.attention_norm1.weight", p);
    if (!(b->attn_norm1 = zi_store_get_vec(&m->store, n, D))) return -1;
    snprintf(n, sizeof n, "%s.attention_norm2.weight", p);
    if (!(b->attn_norm2 = zi_store_get_vec(&m->store, n, D))) return -1;
    snprintf(n, sizeof n, "%s.ffn_norm1.weight", p);
    if (!(b->ffn_norm1 = zi_store_get_vec(&m->store, n, D))) return -1;
    snprintf(n, sizeof n, "%s.ffn_norm2.weight", p);
    if (!(b->ffn_norm2 = zi_store_get_vec(&m->store, n, D))) return -1;
    snprintf(n, sizeof n, "%s.feed_forward.w1.weight", p);
    if (dit_mat(m, &b->w1, n, F, D)) return -1;
    snprintf(n, sizeof n, "%s.feed_forward.w3.weight", p);
    if (dit_mat(m, &b->w3, n, F, D)) return -1;
    snprintf(n, sizeof n, "%s.feed_forward.w2.weight", p);
    if (dit_mat(m, &b->w2, n, D, F)) return -1;
    if (modulated) {
        snprintf(n, sizeof n, "%s.adaLN_modulation.0.weight", p);
        if (dit_mat(m, &b->ada_w, n, 4 * D, c->adaln_dim)) return -1;
        snprintf(n, sizeof n, "%s.adaLN_modulation.0.bias", p);
        if (!(b->ada_b = zi_store_get_vec(&m->store, n, 4 * D))) return -1;
    }
    return 0;
}

static void dit_block_free(zi_dit_block *b) {
    free(b->norm_q);
    free(b->norm_k);
    free(b->attn_norm1);
    free(b->attn_norm2);
    free(b->ffn_norm1);
    free(b->ffn_norm2);
    free(b->ada_b);
}

static int dit_blocks_load(zi_dit *m, zi_dit_block **out, int n, const char *prefix, int modulated) {
    *out = zi_calloc((size_t)n, sizeof(zi_dit_block));
    if (!*out) return -1;
    for (int i = 0; i < n; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s.%d", prefix, i);
        if (dit_block_load(m, &(*out)[i], p, modulated)) return -1;
    }
    return 0;
}

int zi_dit_load(zi_dit **out, const char *dir) { return zi_dit_load_ex(out, dir, ZI_DIT_WEIGHTS_AUTO); }

int zi_dit_load_ex(zi_dit **out, const char *dir, zi_dit_weights policy) {
    *out = NULL;
    zi_dit *m = zi_calloc(1, sizeof *m);
    if (!m) return -1;
    m->ffn_chunk_rows = 1024; /* bounds the [rows, F] FFN buffers */
    zi_dit_config *c = &m->cfg;
    if (zi_store_open(&m->store, dir)) goto fail;
    m->store.prefixes = dit_prefixes;
    m->store.n_prefixes = 3;
    if (dit_config_load(c, dir, &m->store)) goto fail;
    m->weights_bf16 = policy == ZI_DIT_WEIGHTS_BF16 ||
                      (policy == ZI_DIT_WEIGHTS_AUTO && dit_f32_matrix_bytes(&m->store) > ((uint64_t)8 << 30));
    int64_t D = c->dim, P = (int64_t)c->patch * c->patch * c->in_channels;

    /* widths of the timestep MLP come from the weights (adaLN = min(dim, 256)) */
    const zi_tensor *t1 = zi_store_find(&m->store, "t_embedder.mlp.0.weight");
    const zi_tensor *t2 = zi_store_find(&m->store, "t_embedder.mlp.2.weight");
    if (!t1 || !t2 || t1->ndim != 2 || t2->ndim != 2) {
        zi_err("%s: missing or malformed t_embedder.mlp.{0,2}.weight", dir);
        goto fail;
    }
    c->t_hidden = (int)t1->shape[0];
    c->adaln_dim = (int)t2->shape[0];
    if (c->adaln_dim != (c->dim < 256 ? c->dim : 256)) {
        zi_err("%s: t_embedder.mlp.2.weight has %d rows, expected min(dim, 256) = %d", dir, c->adaln_dim,
               c->dim < 256 ? c->dim : 256);
        goto fail;
    }
    if (dit_mat(m, &m->t_w1, "t_embedder.mlp.0.weight", c->t_hidden, 256)) goto fail;
    if (!(m->t_b1 = zi_store_get_vec(&m->store, "t_embedder.mlp.0.bias", c->t_hidden))) goto fail;
    if (dit_mat(m, &m->t_w2, "t_embedder.mlp.2.weight", c->adaln_dim, c->t_hidden)) goto fail;
    if (!(m->t_b2 = zi_store_get_vec(&m->store, "t_embedder.mlp.2.bias", c->adaln_dim))) goto fail;
    if (!(m->cap_norm = zi_store_get_vec(&m->store, "cap_embedder.0.weight", c->cap_feat_dim))) goto fail;
    if (dit_mat(m, &m->cap_w, "cap_embedder.1.weight", D, c->cap_feat_dim)) goto fail;
    if (!(m->cap_b = zi_store_get_vec(&m->store, "cap_embedder.1.bias", D))) goto fail;
    const char *xw = dit_pick(m, "all_x_embedder.2-1.weight", "x_embedder.weight");
    const char *xb = dit_pick(m, "all_x_embedder.2-1.bias", "x_embedder.bias");
    if (dit_mat(m, &m->x_w, xw, D, P)) goto fail;
    if (!(m->x_b = zi_store_get_vec(&m->store, xb, D))) goto fail;
    if (!(m->x_pad = dit_vec(m, "x_pad_token", D))) goto fail;
    if (!(m->cap_pad = dit_vec(m, "cap_pad_token", D))) goto fail;
    const char *fw = dit_pick(m, "all_final_layer.2-1.linear.weight", "final_layer.linear.weight");
    const char *fb = dit_pick(m, "all_final_layer.2-1.linear.bias", "final_layer.linear.bias");
    const char *faw =
        dit_pick(m, "all_final_layer.2-1.adaLN_modulation.1.weight", "final_layer.adaLN_modulation.1.weight");
    const char *fab = dit_pick(m, "all_final_layer.2-1.adaLN_modulation.1.bias", "final_layer.adaLN_modulation.1.bias");
    if (dit_mat(m, &m->final_w, fw, P, D)) goto fail;
    if (!(m->final_b = zi_store_get_vec(&m->store, fb, P))) goto fail;
    if (dit_mat(m, &m->final_ada_w, faw, D, c->adaln_dim)) goto fail;
    if (!(m->final_ada_b = zi_store_get_vec(&m->store, fab, D))) goto fail;
    /* FFN width from the weights (int(dim/3*8) in every official config) */
    const zi_tensor *w1 = zi_store_find(&m->store, "layers.0.feed_forward.w1.weight");
    if (w1 && w1->ndim == 2) c->ffn_dim = (int)w1->shape[0];
    if (dit_blocks_load(m, &m->noise_refiner, c->n_refiner, "noise_refiner", 1)) goto fail;
    if (dit_blocks_load(m, &m->context_refiner, c->n_refiner, "context_refiner", 0)) goto fail;
    if (dit_blocks_load(m, &m->layers, c->n_layers, "layers", 1)) goto fail;
    *out = m;
    return 0;
fail:
    zi_dit_free(m);
    return -1;
}

void zi_dit_free(zi_dit *m) {
    if (!m) return;
    zi_dit_block *sets[3] = {m->noise_refiner, m->context_refiner, m->layers};
    int counts[3] = {m->cfg.n_refiner, m->cfg.n_refiner, m->cfg.n_layers};
    for (int s = 0; s < 3; s++) {
        if (!sets[s]) continue;
        for (int i = 0; i < counts[s]; i++) dit_block_free(&sets[s][i]);
        free(sets[s]);
    }
    free(m->t_b1);
    free(m->t_b2);
    free(m->cap_norm);
    free(m->cap_b);
    free(m->x_b);
    free(m->x_pad);
    free(m->cap_pad);
    free(m->final_b);
    free(m->final_ada_b);
    zi_owned_free(&m->owned);
    zi_store_close(&m->store);
    free(m);
}

/* ---------------------------------------------------------------- pieces */


void zi_dit_positions(int64_t Ht, int64_t Wt, int64_t Lc, int32_t *ids) {
    const int64_t Limg = Ht * Wt, Limg_pad = zi_dit_pad32(Limg), Lc_pad = zi_dit_pad32(Lc);
    /* image tokens (Lc_pad+1, ht, wt); image pads (0, 0, 0) */
    for (int64_t i = 0; i < Limg_pad; i++) {
        int32_t *id = ids + i * 3;
        if (i < Limg) {
            id[0] = (int32_t)(Lc_pad + 1), id[1] = (int32_t)(i / Wt), id[2] = (int32_t)(i % Wt);
        } else {
            id[0] = id[1] = id[2] = 0;
        }
    }
    /* caption tokens and their pads: (k+1, 0, 0) */
    for (int64_t k = 0; k < Lc_pad; k++) {
        int32_t *id = ids + (Limg_pad + k) * 3;
        id[0] = (int32_t)(k + 1), id[1] = id[2] = 0;
    }
}

void zi_dit_timestep_freqs(float *freqs128) {
    const float neg_log = (float)(-log(10000.0)); /* exp(-ln(10000) * k / 128) in float32 */
    for (int k = 0; k < 128; k++) freqs128[k] = expf(neg_log * (float)k / 128.0f);
}

void zi_dit_timestep_freq(float t_scaled, const float *freqs, float *out256) {
    const int half = 128;
    float own[128];
    if (!freqs) {
        zi_dit_timestep_freqs(own);
        freqs = own;
    }
    for (int k = 0; k < half; k++) {
        float f = freqs[k];
        float a = t_scaled * f;
        out256[k] = cosf(a);
        out256[half + k] = sinf(a);
    }
}

void zi_dit_rope_table(const zi_dit_config *cfg, const int32_t *ids, int64_t n, float *cos, float *sin) {
    int half = cfg->head_dim / 2;
    for (int64_t i = 0; i < n; i++) {
        int col = 0;
        for (int a = 0; a < 3; a++) {
            int da = cfg->axes_dims[a];
            for (int j = 0; j < da / 2; j++) {
                double w = 1.0 / pow((double)cfg->rope_theta, (double)(2 * j) / (double)da);
                float ang = (float)((double)ids[i * 3 + a] * w);
                cos[i * half + col] = cosf(ang);
                sin[i * half + col] = sinf(ang);
                col++;
            }
        }
    }
}


/* Scratch buffers of one forward pass. */
typedef struct {
    float *h, *q, *k, *v, *att; /* [L, D] */
    float *gate, *up;           /* [chunk, F] */
    float *mods;                /* [4, D] block modulation: scale_msa, gate_msa, scale_mlp, gate_mlp */
    int64_t chunk;
} dit_scratch;


static void dit_scratch_free(dit_scratch *s) {
    zi_free_aligned(s->h);
    zi_free_aligned(s->q);
    zi_free_aligned(s->k);
    zi_free_aligned(s->v);
    zi_free_aligned(s->att);
    zi_free_aligned(s->gate);
    zi_free_aligned(s->up);
    free(s->mods);
}

static int dit_scratch_alloc(dit_scratch *s, int64_t L, int64_t D, int64_t F, int chunk_rows) {
    memset(s, 0, sizeof *s);
    size_t ld = (size_t)(L * D) * sizeof(float);
    s->chunk = L < chunk_rows ? L : (chunk_rows > 0 ? chunk_rows : 1);
    size_t lf = (size_t)(s->chunk * F) * sizeof(float);
    s->h = zi_malloc_aligned(ld);
    s->q = zi_malloc_aligned(ld);
    s->k = zi_malloc_aligned(ld);
    s->v = zi_malloc_aligned(ld);
    s->att = zi_malloc_aligned(ld);
    s->gate = zi_malloc_aligned(lf);
    s->up = zi_malloc_aligned(lf);
    s->mods = zi_malloc(sizeof(float) * 4 * (size_t)D);
    if (!s->h || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up || !s->mods) {
        dit_scratch_free(s);
        return -1;
    }
    return 0;
}

/* x[i, :] *= s[:] for all rows */
static void dit_rows_mul(float *x, int64_t L, int64_t D, const float *s) {
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < D; j++) x[i * D + j] *= s[j];
}

/* x[i, :] += g[:] * y[i, :] (g NULL: plain add) */
static void dit_rows_add_gated(float *x, const float *y, int64_t L, int64_t D, const float *g) {
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < D; j++) x[i * D + j] += (g ? g[j] : 1.0f) * y[i * D + j];
}

/* Attention sub-block: out = Wo . attn(rope(norm_q(Wq h)), rope(norm_k(Wk h)), Wv h).
 * 0, or -1 (out of memory). */
static int dit_attention(const zi_dit *m, const zi_dit_block *b, const float *h, int64_t L, const float *cos,
                          const float *sin, dit_scratch *s, float *out) {
    const zi_dit_config *c = &m->cfg;
    int64_t D = c->dim;
    int H = c->n_heads, hd = c->head_dim;
    if (kn_linear(s->q, h, L, &b->wq, NULL) ||             // [L, D] x [D, D]^T
        kn_linear(s->k, h, L, &b->wk, NULL) || kn_linear(s->v, h, L, &b->wv, NULL))
        return -1;
    kn_rmsnorm(s->q, s->q, L * H, hd, b->norm_q, c->norm_eps); // per head [L*H, hd]
    kn_rmsnorm(s->k, s->k, L * H, hd, b->norm_k, c->norm_eps);
    kn_rope_interleaved(s->q, L, H, hd, D, cos, sin);
    kn_rope_interleaved(s->k, L, H, hd, D, cos, sin);
    if (kn_attention(s->att, D, s->q, D, s->k, D, s->v, D, L, L, H, H, hd, 1.0f / sqrtf((float)hd), 0)) return -1;
    return kn_linear(out, s->att, L, &b->wo, NULL);        // [L, D] x [D, D]^T
}

/* One transformer block on x [L, D] in place. mod: [4D] adaLN output or NULL.
 * 0, or -1 (out of memory). */
static int dit_block_forward(const zi_dit *m, const zi_dit_block *b, float *x, int64_t L, const float *cos,
                              const float *sin, const float *mod, dit_scratch *s) {
    const zi_dit_config *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim;
    float eps = c->norm_eps;
    float *scale_msa = NULL, *gate_msa = NULL, *scale_mlp = NULL, *gate_mlp = NULL;
    if (mod) {
        float *mv = s->mods;
        scale_msa = mv, gate_msa = mv + D, scale_mlp = mv + 2 * D, gate_mlp = mv + 3 * D;
        for (int64_t j = 0; j < D; j++) {
            scale_msa[j] = 1.0f + mod[j];
            gate_msa[j] = tanhf(mod[D + j]);
            scale_mlp[j] = 1.0f + mod[2 * D + j];
            gate_mlp[j] = tanhf(mod[3 * D + j]);
        }
    }
    /* x += gate_msa * norm2(Attn(norm1(x) * scale_msa)) */
    kn_rmsnorm(s->h, x, L, D, b->attn_norm1, eps);
    if (mod) dit_rows_mul(s->h, L, D, scale_msa);
    if (dit_attention(m, b, s->h, L, cos, sin, s, s->h)) return -1; /* out reuses h (dead after q/k/v) */
    kn_rmsnorm(s->h, s->h, L, D, b->attn_norm2, eps);
    dit_rows_add_gated(x, s->h, L, D, gate_msa);

    /* x += gate_mlp * norm2(W2 (silu(W1 n) * W3 n)),  n = norm1(x) * scale_mlp; rows in chunks */
    kn_rmsnorm(s->h, x, L, D, b->ffn_norm1, eps);
    if (mod) dit_rows_mul(s->h, L, D, scale_mlp);
    /* equal-sized chunks (each weight is packed once per chunk; avoid a tiny tail chunk) */
    int64_t n_chunks = (L + s->chunk - 1) / s->chunk, rows = (L + n_chunks - 1) / n_chunks;
    for (int64_t r0 = 0; r0 < L; r0 += rows) {
        int64_t nr = L - r0 < rows ? L - r0 : rows;
        if (kn_linear(s->gate, s->h + r0 * D, nr, &b->w1, NULL) || // [nr, D] x [F, D]^T
            kn_linear(s->up, s->h + r0 * D, nr, &b->w3, NULL))
            return -1;
        kn_swiglu(s->gate, s->up, nr * F);
        if (kn_linear(s->att + r0 * D, s->gate, nr, &b->w2, NULL)) return -1; // [nr, F] x [D, F]^T
    }
    kn_rmsnorm(s->att, s->att, L, D, b->ffn_norm2, eps);
    dit_rows_add_gated(x, s->att, L, D, gate_mlp);
    return 0;
}

/* ---------------------------------------------------------------- forward */

int zi_dit_forward(zi_dit *m, const float *x, int h, int w, float t, const float *cap, int cap_len, float *out,
                   zi_dit_dump_fn dump, void *du) {
    const zi_dit_config *c = &m->cfg;
    const int64_t D = c->dim, C = c->in_channels, p = c->patch, P = p * p * C;
    if (h <= 0 || w <= 0 || h % p || w % p)
        return zi_err("DiT: latent size %dx%d must be positive multiples of %lld", h, w, (long long)p);
    if (cap_len <= 0) return zi_err("DiT: caption has no tokens");
    const int64_t Ht = h / p, Wt = w / p, Limg = Ht * Wt, Limg_pad = zi_dit_pad32(Limg);
    const int64_t Lc = cap_len, Lc_pad = zi_dit_pad32(Lc), L = Limg_pad + Lc_pad;
    if (Ht >= c->axes_lens[1] || Wt >= c->axes_lens[2] || Lc_pad + 1 >= c->axes_lens[0])
        return zi_err("DiT: %lldx%lld image tokens / %lld caption tokens exceed the RoPE tables (%d, %d, %d)",
                      (long long)Ht, (long long)Wt, (long long)Lc_pad, c->axes_lens[1], c->axes_lens[2],
                      c->axes_lens[0]);
    const int half = c->head_dim / 2;
    int rc = -1;
    float *U = zi_malloc_aligned((size_t)(L * D) * sizeof(float)); /* [image ; caption] */
    float *tok = zi_malloc((size_t)(Limg * P) * sizeof(float));
    float *cos = zi_malloc((size_t)(L * half) * sizeof(float)), *sin = zi_malloc((size_t)(L * half) * sizeof(float));
    int32_t *ids = zi_malloc((size_t)(L * 3) * sizeof(int32_t));
    float *capn = zi_malloc((size_t)(Lc * c->cap_feat_dim) * sizeof(float));
    float *Y = zi_malloc((size_t)(L * P) * sizeof(float));
    dit_scratch s;
    int have_scratch = dit_scratch_alloc(&s, L, D, c->ffn_dim, m->ffn_chunk_rows) == 0;
    float *mod = zi_malloc(sizeof(float) * 4 * (size_t)D);
    if (!U || !tok || !cos || !sin || !ids || !capn || !Y || !have_scratch || !mod) {
        zi_err_ctx("DiT forward with %lld tokens", (long long)L);
        goto done;
    }
    float *X = U, *Cp = U + Limg_pad * D;

    /* 1. timestep embedding: c = W2 silu(W1 sinusoid(t * 1000) + b1) + b2 */
    float tfreq[256], th[4096], adaln[256], silu_adaln[256];
    if (c->t_hidden > 4096) {
        zi_err("DiT: timestep MLP width %d too large", c->t_hidden);
        goto done;
    }
    zi_dit_timestep_freq(t * c->t_scale, NULL, tfreq);
    if (dump) dump(du, "t_freq", tfreq, 1, 256);
    if (kn_linear(th, tfreq, 1, &m->t_w1, m->t_b1)) goto oom;
    kn_silu(th, c->t_hidden);
    if (kn_linear(adaln, th, 1, &m->t_w2, m->t_b2)) goto oom;
    if (dump) dump(du, "adaln_input", adaln, 1, c->adaln_dim);

    /* 2. image: patchify (channel fastest within (ph, pw)), embed, pad with x_pad_token */
    for (int64_t ht = 0; ht < Ht; ht++)
        for (int64_t wt = 0; wt < Wt; wt++)
            for (int64_t ph = 0; ph < p; ph++)
                for (int64_t pw = 0; pw < p; pw++)
                    for (int64_t ch = 0; ch < C; ch++)
                        tok[(ht * Wt + wt) * P + (ph * p + pw) * C + ch] =
                            x[(ch * h + (p * ht + ph)) * w + (p * wt + pw)];
    if (kn_linear(X, tok, Limg, &m->x_w, m->x_b)) goto oom; // [Limg, 64] x [D, 64]^T
    for (int64_t i = Limg; i < Limg_pad; i++) memcpy(X + i * D, m->x_pad, sizeof(float) * (size_t)D);

    /* 3. positions and RoPE tables for [image ; caption] */
    zi_dit_positions(Ht, Wt, Lc, ids);
    zi_dit_rope_table(c, ids, L, cos, sin);
    const float *cos_img = cos, *sin_img = sin;
    const float *cos_cap = cos + Limg_pad * half, *sin_cap = sin + Limg_pad * half;
    if (dump) dump(du, "x_embedded", X, Limg_pad, D);

    /* 4. noise refiner on the image tokens, modulated by c */
    for (int i = 0; i < c->n_refiner; i++) {
        const zi_dit_block *b = &m->noise_refiner[i];
        char nm[64];
        snprintf(nm, sizeof nm, "noise_refiner.%d", i);
        if (kn_linear(mod, adaln, 1, &b->ada_w, b->ada_b) || // [1, 256] x [4D, 256]^T, no SiLU
            dit_block_forward(m, b, X, Limg_pad, cos_img, sin_img, mod, &s)) {
            zi_err_ctx("DiT %s", nm);
            goto done;
        }
        if (dump) dump(du, nm, X, Limg_pad, D);
    }

    /* 5. caption: RMSNorm, embed, pad with cap_pad_token; context refiner (unmodulated) */
    kn_rmsnorm(capn, cap, Lc, c->cap_feat_dim, m->cap_norm, c->norm_eps);
    if (kn_linear(Cp, capn, Lc, &m->cap_w, m->cap_b)) goto oom; // [Lc, 2560] x [D, 2560]^T
    for (int64_t i = Lc; i < Lc_pad; i++) memcpy(Cp + i * D, m->cap_pad, sizeof(float) * (size_t)D);
    if (dump) dump(du, "cap_embedded", Cp, Lc_pad, D);
    for (int i = 0; i < c->n_refiner; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "context_refiner.%d", i);
        if (dit_block_forward(m, &m->context_refiner[i], Cp, Lc_pad, cos_cap, sin_cap, NULL, &s)) {
            zi_err_ctx("DiT %s", nm);
            goto done;
        }
        if (dump) dump(du, nm, Cp, Lc_pad, D);
    }

    /* 6. unified sequence U = [image ; caption] (already adjacent in memory) */
    if (dump) dump(du, "unified", U, L, D);
    for (int i = 0; i < c->n_layers; i++) {
        const zi_dit_block *b = &m->layers[i];
        char nm[64];
        snprintf(nm, sizeof nm, "layers.%d", i);
        if (kn_linear(mod, adaln, 1, &b->ada_w, b->ada_b) || dit_block_forward(m, b, U, L, cos, sin, mod, &s)) {
            zi_err_ctx("DiT %s", nm);
            goto done;
        }
        if (dump) dump(du, nm, U, L, D);
    }

    /* 7. final layer: (LayerNorm(U) * (1 + W silu(c) + b)) -> linear [L, 64] */
    for (int j = 0; j < c->adaln_dim; j++) silu_adaln[j] = adaln[j] / (1.0f + expf(-adaln[j]));
    if (kn_linear(mod, silu_adaln, 1, &m->final_ada_w, m->final_ada_b)) goto oom;
    for (int64_t j = 0; j < D; j++) mod[j] += 1.0f;
    kn_layernorm(U, U, L, D, 1e-6f);
    dit_rows_mul(U, L, D, mod);
    if (kn_linear(Y, U, L, &m->final_w, m->final_b)) goto oom; // [L, D] x [64, D]^T
    if (dump) dump(du, "final_layer", Y, L, P);

    /* 8. unpatchify the image rows */
    for (int64_t ht = 0; ht < Ht; ht++)
        for (int64_t wt = 0; wt < Wt; wt++)
            for (int64_t ph = 0; ph < p; ph++)
                for (int64_t pw = 0; pw < p; pw++)
                    for (int64_t ch = 0; ch < C; ch++)
                        out[(ch * h + (p * ht + ph)) * w + (p * wt + pw)] =
                            Y[(ht * Wt + wt) * P + (ph * p + pw) * C + ch];
    rc = 0;
    goto done;
oom:
    zi_err_ctx("DiT forward with %lld tokens", (long long)L);
done:
    if (have_scratch) dit_scratch_free(&s);
    zi_free_aligned(U);
    free(tok);
    free(cos);
    free(sin);
    free(ids);
    free(capn);
    free(Y);
    free(mod);
    return rc;
}
