/* png.c - PNG writer (8-bit RGB + tEXt/iTXt metadata, atomic rename) and
 * reader (any PNG -> 8-bit RGB), over libpng.
 *
 * libpng reports errors by longjmp. Each function keeps everything it must
 * release in variables set before setjmp (or volatile), so the error branch
 * frees all of it; libpng's message is captured by a custom error callback
 * and turned into a zi_err message naming the file. */
#include "png.h"

#include <png.h> /* libpng (the -I path from pkg-config; "png.h" above is ours) */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/error.h"
#include "../common/utf8.h"

/* ---- libpng error plumbing ---- */

typedef struct {
    char msg[256];
    FILE *fp;
    int truncated; /* the read callback hit end of file */
    int max_side;  /* larger sides are refused before pixels are allocated */
    int flags;     /* ZI_PNG_ALPHA_MASK */
} png_ctx;

static void png_cb_error(png_structp png, png_const_charp msg) {
    png_ctx *ctx = png_get_error_ptr(png);
    if (ctx) snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_cb_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks, etc.) are not errors */
}

/* ---- writer ---- */

/* PNG keyword rules: 1-79 Latin-1 printable chars, no leading, trailing or
 * consecutive spaces. We accept the printable ASCII subset. */
static int png_key_valid(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch < 0x20 || ch > 0x7e) return 0;
        if (ch == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

static int png_is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF): the shared helper. */
static int png_is_utf8(const char *str) {
    size_t n = strlen(str);
    return zi_utf8_valid_upto((const unsigned char *)str, n) == n;
}

/* Create a fresh temporary file next to `path`; fills tmp. Returns fd or -1. */
static int png_open_temp(const char *path, char *tmp, size_t cap) {
    static int counter;
    int saved = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        int k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        int n = snprintf(tmp, cap, "%s.tmp-%ld-%d", path, (long)getpid(), k);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) return fd;
        saved = errno;
        if (saved != EEXIST) break;
    }
    errno = saved;
    return -1;
}

static void png_cb_write(png_structp png, png_bytep data, size_t len) {
    png_ctx *ctx = png_get_io_ptr(png);
    if (fwrite(data, 1, len, ctx->fp) != len) {
        snprintf(ctx->msg, sizeof ctx->msg, "%s", strerror(errno));
        png_longjmp(png, 1);
    }
}

static void png_cb_flush(png_structp png) { (void)png; }

/* Check text_kv and build libpng text records (values are borrowed, not copied).
 * *texts is NULL when there is no text. `what` names the output in errors. */
static int png_texts_build(const char *what, const char *const *text_kv, png_text **texts_out, int *n_out) {
    *texts_out = NULL;
    *n_out = 0;
    int n_text = 0;
    if (text_kv) {
        for (; text_kv[2 * n_text]; n_text++) {
            const char *k = text_kv[2 * n_text], *v = text_kv[2 * n_text + 1];
            if (!v) return zi_err("%s: PNG write: text key \"%s\" has no value", what, k);
            if (!png_key_valid(k))
                return zi_err("%s: PNG write: invalid text key \"%s\" (1-79 printable ASCII characters, "
                              "no leading/trailing/double spaces)", what, k);
            if (!png_is_ascii(v) && !png_is_utf8(v))
                return zi_err("%s: PNG write: value of text key \"%s\" is not valid UTF-8", what, k);
        }
    }
    if (!n_text) return 0;
    png_text *texts = zi_calloc((size_t)n_text, sizeof *texts);
    if (!texts) return zi_err_ctx("%s", what);
    for (int i = 0; i < n_text; i++) {
        const char *v = text_kv[2 * i + 1];
        texts[i].key = (png_charp)text_kv[2 * i];
        if (png_is_ascii(v)) {
            texts[i].compression = PNG_TEXT_COMPRESSION_NONE; /* tEXt */
            texts[i].text = (png_charp)v;
            texts[i].text_length = strlen(v);
        } else {
            texts[i].compression = PNG_ITXT_COMPRESSION_NONE; /* iTXt, UTF-8 */
            texts[i].text = (png_charp)v;
            texts[i].itxt_length = strlen(v);
            texts[i].lang = (png_charp) "";
            texts[i].lang_key = (png_charp) "";
        }
    }
    *texts_out = texts;
    *n_out = n_text;
    return 0;
}

/* Encode rgb [h, w, 3] with texts into the open stream fp (not closed here). */
static int png_write_stream(FILE *fp, const char *what, const uint8_t *rgb, int w, int h, png_text *texts,
                            int n_text) {
    /* On the heap: the error callback changes it between setjmp and longjmp. */
    png_ctx *ctx = zi_calloc(1, sizeof *ctx);
    if (!ctx) return zi_err_ctx("%s", what);
    ctx->fp = fp;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, png_cb_error, png_cb_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        free(ctx);
        return zi_err("%s: cannot write PNG: libpng initialization failed", what);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        zi_err("%s: writing PNG failed: %s", what, ctx->msg);
        free(ctx);
        return -1;
    }
    png_set_write_fn(png, ctx, png_cb_write, png_cb_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text) png_set_text(png, info, texts, n_text); /* written before IDAT */
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3); /* row [w, 3] */
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(ctx);
    return 0;
}

int zi_png_write(const char *path, const uint8_t *rgb, int w, int h, const char *const *text_kv) {
    if (!path || !*path) return zi_err("PNG write: empty output path");
    if (!rgb) return zi_err("%s: PNG write: no image data", path);
    if (w < 1 || h < 1 || w > ZI_PNG_MAX_SIDE || h > ZI_PNG_MAX_SIDE)
        return zi_err("%s: PNG write: image size %dx%d out of range (1..%d per side)", path, w, h, ZI_PNG_MAX_SIDE);

    /* Validate the metadata before touching the file system. */
    png_text *texts;
    int n_text;
    if (png_texts_build(path, text_kv, &texts, &n_text)) return -1;

    size_t tcap = strlen(path) + 64;
    char *tmp = zi_malloc(tcap);
    if (!tmp) {
        free(texts);
        return zi_err_ctx("%s", path);
    }
    int fd = png_open_temp(path, tmp, tcap);
    if (fd < 0) {
        int e = errno;
        zi_err("%s: cannot write PNG: creating %s: %s", path, tmp, strerror(e));
        free(tmp);
        free(texts);
        return -1;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        zi_err("%s: cannot write PNG: %s", path, strerror(e));
        free(tmp);
        free(texts);
        return -1;
    }
    int rc = png_write_stream(fp, path, rgb, w, h, texts, n_text);
    free(texts);
    if (rc) {
        fclose(fp);
        unlink(tmp);
        free(tmp);
        return -1;
    }

    /* Flush to disk, then atomically replace the target. */
    int err = 0;
    if (fflush(fp) != 0) err = errno;
    if (!err && fsync(fileno(fp)) != 0 && errno != EINVAL && errno != EROFS) err = errno;
    if (fclose(fp) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        zi_err("%s: writing PNG failed: %s", path, strerror(err));
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int zi_png_encode(const uint8_t *rgb, int w, int h, const char *const *text_kv, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!rgb) return zi_err("PNG encode: no image data");
    if (w < 1 || h < 1 || w > ZI_PNG_MAX_SIDE || h > ZI_PNG_MAX_SIDE)
        return zi_err("PNG encode: image size %dx%d out of range (1..%d per side)", w, h, ZI_PNG_MAX_SIDE);
    png_text *texts;
    int n_text;
    if (png_texts_build("PNG encode", text_kv, &texts, &n_text)) return -1;
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n); /* grows in memory; buf is ours after fclose */
    if (!fp) {
        free(texts);
        return zi_err("PNG encode: %s", strerror(errno));
    }
    int rc = png_write_stream(fp, "PNG encode", rgb, w, h, texts, n_text);
    free(texts);
    if (fclose(fp) != 0 && !rc) rc = zi_err("PNG encode: %s", strerror(errno));
    if (rc) {
        free(buf);
        return -1;
    }
    *out = (uint8_t *)buf;
    *len = n;
    return 0;
}

/* ---- reader ---- */

static void png_cb_read(png_structp png, png_bytep data, size_t len) {
    png_ctx *ctx = png_get_io_ptr(png);
    size_t got = fread(data, 1, len, ctx->fp);
    if (got != len) {
        if (ferror(ctx->fp)) png_error(png, "read error");
        ctx->truncated = 1;
        png_error(png, "unexpected end of file");
    }
}

int zi_png_read(const char *path, uint8_t **rgb_out, int *w_out, int *h_out) {
    *rgb_out = NULL;
    *w_out = *h_out = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return zi_err("%s: cannot open PNG: %s", path, strerror(errno));
    return zi_png_read_stream(fp, path, ZI_PNG_MAX_SIDE, 0, rgb_out, w_out, h_out);
}

int zi_png_read_stream(FILE *fp, const char *path, int max_side, int flags, uint8_t **rgb_out, int *w_out, int *h_out) {
    *rgb_out = NULL;
    *w_out = *h_out = 0;
    unsigned char sig[8];
    size_t n_sig = fread(sig, 1, sizeof sig, fp);
    if (n_sig < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        int truncated_sig = n_sig < sizeof sig && n_sig > 0 && png_sig_cmp(sig, 0, n_sig) == 0;
        fclose(fp);
        if (truncated_sig) return zi_err("%s: truncated PNG (file ends inside the signature)", path);
        return zi_err("%s: not a PNG file (bad signature)", path);
    }
    /* On the heap: the callbacks change it between setjmp and longjmp. */
    png_ctx *ctx = zi_calloc(1, sizeof *ctx);
    if (!ctx) {
        fclose(fp);
        return zi_err_ctx("%s", path);
    }
    ctx->fp = fp;
    ctx->max_side = max_side < 1 || max_side > ZI_PNG_MAX_SIDE ? ZI_PNG_MAX_SIDE : max_side;
    ctx->flags = flags;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_cb_error, png_cb_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        free(ctx);
        return zi_err("%s: cannot read PNG: libpng initialization failed", path);
    }
    uint8_t *volatile px = NULL;     /* RGBA [h, w, 4], allocated after setjmp */
    png_bytep *volatile rows = NULL; /* row pointers into px */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        free(px);
        free(rows);
        if (ctx->truncated) zi_err("%s: truncated PNG (unexpected end of file)", path);
        else zi_err("%s: corrupt PNG: %s", path, ctx->msg[0] ? ctx->msg : zi_last_error());
        free(ctx);
        return -1;
    }
    png_set_read_fn(png, ctx, png_cb_read);
    png_set_sig_bytes(png, (int)sizeof sig);
    png_set_user_limits(png, 1000000, 1000000); /* libpng's own sanity limit; ours is checked below */
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w < 1 || h < 1 || w > (png_uint_32)ctx->max_side || h > (png_uint_32)ctx->max_side) {
        snprintf(ctx->msg, sizeof ctx->msg, "image size %lux%lu is out of range (1..%d per side)", (unsigned long)w,
                 (unsigned long)h, ctx->max_side);
        png_longjmp(png, 1);
    }
    int color = png_get_color_type(png, info);
    /* Normalize everything to 8-bit RGBA. */
    png_set_expand(png);   /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    png_set_scale_16(png); /* 16 -> 8 bits, rounded */
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER); /* no-op when alpha is present */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4) {
        snprintf(ctx->msg, sizeof ctx->msg, "unexpected row layout after conversion");
        png_longjmp(png, 1);
    }
    px = zi_malloc((size_t)w * h * 4);
    rows = zi_malloc((size_t)h * sizeof *rows);
    if (!px || !rows) png_longjmp(png, 1); /* message already set by zi_malloc */
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* checks the rest of the file up to IEND */
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    const int alpha_mask = ctx->flags & ZI_PNG_ALPHA_MASK;
    free(ctx);
    free(rows);

    /* RGBA -> RGB, alpha composited onto black (or gray 255 - alpha); in place (dst index <= src index). */
    uint8_t *p = px;
    for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
        unsigned a = p[4 * i + 3];
        for (int c = 0; c < 3; c++)
            p[3 * i + c] = alpha_mask ? (uint8_t)(255 - a) : (uint8_t)((p[4 * i + c] * a + 127) / 255);
    }
    uint8_t *shrunk = realloc(p, (size_t)w * h * 3);
    *rgb_out = shrunk ? shrunk : p;
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
}
