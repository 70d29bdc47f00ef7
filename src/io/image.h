/* image.h - read a condition image (PNG or JPEG, chosen by magic bytes).
 *
 * Pipeline position: input of img2img / inpainting, before preprocessing
 * (pipeline/imgcond.c) and the VAE encoder. */
#ifndef ZI_IMAGE_H
#define ZI_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* New 8-bit RGB buffer [h, w, 3] (free with free()). PNG or JPEG by content, not by
 * file name; anything else is an error naming the path and the formats accepted. */
int zi_image_read(const char *path, uint8_t **rgb, int *w, int *h);
/* The same from the bytes data[0..n) of a PNG or JPEG file; `name` names it in errors;
 * sides above max_side (0: ZI_PNG_MAX_SIDE) are refused before pixels are allocated.
 * flags: ZI_PNG_ALPHA_MASK (png.h; PNG only). */
int zi_image_decode(const uint8_t *data, size_t n, const char *name, int max_side, int flags, uint8_t **rgb, int *w,
                    int *h);

#endif
