/* qwen3.c - Qwen3 text encoder forward, output hidden_states[-2] (docs/MODEL.md §4.4).
 *
 * Pipeline position: token ids -> embedding -> decoder layers 0..N-2 -> cap_feats.
 * Each decoder layer (HF Qwen3DecoderLayer, all in float32):
 *   a = RMSNorm(x; input_layernorm)
 *   q,k,v = a.Wq^T, a.Wk^T, a.Wv^T;  per-head RMSNorm(q; q_norm), RMSNorm(k; k_norm)
 *   q,k = RoPE rotate_half(pos, theta);  o = causal GQA softmax(q.k^T / sqrt(hd)) v
 *   x += o.Wo^T
 *   x += down( silu(gate(m)) * up(m) ),  m = RMSNorm(x; post_attention_layernorm)
 * The last layer and model.norm only matter for hidden_states[-1], which Z-Image
 * does not use (pitfall 10.9); they are loaded only by zi_qwen3_load_all (tests). */
#include "qwen3.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/error.h"
#include "../common/owned.h"
#include "../io/json.h"
#include "../io/gguf.h"
#include "../io/store.h"
#include "../kernels/kernels.h"

typedef struct {
    float *in_norm, *post_norm; /* input_layernorm, post_attention_layernorm [hidden] */
    float *q_norm, *k_norm;     /* [head_dim] */
    kn_mat wq;                  /* [n_heads*hd, hidden] */
    kn_mat wk, wv;              /* [n_kv*hd, hidden] */
    kn_mat wo;                  /* [hidden, n_heads*hd] */
    kn_mat w_gate, w_up;        /* [intermediate, hidden] */
    kn_mat w_down;              /* [hidden, intermediate] */
} zi_qwen3_layer;

struct zi_qwen3 {
    zi_qwen3_config cfg;
    zi_store store;
    const zi_tensor *embed; /* embed_tokens [vocab, hidden], mmapped */
    zi_qwen3_layer *layers; /* n_run entries */
    int n_run;              /* layers run: n_layers-1, or n_layers with load_all */
    float *final_norm;      /* model.norm [hidden], load_all only */
    zi_owned owned;         /* buffers handed over by zi_qwen3_keep (LoRA-merged weights, run-time terms) */
};

/* Activations of one encode call, all [n, *] row-major float32. */
typedef struct {
    float *x;          /* [n, hidden] residual stream */
    float *a;          /* [n, hidden] normed input / projection output */
    float *q, *att;    /* [n, n_heads*hd] */
    float *k, *v;      /* [n, n_kv*hd] */
    float *gate, *up;  /* [n, intermediate] */
    float *cos, *sin;  /* [n, hd/2] */
    float *block;      /* the single allocation holding all of the above */
} qwen3_act;

static const char *const qwen3_prefixes[] = {"model."};

/* ---- config ---------------------------------------------------------------------- */

static int qwen3_config_check(const zi_qwen3_config *c, const char *what) {
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->intermediate <= 0 || c->vocab <= 0)
        return zi_err("%s: sizes must be positive (hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, "
                      "intermediate %d, vocab %d)",
                      what, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate, c->vocab);
    if (c->n_layers < 2)
        return zi_err("%s: %d decoder layer(s); hidden_states[-2] needs at least 2", what, c->n_layers);
    if (c->n_heads % c->n_kv_heads != 0)
        return zi_err("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", what, c->n_heads,
                      c->n_kv_heads);
    if (c->head_dim % 2 != 0) return zi_err("%s: head_dim %d must be even for RoPE", what, c->head_dim);
    if (!(c->rms_eps > 0) || !(c->rope_theta > 1)) /* also rejects NaN */
        return zi_err("%s: rms_norm_eps %g must be > 0 and rope_theta %g > 1", what, c->rms_eps, c->rope_theta);
    return 0;
}

static int json_int_field(const json_t *j, const char *key, int *out, const char *what, int required) {
    long long v = *out;
    if ((required ? zi_json_get_int(j, key, &v, what) : zi_json_get_int_opt(j, key, &v, what)) != 0) return -1;
    if (v < 0 || v > (1 << 30)) return zi_err("%s: \"%s\" = %lld is out of range", what, key, v);
    *out = (int)v;
    return 0;
}

/* config.json of a diffusers text_encoder/ folder (HF Qwen3Config). */
static int qwen3_config_read(zi_qwen3_config *c, const char *path) {
    json_t *j = zi_json_load_file(path);
    if (!j) return -1;
    int rc = -1;
    c->head_dim = 0;
    c->rms_eps = 1e-6f;
    c->rope_theta = 1e6f;
    if (json_int_field(j, "hidden_size", &c->hidden, path, 1) ||
        json_int_field(j, "num_hidden_layers", &c->n_layers, path, 1) ||
        json_int_field(j, "num_attention_heads", &c->n_heads, path, 1) ||
        json_int_field(j, "num_key_value_heads", &c->n_kv_heads, path, 1) ||
        json_int_field(j, "intermediate_size", &c->intermediate, path, 1) ||
        json_int_field(j, "vocab_size", &c->vocab, path, 1) || json_int_field(j, "head_dim", &c->head_dim, path, 0) ||
        zi_json_get_float_range(j, "rms_norm_eps", 1, 1e-30, 1.0, &c->rms_eps, path) ||
        zi_json_get_float_range(j, "rope_theta", 1, 1.0, 1e12, &c->rope_theta, path))
        goto done;
    if (c->head_dim == 0 && c->n_heads > 0) c->head_dim = c->hidden / c->n_heads; /* HF default */
    /* Features this forward does not implement must be absent/off. */
    json_t *act = json_object_get(j, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0)) {
        zi_err("%s: hidden_act must be \"silu\"", path);
        goto done;
    }
    json_t *rs = json_object_get(j, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        zi_err("%s: rope_scaling is not supported (must be null)", path);
        goto done;
    }
    int flag = 0;
    if (zi_json_get_bool_opt(j, "attention_bias", &flag, path)) goto done;
    if (flag) {
        zi_err("%s: attention_bias = true is not supported", path);
        goto done;
    }
    if (zi_json_get_bool_opt(j, "use_sliding_window", &flag, path)) goto done;
    if (flag) {
        zi_err("%s: use_sliding_window = true is not supported", path);
        goto done;
    }
    rc = 0;
done:
    json_decref(j);
    return rc;
}

/* Layer count of a store: 1 + the largest N in names "[model.]layers.N.*". */
static int qwen3_count_layers(const zi_store *s) {
    int n = 0;
    for (int f = 0; f < s->n_files; f++)
        for (int t = 0; t < s->files[f].n_tensors; t++) {
            const char *name = s->files[f].tensors[t].name;
            if (strncmp(name, "model.", 6) == 0) name += 6;
            int idx, len = 0;
            if (sscanf(name, "layers.%d.%n", &idx, &len) == 1 && len > 0 && idx >= 0 && idx < (1 << 20) &&
                idx + 1 > n)
                n = idx + 1;
        }
    return n;
}

static int tensor_dim(const zi_store *s, const char *name, int ndim, int axis, int *out) {
    const zi_tensor *t = zi_store_find(s, name);
    if (!t) return zi_err("%s: missing tensor '%s' (needed to infer the config)", s->path, name);
    if (t->ndim != ndim || t->shape[axis] > (1 << 30))
        return zi_err("%s: tensor '%s' has %d dims, expected %d", s->path, name, t->ndim, ndim);
    *out = (int)t->shape[axis];
    return 0;
}

/* No config.json (single file such as ComfyUI's qwen_3_4b.safetensors): infer the sizes
 * from the weight shapes. The checkpoint holds no rope_theta or rms_norm_eps, so the
 * Qwen3-4B values are assumed: rope_theta 1e6, rms_norm_eps 1e-6 (docs/MODEL.md §4.3). The layer
 * count is taken from the highest layers.N present, so the file must hold all layers. */
static int qwen3_config_infer(zi_qwen3_config *c, const zi_store *s) {
    int qrows = 0, krows = 0;
    if (tensor_dim(s, "embed_tokens.weight", 2, 0, &c->vocab) ||
        tensor_dim(s, "embed_tokens.weight", 2, 1, &c->hidden) ||
        tensor_dim(s, "layers.0.self_attn.q_norm.weight", 1, 0, &c->head_dim) ||
        tensor_dim(s, "layers.0.self_attn.q_proj.weight", 2, 0, &qrows) ||
        tensor_dim(s, "layers.0.self_attn.k_proj.weight", 2, 0, &krows) ||
        tensor_dim(s, "layers.0.mlp.gate_proj.weight", 2, 0, &c->intermediate))
        return -1;
    if (c->head_dim <= 0 || qrows % c->head_dim || krows % c->head_dim)
        return zi_err("%s: q_proj rows %d / k_proj rows %d are not multiples of head_dim %d (q_norm size)", s->path,
                      qrows, krows, c->head_dim);
    c->n_heads = qrows / c->head_dim;
    c->n_kv_heads = krows / c->head_dim;
    c->n_layers = qwen3_count_layers(s);
    c->rms_eps = 1e-6f;
    c->rope_theta = 1e6f;
    /* a llama.cpp GGUF states them */
    const zi_gguf_kv *th = s->n_files ? zi_gguf_find(&s->files[0], "qwen3.rope.freq_base") : NULL;
    const zi_gguf_kv *ep = s->n_files ? zi_gguf_find(&s->files[0], "qwen3.attention.layer_norm_rms_epsilon") : NULL;
    if (th && th->type == ZI_GGUF_F32 && th->f > 0) c->rope_theta = (float)th->f;
    if (ep && ep->type == ZI_GGUF_F32 && ep->f > 0 && ep->f < 1) c->rms_eps = (float)ep->f;
    return 0;
}

/* ---- weights --------------------------------------------------------------------- */

static int mat_get(kn_mat *m, const zi_store *s, const char *name, int64_t rows, int64_t cols) {
    const zi_tensor *t = zi_store_get2(s, name, rows, cols);
    if (!t) return -1;
    *m = (kn_mat){.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data, .scale = t->scale}; /* scale: fp8 */
    return 0;
}

static void qwen3_layer_free(zi_qwen3_layer *L) {
    free(L->in_norm);
    free(L->post_norm);
    free(L->q_norm);
    free(L->k_norm);
    memset(L, 0, sizeof *L);
}

static int qwen3_layer_build(zi_qwen3_layer *L, const zi_store *s, const zi_qwen3_config *c, int i) {
    char nm[128];
    int64_t H = c->hidden, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t I = c->intermediate;
#define QW_NAME(suffix) (snprintf(nm, sizeof nm, "layers.%d.%s", i, suffix), nm)
    if (!(L->in_norm = zi_store_get_vec(s, QW_NAME("input_layernorm.weight"), H))) return -1;
    if (!(L->post_norm = zi_store_get_vec(s, QW_NAME("post_attention_layernorm.weight"), H))) return -1;
    if (!(L->q_norm = zi_store_get_vec(s, QW_NAME("self_attn.q_norm.weight"), c->head_dim))) return -1;
    if (!(L->k_norm = zi_store_get_vec(s, QW_NAME("self_attn.k_norm.weight"), c->head_dim))) return -1;
    if (mat_get(&L->wq, s, QW_NAME("self_attn.q_proj.weight"), QD, H) ||
        mat_get(&L->wk, s, QW_NAME("self_attn.k_proj.weight"), KD, H) ||
        mat_get(&L->wv, s, QW_NAME("self_attn.v_proj.weight"), KD, H) ||
        mat_get(&L->wo, s, QW_NAME("self_attn.o_proj.weight"), H, QD) ||
        mat_get(&L->w_gate, s, QW_NAME("mlp.gate_proj.weight"), I, H) ||
        mat_get(&L->w_up, s, QW_NAME("mlp.up_proj.weight"), I, H) ||
        mat_get(&L->w_down, s, QW_NAME("mlp.down_proj.weight"), H, I))
        return -1;
#undef QW_NAME
    return 0;
}

/* config.json of a folder, else inferred from the weight shapes of the store; checked */
static int qwen3_config_of(zi_qwen3_config *c, const zi_store *s, const char *path) {
    struct stat st;
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && stat(cfg_path, &st) == 0) {
        if (qwen3_config_read(c, cfg_path) != 0) return -1;
    } else {
        if (qwen3_config_infer(c, s) != 0) return -1;
    }
    return qwen3_config_check(c, path);
}

int zi_qwen3_load_config(zi_qwen3_config *c, const char *path) {
    zi_store s;
    if (zi_store_open(&s, path) != 0) return -1;
    s.prefixes = qwen3_prefixes;
    s.n_prefixes = 1;
    int rc = qwen3_config_of(c, &s, path);
    zi_store_close(&s);
    if (rc) zi_err_ctx("Qwen3 text encoder");
    return rc;
}

static int qwen3_load_impl(zi_qwen3 **out, const char *path, int all, int prefetch) {
    *out = NULL;
    zi_qwen3 *m = zi_calloc(1, sizeof *m);
    if (!m) return -1;
    if (zi_store_open(&m->store, path) != 0) goto fail;
    if (prefetch) zi_store_prefetch(&m->store); /* read ahead: the encoder touches (almost) all of it once */
    m->store.prefixes = qwen3_prefixes;
    m->store.n_prefixes = 1;

    if (qwen3_config_of(&m->cfg, &m->store, path) != 0) goto fail;
    const zi_qwen3_config *c = &m->cfg;

    if (!(m->embed = zi_store_get2(&m->store, "embed_tokens.weight", c->vocab, c->hidden))) goto fail;
    m->n_run = all ? c->n_layers : c->n_layers - 1;
    m->layers = zi_calloc((size_t)m->n_run, sizeof *m->layers);
    if (!m->layers) goto fail;
    for (int i = 0; i < m->n_run; i++)
        if (qwen3_layer_build(&m->layers[i], &m->store, c, i) != 0) goto fail;
    if (all && !(m->final_norm = zi_store_get_vec(&m->store, "norm.weight", c->hidden))) goto fail;
    *out = m;
    return 0;
fail:
    zi_err_ctx("Qwen3 text encoder");
    zi_qwen3_free(m);
    return -1;
}

int zi_qwen3_load(zi_qwen3 **out, const char *path) { return qwen3_load_impl(out, path, 0, 1); }
int zi_qwen3_load_all(zi_qwen3 **out, const char *path) { return qwen3_load_impl(out, path, 1, 1); }
int zi_qwen3_load_unread(zi_qwen3 **out, const char *path) { return qwen3_load_impl(out, path, 0, 0); }

void zi_qwen3_free(zi_qwen3 *m) {
    if (!m) return;
    if (m->layers)
        for (int i = 0; i < m->n_run; i++) qwen3_layer_free(&m->layers[i]);
    free(m->layers);
    free(m->final_norm);
    zi_owned_free(&m->owned);
    zi_store_close(&m->store); /* unmaps the weights */
    free(m);
}

int zi_qwen3_hidden(const zi_qwen3 *m) { return m->cfg.hidden; }

int zi_qwen3_n_loaded(const zi_qwen3 *m) { return m->n_run; }

kn_mat *zi_qwen3_mat(zi_qwen3 *m, int layer, int which) {
    if (layer < 0 || layer >= m->n_run || which < 0 || which >= ZI_QWEN3_N_MATS) return NULL;
    zi_qwen3_layer *L = &m->layers[layer];
    kn_mat *mats[ZI_QWEN3_N_MATS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return mats[which];
}

const char *zi_qwen3_mat_name(int which) {
    static const char *const names[ZI_QWEN3_N_MATS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                       "mlp.down_proj"};
    return which >= 0 && which < ZI_QWEN3_N_MATS ? names[which] : NULL;
}

int zi_qwen3_keep(zi_qwen3 *m, void *buf) { return zi_owned_add(&m->owned, buf); }

int zi_qwen3_owns(const zi_qwen3 *m, const void *p) { return zi_owned_has(&m->owned, p); }
const zi_qwen3_config *zi_qwen3_get_config(const zi_qwen3 *m) { return &m->cfg; }

/* ---- forward --------------------------------------------------------------------- */

void zi_qwen3_rope_table(int head_dim, float theta, int n, float *cos, float *sin) {
    int half = head_dim / 2;
    for (int j = 0; j < half; j++) {
        /* inv_freq = 1 / theta^(arange(0, d, 2) / d), every step float32 as in HF */
        float e = (float)(2 * j) / (float)head_dim;
        float inv_freq = 1.0f / powf(theta, e);
        for (int p = 0; p < n; p++) {
            float angle = (float)p * inv_freq;
            cos[(int64_t)p * half + j] = cosf(angle);
            sin[(int64_t)p * half + j] = sinf(angle);
        }
    }
}

static int qwen3_act_alloc(qwen3_act *s, const zi_qwen3_config *c, int64_t n) {
    int64_t H = c->hidden, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t I = c->intermediate, half = c->head_dim / 2;
    int64_t sizes[9] = {H, H, QD, QD, KD, KD, I, I, half};
    float **ptrs[9] = {&s->x, &s->a, &s->q, &s->att, &s->k, &s->v, &s->gate, &s->up, &s->cos};
    size_t total = 0;
    for (int i = 0; i < 9; i++) total += (size_t)(n * sizes[i]);
    total += (size_t)(n * half); /* sin */
    s->block = zi_malloc(total * sizeof(float));
    if (!s->block) return -1;
    float *p = s->block;
    for (int i = 0; i < 9; i++) {
        *ptrs[i] = p;
        p += n * sizes[i];
    }
    s->sin = p;
    return 0;
}

static void residual_add(float *x, const float *d, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += d[i];
}

/* One decoder layer on s->x [n, hidden], in place. 0, or -1 (out of memory). */
static int qwen3_layer_forward(const zi_qwen3_config *c, const zi_qwen3_layer *L, qwen3_act *s, int64_t n) {
    int64_t H = c->hidden, I = c->intermediate, hd = c->head_dim;
    int64_t QD = c->n_heads * hd, KD = c->n_kv_heads * hd;
    /* self-attention */
    kn_rmsnorm(s->a, s->x, n, H, L->in_norm, c->rms_eps);
    if (kn_linear(s->q, s->a, n, &L->wq, NULL) ||  // [n, H] x [QD, H]^T
        kn_linear(s->k, s->a, n, &L->wk, NULL) ||  // [n, H] x [KD, H]^T
        kn_linear(s->v, s->a, n, &L->wv, NULL))    // [n, H] x [KD, H]^T
        return -1;
    kn_rmsnorm(s->q, s->q, n * c->n_heads, hd, L->q_norm, c->rms_eps);    // per head, [n*nh, hd]
    kn_rmsnorm(s->k, s->k, n * c->n_kv_heads, hd, L->k_norm, c->rms_eps); // per head, [n*nkv, hd]
    kn_rope_halfsplit(s->q, n, c->n_heads, (int)hd, QD, s->cos, s->sin);
    kn_rope_halfsplit(s->k, n, c->n_kv_heads, (int)hd, KD, s->cos, s->sin);
    float scale = 1.0f / sqrtf((float)hd);
    if (kn_attention(s->att, QD, s->q, QD, s->k, KD, s->v, KD, n, n, c->n_heads, c->n_kv_heads, (int)hd, scale, 1) ||
        kn_linear(s->a, s->att, n, &L->wo, NULL))  // [n, QD] x [H, QD]^T
        return -1;
    residual_add(s->x, s->a, n * H);
    /* SwiGLU MLP */
    kn_rmsnorm(s->a, s->x, n, H, L->post_norm, c->rms_eps);
    if (kn_linear(s->gate, s->a, n, &L->w_gate, NULL) ||  // [n, H] x [I, H]^T
        kn_linear(s->up, s->a, n, &L->w_up, NULL))        // [n, H] x [I, H]^T
        return -1;
    kn_swiglu(s->gate, s->up, n * I);
    if (kn_linear(s->a, s->gate, n, &L->w_down, NULL)) return -1; // [n, I] x [H, I]^T
    residual_add(s->x, s->a, n * H);
    return 0;
}

static void qwen3_embed(const zi_qwen3 *m, const int32_t *ids, int64_t n, float *x) {
    int64_t H = m->cfg.hidden;
    size_t row_bytes = zi_dtype_row_bytes(m->embed->dtype, H); /* rows may be quantized blocks */
    for (int64_t i = 0; i < n; i++)
    {
        zi_convert_to_f32(x + i * H, (const char *)m->embed->data + (size_t)ids[i] * row_bytes, m->embed->dtype,
                          (size_t)H);
        if (m->embed->scale != 0)
            for (int64_t k = 0; k < H; k++) x[i * H + k] *= m->embed->scale;
    }
}

int zi_qwen3_encode_dump(zi_qwen3 *m, const int32_t *ids, int n, float *out, zi_qwen3_dump_fn dump,
                         void *dump_user) {
    const zi_qwen3_config *c = &m->cfg;
    if (n < 1) return zi_err("Qwen3 text encoder: %d tokens (need at least 1)", n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return zi_err("Qwen3 text encoder: token %d has id %d, outside the vocabulary [0, %d)", i, (int)ids[i],
                          c->vocab);
    qwen3_act s;
    if (qwen3_act_alloc(&s, c, n) != 0) return zi_err_ctx("Qwen3 text encoder: %d tokens", n);
    int64_t H = c->hidden;
    char nm[64];

    qwen3_embed(m, ids, n, s.x); // [n, H]
    if (dump) dump(dump_user, "hidden_states.0", s.x, n, H);
    zi_qwen3_rope_table(c->head_dim, c->rope_theta, n, s.cos, s.sin);
    for (int l = 0; l < m->n_run; l++) {
        if (qwen3_layer_forward(c, &m->layers[l], &s, n)) {
            free(s.block);
            return zi_err_ctx("Qwen3 text encoder layer %d (%d tokens)", l, n);
        }
        if (l == c->n_layers - 2) memcpy(out, s.x, sizeof(float) * (size_t)(n * H)); /* hidden_states[-2] */
        if (dump && l + 1 < c->n_layers) {
            snprintf(nm, sizeof nm, "hidden_states.%d", l + 1);
            dump(dump_user, nm, s.x, n, H);
        }
    }
    if (m->final_norm && dump) { /* load_all: hidden_states[-1] = norm(last layer) */
        kn_rmsnorm(s.a, s.x, n, H, m->final_norm, c->rms_eps);
        snprintf(nm, sizeof nm, "hidden_states.%d", c->n_layers);
        dump(dump_user, nm, s.a, n, H);
    }
    free(s.block);
    return 0;
}

int zi_qwen3_encode(zi_qwen3 *m, const int32_t *ids, int n, float *out) {
    return zi_qwen3_encode_dump(m, ids, n, out, NULL, NULL);
}
