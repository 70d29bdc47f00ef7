/* jpeg.h - JPEG input for img2img / inpainting (libjpeg-turbo).
 *
 * Pipeline position: before the VAE encoder; zi_image_read (image.h) picks this
 * or zi_png_read by the file's magic bytes. */
#ifndef ZI_JPEG_H
#define ZI_JPEG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Read a JPEG (baseline or progressive; gray, YCbCr or RGB) into a new 8-bit RGB
 * buffer [h, w, 3] (free with free()). Sides above ZI_PNG_MAX_SIDE, CMYK, non-JPEG,
 * corrupt and truncated files give -1 with an error naming the path. EXIF
 * orientation is not applied (PIL's Image.open does not apply it either). */
int zi_jpeg_read(const char *path, uint8_t **rgb, int *w, int *h);
/* The same from an open stream (closed here, in every case), as zi_png_read_stream. */
int zi_jpeg_read_stream(FILE *fp, const char *path, int max_side, uint8_t **rgb, int *w, int *h);
/* The first bytes of a file start a JPEG (FF D8 FF). */
int zi_jpeg_is_jpeg(const uint8_t *head, size_t n);

#endif
