/* image.c - condition image input: sniff the magic bytes, hand over to png.c or jpeg.c
 * (from a file, or from memory through fmemopen: the server's uploads). */
#include "image.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/error.h"
#include "jpeg.h"
#include "png.h"

int zi_image_read(const char *path, uint8_t **rgb, int *w, int *h) {
    *rgb = NULL;
    *w = *h = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return zi_err("%s: cannot open image: %s", path, strerror(errno));
    uint8_t head[8] = {0};
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 4 && memcmp(head, png_sig, n < 8 ? n : 8) == 0) return zi_png_read(path, rgb, w, h);
    if (zi_jpeg_is_jpeg(head, n)) return zi_jpeg_read(path, rgb, w, h);
    if (n == 0) return zi_err("%s: empty file (expected a PNG or JPEG image)", path);
    return zi_err("%s: not a PNG or JPEG image", path);
}

int zi_image_decode(const uint8_t *data, size_t n, const char *name, int max_side, int flags, uint8_t **rgb, int *w,
                    int *h) {
    *rgb = NULL;
    *w = *h = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int is_png = n >= 4 && memcmp(data, png_sig, n < 8 ? n : 8) == 0;
    int is_jpeg = zi_jpeg_is_jpeg(data, n);
    if (n == 0) return zi_err("%s: empty (expected a PNG or JPEG image)", name);
    if (!is_png && !is_jpeg) return zi_err("%s: not a PNG or JPEG image", name);
    if (is_jpeg && (flags & ZI_PNG_ALPHA_MASK)) return zi_err("%s: a JPEG has no alpha channel", name);
    FILE *fp = fmemopen((void *)data, n, "rb"); /* read-only: the buffer is never written */
    if (!fp) return zi_err("%s: cannot read image from memory: %s", name, strerror(errno));
    return is_png ? zi_png_read_stream(fp, name, max_side, flags, rgb, w, h)
                  : zi_jpeg_read_stream(fp, name, max_side, rgb, w, h);
}
