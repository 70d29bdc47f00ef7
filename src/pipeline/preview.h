/* preview.h - cheap previews of the current clean-image estimate while sampling.
 *
 * Pipeline position: inside the denoising loop, after each Euler step. The sampler's
 * estimate of the clean latent is x0 = x_t + sigma_t u (u the guided DiT output; the
 * flow's velocity is -u), in DiT space ((z - shift) * scale). A fixed linear map
 * latent -> RGB (16x3 factors + bias) turns it into a picture at 1/8 size for the cost
 * of one small matrix product; the real VAE decode is the slow, exact alternative. */
#ifndef ZI_PREVIEW_H
#define ZI_PREVIEW_H

#include <stdint.h>

/* FLUX.1 latent space (Z-Image uses the FLUX.1 VAE): rgb = bias + sum_k x0[k] F[k],
 * in [-1, 1]. Values: ComfyUI comfy/latent_formats.py, class Flux (latent_rgb_factors
 * and latent_rgb_factors_bias), a least-squares fit of VAE-decoded RGB (downscaled
 * to latent size) on DiT-space latents. */
extern const float zi_preview_flux_factors[16][3];
extern const float zi_preview_flux_bias[3];

/* x0 [16, h, w] (DiT space) -> rgb [h, w, 3]: round(clamp((v + 1) / 2, 0, 1) * 255). */
void zi_preview_linear(const float *x0, int h, int w, uint8_t *rgb);

#endif
