/* mkrandom_qwen3.c - write a random-weight, full-size Qwen3-4B text_encoder folder (BF16).
 *
 * usage: mkrandom_qwen3 OUT_DIR [--layers N]
 *
 * Benchmark helper only (the real weights are not available here): the folder has the
 * diffusers text_encoder layout - config.json, model-0000K-of-0000M.safetensors shards of
 * about 4 GB and model.safetensors.index.json - with the official names (model. prefix)
 * and shapes of docs/MODEL.md §3.5 (hidden 2560, 32/8 heads, head_dim 128, intermediate 9728,
 * vocab 151936; 36 layers unless --layers). Values keep activations finite: matrices
 * N(0, 1/fan_in), norm gains 1 + 0.1 N(0,1), embeddings N(0,1). N(0,1) is approximated by
 * a sum of four 16-bit uniforms from xorshift64* (Irwin-Hall), seeded per tensor name.
 * Data is generated and written in chunks, never holding a whole tensor. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "../src/common/dtype.h"

enum { HIDDEN = 2560, N_HEADS = 32, N_KV = 8, HEAD_DIM = 128, INTER = 9728, VOCAB = 151936 };
#define SHARD_BYTES 4000000000ull
#define CHUNK 1048576

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    float std, mean; /* value = mean + std * N(0,1) */
    uint64_t nbytes;
    int shard;
    uint64_t offset; /* within the shard's data area */
} tensor_plan;

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t name_seed(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ? h : 1;
}

static int plan_add(tensor_plan *p, int *n, const char *name, int ndim, int64_t d0, int64_t d1, float mean,
                    float std) {
    tensor_plan *t = &p[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->mean = mean;
    t->std = std;
    t->nbytes = (uint64_t)d0 * (ndim == 2 ? (uint64_t)d1 : 1) * 2;
    return 0;
}

static int write_tensor(FILE *f, const tensor_plan *t, uint16_t *buf) {
    uint64_t seed = name_seed(t->name), left = t->nbytes / 2;
    const float k = 1.7320508f / 65536.0f; /* sum of 4 U(0,1) has var 1/3; rescale to 1 */
    while (left > 0) {
        size_t m = left < CHUNK ? (size_t)left : CHUNK;
        for (size_t i = 0; i < m; i++) {
            uint64_t r = rng_next(&seed);
            float u = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) +
                      (float)(r >> 48);
            float z = (u - 2.0f * 65535.0f) * k;
            buf[i] = zi_f32_to_bf16(t->mean + t->std * z);
        }
        if (fwrite(buf, 2, m, f) != m) return -1;
        left -= m;
    }
    return 0;
}

static int write_json(const char *path, json_t *j) {
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (rc != 0) fprintf(stderr, "mkrandom_qwen3: cannot write %s\n", path);
    return rc;
}

int main(int argc, char **argv) {
    const char *out = NULL;
    int n_layers = 36;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            n_layers = atoi(argv[++i]);
        else if (argv[i][0] == '-' || out) {
            fprintf(stderr, "usage: mkrandom_qwen3 OUT_DIR [--layers N]\n");
            return 2;
        } else
            out = argv[i];
    }
    if (!out || n_layers < 2 || n_layers > 1000) {
        fprintf(stderr, "usage: mkrandom_qwen3 OUT_DIR [--layers N]   (N >= 2)\n");
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkrandom_qwen3: cannot create %s\n", out);
        return 1;
    }

    /* tensor list, in the order of the official index (embedding, layers, norm) */
    int cap = 2 + 11 * n_layers, n = 0;
    tensor_plan *p = calloc((size_t)cap, sizeof *p);
    if (!p) return 1;
    const int QD = N_HEADS * HEAD_DIM, KD = N_KV * HEAD_DIM;
    const float sh = 1.0f / sqrtf(HIDDEN), sq = 1.0f / sqrtf(QD), si = 1.0f / sqrtf(INTER);
    char nm[96];
    plan_add(p, &n, "model.embed_tokens.weight", 2, VOCAB, HIDDEN, 0.0f, 1.0f);
    for (int l = 0; l < n_layers; l++) {
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        plan_add(p, &n, LN("input_layernorm.weight"), 1, HIDDEN, 0, 1.0f, 0.1f);
        plan_add(p, &n, LN("self_attn.q_proj.weight"), 2, QD, HIDDEN, 0.0f, sh);
        plan_add(p, &n, LN("self_attn.k_proj.weight"), 2, KD, HIDDEN, 0.0f, sh);
        plan_add(p, &n, LN("self_attn.v_proj.weight"), 2, KD, HIDDEN, 0.0f, sh);
        plan_add(p, &n, LN("self_attn.o_proj.weight"), 2, HIDDEN, QD, 0.0f, sq);
        plan_add(p, &n, LN("self_attn.q_norm.weight"), 1, HEAD_DIM, 0, 1.0f, 0.1f);
        plan_add(p, &n, LN("self_attn.k_norm.weight"), 1, HEAD_DIM, 0, 1.0f, 0.1f);
        plan_add(p, &n, LN("post_attention_layernorm.weight"), 1, HIDDEN, 0, 1.0f, 0.1f);
        plan_add(p, &n, LN("mlp.gate_proj.weight"), 2, INTER, HIDDEN, 0.0f, sh);
        plan_add(p, &n, LN("mlp.up_proj.weight"), 2, INTER, HIDDEN, 0.0f, sh);
        plan_add(p, &n, LN("mlp.down_proj.weight"), 2, HIDDEN, INTER, 0.0f, si);
#undef LN
    }
    plan_add(p, &n, "model.norm.weight", 1, HIDDEN, 0, 1.0f, 0.1f);

    /* assign shards: start a new one when the current would pass SHARD_BYTES */
    int n_shards = 1;
    uint64_t fill = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (fill > 0 && fill + p[i].nbytes > SHARD_BYTES) {
            n_shards++;
            fill = 0;
        }
        p[i].shard = n_shards - 1;
        p[i].offset = fill;
        fill += p[i].nbytes;
        total += p[i].nbytes;
    }

    uint16_t *buf = malloc(sizeof(uint16_t) * CHUNK);
    json_t *wm = json_object();
    char path[4096], shard_name[64];
    int rc = 0;
    for (int s = 0; s < n_shards && rc == 0; s++) {
        snprintf(shard_name, sizeof shard_name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", out, shard_name);
        json_t *hdr = json_object();
        json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
        for (int i = 0; i < n; i++) {
            if (p[i].shard != s) continue;
            json_t *shape = p[i].ndim == 2 ? json_pack("[I,I]", (json_int_t)p[i].shape[0], (json_int_t)p[i].shape[1])
                                           : json_pack("[I]", (json_int_t)p[i].shape[0]);
            json_object_set_new(hdr, p[i].name,
                                json_pack("{s:s,s:o,s:[I,I]}", "dtype", "BF16", "shape", shape, "data_offsets",
                                          (json_int_t)p[i].offset, (json_int_t)(p[i].offset + p[i].nbytes)));
            json_object_set_new(wm, p[i].name, json_string(shard_name));
        }
        char *txt = json_dumps(hdr, JSON_COMPACT);
        json_decref(hdr);
        size_t len = strlen(txt), padded = (len + 7) & ~(size_t)7;
        FILE *f = fopen(path, "wb");
        if (!f) {
            fprintf(stderr, "mkrandom_qwen3: cannot write %s\n", path);
            free(txt);
            rc = 1;
            break;
        }
        uint64_t l64 = padded;
        fwrite(&l64, 8, 1, f);
        fwrite(txt, 1, len, f);
        for (size_t i = len; i < padded; i++) fputc(' ', f);
        free(txt);
        for (int i = 0; i < n && rc == 0; i++)
            if (p[i].shard == s && write_tensor(f, &p[i], buf) != 0) rc = 1;
        if (fclose(f) != 0 || rc) {
            fprintf(stderr, "mkrandom_qwen3: write error on %s\n", path);
            rc = 1;
        }
        fprintf(stderr, "wrote %s\n", path);
    }
    free(buf);
    free(p);
    if (rc) {
        json_decref(wm);
        return 1;
    }

    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    if (write_json(path, json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm)))
        return 1;
    snprintf(path, sizeof path, "%s/config.json", out);
    json_t *cfg = json_pack("{s:[s],s:b,s:f,s:i,s:i,s:i,s:s,s:i,s:f,s:i,s:i,s:s,s:i,s:i,s:i,s:f,s:n,s:i,s:n,s:b,"
                            "s:s,s:s,s:b,s:b,s:i}",
                            "architectures", "Qwen3ForCausalLM", "attention_bias", 0, "attention_dropout", 0.0,
                            "bos_token_id", 151643, "eos_token_id", 151645, "head_dim", HEAD_DIM, "hidden_act",
                            "silu", "hidden_size", HIDDEN, "initializer_range", 0.02, "intermediate_size", INTER,
                            "max_position_embeddings", 40960, "model_type", "qwen3", "num_attention_heads", N_HEADS,
                            "num_hidden_layers", n_layers, "num_key_value_heads", N_KV, "rms_norm_eps", 1e-6,
                            "rope_scaling", "rope_theta", 1000000, "sliding_window", "tie_word_embeddings", 1,
                            "torch_dtype", "bfloat16", "transformers_version", "4.51.0", "use_cache", 1,
                            "use_sliding_window", 0, "vocab_size", VOCAB);
    if (!cfg) {
        fprintf(stderr, "mkrandom_qwen3: config build failed\n");
        return 1;
    }
    if (write_json(path, cfg)) return 1;
    fprintf(stderr, "mkrandom_qwen3: %d tensors, %.2f GB in %d shard(s) under %s\n", n, (double)total / 1e9, n_shards,
            out);
    return 0;
}
