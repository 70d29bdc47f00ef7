/* unit_gguf.c - GGUF files: crafted bad files (each must fail with its own message naming the
 * file and the tensor or key, never crash), writer -> reader round trip bit for bit, and the
 * block quantizers against their own dequantizers. Bad files are assembled byte by byte here,
 * independently of gguf.c's writer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/common/quant.h"
#include "../../src/dit/dit.h"
#include "../../src/io/gguf.h"
#include "../../src/io/json.h"
#include "../../src/io/st_writer.h"
#include "../../src/io/store.h"
#include "../../src/pipeline/quantize.h"
#include "../../src/text/qwen3.h"
#include "../../src/text/tokenizer.h"
#include "unit.h"

static char gg_dir[256];

/* ---- a tiny byte builder */
typedef struct {
    uint8_t b[8192];
    size_t n;
} gbuf;

static void put(gbuf *g, uint64_t v, int k) {
    for (int i = 0; i < k; i++) g->b[g->n++] = (uint8_t)(v >> (8 * i));
}
static void put_str(gbuf *g, const char *s) {
    put(g, strlen(s), 8);
    memcpy(g->b + g->n, s, strlen(s));
    g->n += strlen(s);
}
static void put_hdr(gbuf *g, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    g->n = 0;
    memcpy(g->b, "GGUF", 4);
    g->n = 4;
    put(g, version, 4);
    put(g, n_tensors, 8);
    put(g, n_kv, 8);
}
/* tensor info with 1 or 2 dims (ne0 innermost) */
static void put_tensor(gbuf *g, const char *name, int nd, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off) {
    put_str(g, name);
    put(g, (uint64_t)nd, 4);
    put(g, ne0, 8);
    if (nd > 1) put(g, ne1, 8);
    put(g, type, 4);
    put(g, off, 8);
}
/* pad to 32 and append n data bytes */
static void put_data(gbuf *g, size_t n) {
    while (g->n % 32) g->b[g->n++] = 0;
    for (size_t i = 0; i < n; i++) g->b[g->n++] = (uint8_t)i;
}

static const char *gg_write(const gbuf *g, const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", gg_dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(g->b, 1, g->n, f);
    fclose(f);
    return path;
}

/* Open and expect failure whose message holds the file name and every `want` (NULL-terminated). */
static void expect_gguf_error(const gbuf *g, const char *name, const char *want1, const char *want2) {
    const char *path = gg_write(g, name);
    zi_st_file f;
    zi_err_clear();
    int rc = zi_st_open(&f, path);
    const char *e = zi_last_error();
    UNIT_CHECK(rc != 0, "gguf %s: opened, expected '%s'", name, want1);
    if (rc == 0) {
        zi_st_close(&f);
        return;
    }
    UNIT_CHECK(strstr(e, name) != NULL, "gguf %s: error does not name the file: %s", name, e);
    UNIT_CHECK(strstr(e, want1) != NULL, "gguf %s: error '%s' lacks '%s'", name, e, want1);
    if (want2) UNIT_CHECK(strstr(e, want2) != NULL, "gguf %s: error '%s' lacks '%s'", name, e, want2);
}

/* a valid base: 1 KV (general.architecture = "lumina2"), tensors a (F32 [2,32]) and b (Q8_0 [32]) */
static void gg_good(gbuf *g) {
    put_hdr(g, 3, 2, 1);
    put_str(g, "general.architecture");
    put(g, ZI_GGUF_STRING, 4);
    put_str(g, "lumina2");
    put_tensor(g, "a.weight", 2, 32, 2, 0, 0);
    put_tensor(g, "b.weight", 1, 32, 0, 8, 256);
    put_data(g, 256 + 34);
}

static void unit_gguf_bad_files(void) {
    gbuf g;
    gg_good(&g);
    {
        const char *path = gg_write(&g, "good.gguf");
        zi_st_file f;
        int rc = zi_st_open(&f, path);
        UNIT_CHECK(rc == 0, "gguf: good file: %s", zi_last_error());
        if (rc == 0) {
            const zi_tensor *a = zi_st_find(&f, "a.weight"), *b = zi_st_find(&f, "b.weight");
            UNIT_CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 32 && a->dtype == ZI_F32,
                       "gguf: a.weight shape must be reversed ne [2, 32]");
            UNIT_CHECK(b && b->ndim == 1 && b->dtype == ZI_Q8_0 && b->nbytes == 34, "gguf: b.weight Q8_0 34 bytes");
            UNIT_CHECK(a && ((const uint8_t *)a->data)[5] == 5, "gguf: a.weight data at the data area start");
            const char *arch = zi_gguf_get_str(&f, "general.architecture");
            UNIT_CHECK(arch && !strcmp(arch, "lumina2"), "gguf: general.architecture");
            zi_st_close(&f);
        }
    }
    /* every truncation of the good file fails cleanly */
    int trunc_fail = 0;
    size_t full = g.n;
    for (size_t n = 8; n < full; n++) {
        g.n = n;
        const char *path = gg_write(&g, "trunc.gguf");
        zi_st_file f;
        zi_err_clear();
        if (zi_st_open(&f, path) == 0)
            zi_st_close(&f);
        else
            trunc_fail += strstr(zi_last_error(), "trunc.gguf") != NULL;
    }
    UNIT_CHECK(trunc_fail == (int)(full - 8), "gguf: %d of %zu truncations refused with the file named", trunc_fail,
               full - 8);

    put_hdr(&g, 1, 0, 0);
    expect_gguf_error(&g, "v1.gguf", "version 1", NULL);
    put_hdr(&g, 7, 0, 0);
    expect_gguf_error(&g, "v7.gguf", "unknown GGUF version 7", NULL);
    put_hdr(&g, 0x03000000u, 0, 0);
    expect_gguf_error(&g, "be.gguf", "big-endian", NULL);
    put_hdr(&g, 3, 0, 1ull << 40);
    expect_gguf_error(&g, "nkv.gguf", "KV count", NULL);
    put_hdr(&g, 3, 1ull << 40, 0);
    expect_gguf_error(&g, "ntensors.gguf", "tensor count", NULL);

    put_hdr(&g, 3, 0, 1); /* invalid value type */
    put_str(&g, "k.bad");
    put(&g, 13, 4);
    put(&g, 0, 8);
    expect_gguf_error(&g, "kvtype.gguf", "k.bad", "invalid value type 13");

    put_hdr(&g, 3, 0, 1); /* string length beyond the file */
    put_str(&g, "k.str");
    put(&g, ZI_GGUF_STRING, 4);
    put(&g, 1ull << 50, 8);
    expect_gguf_error(&g, "strlen.gguf", "k.str", "truncated");

    put_hdr(&g, 3, 0, 1); /* array element count beyond the file */
    put_str(&g, "k.arr");
    put(&g, ZI_GGUF_ARRAY, 4);
    put(&g, ZI_GGUF_U32, 4);
    put(&g, 1ull << 60, 8);
    expect_gguf_error(&g, "arrlen.gguf", "k.arr", "truncated");

    put_hdr(&g, 3, 0, 1); /* array of arrays nested 9 deep */
    put_str(&g, "k.nest");
    put(&g, ZI_GGUF_ARRAY, 4);
    for (int d = 0; d < 9; d++) put(&g, ZI_GGUF_ARRAY, 4), put(&g, 1, 8);
    put(&g, ZI_GGUF_U8, 4);
    put(&g, 1, 8);
    put(&g, 0, 1);
    expect_gguf_error(&g, "nest.gguf", "k.nest", "nested too deep");

    put_hdr(&g, 3, 0, 1); /* nested arrays of strings, 2 deep: fine */
    put_str(&g, "k.nest2");
    put(&g, ZI_GGUF_ARRAY, 4);
    put(&g, ZI_GGUF_ARRAY, 4);
    put(&g, 2, 8);
    for (int i = 0; i < 2; i++) put(&g, ZI_GGUF_STRING, 4), put(&g, 1, 8), put_str(&g, "x");
    {
        zi_st_file f;
        int rc = zi_st_open(&f, gg_write(&g, "nest2.gguf"));
        UNIT_CHECK(rc == 0, "gguf: nested string arrays: %s", zi_last_error());
        if (rc == 0) zi_st_close(&f);
    }

    put_hdr(&g, 3, 0, 2); /* duplicate key */
    for (int i = 0; i < 2; i++) put_str(&g, "k.dup"), put(&g, ZI_GGUF_U32, 4), put(&g, 1, 4);
    expect_gguf_error(&g, "dupkey.gguf", "duplicate key 'k.dup'", NULL);

    put_hdr(&g, 3, 0, 1); /* alignment: wrong type, not a power of two */
    put_str(&g, "general.alignment");
    put(&g, ZI_GGUF_I32, 4);
    put(&g, 32, 4);
    expect_gguf_error(&g, "altype.gguf", "general.alignment", "uint32");
    put_hdr(&g, 3, 0, 1);
    put_str(&g, "general.alignment");
    put(&g, ZI_GGUF_U32, 4);
    put(&g, 24, 4);
    expect_gguf_error(&g, "al24.gguf", "general.alignment", "power of two");

    put_hdr(&g, 3, 1, 0); /* n_dims 0 and 5 */
    put_str(&g, "t.zero");
    put(&g, 0, 4);
    put_data(&g, 64);
    expect_gguf_error(&g, "ndim0.gguf", "t.zero", "0 dimensions");
    put_hdr(&g, 3, 1, 0);
    put_str(&g, "t.five");
    put(&g, 5, 4);
    put_data(&g, 64);
    expect_gguf_error(&g, "ndim5.gguf", "t.five", "5 dimensions");

    put_hdr(&g, 3, 1, 0); /* unsupported ggml types */
    put_tensor(&g, "t.q81", 1, 32, 0, 9, 0);
    put_data(&g, 64);
    expect_gguf_error(&g, "q81.gguf", "t.q81", "Q8_1");
    put_hdr(&g, 3, 1, 0);
    put_tensor(&g, "t.t99", 1, 32, 0, 99, 0);
    put_data(&g, 64);
    expect_gguf_error(&g, "t99.gguf", "t.t99", "ggml type 99");

    put_hdr(&g, 3, 1, 0); /* innermost dim not a multiple of the block */
    put_tensor(&g, "t.blk", 2, 40, 2, 12, 0);
    put_data(&g, 512);
    expect_gguf_error(&g, "blk.gguf", "t.blk", "multiple of the Q4_K block size");

    put_hdr(&g, 3, 1, 0); /* huge dimension */
    put_tensor(&g, "t.huge", 2, 1ull << 40, 1ull << 40, 0, 0);
    put_data(&g, 64);
    expect_gguf_error(&g, "huge.gguf", "t.huge", "too large");

    put_hdr(&g, 3, 1, 0); /* misaligned offset */
    put_tensor(&g, "t.mis", 1, 8, 0, 0, 4);
    put_data(&g, 64);
    expect_gguf_error(&g, "misal.gguf", "t.mis", "alignment 32");

    put_hdr(&g, 3, 1, 0); /* data past the end */
    put_tensor(&g, "t.past", 1, 64, 0, 0, 0);
    put_data(&g, 100);
    expect_gguf_error(&g, "past.gguf", "t.past", "outside");

    put_hdr(&g, 3, 2, 0); /* overlap */
    put_tensor(&g, "t.one", 1, 16, 0, 0, 0);
    put_tensor(&g, "t.two", 1, 16, 0, 0, 32);
    put_data(&g, 128);
    expect_gguf_error(&g, "overlap.gguf", "overlapping", "t.one");

    /* ComfyUI-GGUF orig_shape: the torch shape of a reshaped tensor */
    for (int badn = 0; badn < 2; badn++) {
        put_hdr(&g, 3, 1, 1);
        put_str(&g, "comfy.gguf.orig_shape.t.re");
        put(&g, ZI_GGUF_ARRAY, 4);
        put(&g, ZI_GGUF_I32, 4);
        put(&g, 2, 8);
        put(&g, 4, 4);
        put(&g, badn ? 17 : 16, 4);
        put_tensor(&g, "t.re", 2, 32, 2, 0, 0);
        put_data(&g, 256);
        if (badn) {
            expect_gguf_error(&g, "origbad.gguf", "comfy.gguf.orig_shape.t.re", "t.re");
        } else {
            zi_st_file f;
            int rc = zi_st_open(&f, gg_write(&g, "orig.gguf"));
            const zi_tensor *t = rc ? NULL : zi_st_find(&f, "t.re");
            UNIT_CHECK(t && t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 16, "gguf orig_shape [4, 16]: %s",
                       rc ? zi_last_error() : "wrong shape");
            if (!rc) zi_st_close(&f);
        }
    }

    put_hdr(&g, 3, 2, 0); /* duplicate tensor name */
    put_tensor(&g, "t.same", 1, 8, 0, 0, 0);
    put_tensor(&g, "t.same", 1, 8, 0, 0, 32);
    put_data(&g, 64);
    expect_gguf_error(&g, "dupname.gguf", "duplicate tensor name 't.same'", NULL);
}

/* writer -> reader: KVs and tensors come back bit for bit */
static void unit_gguf_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.gguf", gg_dir);
    float a[2 * 64], src[4 * 256];
    for (int i = 0; i < 128; i++) a[i] = (float)i * 0.25f - 3;
    for (int i = 0; i < 1024; i++) src[i] = sinf((float)i * 0.37f) * (1 + (float)(i % 7));
    uint8_t q4k[4 * 144];
    zi_quantize(ZI_Q4_K, src, q4k, 1024);
    const char *toks[3] = {"a", "b\0c", "ü"};
    size_t lens[3] = {1, 3, 2};
    int32_t ids[3] = {-1, 0, 151643};
    zi_gguf_writer w;
    zi_gguf_writer_init(&w);
    int rc = zi_gguf_add_str(&w, "general.architecture", "qwen3") || zi_gguf_add_u32(&w, "k.u32", 4000000000u) ||
             zi_gguf_add_i32(&w, "k.i32", -7) || zi_gguf_add_f32(&w, "k.f32", 1e-6f) ||
             zi_gguf_add_bool(&w, "k.bool", 1) || zi_gguf_add_str_array(&w, "k.strs", toks, lens, 3) ||
             zi_gguf_add_i32_array(&w, "k.ids", ids, 3) ||
             zi_gguf_add_tensor(&w, "a", ZI_F32, 2, (int64_t[]){2, 64}) ||
             zi_gguf_add_tensor(&w, "q", ZI_Q4_K, 2, (int64_t[]){4, 256}) || zi_gguf_write_begin(&w, path) ||
             zi_gguf_write_data(&w, a, sizeof a) || zi_gguf_write_data(&w, q4k, sizeof q4k) || zi_gguf_write_end(&w);
    zi_gguf_writer_free(&w);
    UNIT_CHECK(rc == 0, "gguf writer: %s", zi_last_error());
    zi_st_file f;
    if (rc || zi_st_open(&f, path)) {
        UNIT_CHECK(0, "gguf round trip: %s", zi_last_error());
        return;
    }
    int64_t v = 0;
    const zi_gguf_kv *kf = zi_gguf_find(&f, "k.f32"), *ks = zi_gguf_find(&f, "k.strs"), *ki = zi_gguf_find(&f, "k.ids");
    UNIT_CHECK(zi_gguf_get_int(&f, "k.u32", &v) == 0 && v == 4000000000ll, "gguf rt: u32");
    UNIT_CHECK(zi_gguf_get_int(&f, "k.i32", &v) == 0 && v == -7, "gguf rt: i32");
    UNIT_CHECK(zi_gguf_get_int(&f, "k.bool", &v) == 0 && v == 1, "gguf rt: bool");
    UNIT_CHECK(kf && kf->type == ZI_GGUF_F32 && (float)kf->f == 1e-6f, "gguf rt: f32");
    UNIT_CHECK(ks && ks->arr_n == 3 && ks->arr_strs[1].len == 3 && !memcmp(ks->arr_strs[1].s, "b\0c", 3) &&
                   ks->arr_strs[2].len == 2,
               "gguf rt: string array");
    UNIT_CHECK(ki && ki->arr_n == 3 && zi_gguf_arr_int(ki, 0) == -1 && zi_gguf_arr_int(ki, 2) == 151643,
               "gguf rt: i32 array");
    const zi_tensor *ta = zi_st_find(&f, "a"), *tq = zi_st_find(&f, "q");
    UNIT_CHECK(ta && ta->shape[0] == 2 && ta->shape[1] == 64 && !memcmp(ta->data, a, sizeof a), "gguf rt: F32 bits");
    UNIT_CHECK(tq && tq->dtype == ZI_Q4_K && tq->shape[0] == 4 && tq->nbytes == sizeof q4k &&
                   !memcmp(tq->data, q4k, sizeof q4k),
               "gguf rt: Q4_K blocks");
    zi_st_close(&f);
}

/* Every quantizer (_ref and weighted) followed by its dequantizer stays within the format's
 * resolution of the input: relative L2 error below a per-type bound, and the weighted search
 * is never worse than the plain one by more than a little. */
static void unit_quant_error(void) {
    enum { N = 4 * 256 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    for (int i = 0; i < N; i++) x[i] = sinf((float)i * 1.7f) * 0.05f + (i % 97 == 0 ? 0.4f : 0.0f);
    float ones[256];
    for (int i = 0; i < 256; i++) ones[i] = 1;
    const struct {
        zi_dtype t;
        double bound;
    } types[] = {/* ~1.5x what this input measures (outliers cost the 32-wide types); a broken
                  * quantizer lands near 1. Bit-exactness vs ggml is the gguf_dequant goldens' job. */
                 {ZI_Q8_0, 0.015}, {ZI_Q6_K, 0.04}, {ZI_Q5_K, 0.06}, {ZI_Q5_1, 0.06}, {ZI_Q5_0, 0.1},
                 {ZI_Q4_K, 0.12},  {ZI_Q4_1, 0.12}, {ZI_Q4_0, 0.2},  {ZI_Q3_K, 0.35}, {ZI_Q2_K, 0.5}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        double err[2];
        for (int weighted = 0; weighted < 2; weighted++) {
            size_t nb = weighted ? zi_quantize_rows(types[k].t, x, q, 4, 256, ones) : zi_quantize(types[k].t, x, q, N);
            UNIT_CHECK(nb == zi_dtype_row_bytes(types[k].t, N), "quantize %s: %zu bytes", zi_dtype_name(types[k].t), nb);
            zi_convert_to_f32(y, q, types[k].t, N);
            double e = 0, s = 0;
            for (int i = 0; i < N; i++) e += (double)(y[i] - x[i]) * (y[i] - x[i]), s += (double)x[i] * x[i];
            err[weighted] = sqrt(e / s);
            UNIT_CHECK(err[weighted] < types[k].bound, "quantize %s (%s): relative L2 %.4f above %.3f",
                       zi_dtype_name(types[k].t), weighted ? "weighted" : "ref", err[weighted], types[k].bound);
        }
        UNIT_CHECK(err[1] <= err[0] * 1.25, "quantize %s: weighted %.4f much worse than ref %.4f",
                   zi_dtype_name(types[k].t), err[1], err[0]);
    }
    /* fp8: exhaustive checks of the two formats against their definitions */
    UNIT_CHECK(zi_f8e4m3_to_f32(0x7e) == 448.0f && zi_f8e4m3_to_f32(0xfe) == -448.0f, "e4m3 max");
    UNIT_CHECK(zi_f8e4m3_to_f32(0x01) == 0x1p-9f && zi_f8e4m3_to_f32(0x08) == 0x1p-6f, "e4m3 subnormal/min normal");
    UNIT_CHECK(isnan(zi_f8e4m3_to_f32(0x7f)) && isnan(zi_f8e4m3_to_f32(0xff)), "e4m3 NaN");
    UNIT_CHECK(zi_f8e4m3_to_f32(0x38) == 1.0f && zi_f8e4m3_to_f32(0x3c) == 1.5f, "e4m3 1.0 / 1.5");
    UNIT_CHECK(zi_f8e5m2_to_f32(0x7b) == 57344.0f && isinf(zi_f8e5m2_to_f32(0x7c)) && zi_f8e5m2_to_f32(0x01) == 0x1p-16f,
               "e5m2 max/inf/subnormal");
    UNIT_CHECK(zi_f8e5m2_to_f32(0x3c) == 1.0f && zi_f8e5m2_to_f32(0xc2) == -3.0f, "e5m2 1.0 / -3.0");
}

/* ---- whole components: `zimage quantize` output read back by our loaders ---------------- */

/* Text encoder written as a llama.cpp-layout GGUF (F32, so exact) from the tiny model: the
 * Qwen3 loader maps the names back, its features match the qwen3_cat golden (computed by the
 * reference implementation), and the vocabulary in the GGUF tokenizes every shared tokenizer
 * case to the same ids as HF tokenizers. */
static void unit_gguf_text_encoder(const char *fixtures) {
    char model[512], out[512], path[600];
    snprintf(model, sizeof model, "%s/tiny-zimage", fixtures);
    snprintf(out, sizeof out, "%s/te.gguf", gg_dir);
    zi_quantize_params qp = {model, out, ZI_F32, ZI_COMPONENT_TEXT_ENCODER, 0, 0, NULL, NULL, 0};
    if (zi_quantize_model(&qp)) {
        UNIT_CHECK(0, "quantize text encoder: %s", zi_last_error());
        return;
    }
    UNIT_CHECK(zi_quantize_model(&qp) != 0 && strstr(zi_last_error(), "--force"), "quantize must refuse to overwrite");
    /* quantize reads the config alone (zi_qwen3_load_config): same as a full load, folder and GGUF */
    for (int k = 0; k < 2; k++) {
        char te_dir[600];
        snprintf(te_dir, sizeof te_dir, "%s/text_encoder", model);
        const char *src = k ? out : te_dir;
        zi_qwen3 *q = NULL;
        zi_qwen3_config c;
        memset(&c, 0, sizeof c);
        int rc = zi_qwen3_load_config(&c, src) || zi_qwen3_load(&q, src);
        UNIT_CHECK(rc == 0 && !memcmp(&c, zi_qwen3_get_config(q), sizeof c), "zi_qwen3_load_config(%s) differs: %s", src,
                   rc ? zi_last_error() : "");
        if (q) zi_qwen3_free(q);
    }
    /* token types as llama.cpp's converter writes them (its loader warns and retypes otherwise):
     * special added tokens and control-looking ones ("<|fim_prefix|>", special false in
     * tokenizer.json) 3, other added tokens ("<tool_call>", "<think>") 4, vocabulary 1, the
     * embedding rows past the vocabulary 5. Pinned ids: Qwen3's tokenizer. */
    zi_st_file tg;
    if (zi_st_open(&tg, out) == 0) {
        const zi_gguf_kv *ty = zi_gguf_find(&tg, "tokenizer.ggml.token_type");
        static const struct { uint64_t id; int64_t type; } want_t[] = {
            {0, 1},      {151642, 1}, {151643, 3}, {151644, 3}, {151656, 3}, {151657, 4},
            {151659, 3}, {151664, 3}, {151665, 4}, {151667, 4}, {151668, 4}, {151669, 5}};
        int ok_t = ty && ty->arr_n == 151936;
        for (size_t k = 0; ok_t && k < sizeof want_t / sizeof want_t[0]; k++)
            if (zi_gguf_arr_int(ty, want_t[k].id) != want_t[k].type) {
                UNIT_CHECK(0, "token_type[%llu] = %lld, llama.cpp's converter writes %lld",
                           (unsigned long long)want_t[k].id, (long long)zi_gguf_arr_int(ty, want_t[k].id),
                           (long long)want_t[k].type);
                ok_t = 0;
            }
        UNIT_CHECK(ty && ty->arr_n == 151936, "tokenizer.ggml.token_type: one per embedding row");
        zi_st_close(&tg);
    } else
        UNIT_CHECK(0, "open the text-encoder GGUF: %s", zi_last_error());
    snprintf(path, sizeof path, "%s/no-such-encoder", gg_dir);
    UNIT_CHECK(zi_qwen3_load_config(&(zi_qwen3_config){0}, path) != 0 && strstr(zi_last_error(), "no-such-encoder"),
               "zi_qwen3_load_config on a missing path: '%s'", zi_last_error());
    zi_tokenizer *tok = NULL;
    if (zi_tokenizer_load(&tok, out)) {
        UNIT_CHECK(0, "tokenizer from GGUF: %s", zi_last_error());
        return;
    }
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", fixtures);
    json_t *doc = zi_json_load_file(path), *cases = json_object_get(doc, "cases"), *c;
    size_t i;
    int bad = 0, n_cases = 0;
    json_array_foreach(cases, i, c) {
        json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, "ids");
        int32_t *ids = NULL;
        int n = 0;
        n_cases++;
        if (zi_tokenizer_encode(tok, json_string_value(jt), json_string_length(jt), &ids, &n) ||
            n != (int)json_array_size(jids))
            bad++;
        else
            for (int k = 0; k < n; k++)
                if (ids[k] != json_integer_value(json_array_get(jids, (size_t)k))) {
                    bad++;
                    break;
                }
        free(ids);
    }
    json_decref(doc);
    UNIT_CHECK(n_cases >= 25 && bad == 0, "GGUF tokenizer: %d of %d tokenizer cases differ from HF ids", bad, n_cases);
    printf("  gguf tokenizer: %d tokenizer cases, %d differ\n", n_cases, bad);
    /* the encoder */
    zi_qwen3 *q;
    zi_st_file g;
    snprintf(path, sizeof path, "%s/golden/qwen3_cat.safetensors", fixtures);
    if (zi_qwen3_load(&q, out) || zi_st_open(&g, path)) {
        UNIT_CHECK(0, "GGUF text encoder: %s", zi_last_error());
        zi_tokenizer_free(tok);
        return;
    }
    const zi_tensor *want = zi_st_find(&g, "f32/cap_feats"), *ids_t = zi_st_find(&g, "input_ids"),
                    *mask = zi_st_find(&g, "attention_mask");
    int L = 0;
    for (int64_t k = 0; mask && k < mask->numel; k++) L += ((const uint8_t *)mask->data)[k] != 0;
    float *feats = malloc(sizeof(float) * (size_t)(L > 0 ? L : 1) * 8);
    int rc = want && ids_t && L > 0 ? zi_qwen3_encode(q, ids_t->data, L, feats) : -1;
    double maxerr = 0;
    for (int64_t k = 0; rc == 0 && k < want->numel; k++) {
        double e = fabs((double)feats[k] - ((const float *)want->data)[k]);
        if (e > maxerr) maxerr = e;
        if (e > 1e-4 + 1e-4 * fabs(((const float *)want->data)[k])) rc = 1;
    }
    UNIT_CHECK(rc == 0 && want && want->numel == (int64_t)L * 8, "GGUF text encoder vs qwen3_cat golden: max err %g", maxerr);
    printf("  gguf text encoder (llama.cpp names) vs qwen3_cat golden: max_abs_err %.3g\n", maxerr);
    free(feats);
    zi_st_close(&g);
    zi_qwen3_free(q);
    zi_tokenizer_free(tok);
}

/* DiT quantized by us: every matrix reads back with exactly the blocks our quantizer makes from
 * the source (reader bit for bit), names/types follow ComfyUI-GGUF, the loader accepts it. */
static void unit_gguf_dit_roundtrip(const char *fixtures) {
    char model[512], out[512], src_dir[600];
    snprintf(model, sizeof model, "%s/tiny-zimage", fixtures);
    snprintf(src_dir, sizeof src_dir, "%s/tiny-zimage/transformer", fixtures);
    snprintf(out, sizeof out, "%s/dit-q4k.gguf", gg_dir);
    zi_quantize_params qp = {model, out, ZI_Q4_0, ZI_COMPONENT_DIT, 0, 0, NULL, NULL, 0};
    zi_st_file g;
    zi_store src;
    if (zi_quantize_model(&qp) || zi_st_open(&g, out) || zi_store_open(&src, src_dir)) {
        UNIT_CHECK(0, "quantize DiT: %s", zi_last_error());
        return;
    }
    const char *arch = zi_gguf_get_str(&g, "general.architecture");
    UNIT_CHECK(arch && !strcmp(arch, "lumina2"), "DiT GGUF general.architecture");
    const zi_tensor *qkv = zi_st_find(&g, "layers.1.attention.qkv.weight"), *w2 = zi_st_find(&g, "layers.1.feed_forward.w2.weight");
    const zi_tensor *nq = zi_st_find(&g, "layers.1.attention.q_norm.weight"), *xe = zi_st_find(&g, "x_embedder.weight");
    UNIT_CHECK(qkv && qkv->dtype == ZI_Q4_0 && qkv->shape[0] == 192 && w2 && w2->dtype == ZI_F32 && nq &&
                   nq->dtype == ZI_F32 && xe && xe->dtype == ZI_F32,
               "DiT GGUF layout (fused qkv Q4_0, w2 [64,170] F32, norms F32, x_embedder F32)");
    /* fused qkv = blocks of to_q, to_k, to_v quantized row by row */
    int same = qkv != NULL;
    const char *parts[3] = {"layers.1.attention.to_q.weight", "layers.1.attention.to_k.weight",
                            "layers.1.attention.to_v.weight"};
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1;
    for (int k = 0; same && k < 3; k++) {
        const zi_tensor *t = zi_store_find(&src, parts[k]);
        uint8_t blocks[64 * 36];
        size_t nb = t ? zi_quantize_rows(ZI_Q4_0, t->data, blocks, 64, 64, ones) : 0;
        same = nb == 64 * 2 * 18 && !memcmp((const uint8_t *)qkv->data + k * nb, blocks, nb);
    }
    UNIT_CHECK(same, "DiT GGUF qkv blocks differ from the quantizer's output for to_q/to_k/to_v");
    const zi_tensor *w2s = zi_store_find(&src, "layers.1.feed_forward.w2.weight");
    UNIT_CHECK(w2 && w2s && w2->nbytes == w2s->nbytes && !memcmp(w2->data, w2s->data, w2->nbytes),
               "DiT GGUF F32 tensor not bit-identical to its source");
    zi_dit *m;
    UNIT_CHECK(zi_dit_load(&m, out) == 0, "load our DiT GGUF: %s", zi_last_error());
    if (m) zi_dit_free(m);
    zi_store_close(&src);
    zi_st_close(&g);
}

/* ComfyUI scaled fp8: F8_E4M3 weight + scale_weight; values from the format definition. */
static void unit_fp8_scaled(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/fp8.safetensors", gg_dir);
    /* e4m3fn bytes: 0x38 = 1.0, 0x3c = 1.5, 0xb8 = -1.0, 0x01 = 2^-9 (min subnormal), 0x7e = 448 (max),
     * 0x00 = 0, 0x45 = 2^(8-7) * (1 + 5/8) = 3.25, 0x22 = 2^(4-7) * 1.25 = 0.15625 */
    static const uint8_t w[8] = {0x38, 0x3c, 0xb8, 0x01, 0x7e, 0x00, 0x45, 0x22};
    static const float want[8] = {0.5f, 0.75f, -0.5f, 0x1p-10f, 224.0f, 0.0f, 1.625f, 0.078125f};
    static const uint8_t w5[4] = {0x3c, 0xc2, 0x01, 0x7b}; /* e5m2: 1, -3, 2^-16, 57344 */
    float scale = 0.5f;
    zi_st_writer sw;
    zi_st_writer_init(&sw);
    zi_st_writer_add(&sw, "blk.weight", ZI_F8_E4M3, 2, (int64_t[]){2, 4}, w);
    zi_st_writer_add(&sw, "blk.scale_weight", ZI_F32, 0, (int64_t[]){0}, &scale);
    zi_st_writer_add(&sw, "e5.weight", ZI_F8_E5M2, 1, (int64_t[]){4}, w5);
    int rc = zi_st_writer_write(&sw, path);
    zi_st_writer_free(&sw);
    zi_store s;
    if (rc || zi_store_open(&s, path)) {
        UNIT_CHECK(0, "fp8 file: %s", zi_last_error());
        return;
    }
    const zi_tensor *t = zi_store_get2(&s, "blk.weight", 2, 4);
    float *v = t ? zi_tensor_to_f32(t) : NULL;
    UNIT_CHECK(t && t->scale == 0.5f && v && !memcmp(v, want, sizeof want), "scaled fp8 e4m3 values");
    free(v);
    float *e5 = zi_store_get_vec(&s, "e5.weight", 4);
    UNIT_CHECK(e5 && e5[0] == 1.0f && e5[1] == -3.0f && e5[2] == 0x1p-16f && e5[3] == 57344.0f, "fp8 e5m2 values");
    free(e5);
    zi_store_close(&s);
    /* quantize folds the scale into the weight and drops the scale tensor */
    char out[600];
    snprintf(out, sizeof out, "%s/fp8.gguf", gg_dir);
    zi_quantize_params qp = {path, out, ZI_F32, ZI_COMPONENT_DIT, 0, 0, NULL, NULL, 0};
    zi_st_file g;
    if (zi_quantize_model(&qp) || zi_st_open(&g, out)) {
        UNIT_CHECK(0, "quantize fp8 file: %s", zi_last_error());
        return;
    }
    const zi_tensor *gw = zi_st_find(&g, "blk.weight");
    UNIT_CHECK(g.n_tensors == 2 && gw && gw->dtype == ZI_F32 && !memcmp(gw->data, want, sizeof want),
               "scaled fp8 -> GGUF F32: scale folded in, scale tensor dropped");
    zi_st_close(&g);
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long l = ftell(f);
        if (l > 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)l)) && fread(b, 1, (size_t)l, f) != (size_t)l) {
            free(b);
            b = NULL;
        }
        *n = l > 0 ? (size_t)l : 0;
    }
    if (f) fclose(f);
    return b;
}

/* `zimage quantize` on several threads writes the same bytes as on one, and those are the blocks
 * zi_quantize_rows makes from the whole matrix in one call (not from the threaded path). A
 * non-finite value is reported at its row whichever thread meets it. */
static void unit_quantize_threads(void) {
    enum { R = 301, C = 512 };
    char src[512], out1[512], out3[512];
    snprintf(src, sizeof src, "%s/mt.safetensors", gg_dir);
    float *w = malloc(sizeof(float) * R * C), *b = malloc(sizeof(float) * C), ones[C];
    uint16_t *wb = malloc(sizeof(uint16_t) * R * C);
    uint8_t *ref = malloc(sizeof(float) * R * C);
    if (!w || !b || !wb || !ref) {
        UNIT_CHECK(0, "out of memory");
        goto done;
    }
    uint64_t s = 7;
    for (int i = 0; i < R * C; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        w[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * (i % 97 == 0 ? 9.0f : 1.0f); /* some outliers */
        wb[i] = zi_f32_to_bf16(w[i]);
    }
    for (int i = 0; i < C; i++) b[i] = (float)i, ones[i] = 1.0f;
    static const struct { zi_dtype t; int fast; } cases[] = {
        {ZI_Q8_0, 0}, {ZI_Q4_K, 0}, {ZI_Q6_K, 0}, {ZI_Q2_K, 1}, {ZI_Q5_1, 0}, {ZI_F16, 0}};
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) {
        zi_dtype t = cases[k].t;
        zi_st_writer sw;
        zi_st_writer_init(&sw);
        zi_st_writer_add(&sw, "layers.0.feed_forward.w1.weight", ZI_BF16, 2, (int64_t[]){R, C}, wb);
        zi_st_writer_add(&sw, "layers.0.feed_forward.w1.bias", ZI_F32, 1, (int64_t[]){C}, b);
        int rc = zi_st_writer_write(&sw, src);
        zi_st_writer_free(&sw);
        snprintf(out1, sizeof out1, "%s/mt1-%d.gguf", gg_dir, k);
        snprintf(out3, sizeof out3, "%s/mt3-%d.gguf", gg_dir, k);
        zi_quantize_params p1 = {src, out1, t, ZI_COMPONENT_DIT, 1, cases[k].fast, NULL, NULL, 1};
        zi_quantize_params p3 = p1;
        p3.output = out3;
        p3.threads = 3;
        if (rc || zi_quantize_model(&p1) || zi_quantize_model(&p3)) {
            UNIT_CHECK(0, "quantize %s on 1 / 3 threads: %s", zi_dtype_name(t), zi_last_error());
            continue;
        }
        size_t n1 = 0, n3 = 0;
        uint8_t *f1 = read_whole(out1, &n1), *f3 = read_whole(out3, &n3);
        UNIT_CHECK(f1 && f3 && n1 == n3 && !memcmp(f1, f3, n1), "quantize %s: 3 threads wrote other bytes than 1 (%zu vs %zu)",
                   zi_dtype_name(t), n1, n3);
        free(f1);
        free(f3);
        zi_st_file g;
        if (zi_st_open(&g, out3)) {
            UNIT_CHECK(0, "read back %s: %s", out3, zi_last_error());
            continue;
        }
        const zi_tensor *q = zi_st_find(&g, "layers.0.feed_forward.w1.weight");
        size_t nb;
        for (int i = 0; i < R * C; i++) w[i] = zi_bf16_to_f32(wb[i]);
        if (t == ZI_F16) {
            uint16_t *h = (uint16_t *)ref;
            for (int i = 0; i < R * C; i++) h[i] = zi_f32_to_f16(w[i]);
            nb = sizeof(uint16_t) * R * C;
        } else {
            nb = zi_quantize_rows(t, w, ref, R, C, cases[k].fast ? NULL : ones);
        }
        UNIT_CHECK(q && q->dtype == t && q->nbytes == nb && !memcmp(q->data, ref, nb),
                   "quantize %s: threaded file differs from zi_quantize_rows on the whole matrix", zi_dtype_name(t));
        zi_st_close(&g);
    }
    /* NaN in row 250 (and inf in row 251): the error names row 250 */
    wb[250 * C + 17] = 0x7fc0;
    wb[251 * C + 3] = 0x7f80;
    zi_st_writer sw;
    zi_st_writer_init(&sw);
    zi_st_writer_add(&sw, "layers.0.feed_forward.w1.weight", ZI_BF16, 2, (int64_t[]){R, C}, wb);
    int rc = zi_st_writer_write(&sw, src);
    zi_st_writer_free(&sw);
    zi_quantize_params pn = {src, out3, ZI_Q4_K, ZI_COMPONENT_DIT, 1, 0, NULL, NULL, 3};
    UNIT_CHECK(rc == 0 && zi_quantize_model(&pn) != 0 && strstr(zi_last_error(), "non-finite value at row 250"),
               "quantize NaN: want an error at row 250, got '%s'", zi_last_error());
done:
    free(w);
    free(b);
    free(wb);
    free(ref);
}

void unit_gguf(const char *fixtures) {
    snprintf(gg_dir, sizeof gg_dir, "/tmp/zimage-gguf-XXXXXX");
    if (!mkdtemp(gg_dir)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    unit_gguf_bad_files();
    unit_gguf_roundtrip();
    unit_quant_error();
    unit_gguf_text_encoder(fixtures);
    unit_gguf_dit_roundtrip(fixtures);
    unit_fp8_scaled();
    unit_quantize_threads();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", gg_dir);
    if (system(cmd) != 0) UNIT_CHECK(0, "cleanup failed");
}

