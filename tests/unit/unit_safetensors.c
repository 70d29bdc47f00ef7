/* unit_safetensors.c - crafted bad safetensors files, shard indexes and model folders:
 * each must fail with its own specific message, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "../../src/io/safetensors.h"
#include "../../src/io/store.h"
#include "unit.h"

static char tmpdir[256];

/* Write u64 header length (or `fake_len` if nonzero), the header text, then n_data zero bytes. */
static void st_write(const char *name, const char *header, uint64_t fake_len, size_t n_data) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    uint64_t len = fake_len ? fake_len : strlen(header);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < n_data; i++) fputc(0, f);
    fclose(f);
}

static void write_text(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Open `name` and expect failure with `want` in the message. */
static void expect_st_error(const char *name, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    zi_st_file f;
    zi_err_clear();
    int rc = zi_st_open(&f, path);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), want), "%s: expected error containing '%s', got rc=%d '%s'", name,
               want, rc, zi_last_error());
    if (rc == 0) zi_st_close(&f);
}

static void expect_store_error(const char *sub, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, sub);
    zi_store s;
    zi_err_clear();
    int rc = zi_store_open(&s, path);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), want), "%s: expected error containing '%s', got rc=%d '%s'", sub,
               want, rc, zi_last_error());
    if (rc == 0) zi_store_close(&s);
}

static void test_files(void) {
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    st_write("good.safetensors", good, 0, 16);
    {
        char path[512];
        snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
        zi_st_file f;
        int rc = zi_st_open(&f, path);
        UNIT_CHECK(rc == 0 && f.n_tensors == 1 && zi_st_find(&f, "a") && zi_st_find(&f, "a")->numel == 4,
                   "good file should open: %s", zi_last_error());
        if (rc == 0) zi_st_close(&f);
    }
    write_text("tiny.safetensors", "abc");
    expect_st_error("tiny.safetensors", "truncated safetensors file");
    st_write("beyond.safetensors", good, 4096, 16);
    expect_st_error("beyond.safetensors", "runs past end of file");
    st_write("huge.safetensors", good, (uint64_t)1 << 40, 16);
    expect_st_error("huge.safetensors", "is absurd");
    st_write("badjson.safetensors", "{\"a\":{\"dtype\":\"F32\",", 0, 16);
    expect_st_error("badjson.safetensors", "invalid JSON");
    st_write("notobj.safetensors", "[1,2,3]", 0, 0);
    expect_st_error("notobj.safetensors", "not a JSON object");
    st_write("dtype.safetensors", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 0, 16);
    expect_st_error("dtype.safetensors", "unsupported dtype 'Q7'");
    st_write("f64.safetensors", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0, 16);
    expect_st_error("f64.safetensors", "unsupported dtype 'F64'");
    st_write("range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 0, 8);
    expect_st_error("range.safetensors", "outside the data area");
    st_write("overlap.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
             0, 16);
    expect_st_error("overlap.safetensors", "overlapping data ranges");
    st_write("mismatch.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 0, 16);
    expect_st_error("mismatch.safetensors", "does not match shape [3, 2]");
    st_write("negshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4);
    expect_st_error("negshape.safetensors", "shape[0] is not a non-negative integer");
    st_write("offsets.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 0, 8);
    expect_st_error("offsets.safetensors", "invalid data_offsets");
    st_write("dup.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             0, 8);
    expect_st_error("dup.safetensors", "duplicate");
    st_write("misalign.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 0, 8);
    expect_st_error("misalign.safetensors", "not aligned");
    expect_st_error("does-not-exist.safetensors", "cannot open");
}

static void test_shards(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/sh1 %s/sh2 %s/sh3", tmpdir, tmpdir, tmpdir);
    if (system(cmd) != 0) return;
    const char *s1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* sh1: index names a shard that does not exist */
    st_write("sh1/m-1.safetensors", s1, 0, 8);
    write_text("sh1/m.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}");
    expect_store_error("sh1", "shard 'm-2.safetensors' (holding tensor 'b') is missing");
    /* sh2: index maps a tensor to a shard that lacks it */
    st_write("sh2/m-1.safetensors", s1, 0, 8);
    write_text("sh2/m.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"zz\":\"m-1.safetensors\"}}");
    expect_store_error("sh2", "maps tensor 'zz' to shard 'm-1.safetensors', which does not contain it");
    /* sh3: broken index json */
    write_text("sh3/m.safetensors.index.json", "{\"weight_map\": {");
    expect_store_error("sh3", "invalid JSON");
    expect_store_error("nothing-here", "no such file or folder");

    /* shape checks: found vs expected, missing tensor */
    char path[512];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
    zi_store s;
    if (zi_store_open(&s, path) == 0) {
        UNIT_CHECK(zi_store_get2(&s, "a", 3, 3) == NULL && strstr(zi_last_error(), "tensor 'a' has shape [2, 2], expected [3, 3]"),
                   "shape mismatch message: %s", zi_last_error());
        UNIT_CHECK(zi_store_get1(&s, "missing.weight", 5) == NULL &&
                       strstr(zi_last_error(), "missing tensor 'missing.weight' (expected shape [5])"),
                   "missing tensor message: %s", zi_last_error());
        zi_store_close(&s);
    }
}

/* A DiT folder whose shard lacks a tensor must name that tensor. */
static void test_dit_missing(const char *fixtures) {
    char cmd[2048], dir[512];
    snprintf(dir, sizeof dir, "%s/dit", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/tiny-zimage/transformer/config.json %s/", dir, fixtures, dir);
    if (system(cmd) != 0) return;
    /* single-file transformer with only one (wrongly shaped) tensor */
    st_write("dit/diffusion_pytorch_model.safetensors",
             "{\"t_embedder.mlp.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]},"
             "\"t_embedder.mlp.2.weight\":{\"dtype\":\"F32\",\"shape\":[64,4],\"data_offsets\":[64,1088]}}",
             0, 1088);
    zi_dit *m = NULL;
    int rc = zi_dit_load(&m, dir);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "t_embedder.mlp.0.weight' has shape [4, 4], expected [4, 256]"),
               "DiT misshapen tensor: %s", zi_last_error());
    if (rc == 0) zi_dit_free(m);
}

void unit_safetensors(const char *fixtures) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/zimage-unit-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    test_files();
    test_shards();
    test_dit_missing(fixtures);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) UNIT_CHECK(0, "cleanup failed");
}
