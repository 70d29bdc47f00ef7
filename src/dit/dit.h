/* dit.h - the S3-DiT denoiser (ZImageTransformer2DModel), docs/MODEL.md §5.
 *
 * Pipeline position: text features (text/) + noisy latent (sampling/) -> here
 * -> velocity-like output u consumed by the Euler sampler. Weights stay
 * mmapped (views into the safetensors files); activations are float32. */
#ifndef ZI_DIT_H
#define ZI_DIT_H

#include <stdint.h>

#include "../common/owned.h"
#include "../io/store.h"
#include "../kernels/kernels.h"

typedef struct {
    int dim;           /* 3840 (tiny: 64) */
    int n_heads;       /* 30 */
    int head_dim;      /* dim / n_heads */
    int n_layers;      /* 30 */
    int n_refiner;     /* 2 */
    int in_channels;   /* 16 */
    int patch;         /* 2 */
    int cap_feat_dim;  /* 2560 */
    int adaln_dim;     /* min(dim, 256): width of t_embedder output / adaLN input */
    int t_hidden;      /* 1024: hidden width of the timestep MLP */
    int ffn_dim;       /* int(dim / 3 * 8) */
    int axes_dims[3];  /* [32, 48, 48] */
    int axes_lens[3];  /* [1536, 512, 512] */
    float rope_theta;  /* 256 */
    float t_scale;     /* 1000 */
    float norm_eps;    /* 1e-5 */
} zi_dit_config;

typedef struct {
    kn_mat wq, wk, wv, wo;     /* [dim, dim] */
    float *norm_q, *norm_k;    /* [head_dim] */
    float *attn_norm1, *attn_norm2, *ffn_norm1, *ffn_norm2; /* [dim] */
    kn_mat w1, w3;             /* [ffn, dim] gate, up */
    kn_mat w2;                 /* [dim, ffn] down */
    kn_mat ada_w;              /* [4*dim, adaln_dim] (modulated blocks only; data NULL otherwise) */
    float *ada_b;              /* [4*dim] */
} zi_dit_block;

typedef struct zi_dit {
    zi_dit_config cfg;
    zi_store store;
    int weights_bf16;          /* F32 matrices were rounded to BF16 at load (see zi_dit_load_ex) */
    zi_owned owned;            /* converted weight buffers, LoRA-merged copies, run-time terms */
    kn_mat t_w1, t_w2;         /* t_embedder.mlp.0 [1024, 256], .2 [adaln, 1024] */
    float *t_b1, *t_b2;
    float *cap_norm;           /* cap_embedder.0 [cap_feat_dim] */
    kn_mat cap_w;              /* cap_embedder.1 [dim, cap_feat_dim] */
    float *cap_b;
    kn_mat x_w;                /* all_x_embedder.2-1 [dim, patch*patch*in] */
    float *x_b;
    float *x_pad, *cap_pad;    /* [dim] */
    kn_mat final_w;            /* all_final_layer.2-1.linear [patch*patch*in, dim] */
    float *final_b;
    kn_mat final_ada_w;        /* all_final_layer.2-1.adaLN_modulation.1 [dim, adaln] */
    float *final_ada_b;
    zi_dit_block *noise_refiner, *context_refiner, *layers;
    int ffn_chunk_rows;        /* most token rows the FFN processes at once (1024; tests lower it) */
} zi_dit;

/* Optional hook: called with named intermediates ("x_embedded", "noise_refiner.0", ...,
 * "final_layer"); data is [rows, cols] float32. Used by tests to localize bugs. */
typedef void (*zi_dit_dump_fn)(void *user, const char *name, const float *data, int64_t rows, int64_t cols);

/* How F32 weight matrices are kept. The official pipeline casts the (fp32 on disk) Turbo
 * transformer to bf16 at load; doing the same halves memory (24.6 -> 12.3 GB), which is what
 * makes the real model fit a 24 GB machine. AUTO rounds to BF16 (nearest-even) when the F32
 * matrices total more than 8 GiB, and keeps small models (the test fixtures) exact. */
typedef enum { ZI_DIT_WEIGHTS_AUTO = 0, ZI_DIT_WEIGHTS_AS_STORED, ZI_DIT_WEIGHTS_BF16 } zi_dit_weights;

/* Load from a transformer folder (config.json + safetensors, sharded or not) or, for
 * ComfyUI single files, the .safetensors file itself (config then defaults to Turbo). */
int zi_dit_load(zi_dit **out, const char *dir);
int zi_dit_load_ex(zi_dit **out, const char *dir, zi_dit_weights policy);
void zi_dit_free(zi_dit *m);
/* Drop the mapped checkpoint pages from the process (zi_store_release_pages); weights stay
 * valid and are faulted back on the next forward. Owned (converted/merged) buffers stay. */
void zi_dit_release_pages(zi_dit *m);
/* Hand a zi_malloc_aligned buffer to the model (freed by zi_dit_free). 0 or -1 (buffer freed). */
int zi_dit_keep(zi_dit *m, void *buf);
/* Is p inside a buffer the model owns (converted or merged weights, not the file mapping)? */
int zi_dit_owns(const zi_dit *m, const void *p);

/* One batch item. x, out: [in_channels, h, w] latents (frame axis dropped);
 * t: the pipeline's t_model in [0,1]; cap: [cap_len, cap_feat_dim].
 * Returns 0 or -1 (bad sizes, out of memory). The model is only read: several
 * threads may run forwards on one model at once (each call has its own scratch). */
int zi_dit_forward(zi_dit *m, const float *x, int h, int w, float t, const float *cap, int cap_len, float *out,
                   zi_dit_dump_fn dump, void *dump_user);

/* Position ids (t, h, w) of the unified sequence [image tokens + pads ; caption tokens + pads]
 * for an Ht x Wt token grid and Lc caption tokens; ids: [Limg_pad + Lc_pad, 3]. */
void zi_dit_positions(int64_t Ht, int64_t Wt, int64_t Lc, int32_t *ids);
/* Pad a token count up to the next multiple of 32 (SEQ_MULTI_OF). */
static inline int64_t zi_dit_pad32(int64_t n) { return n + ((32 - n % 32) % 32); }
/* Positions and RoPE tables (exposed for tests).
 * ids: [n, 3] int32; cos/sin: [n, head_dim/2]. */
void zi_dit_rope_table(const zi_dit_config *cfg, const int32_t *ids, int64_t n, float *cos, float *sin);
/* The 128 sinusoid frequencies exp(-ln(10000) k / 128), float32. */
void zi_dit_timestep_freqs(float *freqs128);
/* Timestep sinusoid [256] (cos first) of t*t_scale. freqs may be NULL (computed in float32). */
void zi_dit_timestep_freq(float t_scaled, const float *freqs, float *out256);

#endif
