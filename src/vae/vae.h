/* vae.h - the FLUX.1 AutoencoderKL (16-channel latents), docs/MODEL.md §7 and §3.6.
 *
 * Pipeline position: the sampler's final latents (DiT space) -> zi_vae_decode ->
 * image in [-1, 1] -> zi_vae_to_u8 -> PNG. For img2img, zi_vae_encode turns an
 * image into moments (mean, logvar) and zi_vae_latents_mode maps the mean to DiT
 * space. Weights come from a diffusers `vae/` folder (config.json + safetensors)
 * or a single BFL/ComfyUI `ae.safetensors` (FLUX defaults, BFL tensor names).
 * Activations are float32, channels-last inside (see kernels/conv.h); the public
 * API takes and returns channel-first [C, H, W] arrays like torch. */
#ifndef ZI_VAE_H
#define ZI_VAE_H

#include <pthread.h>
#include <stdint.h>

#include "../io/store.h"
#include "../kernels/conv.h"

#define ZI_VAE_MAX_LEVELS 8

typedef struct {
    int n_levels;                     /* len(block_out_channels): 4 */
    int ch[ZI_VAE_MAX_LEVELS];        /* block_out_channels: [128, 256, 512, 512] */
    int layers_per_block;             /* 2 */
    int latent_channels;              /* 16 */
    int in_channels, out_channels;    /* 3, 3 */
    int groups;                       /* norm_num_groups: 32 */
    int mid_attention;                /* mid_block_add_attention: 1 */
    float scaling, shift;             /* 0.3611, 0.1159 */
    float eps;                        /* GroupNorm eps 1e-6 */
} zi_vae_config;

typedef struct {
    int cin, cout;
    float *n1_g, *n1_b;   /* [cin] */
    kn_conv conv1;        /* 3x3 cin -> cout */
    float *n2_g, *n2_b;   /* [cout] */
    kn_conv conv2;        /* 3x3 cout -> cout */
    kn_conv shortcut;     /* 1x1 cin -> cout; w.data NULL when cin == cout */
} zi_vae_resnet;

typedef struct {
    int c;
    float *n_g, *n_b;              /* [c] */
    kn_mat wq, wk, wv, wo;         /* [c, c] (to_q, to_k, to_v, to_out.0) */
    float *bq, *bk, *bv, *bo;      /* [c] */
} zi_vae_attn;

typedef struct {
    zi_vae_resnet res[ZI_VAE_MAX_LEVELS + 1];
    int n_res;
    int has_resample;     /* decoder: upsampler (nearest 2x + 3x3); encoder: downsampler (stride 2) */
    kn_conv resample;
} zi_vae_level;

/* Encoder or decoder (levels in diffusers order: down_blocks.i / up_blocks.i). */
typedef struct {
    int loaded;
    kn_conv conv_in;
    zi_vae_resnet mid1, mid2;
    zi_vae_attn attn;
    zi_vae_level lv[ZI_VAE_MAX_LEVELS];
    float *no_g, *no_b;   /* conv_norm_out */
    kn_conv conv_out;
} zi_vae_coder;

typedef struct zi_vae {
    zi_vae_config cfg;
    zi_store store;
    int bfl;               /* tensor names: 0 diffusers, 1 BFL/ComfyUI */
    zi_vae_coder dec, enc;
    void **owned;          /* every buffer built at load (packed weights, vectors) */
    int n_owned, cap_owned;
    pthread_mutex_t enc_lock; /* serializes the on-demand encoder build (enc, owned) */
} zi_vae;

/* Optional hook for intermediates: data is [c, h, w] float32 (channel-first).
 * Decoder names: "z", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.N",
 * "decoder.conv_norm_out" (GroupNorm output, before SiLU). */
typedef void (*zi_vae_dump_fn)(void *user, const char *name, const float *data, int c, int h, int w);

enum { ZI_VAE_DECODER = 1, ZI_VAE_ENCODER = 2 };

/* Load from a diffusers vae folder or a BFL ae.safetensors file. zi_vae_load builds
 * the decoder only (T2I); the encoder is built on the first zi_vae_encode call (under
 * enc_lock, so decode/encode calls from several threads on one VAE are safe).
 * zi_vae_load_ex builds the parts named in `parts` now. Every tensor's shape is
 * checked; errors name the tensor and both shapes. */
int zi_vae_load(zi_vae **out, const char *path);
int zi_vae_load_ex(zi_vae **out, const char *path, int parts);
void zi_vae_free(zi_vae *v);

/* Decode DiT-space latents [latent_channels, h, w] to image [out_channels, f*h, f*w]
 * (f = 2^(n_levels-1) = 8), roughly in [-1, 1]. z = latents/scaling + shift first. */
int zi_vae_decode(zi_vae *v, const float *latents, int h, int w, float *image);
int zi_vae_decode_ex(zi_vae *v, const float *latents, int h, int w, float *image, zi_vae_dump_fn dump,
                     void *dump_user);

/* Encode image [in_channels, H, W] in [-1, 1] (H, W multiples of f) to moments
 * [2*latent_channels, H/f, W/f]: channels 0..15 the mean, 16..31 the logvar. */
int zi_vae_encode(zi_vae *v, const float *image, int H, int W, float *moments);
/* Conv multiply-adds and seconds of the calling thread's last decode/encode (benchmarks). */
void zi_vae_last_conv_stats(double *macs, double *seconds);
/* DiT-space latents of the mode: (mean - shift) * scaling, [latent_channels, h, w]. */
void zi_vae_latents_mode(const zi_vae *v, const float *moments, int h, int w, float *latents);

/* image [3, H, W] -> rgb [H, W, 3]: round(clamp(x/2 + 0.5, 0, 1) * 255), half to even, float32. */
void zi_vae_to_u8(const float *image, int H, int W, uint8_t *rgb);

#endif
