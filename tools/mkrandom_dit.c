/* mkrandom_dit.c - write a random-weight Z-Image-Turbo transformer checkpoint (benchmarks).
 *
 *   build/mkrandom_dit OUT_DIR [--layers N] [--seed S]
 *
 * Produces the diffusers layout of docs/MODEL.md §3.1/3.2 with the full-size config (dim 3840,
 * 30 layers + 2+2 refiners, 30 heads, cap_feat_dim 2560): config.json, three BF16
 * shards diffusion_pytorch_model-0000{1,2,3}-of-00003.safetensors (~4.1 GB each) and
 * diffusion_pytorch_model.safetensors.index.json, with the official 521 tensor names
 * and shapes. Values are uniform random with sane scales so activations stay finite
 * through all 34 blocks: matrices with std 1/sqrt(fan_in), norm gains ~1, small biases,
 * small adaLN weights (tanh gates ~0.2). --layers N writes a smaller model (N main
 * layers) for quick tests. Data is streamed (64 MiB at a time), generated in parallel
 * with a counter-based PRNG, so the output depends only on the seed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "../src/common/dtype.h"

#define MK_DIM 3840
#define MK_FFN 10240
#define MK_HEADS 30
#define MK_HD 128
#define MK_ADALN 256
#define MK_T_HIDDEN 1024
#define MK_CAP 2560
#define MK_PATCH_IN 64 /* 2 * 2 * 16 */
#define MK_SHARDS 3

enum { MK_MAT, MK_GAIN, MK_SMALL };

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    int kind;    /* MK_MAT: U * scale*sqrt(3) (std = scale); MK_GAIN: 1 + U*scale; MK_SMALL: U*scale */
    float scale;
    int shard;
    uint64_t offset; /* byte offset in the shard's data section */
} mk_tensor;

typedef struct {
    mk_tensor *t;
    int n, cap;
} mk_list;

static int mk_add(mk_list *l, const char *name, int ndim, int64_t d0, int64_t d1, int kind, float scale) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 256;
        mk_tensor *nt = realloc(l->t, sizeof *nt * (size_t)nc);
        if (!nt) return -1;
        l->t = nt, l->cap = nc;
    }
    mk_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%.95s", name);
    t->ndim = ndim, t->shape[0] = d0, t->shape[1] = d1, t->kind = kind, t->scale = scale;
    return 0;
}

static int64_t mk_numel(const mk_tensor *t) { return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]; }

/* One block (docs/MODEL.md §3.2): 15 tensors when modulated, 13 otherwise. */
static int mk_block(mk_list *l, const char *p, int modulated) {
    char n[128];
    const float s_d = 1.0f / sqrtf((float)MK_DIM), s_f = 1.0f / sqrtf((float)MK_FFN);
    static const char *const qkvo[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.attention.%s.weight", p, qkvo[i]);
        rc |= mk_add(l, n, 2, MK_DIM, MK_DIM, MK_MAT, s_d);
    }
    snprintf(n, sizeof n, "%s.attention.norm_q.weight", p);
    rc |= mk_add(l, n, 1, MK_HD, 0, MK_GAIN, 0.1f);
    snprintf(n, sizeof n, "%s.attention.norm_k.weight", p);
    rc |= mk_add(l, n, 1, MK_HD, 0, MK_GAIN, 0.1f);
    static const char *const norms[4] = {"attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s.weight", p, norms[i]);
        rc |= mk_add(l, n, 1, MK_DIM, 0, MK_GAIN, 0.1f);
    }
    snprintf(n, sizeof n, "%s.feed_forward.w1.weight", p);
    rc |= mk_add(l, n, 2, MK_FFN, MK_DIM, MK_MAT, s_d);
    snprintf(n, sizeof n, "%s.feed_forward.w2.weight", p);
    rc |= mk_add(l, n, 2, MK_DIM, MK_FFN, MK_MAT, s_f);
    snprintf(n, sizeof n, "%s.feed_forward.w3.weight", p);
    rc |= mk_add(l, n, 2, MK_FFN, MK_DIM, MK_MAT, s_d);
    if (modulated) {
        /* c has std ~0.5; this gives modulation std ~0.25: scales 1 +- 0.25, gates tanh(~0.25) */
        snprintf(n, sizeof n, "%s.adaLN_modulation.0.weight", p);
        rc |= mk_add(l, n, 2, 4 * MK_DIM, MK_ADALN, MK_MAT, 0.5f / sqrtf((float)MK_ADALN));
        snprintf(n, sizeof n, "%s.adaLN_modulation.0.bias", p);
        rc |= mk_add(l, n, 1, 4 * MK_DIM, 0, MK_SMALL, 0.05f);
    }
    return rc;
}

static int mk_build_list(mk_list *l, int n_layers) {
    int rc = 0;
    char p[64];
    rc |= mk_add(l, "all_x_embedder.2-1.weight", 2, MK_DIM, MK_PATCH_IN, MK_MAT, 1.0f / sqrtf((float)MK_PATCH_IN));
    rc |= mk_add(l, "all_x_embedder.2-1.bias", 1, MK_DIM, 0, MK_SMALL, 0.02f);
    rc |= mk_add(l, "all_final_layer.2-1.linear.weight", 2, MK_PATCH_IN, MK_DIM, MK_MAT, 1.0f / sqrtf((float)MK_DIM));
    rc |= mk_add(l, "all_final_layer.2-1.linear.bias", 1, MK_PATCH_IN, 0, MK_SMALL, 0.02f);
    rc |= mk_add(l, "all_final_layer.2-1.adaLN_modulation.1.weight", 2, MK_DIM, MK_ADALN, MK_MAT,
                 0.5f / sqrtf((float)MK_ADALN));
    rc |= mk_add(l, "all_final_layer.2-1.adaLN_modulation.1.bias", 1, MK_DIM, 0, MK_SMALL, 0.05f);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "noise_refiner.%d", i);
        rc |= mk_block(l, p, 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "context_refiner.%d", i);
        rc |= mk_block(l, p, 0);
    }
    rc |= mk_add(l, "t_embedder.mlp.0.weight", 2, MK_T_HIDDEN, MK_ADALN, MK_MAT, 1.0f / sqrtf((float)MK_ADALN));
    rc |= mk_add(l, "t_embedder.mlp.0.bias", 1, MK_T_HIDDEN, 0, MK_SMALL, 0.05f);
    rc |= mk_add(l, "t_embedder.mlp.2.weight", 2, MK_ADALN, MK_T_HIDDEN, MK_MAT, 1.0f / sqrtf((float)MK_T_HIDDEN));
    rc |= mk_add(l, "t_embedder.mlp.2.bias", 1, MK_ADALN, 0, MK_SMALL, 0.05f);
    rc |= mk_add(l, "cap_embedder.0.weight", 1, MK_CAP, 0, MK_GAIN, 0.1f);
    rc |= mk_add(l, "cap_embedder.1.weight", 2, MK_DIM, MK_CAP, MK_MAT, 1.0f / sqrtf((float)MK_CAP));
    rc |= mk_add(l, "cap_embedder.1.bias", 1, MK_DIM, 0, MK_SMALL, 0.02f);
    for (int i = 0; i < n_layers; i++) {
        snprintf(p, sizeof p, "layers.%d", i);
        rc |= mk_block(l, p, 1);
    }
    rc |= mk_add(l, "x_pad_token", 2, 1, MK_DIM, MK_SMALL, 0.5f);
    rc |= mk_add(l, "cap_pad_token", 2, 1, MK_DIM, MK_SMALL, 0.5f);
    return rc;
}

/* ---------------------------------------------------------------- random data */

static uint64_t mk_hash(const char *s, uint64_t seed) { /* FNV-1a, then a splitmix finalizer */
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33;
    return h;
}

/* wyrand step: a fast 64-bit counter-based generator */
static inline uint64_t mk_next(uint64_t *s) {
    *s += 0xa0761d6478bd642full;
    __uint128_t t = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

#define MK_CHUNK ((int64_t)1 << 20) /* elements per PRNG stream */

/* Elements [e0, e0 + n) of tensor t (n a multiple of MK_CHUNK unless it reaches the end). */
static void mk_fill(uint16_t *dst, const mk_tensor *t, uint64_t seed, int64_t e0, int64_t n) {
    uint64_t h = mk_hash(t->name, seed);
    float a = t->kind == MK_MAT ? t->scale * 1.7320508f : t->scale, off = t->kind == MK_GAIN ? 1.0f : 0.0f;
    float mul = a * (1.0f / 2147483648.0f);
    int64_t nch = (n + MK_CHUNK - 1) / MK_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        uint64_t s = h ^ ((uint64_t)((e0 / MK_CHUNK) + c) * 0x9E3779B97F4A7C15ull);
        int64_t i0 = c * MK_CHUNK, i1 = i0 + MK_CHUNK < n ? i0 + MK_CHUNK : n;
        for (int64_t i = i0; i < i1; i += 2) {
            uint64_t r = mk_next(&s);
            dst[i] = zi_f32_to_bf16(off + (float)(int32_t)(uint32_t)r * mul);
            if (i + 1 < i1) dst[i + 1] = zi_f32_to_bf16(off + (float)(int32_t)(uint32_t)(r >> 32) * mul);
        }
    }
}

/* ---------------------------------------------------------------- files */

static int mk_write_json(const char *path, json_t *j) {
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (rc) fprintf(stderr, "mkrandom_dit: cannot write %s\n", path);
    return rc ? -1 : 0;
}

static int mk_write_config(const char *dir, int n_layers) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = json_pack("{s:s, s:s, s:[i], s:[i], s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:b, s:i, s:f, s:f, "
                          "s:[i,i,i], s:[i,i,i]}",
                          "_class_name", "ZImageTransformer2DModel", "_diffusers_version", "0.36.0.dev0",
                          "all_patch_size", 2, "all_f_patch_size", 1, "in_channels", 16, "dim", MK_DIM,
                          "n_layers", n_layers, "n_refiner_layers", 2, "n_heads", MK_HEADS, "n_kv_heads", MK_HEADS,
                          "norm_eps", 1e-5, "qk_norm", 1, "cap_feat_dim", MK_CAP, "rope_theta", 256.0, "t_scale",
                          1000.0, "axes_dims", 32, 48, 48, "axes_lens", 1536, 512, 512);
    if (!j) return -1;
    int rc = mk_write_json(path, j);
    json_decref(j);
    return rc;
}

static void mk_shard_name(char *buf, size_t n, int shard) {
    snprintf(buf, n, "diffusion_pytorch_model-%05d-of-%05d.safetensors", shard + 1, MK_SHARDS);
}

static int mk_write_shard(const char *dir, mk_list *l, int shard, uint64_t seed, uint16_t *buf, int64_t buf_n) {
    char fname[128], path[4096];
    mk_shard_name(fname, sizeof fname, shard);
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    /* header: {"__metadata__":{"format":"pt"},"name":{"dtype":"BF16","shape":[..],"data_offsets":[b,e]},...} */
    size_t hcap = 1 << 16, hlen = 0;
    char *h = malloc(hcap);
    if (!h) return -1;
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        mk_tensor *t = &l->t[i];
        if (t->shard != shard) continue;
        uint64_t nb = (uint64_t)mk_numel(t) * 2;
        t->offset = off;
        char sh[64];
        if (t->ndim == 1)
            snprintf(sh, sizeof sh, "[%lld]", (long long)t->shape[0]);
        else
            snprintf(sh, sizeof sh, "[%lld,%lld]", (long long)t->shape[0], (long long)t->shape[1]);
        if (hcap - hlen < 512) {
            char *nh = realloc(h, hcap *= 2);
            if (!nh) {
                free(h);
                return -1;
            }
            h = nh;
        }
        hlen += (size_t)snprintf(h + hlen, hcap - hlen, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}",
                                 t->name, sh, (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    h[hlen++] = '}';
    while ((8 + hlen) % 64) h[hlen++] = ' '; /* tensor data starts 64-byte aligned */
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "mkrandom_dit: cannot create %s: %s\n", path, strerror(errno));
        free(h);
        return -1;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen;
    free(h);
    for (int i = 0; ok && i < l->n; i++) {
        const mk_tensor *t = &l->t[i];
        if (t->shard != shard) continue;
        int64_t n = mk_numel(t);
        for (int64_t e0 = 0; ok && e0 < n; e0 += buf_n) {
            int64_t m = n - e0 < buf_n ? n - e0 : buf_n;
            mk_fill(buf, t, seed, e0, m);
            ok = fwrite(buf, 2, (size_t)m, f) == (size_t)m;
        }
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "mkrandom_dit: write error on %s: %s\n", path, strerror(errno));
    else
        printf("  %s  %.2f GB\n", fname, (double)(off + 8 + hlen) * 1e-9);
    return ok ? 0 : -1;
}

static int mk_write_index(const char *dir, const mk_list *l, uint64_t total) {
    char path[4096], fname[128];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors.index.json", dir);
    json_t *wm = json_object();
    for (int i = 0; i < l->n; i++) {
        mk_shard_name(fname, sizeof fname, l->t[i].shard);
        json_object_set_new(wm, l->t[i].name, json_string(fname));
    }
    json_t *j = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
    if (!j) return -1;
    int rc = mk_write_json(path, j);
    json_decref(j);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int n_layers = 30;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            n_layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    if (!dir || n_layers < 1 || n_layers > 1000) {
        fprintf(stderr, "usage: %s OUT_DIR [--layers N (default 30)] [--seed S]\n", argv[0]);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkrandom_dit: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    mk_list l = {0};
    if (mk_build_list(&l, n_layers)) {
        fprintf(stderr, "mkrandom_dit: out of memory\n");
        return 1;
    }
    /* shard by cumulative size, in module order, into MK_SHARDS nearly equal parts */
    uint64_t total = 0, acc = 0;
    for (int i = 0; i < l.n; i++) total += (uint64_t)mk_numel(&l.t[i]) * 2;
    uint64_t target = (total + MK_SHARDS - 1) / MK_SHARDS;
    int shard = 0;
    for (int i = 0; i < l.n; i++) {
        uint64_t nb = (uint64_t)mk_numel(&l.t[i]) * 2;
        if (acc > 0 && acc + nb > target && shard < MK_SHARDS - 1) shard++, acc = 0;
        l.t[i].shard = shard;
        acc += nb;
    }
    printf("mkrandom_dit: %d tensors, %.2f GB BF16 (%d layers, seed %llu) -> %s\n", l.n, (double)total * 1e-9,
           n_layers, (unsigned long long)seed, dir);
    int64_t buf_n = 32 * MK_CHUNK; /* 64 MiB */
    uint16_t *buf = malloc((size_t)buf_n * 2);
    int rc = buf ? 0 : -1;
    if (!rc) rc = mk_write_config(dir, n_layers);
    for (int s = 0; !rc && s < MK_SHARDS; s++) rc = mk_write_shard(dir, &l, s, seed, buf, buf_n);
    if (!rc) rc = mk_write_index(dir, &l, total);
    free(buf);
    free(l.t);
    if (rc) {
        fprintf(stderr, "mkrandom_dit: failed\n");
        return 1;
    }
    printf("done\n");
    return 0;
}
