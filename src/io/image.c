/* image.c - condition image input: sniff the magic bytes, hand over to png.c or jpeg.c. */
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
