/* unit_png.c - PNG writer/reader: round trips, text metadata, color-type
 * conversions, and bad files (unwritable path, truncated, garbage, corrupt,
 * absurd size). Works in a fresh temporary directory that it removes. */
#include <dirent.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/io/png.h"
#include "unit.h"

static char tdir[64];

static const char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 256, "%.63s/%.180s", tdir, name);
    return p;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *file_slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long sz = file_size(path);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? (long)fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static void file_dump(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
}

static int count_tmp_files(void) {
    DIR *d = opendir(tdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return n;
}

static void cleanup_dir(void) {
    DIR *d = opendir(tdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        unlink(tpath(de->d_name));
    }
    if (d) closedir(d);
    rmdir(tdir);
}

/* Write a PNG of any color type straight with libpng (rows packed as libpng expects). */
static int raw_png_write(const char *path, int color, int depth, int interlace, int w, int h,
                         const unsigned char *data, size_t rowbytes, const png_color *pal, int n_pal,
                         const unsigned char *trns, int n_trns) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, n_pal);
    if (trns) png_set_tRNS(png, info, trns, n_trns, NULL);
    png_write_info(png, info);
    if (depth == 16) png_set_swap(png); /* our test data is little-endian u16 */
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 0;
}

/* Read text chunks back with libpng: returns number found, fills key/text/compression arrays. */
static int read_texts(const char *path, char keys[][80], char vals[][512], int comp[], int cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info); /* our writer puts text before IDAT */
    png_textp t = NULL;
    int n = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < n && i < cap; i++) {
        snprintf(keys[i], 80, "%s", t[i].key);
        snprintf(vals[i], 512, "%s", t[i].text);
        comp[i] = t[i].compression;
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return n;
}

static void test_round_trip(void) {
    const int w = 37, h = 23;
    uint8_t *img = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) img[i] = (uint8_t)(i * 7 + (i / 3) * 13);
    const char *p = tpath("rt.png");
    int rc = zi_png_write(p, img, w, h, NULL);
    UNIT_CHECK(rc == 0, "zi_png_write failed: %s", zi_last_error());
    uint8_t *back = NULL;
    int bw = 0, bh = 0;
    rc = zi_png_read(p, &back, &bw, &bh);
    UNIT_CHECK(rc == 0 && bw == w && bh == h, "zi_png_read: rc %d %dx%d: %s", rc, bw, bh, zi_last_error());
    if (rc == 0) UNIT_CHECK(memcmp(back, img, (size_t)w * h * 3) == 0, "round trip pixels differ");
    free(back);

    /* Overwrite an existing file; no temporary files stay behind. */
    img[0] ^= 0xff;
    rc = zi_png_write(p, img, w, h, NULL);
    UNIT_CHECK(rc == 0, "overwrite failed: %s", zi_last_error());
    rc = zi_png_read(p, &back, &bw, &bh);
    UNIT_CHECK(rc == 0 && back && back[0] == img[0], "overwrite not visible");
    free(back);
    UNIT_CHECK(count_tmp_files() == 0, "temporary files left behind");
    free(img);

    /* 1x1 works */
    uint8_t px[3] = {1, 2, 3};
    rc = zi_png_write(tpath("one.png"), px, 1, 1, NULL);
    back = NULL;
    UNIT_CHECK(rc == 0 && zi_png_read(tpath("one.png"), &back, &bw, &bh) == 0 && bw == 1 && bh == 1 && back &&
                   !memcmp(back, px, 3),
               "1x1 round trip");
    free(back);
}

static void test_metadata(void) {
    static const char *params =
        "a red fox in the snow, watercolor\nSteps: 8, Sampler: Euler, CFG scale: 0, Seed: 42, Size: 64x64, "
        "Model: Z-Image-Turbo";
    static const char *zh = "穿着汉服的年轻中国女性，手持折扇 🎨 — \"quotes\" & ümlaut";
    const char *kv[] = {"parameters", params, "Software", "zimage", "prompt", zh, NULL};
    uint8_t img[4 * 4 * 3] = {0};
    const char *p = tpath("meta.png");
    int rc = zi_png_write(p, img, 4, 4, kv);
    UNIT_CHECK(rc == 0, "write with text failed: %s", zi_last_error());
    char keys[8][80], vals[8][512];
    int comp[8];
    int n = read_texts(p, keys, vals, comp, 8);
    UNIT_CHECK(n == 3, "expected 3 text chunks, got %d", n);
    for (int i = 0; i < n && i < 3; i++) {
        UNIT_CHECK(!strcmp(keys[i], kv[2 * i]), "text key %d: '%s' != '%s'", i, keys[i], kv[2 * i]);
        UNIT_CHECK(!strcmp(vals[i], kv[2 * i + 1]), "text value of %s differs: '%s'", kv[2 * i], vals[i]);
    }
    if (n == 3) {
        UNIT_CHECK(comp[0] == PNG_TEXT_COMPRESSION_NONE, "ASCII value should be tEXt (got compression %d)", comp[0]);
        UNIT_CHECK(comp[2] == PNG_ITXT_COMPRESSION_NONE, "UTF-8 value should be iTXt (got compression %d)", comp[2]);
    }

    /* Bad metadata: rejected before any file is created. */
    const char *badkey[] = {" lead", "x", NULL};
    rc = zi_png_write(tpath("badkey.png"), img, 4, 4, badkey);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "invalid text key"), "bad key accepted: %s", zi_last_error());
    const char *badutf[] = {"k", "\xff\xfe broken", NULL};
    rc = zi_png_write(tpath("badutf.png"), img, 4, 4, badutf);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "UTF-8"), "invalid UTF-8 accepted: %s", zi_last_error());
    const char *noval[] = {"k", NULL};
    rc = zi_png_write(tpath("noval.png"), img, 4, 4, noval);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "no value"), "key without value accepted");
    UNIT_CHECK(file_size(tpath("badkey.png")) < 0 && file_size(tpath("badutf.png")) < 0, "file left after bad metadata");
    UNIT_CHECK(count_tmp_files() == 0, "temporary files left behind");
}

/* zi_png_encode gives the same bytes as zi_png_write's file (server path = CLI path). */
static void test_encode_memory(void) {
    const char *kv[] = {"parameters", "a fox\nSteps: 8", "prompt", "狐狸 fox", NULL};
    uint8_t img[9 * 5 * 3];
    for (int i = 0; i < 9 * 5 * 3; i++) img[i] = (uint8_t)(i * 31);
    const char *p = tpath("enc.png");
    UNIT_CHECK(zi_png_write(p, img, 9, 5, kv) == 0, "write: %s", zi_last_error());
    uint8_t *mem = NULL;
    size_t n = 0;
    UNIT_CHECK(zi_png_encode(img, 9, 5, kv, &mem, &n) == 0 && mem && n > 8, "encode: %s", zi_last_error());
    FILE *f = fopen(p, "rb");
    uint8_t file[4096];
    size_t fn = f ? fread(file, 1, sizeof file, f) : 0;
    if (f) fclose(f);
    UNIT_CHECK(fn == n && mem && !memcmp(file, mem, n), "encoded PNG (%zu bytes) differs from file (%zu bytes)", n, fn);
    free(mem);
    const char *bad[] = {"bad  key", "v", NULL};
    mem = (uint8_t *)1;
    UNIT_CHECK(zi_png_encode(img, 9, 5, bad, &mem, &n) == -1 && mem == NULL && strstr(zi_last_error(), "bad  key"),
               "encode with a bad key: %s", zi_last_error());
    UNIT_CHECK(zi_png_encode(img, 0, 5, NULL, &mem, &n) == -1, "encode 0 width accepted");
}

static void test_write_errors(void) {
    uint8_t img[2 * 2 * 3] = {0};
    const char *bad = "/nonexistent-zimage-dir/sub/out.png";
    int rc = zi_png_write(bad, img, 2, 2, NULL);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), bad) && strstr(zi_last_error(), "No such file"),
               "unwritable path: rc %d, error '%s'", rc, zi_last_error());
    /* Target is an existing directory: the rename fails, the temp file is removed. */
    mkdir(tpath("adir"), 0755);
    rc = zi_png_write(tpath("adir"), img, 2, 2, NULL);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), tpath("adir")), "writing over a directory: '%s'", zi_last_error());
    UNIT_CHECK(count_tmp_files() == 0, "temporary file left after failed rename");
    rmdir(tpath("adir"));
    rc = zi_png_write(tpath("zero.png"), img, 0, 2, NULL);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "out of range"), "0-width image accepted");
    rc = zi_png_write(tpath("huge.png"), img, ZI_PNG_MAX_SIDE + 1, 2, NULL);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "out of range"), "oversized image accepted");
}

static void test_read_errors(void) {
    uint8_t *out = NULL;
    int w, h;
    /* a real PNG with a sizeable IDAT to cut */
    const int W = 64, H = 48;
    uint8_t *img = malloc((size_t)W * H * 3);
    uint32_t s = 12345;
    for (int i = 0; i < W * H * 3; i++) {
        s = s * 1103515245u + 12345u;
        img[i] = (uint8_t)(s >> 24);
    }
    const char *good = tpath("good.png");
    UNIT_CHECK(zi_png_write(good, img, W, H, NULL) == 0, "write: %s", zi_last_error());
    free(img);
    long n = 0;
    unsigned char *bytes = file_slurp(good, &n);
    UNIT_CHECK(bytes && n > 200, "reading back the good file");
    if (!bytes || n <= 200) {
        free(bytes);
        return;
    }

    const char *cut = tpath("cut.png");
    long cuts[] = {n / 2, n - 12 /* just before IEND */, 40 /* inside IHDR/after */, 5 /* inside signature */};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        file_dump(cut, bytes, cuts[i]);
        int rc = zi_png_read(cut, &out, &w, &h);
        UNIT_CHECK(rc != 0 && out == NULL && strstr(zi_last_error(), "truncated") && strstr(zi_last_error(), cut),
                   "truncated at %ld: rc %d, error '%s'", cuts[i], rc, zi_last_error());
    }

    /* Corrupt IDAT byte -> CRC error */
    unsigned char *bad = malloc((size_t)n);
    memcpy(bad, bytes, (size_t)n);
    bad[n / 2] ^= 0x5a;
    file_dump(tpath("crc.png"), bad, n);
    int rc = zi_png_read(tpath("crc.png"), &out, &w, &h);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "corrupt PNG"), "corrupt IDAT: rc %d, '%s'", rc, zi_last_error());
    free(bad);
    free(bytes);

    /* Garbage and empty files */
    unsigned char junk[300];
    for (int i = 0; i < 300; i++) junk[i] = (unsigned char)(i * 31 + 7);
    file_dump(tpath("junk.png"), junk, sizeof junk);
    rc = zi_png_read(tpath("junk.png"), &out, &w, &h);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "not a PNG"), "garbage: rc %d, '%s'", rc, zi_last_error());
    file_dump(tpath("empty.png"), junk, 0);
    rc = zi_png_read(tpath("empty.png"), &out, &w, &h);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "not a PNG"), "empty: rc %d, '%s'", rc, zi_last_error());
    rc = zi_png_read(tpath("missing.png"), &out, &w, &h);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "cannot open"), "missing file: '%s'", zi_last_error());

    /* Absurd size: a valid 20000x1 gray PNG */
    unsigned char *row = calloc(20000, 1);
    raw_png_write(tpath("wide.png"), PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, 20000, 1, row, 20000, NULL, 0, NULL, 0);
    free(row);
    rc = zi_png_read(tpath("wide.png"), &out, &w, &h);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "out of range"), "20000-wide image: rc %d, '%s'", rc, zi_last_error());
    UNIT_CHECK(out == NULL, "output set on error");
}

/* Read `path` and compare with the expected 3x2 RGB image. */
static void expect_rgb(const char *what, const char *path, const uint8_t want[18]) {
    uint8_t *out = NULL;
    int w = 0, h = 0;
    int rc = zi_png_read(path, &out, &w, &h);
    UNIT_CHECK(rc == 0 && w == 3 && h == 2, "%s: rc %d %dx%d %s", what, rc, w, h, zi_last_error());
    if (rc == 0 && w == 3 && h == 2) {
        int ok = !memcmp(out, want, 18);
        UNIT_CHECK(ok, "%s: pixels %d,%d,%d %d,%d,%d ... want %d,%d,%d %d,%d,%d", what, out[0], out[1], out[2], out[3],
                   out[4], out[5], want[0], want[1], want[2], want[3], want[4], want[5]);
    }
    free(out);
}

static void test_color_types(void) {
    const char *p = tpath("ct.png");
    /* gray 8 */
    {
        unsigned char d[6] = {0, 50, 100, 150, 200, 255};
        uint8_t want[18];
        for (int i = 0; i < 6; i++) want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = d[i];
        raw_png_write(p, PNG_COLOR_TYPE_GRAY, 8, 0, 3, 2, d, 3, NULL, 0, NULL, 0);
        expect_rgb("gray8", p, want);
        /* interlaced gray 8 */
        raw_png_write(p, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_ADAM7, 3, 2, d, 3, NULL, 0, NULL, 0);
        expect_rgb("gray8 interlaced", p, want);
    }
    /* gray 16 (little-endian test data; 16->8 scaled with rounding) */
    {
        uint16_t d[6] = {0, 257 * 50, 65535, 128, 129 * 256, 300};
        uint8_t want[18];
        for (int i = 0; i < 6; i++) {
            uint8_t v = (uint8_t)((d[i] * 255u + 32767u) / 65535u);
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = v;
        }
        raw_png_write(p, PNG_COLOR_TYPE_GRAY, 16, 0, 3, 2, (const unsigned char *)d, 6, NULL, 0, NULL, 0);
        expect_rgb("gray16", p, want);
    }
    /* gray 1-bit: row bits 101 / 010 */
    {
        unsigned char d[2] = {0xa0, 0x40};
        uint8_t want[18] = {255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0};
        raw_png_write(p, PNG_COLOR_TYPE_GRAY, 1, 0, 3, 2, d, 1, NULL, 0, NULL, 0);
        expect_rgb("gray1", p, want);
    }
    /* palette 8-bit, with and without tRNS */
    {
        png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
        unsigned char d[6] = {0, 1, 2, 2, 1, 0};
        uint8_t want[18] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 10, 20, 30, 0, 255, 0, 255, 0, 0};
        raw_png_write(p, PNG_COLOR_TYPE_PALETTE, 8, 0, 3, 2, d, 3, pal, 3, NULL, 0);
        expect_rgb("palette", p, want);
        unsigned char trns[3] = {255, 0, 128}; /* green fully transparent, last half */
        uint8_t want2[18] = {255, 0, 0, 0, 0, 0, 5, 10, 15, 5, 10, 15, 0, 0, 0, 255, 0, 0};
        raw_png_write(p, PNG_COLOR_TYPE_PALETTE, 8, 0, 3, 2, d, 3, pal, 3, trns, 3);
        expect_rgb("palette+tRNS (composited on black)", p, want2);
    }
    /* RGBA 8 */
    {
        unsigned char d[24] = {200, 100, 50, 255, 200, 100, 50, 0, 200, 100, 50, 128,
                               1, 2, 3, 255, 255, 255, 255, 51, 90, 90, 90, 255};
        uint8_t want[18];
        for (int i = 0; i < 6; i++)
            for (int c = 0; c < 3; c++) want[3 * i + c] = (uint8_t)((d[4 * i + c] * d[4 * i + 3] + 127) / 255);
        raw_png_write(p, PNG_COLOR_TYPE_RGBA, 8, 0, 3, 2, d, 12, NULL, 0, NULL, 0);
        expect_rgb("rgba8", p, want);
    }
    /* gray + alpha 8 */
    {
        unsigned char d[12] = {100, 255, 100, 0, 200, 128, 255, 255, 0, 0, 255, 51};
        uint8_t want[18];
        for (int i = 0; i < 6; i++) {
            uint8_t v = (uint8_t)((d[2 * i] * d[2 * i + 1] + 127) / 255);
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = v;
        }
        raw_png_write(p, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 3, 2, d, 6, NULL, 0, NULL, 0);
        expect_rgb("gray+alpha", p, want);
    }
    /* RGB 16 */
    {
        uint16_t d[18];
        uint8_t want[18];
        for (int i = 0; i < 18; i++) {
            d[i] = (uint16_t)(i * 3641 + 17);
            want[i] = (uint8_t)((d[i] * 255u + 32767u) / 65535u);
        }
        raw_png_write(p, PNG_COLOR_TYPE_RGB, 16, 0, 3, 2, (const unsigned char *)d, 18, NULL, 0, NULL, 0);
        expect_rgb("rgb16", p, want);
    }
}

void unit_png(void) {
    snprintf(tdir, sizeof tdir, "/tmp/zimage-unit-png-XXXXXX");
    if (!mkdtemp(tdir)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    test_round_trip();
    test_encode_memory();
    test_metadata();
    test_write_errors();
    test_read_errors();
    test_color_types();
    cleanup_dir();
}
