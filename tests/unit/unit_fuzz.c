/* unit_fuzz.c - deterministic mutation fuzzing of every input parser: safetensors headers,
 * GGUF files, PNG files, a DiT config.json and tokenizer input. Each mutated input must either load
 * or fail with a message - never crash, read out of bounds or leak (run under ASan/UBSan
 * by `make test-san`). Seeds are fixed so failures reproduce. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "../../src/common/quant.h"
#include "../../src/io/gguf.h"
#include "../../src/io/png.h"
#include "../../src/io/safetensors.h"
#include "../../src/io/st_writer.h"
#include "../../src/text/tokenizer.h"
#include "unit.h"

static uint64_t fz_state = 0x9E3779B97F4A7C15ull;

static uint32_t fz_rand(void) {
    fz_state ^= fz_state << 13;
    fz_state ^= fz_state >> 7;
    fz_state ^= fz_state << 17;
    return (uint32_t)(fz_state >> 16);
}

static uint8_t *fz_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* The seed input of a fuzz loop: at least min_len bytes, or a test failure and NULL. */
static uint8_t *fz_seed(const char *path, size_t *n, size_t min_len) {
    uint8_t *src = fz_read(path, n);
    if (!src || *n < min_len) {
        UNIT_CHECK(0, "fuzz: cannot read %s", path);
        free(src);
        return NULL;
    }
    return src;
}

static void fz_write(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Mutate a copy of src: flip bytes in the first `hot` bytes, overwrite with "special"
 * characters, or truncate. Returns the new length. */
static size_t fz_mutate(uint8_t *dst, const uint8_t *src, size_t n, size_t hot) {
    memcpy(dst, src, n);
    size_t len = n;
    int kind = (int)(fz_rand() % 4);
    if (kind == 0) return fz_rand() % (n + 1); /* truncate */
    int k = 1 + (int)(fz_rand() % 4);
    static const char special[] = "{}[]\":,-0129eE.\\ \x00\xff";
    for (int i = 0; i < k; i++) {
        size_t at = fz_rand() % (hot < n ? hot : n);
        if (kind == 1)
            dst[at] ^= (uint8_t)(1u << (fz_rand() % 8));
        else if (kind == 2)
            dst[at] = (uint8_t)special[fz_rand() % (sizeof special - 1)];
        else
            dst[at] = (uint8_t)fz_rand();
    }
    return len;
}

static void fuzz_safetensors(const char *dir) {
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    static float a[6] = {1, 2, 3, 4, 5, 6};
    static uint16_t b[4] = {1, 2, 3, 4};
    static int32_t c[3] = {7, 8, 9};
    int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[1] = {3};
    zi_st_writer w;
    zi_st_writer_init(&w);
    zi_st_writer_add(&w, "a.weight", ZI_F32, 2, sa, a);
    zi_st_writer_add(&w, "b.bias", ZI_BF16, 1, sb, b);
    zi_st_writer_add(&w, "c.ids", ZI_I32, 1, sc, c);
    int rc = zi_st_writer_write(&w, good);
    zi_st_writer_free(&w);
    UNIT_CHECK(rc == 0, "fuzz: write seed file: %s", zi_last_error());
    size_t n = 0;
    uint8_t *src = fz_seed(good, &n, 64);
    if (!src) return;
    uint8_t *m = malloc(n);
    int opened = 0, refused = 0;
    for (int it = 0; it < 1500; it++) {
        size_t len = fz_mutate(m, src, n, n - 48); /* header region mostly */
        fz_write(bad, m, len);
        zi_st_file f;
        if (zi_st_open(&f, bad) == 0) {
            opened++;
            volatile uint64_t sum = 0; /* touch every byte a view claims (ASan checks bounds) */
            for (int t = 0; t < f.n_tensors; t++)
                for (size_t i = 0; i < f.tensors[t].nbytes; i++) sum += ((const uint8_t *)f.tensors[t].data)[i];
            zi_st_close(&f);
        } else {
            refused++;
            if (!zi_last_error()[0]) UNIT_CHECK(0, "fuzz: safetensors refused without a message");
        }
    }
    UNIT_CHECK(refused > 500, "fuzz: only %d of 1500 mutated safetensors refused", refused);
    printf("  fuzz safetensors: 1500 mutations, %d opened, %d refused with a message\n", opened, refused);
    free(src);
    free(m);
}

/* GGUF: header, KVs (string, arrays of strings and numbers) and tensor infos mutated; an opened
 * file's tensors are read in full and dequantized (ASan checks every claimed byte). */
static void fuzz_gguf(const char *dir) {
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.gguf", dir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
    static float a[2 * 32];
    static uint8_t q8[2 * 34], q4k[144];
    for (int i = 0; i < 64; i++) a[i] = (float)i - 20;
    zi_quantize(ZI_Q8_0, a, q8, 64);
    zi_quantize(ZI_Q4_K, (float[256]){1, 2, 3}, q4k, 256);
    const char *toks[2] = {"hello", "world"};
    int32_t ids[3] = {1, 2, 3};
    zi_gguf_writer w;
    zi_gguf_writer_init(&w);
    int rc = zi_gguf_add_str(&w, "general.architecture", "lumina2") ||
             zi_gguf_add_str_array(&w, "tokenizer.ggml.tokens", toks, NULL, 2) ||
             zi_gguf_add_i32_array(&w, "tokenizer.ggml.token_type", ids, 3) ||
             zi_gguf_add_tensor(&w, "a.weight", ZI_F32, 2, (int64_t[]){2, 32}) ||
             zi_gguf_add_tensor(&w, "b.weight", ZI_Q8_0, 2, (int64_t[]){2, 32}) ||
             zi_gguf_add_tensor(&w, "c.weight", ZI_Q4_K, 1, (int64_t[]){256}) || zi_gguf_write_begin(&w, good) ||
             zi_gguf_write_data(&w, a, sizeof a) || zi_gguf_write_data(&w, q8, sizeof q8) ||
             zi_gguf_write_data(&w, q4k, sizeof q4k) || zi_gguf_write_end(&w);
    zi_gguf_writer_free(&w);
    UNIT_CHECK(rc == 0, "fuzz: write seed gguf: %s", zi_last_error());
    size_t n = 0;
    uint8_t *src = fz_seed(good, &n, 64);
    if (!src) return;
    uint8_t *m = malloc(n);
    int opened = 0, refused = 0;
    for (int it = 0; it < 1500; it++) {
        size_t len = fz_mutate(m, src, n, n - 300); /* header region mostly */
        fz_write(bad, m, len);
        zi_st_file f;
        if (zi_st_open(&f, bad) == 0) {
            opened++;
            volatile uint64_t sum = 0;
            for (int t = 0; t < f.n_tensors; t++) {
                for (size_t i = 0; i < f.tensors[t].nbytes; i++) sum += ((const uint8_t *)f.tensors[t].data)[i];
                float *v = zi_tensor_to_f32(&f.tensors[t]);
                free(v);
            }
            zi_st_close(&f);
        } else {
            refused++;
            if (!zi_last_error()[0]) UNIT_CHECK(0, "fuzz: gguf refused without a message");
        }
    }
    UNIT_CHECK(refused > 500, "fuzz: only %d of 1500 mutated GGUF files refused", refused);
    printf("  fuzz gguf: 1500 mutations, %d opened, %d refused with a message\n", opened, refused);
    free(src);
    free(m);
}

static void fuzz_png(const char *dir) {
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.png", dir);
    snprintf(bad, sizeof bad, "%s/bad.png", dir);
    uint8_t rgb[12 * 10 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    const char *kv[] = {"parameters", "fuzz", NULL};
    UNIT_CHECK(zi_png_write(good, rgb, 12, 10, kv) == 0, "fuzz: write png: %s", zi_last_error());
    size_t n = 0;
    uint8_t *src = fz_seed(good, &n, 64);
    if (!src) return;
    uint8_t *m = malloc(n);
    int opened = 0, refused = 0;
    for (int it = 0; it < 800; it++) {
        size_t len = fz_mutate(m, src, n, n);
        fz_write(bad, m, len);
        uint8_t *out = NULL;
        int w = 0, h = 0;
        if (zi_png_read(bad, &out, &w, &h) == 0) {
            opened++;
            volatile unsigned sum = 0;
            for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += out[i];
            free(out);
        } else {
            refused++;
        }
    }
    printf("  fuzz png: 800 mutations, %d read, %d refused\n", opened, refused);
    UNIT_CHECK(refused > 200, "fuzz: only %d of 800 mutated PNGs refused", refused);
    free(src);
    free(m);
}

static void fuzz_dit_config(const char *dir, const char *fixtures) {
    char cmd[2048], cfg[600], tdir[512];
    snprintf(tdir, sizeof tdir, "%s/dit", dir);
    char *abs = realpath(fixtures, NULL);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && ln -sf %s/tiny-zimage/transformer/*.safetensors* %s/", tdir,
             abs ? abs : fixtures, tdir);
    free(abs);
    if (system(cmd) != 0) {
        UNIT_CHECK(0, "fuzz: cannot set up %s", tdir);
        return;
    }
    char src_cfg[512];
    snprintf(src_cfg, sizeof src_cfg, "%s/tiny-zimage/transformer/config.json", fixtures);
    snprintf(cfg, sizeof cfg, "%s/config.json", tdir);
    size_t n = 0;
    uint8_t *src = fz_seed(src_cfg, &n, 1);
    if (!src) return;
    uint8_t *m = malloc(n + 1);
    int loaded = 0, refused = 0;
    for (int it = 0; it < 200; it++) {
        size_t len = fz_mutate(m, src, n, n);
        fz_write(cfg, m, len);
        zi_dit *d = NULL;
        if (zi_dit_load(&d, tdir) == 0) {
            loaded++;
            zi_dit_free(d);
        } else {
            refused++;
        }
    }
    printf("  fuzz DiT config.json: 200 mutations, %d loaded, %d refused\n", loaded, refused);
    UNIT_CHECK(refused > 40, "fuzz: only %d of 200 mutated configs refused", refused);
    free(src);
    free(m);
}

static void fuzz_tokenizer(const char *fixtures) {
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-zimage/tokenizer/tokenizer.json", fixtures);
    zi_tokenizer *tok;
    if (zi_tokenizer_load(&tok, path)) {
        UNIT_CHECK(0, "fuzz: tokenizer load: %s", zi_last_error());
        return;
    }
    static const char *pieces[] = {"a", " ", "\n", "<|im_start|>", "<|im_end", "汉", "\xf0\x9f\x8e\xa8", "'s", "123",
                                   "\xcc\x81", "e", "\t", "  ", "<think>", "\xe2\x80\x8d", "!"};
    int ok = 0, refused = 0;
    char text[256];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0;
        int k = (int)(fz_rand() % 24);
        for (int i = 0; i < k && len < sizeof text - 8; i++) {
            if (fz_rand() % 5 == 0) {
                text[len++] = (char)(fz_rand() & 0xff); /* raw byte: may break UTF-8 */
            } else {
                const char *p = pieces[fz_rand() % (sizeof pieces / sizeof pieces[0])];
                size_t pl = strlen(p);
                if (len + pl >= sizeof text) break;
                memcpy(text + len, p, pl);
                len += pl;
            }
        }
        int32_t *ids = NULL;
        int n = 0;
        if (zi_tokenizer_encode(tok, text, len, &ids, &n) == 0) {
            ok++;
            size_t dl = 0;
            char *back = zi_tokenizer_decode_len(tok, ids, n, &dl);
            free(back);
            free(ids);
        } else {
            refused++;
        }
    }
    printf("  fuzz tokenizer: 3000 random texts, %d encoded, %d refused (invalid UTF-8)\n", ok, refused);
    UNIT_CHECK(ok > 500 && refused > 100, "fuzz: tokenizer encoded %d, refused %d", ok, refused);
    zi_tokenizer_free(tok);
}

void unit_fuzz(const char *fixtures) {
    char dir[] = "/tmp/zimage-fuzz-XXXXXX";
    if (!mkdtemp(dir)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    fuzz_safetensors(dir);
    fuzz_gguf(dir);
    fuzz_png(dir);
    fuzz_dit_config(dir, fixtures);
    fuzz_tokenizer(fixtures);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) UNIT_CHECK(0, "cleanup failed");
}
