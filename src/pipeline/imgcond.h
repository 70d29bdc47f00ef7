/* imgcond.h - image conditioning for img2img and inpainting (diffusers semantics).
 *
 * Pipeline position: between reading the condition image/mask and the sampling
 * loop. Follows diffusers' pipelines/z_image/pipeline_z_image_img2img.py and
 * pipeline_z_image_inpaint.py:
 *   image -> [-1,1] -> VAE encoder moments -> posterior sample with the generator's
 *   FIRST draw -> (x - shift) * scale = image_latents; noise = SECOND draw;
 *   schedule truncated by get_timesteps(strength); latents = scale_noise(...) at
 *   the first kept sigma. Inpainting: a binarized mask, nearest-downsampled to the
 *   latent grid, blends noised image_latents back after every step. */
#ifndef ZI_IMGCOND_H
#define ZI_IMGCOND_H

#include <stdint.h>

/* Fit an image [sh, sw, c] to [H, W, c] (new buffer). If the source is at most 15 px
 * larger than the target on each side (e.g. the default target, its size rounded
 * down to a multiple of 16) it is center-cropped, otherwise resized to cover the
 * target (separable triangle filter, widened when shrinking) and center-cropped. */
int zi_imgcond_fit(const uint8_t *src, int sw, int sh, int c, int W, int H, uint8_t **dst);

/* rgb [H, W, 3] u8 -> [3, H, W] float32 x/255*2-1 (diffusers VaeImageProcessor). */
void zi_imgcond_to_float(const uint8_t *rgb, int W, int H, float *out);

/* RGB mask [H, W, 3] -> 0/1 [H, W]: PIL "L" luma ((19595 R + 38470 G + 7471 B + 2^15) >> 16),
 * then L/255 >= 0.5 (diffusers' do_binarize). */
void zi_imgcond_mask_binarize(const uint8_t *rgb, int W, int H, uint8_t *bin);

/* Latent mask [H/8, W/8]: torch interpolate(mode="nearest") = bin[8i, 8j]. */
void zi_imgcond_mask_latent(const uint8_t *bin, int W, int H, float *lat);

/* Gaussian blur (std `sigma` px, radius ceil(3 sigma), edges clamped) of a 0/1 mask -> alpha [H, W]. */
int zi_imgcond_mask_blur(const uint8_t *bin, int W, int H, float sigma, float *alpha);

/* out = round(orig (1 - a) + gen a) per channel: the original pasted back outside the mask. */
void zi_imgcond_overlay(const uint8_t *orig, const float *alpha, int W, int H, uint8_t *gen);

/* diffusers get_timesteps: t_start = int(max(n - min(n*strength, n), 0)) in double. */
int zi_imgcond_t_start(int n_steps, double strength);

/* image_latents = (mean + exp(0.5 clamp(logvar, -30, 20)) eps - shift) * scaling, float32;
 * moments [2C, h, w], eps/out [C, h, w] with C*h*w = n. */
void zi_imgcond_posterior(const float *moments, const float *eps, int64_t n, float shift, float scaling, float *out);

/* Flow-matching scale_noise: out = sigma noise + (1 - sigma) x0 (float32, no FMA). */
void zi_imgcond_scale_noise(const float *x0, const float *noise, float sigma, int64_t n, float *out);

#endif
