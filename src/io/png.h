/* png.h - PNG output (and input for img2img) over libpng.
 *
 * Pipeline position: the last step; the VAE's uint8 HWC RGB image (docs/MODEL.md §7.4)
 * goes to zi_png_write together with the generation parameters as text chunks.
 * zi_png_read loads a condition image for img2img and tests. */
#ifndef ZI_PNG_H
#define ZI_PNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Largest width or height either function accepts. */
#define ZI_PNG_MAX_SIDE 16384

/* Write rgb [h, w, 3] (row-major, 8-bit) as an 8-bit RGB PNG.
 * text_kv: NULL, or "key", "value", "key", "value", ..., NULL. Keys must be
 * 1-79 printable ASCII characters (no leading/trailing/double spaces). A value
 * that is pure ASCII is stored as tEXt, any other value must be valid UTF-8 and
 * is stored as iTXt (so Chinese prompts survive); both are uncompressed and
 * placed before the image data, as A1111 does with "parameters".
 * The file is written to a temporary name next to `path` and renamed over it
 * only when complete: a failed write never leaves a partial file.
 * Returns 0, or -1 with an error naming the path. */
int zi_png_write(const char *path, const uint8_t *rgb, int w, int h, const char *const *text_kv);

/* The same PNG as zi_png_write, into a new memory buffer *out of *len bytes
 * (free with free()). Returns 0, or -1 with an error. */
int zi_png_encode(const uint8_t *rgb, int w, int h, const char *const *text_kv, uint8_t **out, size_t *len);

/* Read any PNG (gray, gray+alpha, palette, RGB, RGBA; 1-16 bits; interlaced)
 * into a new 8-bit RGB buffer [h, w, 3] (free with free()). Conversions:
 * palette/low-bit gray are expanded, 16-bit samples scaled to 8 bits (rounded),
 * gray replicated to RGB, and alpha composited onto black
 * (c' = round(c * a / 255), no gamma handling). Sides above ZI_PNG_MAX_SIDE,
 * non-PNG, corrupt and truncated files give -1 with a clear error. */
int zi_png_read(const char *path, uint8_t **rgb, int *w, int *h);
/* The same from an open stream (closed here, in every case); `path` names it in errors,
 * sides above max_side (1..ZI_PNG_MAX_SIDE, else ZI_PNG_MAX_SIDE) are refused before any
 * pixel buffer is allocated. */
int zi_png_read_stream(FILE *fp, const char *path, int max_side, int flags, uint8_t **rgb, int *w, int *h);
/* flags: instead of the colors, give gray 255 - alpha (transparent = white: an OpenAI edit
 * mask in zimage's white = repaint convention). */
#define ZI_PNG_ALPHA_MASK 1

#endif
