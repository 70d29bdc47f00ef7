/* gguf.c - GGUF reader and writer (see gguf.h). */
#include "gguf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/error.h"

#define GGUF_MAX_NAME 1024     /* tensor names (ggml itself allows 63 bytes) */
#define GGUF_MAX_KEY 65535
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NESTING 8     /* arrays of arrays */
#define GGUF_DEFAULT_ALIGNMENT 32

/* ggml_type numbers (ggml.h) of the types we read; the others are named in errors. */
static const struct {
    uint32_t ggml;
    zi_dtype dt;
} gguf_types[] = {
    {0, ZI_F32},   {1, ZI_F16},   {2, ZI_Q4_0},  {3, ZI_Q4_1},  {6, ZI_Q5_0},  {7, ZI_Q5_1}, {8, ZI_Q8_0},
    {10, ZI_Q2_K}, {11, ZI_Q3_K}, {12, ZI_Q4_K}, {13, ZI_Q5_K}, {14, ZI_Q6_K}, {26, ZI_I32}, {30, ZI_BF16},
};

static const char *gguf_other_type_name(uint32_t t) {
    static const char *const names[] = {
        [9] = "Q8_1",     [15] = "Q8_K",  [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S",
        [20] = "IQ4_NL",  [21] = "IQ3_S", [22] = "IQ2_S",   [23] = "IQ4_XS", [24] = "I8",      [25] = "I16",
        [27] = "I64",     [28] = "F64",   [29] = "IQ1_M",   [34] = "TQ1_0",  [35] = "TQ2_0",   [39] = "MXFP4"};
    return t < sizeof names / sizeof names[0] && names[t] ? names[t] : "unknown";
}

int zi_gguf_type_to_dtype(uint32_t ggml_type, zi_dtype *out) {
    for (size_t i = 0; i < sizeof gguf_types / sizeof gguf_types[0]; i++)
        if (gguf_types[i].ggml == ggml_type) {
            *out = gguf_types[i].dt;
            return 0;
        }
    return -1;
}

uint32_t zi_gguf_dtype_to_type(zi_dtype t) {
    for (size_t i = 0; i < sizeof gguf_types / sizeof gguf_types[0]; i++)
        if (gguf_types[i].dt == t) return gguf_types[i].ggml;
    return UINT32_MAX;
}

/* ---------------------------------------------------------------- reading */

/* A bounds-checked cursor over the mapping. Every read names what it reads. */
typedef struct {
    const uint8_t *p;
    size_t n, off;
    const char *path;
} gg_rd;

static int rd_need(gg_rd *r, uint64_t k, const char *what) {
    if (k > r->n - r->off)
        return zi_err("%s: truncated: %s needs %llu bytes at offset %zu, file has %zu", r->path, what,
                      (unsigned long long)k, r->off, r->n);
    return 0;
}

static uint64_t le(const uint8_t *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int rd_u32(gg_rd *r, uint32_t *v, const char *what) {
    if (rd_need(r, 4, what)) return -1;
    *v = (uint32_t)le(r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int rd_u64(gg_rd *r, uint64_t *v, const char *what) {
    if (rd_need(r, 8, what)) return -1;
    *v = le(r->p + r->off, 8);
    r->off += 8;
    return 0;
}

static int rd_str(gg_rd *r, zi_gguf_str *s, uint64_t max_len, const char *what) {
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len > max_len)
        return zi_err("%s: %s: string length %llu exceeds the limit of %llu", r->path, what, (unsigned long long)len,
                      (unsigned long long)max_len);
    if (rd_need(r, len, what)) return -1;
    s->s = (const char *)r->p + r->off;
    s->len = (size_t)len;
    r->off += (size_t)len;
    return 0;
}

static size_t gguf_scalar_size(uint32_t t) {
    switch (t) {
    case ZI_GGUF_U8: case ZI_GGUF_I8: case ZI_GGUF_BOOL: return 1;
    case ZI_GGUF_U16: case ZI_GGUF_I16: return 2;
    case ZI_GGUF_U32: case ZI_GGUF_I32: case ZI_GGUF_F32: return 4;
    case ZI_GGUF_U64: case ZI_GGUF_I64: case ZI_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Decode a scalar of type t at p into kv->i / kv->f. */
static void gguf_scalar(const uint8_t *p, uint32_t t, int64_t *i, double *f) {
    uint64_t u = le(p, (int)gguf_scalar_size(t));
    switch (t) {
    case ZI_GGUF_I8: *i = (int8_t)u; break;
    case ZI_GGUF_I16: *i = (int16_t)u; break;
    case ZI_GGUF_I32: *i = (int32_t)u; break;
    case ZI_GGUF_I64: *i = (int64_t)u; break;
    case ZI_GGUF_F32: {
        uint32_t b = (uint32_t)u;
        float x;
        memcpy(&x, &b, 4);
        *f = x;
        *i = 0;
        return;
    }
    case ZI_GGUF_F64: memcpy(f, &u, 8), *i = 0; return;
    default: *i = (int64_t)u; break; /* unsigned (u64 above INT64_MAX wraps; never used as a size) */
    }
    *f = (double)*i;
}

/* Skip over (and validate) a value of type t; depth counts array nesting. */
static int gguf_skip_value(gg_rd *r, uint32_t t, int depth, const char *key) {
    char what[256];
    snprintf(what, sizeof what, "value of '%.200s'", key);
    if (t == ZI_GGUF_STRING) {
        zi_gguf_str s;
        return rd_str(r, &s, UINT64_MAX, what);
    }
    if (t == ZI_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (depth >= GGUF_MAX_NESTING) return zi_err("%s: key '%s': arrays nested too deep", r->path, key);
        if (rd_u32(r, &et, what) || rd_u64(r, &n, what)) return -1;
        if (et >= ZI_GGUF_TYPE_COUNT)
            return zi_err("%s: key '%s': invalid array element type %u", r->path, key, et);
        size_t es = gguf_scalar_size(et);
        if (es) {
            if (n > (r->n - r->off) / es) return rd_need(r, UINT64_MAX, what);
            r->off += (size_t)(n * es);
            return 0;
        }
        /* strings and arrays take at least 8 and 12 bytes each: bounds the loop by the file size */
        if (n > (r->n - r->off) / 8) return rd_need(r, n * 8, what);
        for (uint64_t k = 0; k < n; k++)
            if (gguf_skip_value(r, et, depth + 1, key)) return -1;
        return 0;
    }
    size_t es = gguf_scalar_size(t);
    if (!es) return zi_err("%s: key '%s': invalid value type %u", r->path, key, t);
    if (rd_need(r, es, what)) return -1;
    r->off += es;
    return 0;
}

/* Read one KV (key, type, value) into kv. */
static int gguf_read_kv(gg_rd *r, zi_gguf_kv *kv, int64_t idx) {
    zi_gguf_str k;
    char what[64];
    snprintf(what, sizeof what, "key of KV %lld", (long long)idx);
    if (rd_str(r, &k, GGUF_MAX_KEY, what)) return -1;
    if (memchr(k.s, 0, k.len)) return zi_err("%s: KV %lld: key contains a NUL byte", r->path, (long long)idx);
    kv->key = zi_malloc(k.len + 1);
    if (!kv->key) return -1;
    memcpy(kv->key, k.s, k.len);
    kv->key[k.len] = 0;
    snprintf(what, sizeof what, "type of '%.40s'", kv->key);
    if (rd_u32(r, &kv->type, what)) return -1;
    if (kv->type >= ZI_GGUF_TYPE_COUNT)
        return zi_err("%s: key '%s': invalid value type %u", r->path, kv->key, kv->type);
    if (kv->type == ZI_GGUF_STRING) {
        zi_gguf_str s;
        if (rd_str(r, &s, UINT64_MAX, kv->key)) return -1;
        kv->str = zi_malloc(s.len + 1);
        if (!kv->str) return -1;
        memcpy(kv->str, s.s, s.len);
        kv->str[s.len] = 0;
        kv->str_len = s.len;
        return 0;
    }
    if (kv->type != ZI_GGUF_ARRAY) {
        size_t es = gguf_scalar_size(kv->type);
        if (rd_need(r, es, kv->key)) return -1;
        gguf_scalar(r->p + r->off, kv->type, &kv->i, &kv->f);
        r->off += es;
        return 0;
    }
    size_t start = r->off;
    if (rd_u32(r, &kv->arr_type, kv->key) || rd_u64(r, &kv->arr_n, kv->key)) return -1;
    if (kv->arr_type >= ZI_GGUF_TYPE_COUNT)
        return zi_err("%s: key '%s': invalid array element type %u", r->path, kv->key, kv->arr_type);
    kv->arr_data = r->p + r->off;
    if (kv->arr_type == ZI_GGUF_STRING) {
        if (kv->arr_n > (r->n - r->off) / 8) return rd_need(r, kv->arr_n * 8, kv->key);
        kv->arr_strs = zi_calloc(kv->arr_n ? (size_t)kv->arr_n : 1, sizeof *kv->arr_strs);
        if (!kv->arr_strs) return -1;
        for (uint64_t k = 0; k < kv->arr_n; k++)
            if (rd_str(r, &kv->arr_strs[k], UINT64_MAX, kv->key)) return -1;
        return 0;
    }
    r->off = start;
    return gguf_skip_value(r, ZI_GGUF_ARRAY, 0, kv->key);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} gg_range;

static int gg_cmp_range(const void *a, const void *b) {
    const gg_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int gg_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int gg_cmp_name(const void *a, const void *b) {
    return strcmp(((const zi_tensor *)a)->name, ((const zi_tensor *)b)->name);
}

/* Read one tensor info into t (data pointer set later); *offset gets the data offset. */
static int gguf_read_tensor_info(gg_rd *r, zi_tensor *t, uint64_t *offset, int idx) {
    zi_gguf_str nm;
    char what[64];
    snprintf(what, sizeof what, "name of tensor %d", idx);
    if (rd_str(r, &nm, GGUF_MAX_NAME, what)) return -1;
    if (nm.len == 0 || memchr(nm.s, 0, nm.len))
        return zi_err("%s: tensor %d: empty name or name with a NUL byte", r->path, idx);
    t->name = zi_malloc(nm.len + 1);
    if (!t->name) return -1;
    memcpy(t->name, nm.s, nm.len);
    t->name[nm.len] = 0;
    const char *name = t->name;
    uint32_t nd, type;
    if (rd_u32(r, &nd, name)) return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return zi_err("%s: tensor '%s': %u dimensions (1 to %d allowed)", r->path, name, nd, GGUF_MAX_DIMS);
    uint64_t ne[GGUF_MAX_DIMS], numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
        if (rd_u64(r, &ne[d], name)) return -1;
        if (ne[d] > (uint64_t)INT64_MAX || (ne[d] && numel > ((uint64_t)1 << 50) / ne[d]))
            return zi_err("%s: tensor '%s': dimension %u (%llu) is too large", r->path, name, d,
                          (unsigned long long)ne[d]);
        numel *= ne[d];
    }
    if (rd_u32(r, &type, name) || rd_u64(r, offset, name)) return -1;
    if (zi_gguf_type_to_dtype(type, &t->dtype) != 0)
        return zi_err("%s: tensor '%s': ggml type %u (%s) is not supported (F32, F16, BF16, I32, Q4_0, Q4_1, "
                      "Q5_0, Q5_1, Q8_0, Q2_K..Q6_K are)",
                      r->path, name, type, gguf_other_type_name(type));
    int64_t be = zi_dtype_block_elems(t->dtype);
    if (ne[0] % (uint64_t)be)
        return zi_err("%s: tensor '%s': innermost dimension %llu is not a multiple of the %s block size %lld",
                      r->path, name, (unsigned long long)ne[0], zi_dtype_name(t->dtype), (long long)be);
    t->ndim = (int)nd;
    for (uint32_t d = 0; d < nd; d++) t->shape[nd - 1 - d] = (int64_t)ne[d];
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel / (uint64_t)be) * zi_dtype_block_bytes(t->dtype);
    return 0;
}

/* ComfyUI-GGUF stores some tensors reshaped (e.g. to make rows of whole blocks) and records the
 * torch shape in "comfy.gguf.orig_shape.<name>" (integer array): present that shape. */
static int gguf_orig_shapes(zi_st_file *f) {
    static const char pre[] = "comfy.gguf.orig_shape.";
    for (int64_t k = 0; k < f->gguf->n_kv; k++) {
        const zi_gguf_kv *kv = &f->gguf->kv[k];
        if (strncmp(kv->key, pre, sizeof pre - 1)) continue;
        zi_tensor *t = (zi_tensor *)zi_st_find(f, kv->key + sizeof pre - 1);
        if (!t) continue;
        int64_t numel = 1, sh[ZI_MAX_DIMS];
        int ok = kv->type == ZI_GGUF_ARRAY && kv->arr_type != ZI_GGUF_STRING && kv->arr_type != ZI_GGUF_ARRAY &&
                 kv->arr_type != ZI_GGUF_F32 && kv->arr_type != ZI_GGUF_F64 && kv->arr_n >= 1 && kv->arr_n <= ZI_MAX_DIMS;
        for (uint64_t d = 0; ok && d < kv->arr_n; d++) {
            sh[d] = zi_gguf_arr_int(kv, d);
            ok = sh[d] >= 0 && sh[d] <= ((int64_t)1 << 40) && (sh[d] == 0 || numel <= ((int64_t)1 << 50) / sh[d]);
            numel *= ok ? sh[d] : 1;
        }
        if (!ok || numel != t->numel)
            return zi_err("%s: %s does not describe tensor '%s' (%lld elements)", f->path, kv->key, t->name,
                          (long long)t->numel);
        t->ndim = (int)kv->arr_n;
        memcpy(t->shape, sh, sizeof(int64_t) * kv->arr_n);
    }
    return 0;
}

int zi_gguf_parse(zi_st_file *f) {
    gg_rd r = {f->map, f->map_size, 4, f->path};
    const char *path = f->path;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (rd_u32(&r, &version, "version")) return -1;
    if (version == 1) return zi_err("%s: GGUF version 1 is not supported (v2 and v3 are)", path);
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && version >> 16)
            return zi_err("%s: big-endian GGUF (version bytes %08x) is not supported", path, version);
        return zi_err("%s: unknown GGUF version %u (2 and 3 are supported)", path, version);
    }
    if (rd_u64(&r, &n_tensors, "tensor count") || rd_u64(&r, &n_kv, "KV count")) return -1;
    /* each KV takes >= 12 bytes and each tensor info >= 24: bound the counts by the file size */
    if (n_kv > (r.n - r.off) / 12)
        return zi_err("%s: KV count %llu cannot fit in a %zu-byte file", path, (unsigned long long)n_kv, r.n);
    if (n_tensors > (r.n - r.off) / 24 || n_tensors > INT32_MAX)
        return zi_err("%s: tensor count %llu cannot fit in a %zu-byte file", path, (unsigned long long)n_tensors, r.n);
    struct zi_gguf_meta *m = zi_calloc(1, sizeof *m);
    if (!m) return -1;
    f->gguf = m;
    m->version = version;
    m->alignment = GGUF_DEFAULT_ALIGNMENT;
    m->kv = zi_calloc(n_kv ? (size_t)n_kv : 1, sizeof *m->kv);
    if (!m->kv) return -1;
    for (uint64_t i = 0; i < n_kv; i++) {
        m->n_kv = (int64_t)i + 1;
        if (gguf_read_kv(&r, &m->kv[i], (int64_t)i)) return -1;
    }
    { /* duplicate keys: sort a copy of the key pointers (n log n even for a crafted file) */
        const char **keys = zi_malloc(sizeof *keys * (n_kv ? (size_t)n_kv : 1));
        if (!keys) return -1;
        for (uint64_t i = 0; i < n_kv; i++) keys[i] = m->kv[i].key;
        qsort(keys, (size_t)n_kv, sizeof *keys, gg_cmp_str);
        for (uint64_t i = 1; i < n_kv; i++)
            if (!strcmp(keys[i], keys[i - 1])) {
                zi_err("%s: duplicate key '%s'", path, keys[i]);
                free(keys);
                return -1;
            }
        free(keys);
    }
    const zi_gguf_kv *al = zi_gguf_find(f, "general.alignment");
    if (al) {
        if (al->type != ZI_GGUF_U32) return zi_err("%s: general.alignment must be a uint32 (type %u)", path, al->type);
        if (al->i == 0 || (al->i & (al->i - 1)) || al->i > (1 << 24))
            return zi_err("%s: general.alignment %lld is not a power of two (<= 16M)", path, (long long)al->i);
        m->alignment = (uint32_t)al->i;
    }

    f->tensors = zi_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(zi_tensor));
    gg_range *ranges = zi_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *ranges);
    if (!f->tensors || !ranges) {
        free(ranges);
        return -1;
    }
    int rc = 0;
    for (uint64_t i = 0; i < n_tensors && rc == 0; i++) {
        zi_tensor *t = &f->tensors[i];
        f->n_tensors = (int)i + 1;
        rc = gguf_read_tensor_info(&r, t, &ranges[i].begin, (int)i);
        ranges[i].end = ranges[i].begin + t->nbytes;
        ranges[i].idx = (int)i;
        t->file = f->path;
    }
    /* data area: after the infos, aligned */
    uint64_t data_off = ((uint64_t)r.off + m->alignment - 1) / m->alignment * m->alignment;
    if (rc == 0 && data_off > r.n && n_tensors)
        rc = zi_err("%s: data area would start at %llu, past the end of the file (%zu bytes)", path,
                    (unsigned long long)data_off, r.n);
    uint64_t data_size = data_off <= r.n ? r.n - data_off : 0;
    for (int i = 0; rc == 0 && i < f->n_tensors; i++) {
        zi_tensor *t = &f->tensors[i];
        uint64_t b = ranges[i].begin;
        if (b % m->alignment)
            rc = zi_err("%s: tensor '%s': data offset %llu is not a multiple of the alignment %u", path, t->name,
                        (unsigned long long)b, m->alignment);
        else if (b > data_size || t->nbytes > data_size - b)
            rc = zi_err("%s: tensor '%s': data [%llu, %llu) lies outside the %llu-byte data area (file truncated?)",
                        path, t->name, (unsigned long long)b, (unsigned long long)(b + t->nbytes),
                        (unsigned long long)data_size);
        else {
            t->data = (const uint8_t *)f->map + data_off + b;
            size_t need = zi_dtype_is_block(t->dtype) ? 2 : zi_dtype_size(t->dtype);
            if ((uintptr_t)t->data % need)
                rc = zi_err("%s: tensor '%s': data is not aligned to %zu bytes", path, t->name, need);
        }
    }
    if (rc == 0) {
        qsort(ranges, (size_t)f->n_tensors, sizeof *ranges, gg_cmp_range);
        for (int i = 1; rc == 0 && i < f->n_tensors; i++)
            if (ranges[i].begin < ranges[i - 1].end)
                rc = zi_err("%s: tensors '%s' and '%s' have overlapping data", path, f->tensors[ranges[i - 1].idx].name,
                            f->tensors[ranges[i].idx].name);
    }
    free(ranges);
    if (rc) return -1;
    qsort(f->tensors, (size_t)f->n_tensors, sizeof(zi_tensor), gg_cmp_name);
    for (int i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name))
            return zi_err("%s: duplicate tensor name '%s'", path, f->tensors[i].name);
    return gguf_orig_shapes(f);
}

void zi_gguf_meta_free(struct zi_gguf_meta *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_kv; i++) {
        free(m->kv[i].key);
        free(m->kv[i].str);
        free(m->kv[i].arr_strs);
    }
    free(m->kv);
    free(m);
}

const zi_gguf_kv *zi_gguf_find(const zi_st_file *f, const char *key) {
    if (!f->gguf) return NULL;
    for (int64_t i = 0; i < f->gguf->n_kv; i++)
        if (!strcmp(f->gguf->kv[i].key, key)) return &f->gguf->kv[i];
    return NULL;
}

int zi_gguf_get_int(const zi_st_file *f, const char *key, int64_t *out) {
    const zi_gguf_kv *kv = zi_gguf_find(f, key);
    if (!kv || kv->type == ZI_GGUF_STRING || kv->type == ZI_GGUF_ARRAY || kv->type == ZI_GGUF_F32 ||
        kv->type == ZI_GGUF_F64)
        return -1;
    *out = kv->i;
    return 0;
}

const char *zi_gguf_get_str(const zi_st_file *f, const char *key) {
    const zi_gguf_kv *kv = zi_gguf_find(f, key);
    return kv && kv->type == ZI_GGUF_STRING ? kv->str : NULL;
}

int64_t zi_gguf_arr_int(const zi_gguf_kv *kv, uint64_t i) {
    size_t es = gguf_scalar_size(kv->arr_type);
    if (kv->type != ZI_GGUF_ARRAY || !es || i >= kv->arr_n) return 0;
    int64_t v;
    double d;
    gguf_scalar(kv->arr_data + i * es, kv->arr_type, &v, &d);
    return v;
}

/* llama.cpp tensor names (blk.N.*) <-> Hugging Face (Qwen3/Llama) names */
static const char *const gguf_llama_names[][2] = {
    {"attn_q", "self_attn.q_proj"},          {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
    {"attn_q_norm", "self_attn.q_norm"},     {"attn_k_norm", "self_attn.k_norm"},
    {"attn_norm", "input_layernorm"},        {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},           {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

int zi_gguf_name_to_hf(const char *name, char *out, size_t cap) {
    int layer, len = 0;
    if (!strcmp(name, "token_embd.weight")) return snprintf(out, cap, "model.embed_tokens.weight"), 0;
    if (!strcmp(name, "output_norm.weight")) return snprintf(out, cap, "model.norm.weight"), 0;
    if (!strcmp(name, "output.weight")) return snprintf(out, cap, "lm_head.weight"), 0;
    if (sscanf(name, "blk.%d.%n", &layer, &len) != 1 || len == 0 || layer < 0) return -1;
    const char *rest = name + len, *dot = strrchr(rest, '.');
    if (!dot) return -1;
    for (size_t i = 0; i < sizeof gguf_llama_names / sizeof gguf_llama_names[0]; i++)
        if (strlen(gguf_llama_names[i][0]) == (size_t)(dot - rest) && !strncmp(rest, gguf_llama_names[i][0], (size_t)(dot - rest)))
            return snprintf(out, cap, "model.layers.%d.%s%s", layer, gguf_llama_names[i][1], dot), 0;
    return -1;
}

int zi_gguf_name_from_hf(const char *name, char *out, size_t cap) {
    int layer, len = 0;
    if (!strncmp(name, "model.", 6)) name += 6;
    if (!strcmp(name, "embed_tokens.weight")) return snprintf(out, cap, "token_embd.weight"), 0;
    if (!strcmp(name, "norm.weight")) return snprintf(out, cap, "output_norm.weight"), 0;
    if (!strcmp(name, "lm_head.weight")) return snprintf(out, cap, "output.weight"), 0;
    if (sscanf(name, "layers.%d.%n", &layer, &len) != 1 || len == 0 || layer < 0) return -1;
    const char *rest = name + len, *dot = strrchr(rest, '.');
    if (!dot) return -1;
    for (size_t i = 0; i < sizeof gguf_llama_names / sizeof gguf_llama_names[0]; i++)
        if (strlen(gguf_llama_names[i][1]) == (size_t)(dot - rest) && !strncmp(rest, gguf_llama_names[i][1], (size_t)(dot - rest)))
            return snprintf(out, cap, "blk.%d.%s%s", layer, gguf_llama_names[i][0], dot), 0;
    return -1;
}

int zi_gguf_rename_llama(zi_st_file *f) {
    if (!f->gguf || !zi_st_find(f, "token_embd.weight")) return 0;
    char buf[GGUF_MAX_NAME + 64];
    for (int i = 0; i < f->n_tensors; i++) {
        if (zi_gguf_name_to_hf(f->tensors[i].name, buf, sizeof buf)) continue;
        char *nn = zi_strdup(buf);
        if (!nn) return -1;
        free(f->tensors[i].name);
        f->tensors[i].name = nn;
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof(zi_tensor), gg_cmp_name);
    for (int i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name))
            return zi_err("%s: two tensors map to '%s'", f->path, f->tensors[i].name);
    return 0;
}

/* ---------------------------------------------------------------- writing */

void zi_gguf_writer_init(zi_gguf_writer *w) {
    memset(w, 0, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
}

static int wr_bytes(zi_gguf_writer *w, const void *p, size_t n) {
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb) return zi_err("gguf writer: out of memory");
        w->kv = nb, w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}

static int wr_le(zi_gguf_writer *w, uint64_t v, int k) {
    uint8_t b[8];
    for (int i = 0; i < k; i++) b[i] = (uint8_t)(v >> (8 * i));
    return wr_bytes(w, b, (size_t)k);
}

static int wr_str(zi_gguf_writer *w, const char *s, size_t n) { return wr_le(w, n, 8) || wr_bytes(w, s, n); }

static int wr_key(zi_gguf_writer *w, const char *key, uint32_t type) {
    w->n_kv++;
    return wr_str(w, key, strlen(key)) || wr_le(w, type, 4);
}

int zi_gguf_add_str(zi_gguf_writer *w, const char *key, const char *val) {
    return wr_key(w, key, ZI_GGUF_STRING) || wr_str(w, val, strlen(val)) ? -1 : 0;
}
int zi_gguf_add_u32(zi_gguf_writer *w, const char *key, uint32_t val) {
    if (!strcmp(key, "general.alignment")) w->alignment = val;
    return wr_key(w, key, ZI_GGUF_U32) || wr_le(w, val, 4) ? -1 : 0;
}
int zi_gguf_add_i32(zi_gguf_writer *w, const char *key, int32_t val) {
    return wr_key(w, key, ZI_GGUF_I32) || wr_le(w, (uint32_t)val, 4) ? -1 : 0;
}
int zi_gguf_add_f32(zi_gguf_writer *w, const char *key, float val) {
    uint32_t u;
    memcpy(&u, &val, 4);
    return wr_key(w, key, ZI_GGUF_F32) || wr_le(w, u, 4) ? -1 : 0;
}
int zi_gguf_add_bool(zi_gguf_writer *w, const char *key, int val) {
    return wr_key(w, key, ZI_GGUF_BOOL) || wr_le(w, val != 0, 1) ? -1 : 0;
}
int zi_gguf_add_str_array(zi_gguf_writer *w, const char *key, const char *const *vals, const size_t *lens,
                          uint64_t n) {
    if (wr_key(w, key, ZI_GGUF_ARRAY) || wr_le(w, ZI_GGUF_STRING, 4) || wr_le(w, n, 8)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (wr_str(w, vals[i], lens ? lens[i] : strlen(vals[i]))) return -1;
    return 0;
}
int zi_gguf_add_i32_array(zi_gguf_writer *w, const char *key, const int32_t *vals, uint64_t n) {
    if (wr_key(w, key, ZI_GGUF_ARRAY) || wr_le(w, ZI_GGUF_I32, 4) || wr_le(w, n, 8)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (wr_le(w, (uint32_t)vals[i], 4)) return -1;
    return 0;
}

int zi_gguf_add_tensor(zi_gguf_writer *w, const char *name, zi_dtype dt, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) return zi_err("gguf writer: tensor '%s': %d dimensions (1 to 4 allowed)", name, ndim);
    if (zi_gguf_dtype_to_type(dt) == UINT32_MAX)
        return zi_err("gguf writer: tensor '%s': dtype %s has no GGUF type", name, zi_dtype_name(dt));
    if (shape[ndim - 1] % zi_dtype_block_elems(dt))
        return zi_err("gguf writer: tensor '%s': innermost dimension %lld is not a multiple of the %s block size",
                      name, (long long)shape[ndim - 1], zi_dtype_name(dt));
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 64;
        zi_gguf_wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return zi_err("gguf writer: out of memory");
        w->t = nt, w->cap_t = cap;
    }
    zi_gguf_wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = zi_strdup(name);
    if (!t->name) return -1;
    t->dtype = dt;
    t->ndim = ndim;
    int64_t rows = 1;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    t->nbytes = (size_t)rows * zi_dtype_row_bytes(dt, shape[ndim - 1]);
    uint64_t off = 0;
    if (w->n_t) {
        const zi_gguf_wtensor *p = &w->t[w->n_t - 1];
        off = (p->offset + p->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    t->offset = off;
    w->n_t++;
    return 0;
}

static int gguf_write_pad(zi_gguf_writer *w, uint64_t upto) {
    static const uint8_t zeros[64];
    while (w->pos < upto) {
        size_t k = upto - w->pos < 64 ? (size_t)(upto - w->pos) : 64;
        if (fwrite(zeros, 1, k, w->fp) != k) return -1;
        w->pos += k;
    }
    return 0;
}

int zi_gguf_write_begin(zi_gguf_writer *w, const char *path) {
    if (w->alignment == 0 || (w->alignment & (w->alignment - 1)))
        return zi_err("gguf writer: alignment %u is not a power of two", w->alignment);
    w->path = zi_strdup(path);
    w->tmp = zi_malloc(strlen(path) + 32);
    if (!w->path || !w->tmp) return -1;
    sprintf(w->tmp, "%s.tmp-%d", path, (int)getpid());
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) return zi_err("%s: cannot create: %s", w->tmp, strerror(errno));
    /* header = magic, version, counts, KVs, tensor infos, padding */
    zi_gguf_writer h = {0};
    int rc = wr_bytes(&h, "GGUF", 4) || wr_le(&h, 3, 4) || wr_le(&h, (uint64_t)w->n_t, 8) ||
             wr_le(&h, (uint64_t)w->n_kv, 8) || wr_bytes(&h, w->kv, w->kv_len);
    for (int i = 0; rc == 0 && i < w->n_t; i++) {
        const zi_gguf_wtensor *t = &w->t[i];
        rc = wr_str(&h, t->name, strlen(t->name)) || wr_le(&h, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; rc == 0 && d >= 0; d--) rc = wr_le(&h, (uint64_t)t->shape[d], 8);
        rc = rc || wr_le(&h, zi_gguf_dtype_to_type(t->dtype), 4) || wr_le(&h, t->offset, 8);
    }
    while (rc == 0 && h.kv_len % w->alignment) rc = wr_le(&h, 0, 1);
    if (rc == 0 && fwrite(h.kv, 1, h.kv_len, w->fp) != h.kv_len) rc = zi_err("%s: write failed", w->tmp);
    free(h.kv);
    if (rc) w->failed = 1;
    return rc ? -1 : 0;
}

int zi_gguf_write_data(zi_gguf_writer *w, const void *data, size_t nbytes) {
    if (!w->fp || w->failed) return zi_err("gguf writer: not writing");
    while (nbytes > 0) {
        if (w->next >= w->n_t) {
            w->failed = 1;
            return zi_err("gguf writer: more data written than the declared tensors hold");
        }
        const zi_gguf_wtensor *t = &w->t[w->next];
        if (w->pos < t->offset && gguf_write_pad(w, t->offset)) goto io_error;
        size_t room = (size_t)(t->offset + t->nbytes - w->pos), k = nbytes < room ? nbytes : room;
        if (k && fwrite(data, 1, k, w->fp) != k) goto io_error;
        w->pos += k;
        data = (const uint8_t *)data + k;
        nbytes -= k;
        if (w->pos == t->offset + t->nbytes) w->next++;
    }
    return 0;
io_error:
    w->failed = 1;
    return zi_err("%s: write failed: %s", w->tmp, strerror(errno));
}

int zi_gguf_write_end(zi_gguf_writer *w) {
    if (!w->fp || w->failed) return zi_err("gguf writer: not writing");
    while (w->next < w->n_t && w->t[w->next].nbytes == 0 && w->pos >= w->t[w->next].offset) w->next++;
    if (w->next != w->n_t)
        return zi_err("gguf writer: %d of %d tensors written", w->next, w->n_t);
    int bad = fclose(w->fp) != 0;
    w->fp = NULL;
    if (bad || rename(w->tmp, w->path) != 0) {
        unlink(w->tmp);
        return zi_err("%s: write failed: %s", w->path, strerror(errno));
    }
    free(w->tmp);
    w->tmp = NULL;
    return 0;
}

void zi_gguf_writer_free(zi_gguf_writer *w) {
    if (w->fp) {
        fclose(w->fp);
        if (w->tmp) unlink(w->tmp);
    }
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}
