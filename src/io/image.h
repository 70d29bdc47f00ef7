/* image.h - read a condition image (PNG or JPEG, chosen by magic bytes).
 *
 * Pipeline position: input of img2img / inpainting, before preprocessing
 * (pipeline/imgcond.c) and the VAE encoder. */
#ifndef ZI_IMAGE_H
#define ZI_IMAGE_H

#include <stdint.h>

/* New 8-bit RGB buffer [h, w, 3] (free with free()). PNG or JPEG by content, not by
 * file name; anything else is an error naming the path and the formats accepted. */
int zi_image_read(const char *path, uint8_t **rgb, int *w, int *h);

#endif
