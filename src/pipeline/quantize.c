/* quantize.c - model component -> GGUF (see quantize.h). */
#include "quantize.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/error.h"
#include "../common/quant.h"
#include "../io/gguf.h"
#include "../io/json.h"
#include "../io/store.h"
#include "../text/qwen3.h"
#include "zimage.h"

int zi_quantize_type_parse(const char *s, zi_dtype *out) {
    static const zi_dtype ok[] = {ZI_Q8_0, ZI_Q6_K, ZI_Q5_K, ZI_Q4_K, ZI_Q4_0, ZI_Q4_1, ZI_Q5_0,
                                  ZI_Q5_1, ZI_Q3_K, ZI_Q2_K, ZI_F32,  ZI_F16,  ZI_BF16};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcasecmp(s, zi_dtype_name(ok[i]))) {
            *out = ok[i];
            return 0;
        }
    return -1;
}

/* ggml's llama_ftype of a file whose matrices are t (general.file_type) */
static uint32_t quant_file_type(zi_dtype t) {
    switch (t) {
    case ZI_F32: return 0;
    case ZI_F16: return 1;
    case ZI_Q4_0: return 2;
    case ZI_Q4_1: return 3;
    case ZI_Q8_0: return 7;
    case ZI_Q5_0: return 8;
    case ZI_Q5_1: return 9;
    case ZI_Q2_K: return 10;
    case ZI_Q3_K: return 12; /* Q3_K_M */
    case ZI_Q4_K: return 15; /* Q4_K_M */
    case ZI_Q5_K: return 17; /* Q5_K_M */
    case ZI_Q6_K: return 18;
    case ZI_BF16: return 32;
    default: return 0;
    }
}

typedef struct {
    char name[256];
    zi_dtype type;
    int ndim;
    int64_t shape[4];
    const zi_tensor *part[3]; /* concatenated along rows (fused qkv) */
    int n_parts;
} q_entry;

static int str_replace(char *s, size_t cap, const char *from, const char *to) {
    char *p = strstr(s, from);
    if (!p) return 0;
    char tail[512];
    snprintf(tail, sizeof tail, "%s", p + strlen(from));
    snprintf(p, cap - (size_t)(p - s), "%s%s", to, tail);
    return 1;
}

/* DiT tensor name -> ComfyUI name (diffusers names converted, prefixes dropped). */
static void dit_comfy_name(const char *in, char *out, size_t cap) {
    static const char *const prefixes[] = {"model.diffusion_model.", "diffusion_model."};
    for (int i = 0; i < 2; i++)
        if (!strncmp(in, prefixes[i], strlen(prefixes[i]))) in += strlen(prefixes[i]);
    snprintf(out, cap, "%s", in);
    str_replace(out, cap, ".attention.to_out.0.", ".attention.out.");
    str_replace(out, cap, ".attention.norm_q.", ".attention.q_norm.");
    str_replace(out, cap, ".attention.norm_k.", ".attention.k_norm.");
    str_replace(out, cap, "all_x_embedder.2-1.", "x_embedder.");
    str_replace(out, cap, "all_final_layer.2-1.", "final_layer.");
}

/* Which matrices get the target type: 2-D, rows of whole blocks, and (DiT) not one of the
 * small precision-sensitive embedders / final layer / pad tokens (ComfyUI-GGUF keeps those
 * high precision). Everything else is F32. */
static zi_dtype entry_type(const q_entry *e, zi_dtype want, int dit) {
    if (e->ndim != 2 || e->shape[0] < 2 || e->shape[1] % zi_dtype_block_elems(want)) return ZI_F32;
    static const char *const keep[] = {"t_embedder.", "cap_embedder.", "x_embedder.", "final_layer.", "pad_token"};
    for (int i = 0; dit && i < 5; i++)
        if (strstr(e->name, keep[i])) return ZI_F32;
    return want;
}

static int plan_add(q_entry **es, int *n, const q_entry *e) {
    q_entry *ne = realloc(*es, sizeof *ne * (size_t)(*n + 1));
    if (!ne) return zi_err("out of memory");
    *es = ne;
    (*es)[(*n)++] = *e;
    return 0;
}

/* Tensors of ComfyUI scaled-fp8 files that are not weights: per-layer scales (applied to their
 * weight when it is converted) and the "scaled_fp8" marker. */
static int is_fp8_aux(const char *name) {
    static const char *const suf[] = {".scale_weight", ".weight_scale", ".scale_input", ".input_scale"};
    size_t l = strlen(name);
    if (!strcmp(name, "scaled_fp8") || !strcmp(name, "model.diffusion_model.scaled_fp8")) return 1;
    for (int i = 0; i < 4; i++)
        if (l > strlen(suf[i]) && !strcmp(name + l - strlen(suf[i]), suf[i])) return 1;
    return 0;
}

/* Every tensor of the store, renamed; DiT to_q/to_k/to_v fused into qkv. */
static int plan_build(const zi_store *s, int dit, zi_dtype want, q_entry **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    for (int f = 0; f < s->n_files; f++)
        for (int i = 0; i < s->files[f].n_tensors; i++) {
            const zi_tensor *t = &s->files[f].tensors[i];
            q_entry e = {0};
            if (is_fp8_aux(t->name)) continue; /* folded into the weights (zi_tensor.scale) */
            if (t->ndim < 1 || t->ndim > 4) return zi_err("%s: tensor '%s' has %d dims", t->file, t->name, t->ndim);
            if (!zi_dtype_is_weight(t->dtype))
                return zi_err("%s: tensor '%s' has dtype %s", t->file, t->name, zi_dtype_name(t->dtype));
            e.ndim = t->ndim;
            memcpy(e.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
            e.part[0] = t;
            e.n_parts = 1;
            if (dit) {
                if (strstr(t->name, ".attention.to_k.") || strstr(t->name, ".attention.to_v.")) continue;
                dit_comfy_name(t->name, e.name, sizeof e.name);
                if (str_replace(e.name, sizeof e.name, ".attention.to_q.", ".attention.qkv.")) {
                    char nk[512], nv[512];
                    snprintf(nk, sizeof nk, "%s", t->name);
                    snprintf(nv, sizeof nv, "%s", t->name);
                    str_replace(nk, sizeof nk, ".to_q.", ".to_k.");
                    str_replace(nv, sizeof nv, ".to_q.", ".to_v.");
                    e.part[1] = zi_store_find(s, nk);
                    e.part[2] = zi_store_find(s, nv);
                    if (!e.part[1] || !e.part[2] || e.part[1]->ndim != 2 || e.part[2]->ndim != 2 ||
                        e.part[1]->shape[1] != t->shape[1] || e.part[2]->shape[1] != t->shape[1])
                        return zi_err("%s: '%s' has no matching to_k/to_v to fuse into qkv", t->file, t->name);
                    e.n_parts = 3;
                    e.shape[0] = t->shape[0] + e.part[1]->shape[0] + e.part[2]->shape[0];
                }
            } else if (zi_gguf_name_from_hf(t->name, e.name, sizeof e.name)) {
                snprintf(e.name, sizeof e.name, "%s", t->name); /* keep unknown names as they are */
            }
            e.type = entry_type(&e, want, dit);
            if (plan_add(out, n_out, &e)) return -1;
        }
    return 0;
}

/* Drop the source pages of [p, p + n) from this process's resident set once they are used
 * (file-backed mapping: they are re-read if needed), so quantizing a 12 GB model does not
 * look like a 12 GB process. */
static void drop_pages(const void *p, size_t n) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + pg - 1) & ~(pg - 1),
              b = ((uintptr_t)p + n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Convert + (quantize) rows [r0, r0 + nr) of t into q (row_out bytes each); f: nr * cols floats
 * of scratch. Rows are independent and each row's bytes depend only on its values, so splitting
 * them over threads gives the same bytes as one thread. Returns the first row holding a
 * non-finite value, or -1. */
static int64_t convert_rows(const zi_tensor *t, zi_dtype type, const float *ones, int64_t r0, int64_t nr,
                            float *f, uint8_t *q, size_t row_out, int threads) {
    int64_t cols = t->shape[t->ndim - 1], bad = INT64_MAX;
    size_t in_row = zi_dtype_row_bytes(t->dtype, cols);
    /* threads live in src/kernels/ elsewhere; kernels.h has no generic parallel loop, and this
     * loop is the whole cost of `zimage quantize` (rows x weighted block search). A reduction,
     * not a named critical section: that would export a libgomp lock symbol from the library. */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && nr > 1) reduction(min : bad)
    for (int64_t r = 0; r < nr; r++) {
        float *x = f + r * cols;
        uint8_t *y = q + (size_t)r * row_out;
        zi_convert_to_f32(x, (const uint8_t *)t->data + (size_t)(r0 + r) * in_row, t->dtype, (size_t)cols);
        int finite = 1;
        for (int64_t i = 0; i < cols; i++) {
            if (t->scale != 0) x[i] *= t->scale; /* ComfyUI scaled fp8 */
            if (!isfinite(x[i])) finite = 0;
        }
        if (!finite) {
            if (r0 + r < bad) bad = r0 + r;
            continue;
        }
        if (zi_dtype_is_block(type)) {
            zi_quantize_rows(type, x, y, 1, cols, ones);
        } else if (type == ZI_F16 || type == ZI_BF16) {
            uint16_t *h = (uint16_t *)y;
            for (int64_t i = 0; i < cols; i++) h[i] = type == ZI_F16 ? zi_f32_to_f16(x[i]) : zi_f32_to_bf16(x[i]);
        } else {
            memcpy(y, x, sizeof(float) * (size_t)cols);
        }
    }
    return bad == INT64_MAX ? -1 : bad;
}

/* Convert + (quantize) one source tensor's rows, in chunks, into the writer. */
static int write_part(zi_gguf_writer *w, const zi_tensor *t, zi_dtype type, const float *ones, uint64_t *done,
                      uint64_t total, const zi_quantize_params *p, const char *name, int threads) {
    int64_t cols = t->shape[t->ndim - 1], rows = cols ? t->numel / cols : 0;
    int64_t chunk = cols ? ((int64_t)threads << 20) / cols + 1 : 1; /* ~4 MB of floats per thread */
    if (chunk > rows) chunk = rows > 0 ? rows : 1;
    size_t row_out = zi_dtype_row_bytes(type, cols);
    float *f = zi_malloc(sizeof(float) * (size_t)(chunk * cols + 1));
    uint8_t *q = zi_malloc(row_out * (size_t)chunk + 16);
    if (!f || !q) {
        free(f);
        free(q);
        return -1;
    }
    size_t in_row = zi_dtype_row_bytes(t->dtype, cols);
    int rc = 0;
    for (int64_t r0 = 0; r0 < rows && rc == 0; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        int64_t bad = convert_rows(t, type, ones, r0, nr, f, q, row_out, threads);
        if (bad >= 0) {
            rc = zi_err("%s: tensor '%s' holds a non-finite value at row %lld", t->file, t->name, (long long)bad);
            break;
        }
        rc = zi_gguf_write_data(w, q, row_out * (size_t)nr);
        *done += (uint64_t)nr * in_row;
        drop_pages((const uint8_t *)t->data + (size_t)r0 * in_row, (size_t)nr * in_row);
        if (p->progress) p->progress(p->progress_user, *done, total, name);
    }
    free(f);
    free(q);
    return rc;
}

/* An added token that llama.cpp treats as a control token although tokenizer.json does not mark
 * it special: "<|...|>" (Qwen's <|fim_prefix|>, <|repo_name|>...), the same with U+FF5C
 * (fullwidth bar), "<unused...>" and a few fixed names (prefix and suffix may overlap, as in
 * Python). llama.cpp's converter types these 3 (control); typed 4, llama.cpp's loader warns
 * "control-looking token ... was not control-type" and overrides it. Our reader takes both. */
static int token_looks_control(const char *s) {
    static const char *const fixed[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    static const char *const wrap[][2] = {{"<|", "|>"}, {"<\xef\xbd\x9c", "\xef\xbd\x9c>"}, {"<unused", ">"}};
    size_t n = strlen(s);
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, fixed[i])) return 1;
    for (int i = 0; i < 3; i++) {
        size_t a = strlen(wrap[i][0]), b = strlen(wrap[i][1]);
        if (n >= a && n >= b && !strncmp(s, wrap[i][0], a) && !strcmp(s + n - b, wrap[i][1])) return 1;
    }
    return 0;
}

/* tokenizer.json -> tokenizer.ggml.* as llama.cpp's converter writes them: one token per id up
 * to the embedding size ([PADn] unused fillers), types 1 normal / 3 control (special added, or
 * control-looking: token_looks_control) / 4 user-defined (other added) / 5 unused, merges "a b". */
static int add_tokenizer_kvs(zi_gguf_writer *w, const char *tok_path, int vocab_rows) {
    json_t *j = zi_json_load_file(tok_path);
    if (!j) return -1;
    json_t *model = json_object_get(j, "model"), *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges"), *added = json_object_get(j, "added_tokens");
    int rc = -1;
    size_t n = (size_t)vocab_rows;
    char **toks = calloc(n, sizeof *toks);
    int32_t *types = calloc(n, sizeof *types);
    size_t nm = json_array_size(merges);
    char **ms = calloc(nm ? nm : 1, sizeof *ms);
    if (!json_is_object(vocab) || !json_is_array(merges) || !toks || !types || !ms) {
        zi_err("%s: model.vocab / model.merges missing (or out of memory)", tok_path);
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || (size_t)id >= n) {
            zi_err("%s: vocab id of \"%s\" outside the %zu embedding rows", tok_path, k, n);
            goto done;
        }
        toks[id] = strdup(k);
        types[id] = 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        const char *c = json_string_value(json_object_get(v, "content"));
        if (!c || id < 0 || (size_t)id >= n) {
            zi_err("%s: added_tokens[%zu] invalid or outside the embedding rows", tok_path, i);
            goto done;
        }
        free(toks[id]);
        toks[id] = strdup(c);
        types[id] = json_is_true(json_object_get(v, "special")) || token_looks_control(c) ? 3 : 4;
    }
    for (i = 0; i < n; i++)
        if (!toks[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%zu]", i);
            toks[i] = strdup(pad);
            types[i] = 5;
        }
    json_array_foreach(merges, i, v) {
        if (json_is_string(v))
            ms[i] = strdup(json_string_value(v));
        else if (json_is_array(v) && json_array_size(v) == 2) {
            const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
            if (a && b && (ms[i] = malloc(strlen(a) + strlen(b) + 2))) sprintf(ms[i], "%s %s", a, b);
        }
        if (!ms[i]) {
            zi_err("%s: merges[%zu] is not \"a b\" or [\"a\", \"b\"]", tok_path, i);
            goto done;
        }
    }
    rc = zi_gguf_add_str(w, "tokenizer.ggml.model", "gpt2") || zi_gguf_add_str(w, "tokenizer.ggml.pre", "qwen2") ||
                 zi_gguf_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n) ||
                 zi_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, n) ||
                 zi_gguf_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)ms, NULL, nm) ||
                 zi_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", 151645) ||
                 zi_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", 151643) ||
                 zi_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", 151643) ||
                 zi_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", 0)
             ? -1
             : 0;
done:
    for (i = 0; toks && i < n; i++) free(toks[i]);
    for (i = 0; ms && i < nm; i++) free(ms[i]);
    free(toks);
    free(types);
    free(ms);
    json_decref(j);
    return rc;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int zi_quantize_model(const zi_quantize_params *p) {
    int dit = p->component == ZI_COMPONENT_DIT;
    char comp[4096], tok[8192] = "";
    struct stat st;
    if (!p->force && stat(p->output, &st) == 0)
        return zi_err("%s exists (use --force to overwrite)", p->output);
    snprintf(comp, sizeof comp, "%s/%s", p->input, dit ? "transformer" : "text_encoder");
    if (!is_dir(comp)) snprintf(comp, sizeof comp, "%s", p->input);
    if (!dit) { /* the vocabulary: <root>/tokenizer/ or next to the text_encoder folder */
        snprintf(tok, sizeof tok, "%s/tokenizer/tokenizer.json", p->input);
        if (stat(tok, &st) != 0) snprintf(tok, sizeof tok, "%s/../tokenizer/tokenizer.json", comp);
        if (stat(tok, &st) != 0)
            return zi_err("%s: no tokenizer/tokenizer.json found for the text encoder's vocabulary (give the diffusers "
                          "folder)", p->input);
    }
    zi_store s;
    if (zi_store_open(&s, comp)) return -1;
    q_entry *es = NULL;
    int n = 0, rc = -1;
    float *ones = NULL;
    zi_gguf_writer w;
    zi_gguf_writer_init(&w);
    if (plan_build(&s, dit, p->type, &es, &n)) goto done;
    if (dit) {
        rc = zi_gguf_add_str(&w, "general.architecture", "lumina2");
    } else {
        zi_qwen3_config c; /* config only: loading the encoder would read (prefetch) all its weights */
        if (zi_qwen3_load_config(&c, comp)) goto done;
        rc = zi_gguf_add_str(&w, "general.architecture", "qwen3") || zi_gguf_add_str(&w, "general.name", "Qwen3") ||
             zi_gguf_add_u32(&w, "qwen3.block_count", (uint32_t)c.n_layers) ||
             zi_gguf_add_u32(&w, "qwen3.context_length", 40960) ||
             zi_gguf_add_u32(&w, "qwen3.embedding_length", (uint32_t)c.hidden) ||
             zi_gguf_add_u32(&w, "qwen3.feed_forward_length", (uint32_t)c.intermediate) ||
             zi_gguf_add_u32(&w, "qwen3.attention.head_count", (uint32_t)c.n_heads) ||
             zi_gguf_add_u32(&w, "qwen3.attention.head_count_kv", (uint32_t)c.n_kv_heads) ||
             zi_gguf_add_u32(&w, "qwen3.attention.key_length", (uint32_t)c.head_dim) ||
             zi_gguf_add_u32(&w, "qwen3.attention.value_length", (uint32_t)c.head_dim) ||
             zi_gguf_add_f32(&w, "qwen3.rope.freq_base", c.rope_theta) ||
             zi_gguf_add_f32(&w, "qwen3.attention.layer_norm_rms_epsilon", c.rms_eps) ||
             add_tokenizer_kvs(&w, tok, c.vocab);
    }
    rc = rc || zi_gguf_add_u32(&w, "general.quantization_version", 2) ||
         zi_gguf_add_u32(&w, "general.file_type", quant_file_type(p->type));
    uint64_t total = 0, done = 0;
    int64_t max_cols = 1;
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = zi_gguf_add_tensor(&w, es[i].name, es[i].type, es[i].ndim, es[i].shape);
        for (int k = 0; k < es[i].n_parts; k++) total += es[i].part[k]->nbytes;
        if (es[i].shape[es[i].ndim - 1] > max_cols) max_cols = es[i].shape[es[i].ndim - 1];
    }
    if (rc || !(ones = zi_malloc(sizeof(float) * (size_t)max_cols)) || zi_gguf_write_begin(&w, p->output)) {
        rc = -1;
        goto done;
    }
    for (int64_t i = 0; i < max_cols; i++) ones[i] = 1.0f;
#ifdef _OPENMP
    int threads = p->threads > 0 ? p->threads : omp_get_max_threads();
#else
    int threads = 1;
#endif
    for (int i = 0; rc == 0 && i < n; i++)
        for (int k = 0; rc == 0 && k < es[i].n_parts; k++)
            rc = write_part(&w, es[i].part[k], es[i].type, p->fast ? NULL : ones, &done, total, p, es[i].name,
                            threads);
    if (rc == 0) rc = zi_gguf_write_end(&w);
done:
    zi_gguf_writer_free(&w);
    free(ones);
    free(es);
    zi_store_close(&s);
    return rc ? -1 : 0;
}

int zimage_quantize(const char *input, const char *output, const char *type, const char *component, int flags,
                    void (*progress)(void *user, uint64_t done, uint64_t total, const char *tensor), void *user) {
    zi_quantize_params p = {input,    output, ZI_Q8_0, ZI_COMPONENT_DIT, (flags & ZIMAGE_QUANTIZE_FORCE) != 0,
                            (flags & ZIMAGE_QUANTIZE_FAST) != 0, progress, user, flags >> 8};
    if (!input || !output) return zi_err("quantize: input and output are required");
    if (!type || zi_quantize_type_parse(type, &p.type))
        return zi_err("quantize: unknown type '%s' (q8_0, q6_k, q5_k, q4_k, q4_0, q3_k, q2_k, q4_1, q5_0, q5_1, f16, "
                      "bf16, f32)", type ? type : "");
    if (!component || !strcmp(component, "dit") || !strcmp(component, "transformer"))
        p.component = ZI_COMPONENT_DIT;
    else if (!strcmp(component, "text-encoder") || !strcmp(component, "text_encoder"))
        p.component = ZI_COMPONENT_TEXT_ENCODER;
    else
        return zi_err("quantize: unknown component '%s' (dit or text-encoder)", component);
    return zi_quantize_model(&p);
}
